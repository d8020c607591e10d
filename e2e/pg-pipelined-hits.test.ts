// test-timeout: 180
//
// Hits for pipelined requests (issue 17, item 3): a cacheable read sent while earlier requests of
// the same session are still outstanding is answered from the cache in its place in the reply
// order, and the server never sees it. The pipelines are made deterministic by a relay between
// sidecache and the server (support/hold-relay.ts) that holds the server's replies to the first
// request until the server has answered the last one: every request of the pipeline has reached
// sidecache while the first is outstanding. Proved by the proxy's counters and by the server's
// pg_stat_statements (a throwaway cluster). Clients: node-postgres with `pipeline: true` (several
// queries in flight on one client, each its own Sync) and raw extended-protocol groups; a write
// earlier in the pipeline makes the read behind it go to the server, which returns the new row.
//
// A Sync group of several statements (psycopg 3's pipeline mode read after the block ends, a
// pgJDBC multi-statement execute: one Sync for all) is answered wholly from the cache when every
// statement is a stored read; a write in the group sends it whole to the server, whose read sees
// the new row (docs/consistency.md, "Pipelined requests"). A group of reads relayed because some
// miss stores each statement's reply as that statement's alone would be: the same group sent again
// is answered, an error stores nothing from the failed statement on, and a write through the proxy
// between two groups is seen by the second. A psycopg pipeline read inside its block (a Flush
// before the Sync) is answered from the cache too when its reads are stored, and what follows in
// the block runs on the server as it would after those reads (the proxy begins their implicit
// transaction with a read of its own); relayed, its reads are stored.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { startCluster, type Cluster } from './support/cluster.js';
import { compileJava, requireFile, runClientProgram } from './support/client-program.js';
import { startHoldRelay, type HoldRelay } from './support/hold-relay.js';
import { RawClient, describeAll, serialize } from './support/pg-raw.js';
import { uniqueName } from './support/pg-direct.js';
import { measure } from './support/metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const DATABASE = 'postgres';
const TABLE = uniqueName('sc_pipe');

const PG_JDBC_JAR = '/usr/share/java/postgresql.jar';

let cluster: Cluster;
let relay: HoldRelay;
/** e2e/clients/JdbcMultiStatement.java compiled, once a test needs it. */
let jdbcClasses: string | null = null;
let proxy: RunningProxy;
const open: pg.Client[] = [];

/**
 * Executions the server ran of statements whose text contains `fragment` (a column alias of one
 * role). pg_stat_statements ignores aliases and constants when it tells statements apart and keeps
 * the first text it saw: the statements of one test differ in structure, not only by alias.
 */
async function upstreamCalls(fragment: string): Promise<number> {
  const rows = await cluster.query<{ calls: string }>(
    `SELECT coalesce(sum(calls), 0)::text AS calls FROM pg_stat_statements
      WHERE query LIKE '%' || $1 || '%' AND query NOT LIKE '%pg_stat_statements%'`, [fragment]);
  return Number(rows[0]!.calls);
}

/** A node-postgres client in pipeline mode, its session warmed (identity check, context) by a first read. */
async function pipelineClient(): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: proxy.pgPort, user: 'postgres', database: DATABASE, pipeline: true });
  await c.connect();
  open.push(c);
  await c.query(`SELECT v AS warm_up FROM ${TABLE} WHERE id = $1`, [1]);
  return c;
}

test.before(async () => {
  cluster = await startCluster({
    settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'all' },
  });
  await cluster.query('CREATE EXTENSION pg_stat_statements');
  await cluster.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v int NOT NULL)`);
  await cluster.query(`INSERT INTO ${TABLE} SELECT g, g * 10 FROM generate_series(1, 100) g`);
  relay = await startHoldRelay({ host: cluster.host, port: cluster.port });
  proxy = await startProxy({ pgUpstream: relay.url });
});

test.before.each(async () => {
  await cluster.query('SELECT pg_stat_statements_reset()');
});

test.after(async () => {
  await Promise.all(open.map((c) => c.end().catch(() => undefined)));
  await proxy?.stop();
  await relay?.close();
  await cluster?.stop();
  if (jdbcClasses !== null) await rm(jdbcClasses, { recursive: true, force: true });
});

test('node-postgres pipeline mode: hits behind an outstanding read, in order, never seen by the server', async () => {
  const c = await pipelineClient();
  const first = `SELECT v AS pl_first FROM ${TABLE} WHERE id = $1 /* pl-first */`;
  const hit = `SELECT v AS pl_hit FROM ${TABLE} WHERE id = $1 AND v >= 0`;
  const last = `SELECT id, v AS pl_last FROM ${TABLE} WHERE id = $1`;
  // Each statement judged once (its decision known), the hits' rows stored.
  for (const [sql, id] of [[first, 50], [hit, 1], [hit, 2], [last, 50]] as const) await c.query(sql, [id]);
  await cluster.query('SELECT pg_stat_statements_reset()');

  const { result, delta } = await measure(proxy.adminPort, async () => {
    const hold = relay.holdAfter('pl-first');
    const replies = Promise.all([c.query(first, [3]), c.query(hit, [1]), c.query(hit, [2]), c.query(hit, [1]), c.query(last, [4])]);
    // The server answered the last read: every request reached sidecache while the first was outstanding.
    await hold.waitHeldContains('pl_last', 10_000).finally(() => hold.release());
    return (await replies).map((r) => r.rows);
  });
  assert.equal(result, [[{ pl_first: 30 }], [{ pl_hit: 10 }], [{ pl_hit: 20 }], [{ pl_hit: 10 }], [{ id: 4, pl_last: 40 }]]);
  assert.is(delta.hits, 3, JSON.stringify(delta));
  assert.is(delta.misses, 1, 'the first read, a fill');
  assert.equal(delta.bypassByReason, { pipelined: 1 }, 'only the miss behind the hits');
  assert.is(await upstreamCalls('pl_hit'), 0, 'the server never saw the hits');
  assert.equal([await upstreamCalls('pl_first'), await upstreamCalls('pl_last')], [1, 1], 'the misses did');
});

test('a write earlier in the pipeline: the cached read behind it goes to the server and sees the write', async () => {
  const c = await pipelineClient();
  const read = `SELECT v AS pw_read FROM ${TABLE} WHERE id = $1 AND v <> -1`;
  assert.equal((await c.query(read, [7])).rows, [{ pw_read: 70 }]);
  assert.equal((await c.query(read, [7])).rows, [{ pw_read: 70 }], 'stored');
  await cluster.query('SELECT pg_stat_statements_reset()');
  const { result, delta } = await measure(proxy.adminPort, async () => {
    const hold = relay.holdAfter('pw-write');
    const replies = Promise.all([
      c.query(read, [7]),
      c.query(`UPDATE ${TABLE} SET v = 777 WHERE id = $1 /* pw-write */`, [7]),
      c.query(read, [7]),
    ]);
    // Held from the UPDATE on: the read behind it must reach the server (its RowDescription names
    // pw_read). Released whatever happens, so a read answered from the cache shows as its stale row.
    const reached = await hold.waitHeldContains('pw_read', 10_000).then(() => true, () => false).finally(() => hold.release());
    return [...(await replies).map((r) => r.rows), reached];
  });
  assert.equal(result, [[{ pw_read: 70 }], [], [{ pw_read: 777 }], true]);
  assert.is(delta.hits, 1, 'the read before the write only');
  assert.is(await upstreamCalls('pw_read'), 1, 'the read after the write ran on the server');
  assert.equal((await c.query(read, [7])).rows, [{ pw_read: 777 }], 'and what is stored after it is the new row');
});

test('raw extended groups sent in one write: hits behind a miss, an error and a named statement keep their places', async () => {
  const c = await RawClient.login(proxy.pgPort, { database: DATABASE });
  try {
    const sql = `SELECT v AS pr_hit FROM ${TABLE} WHERE id = $1 AND v >= 0`;
    const group = (id: string, name = '', parse = true): Buffer[] => [
      ...(parse ? [serialize.parse({ name, text: sql })] : []), serialize.bind({ statement: name, values: [id] }),
      serialize.describe({ type: 'P' }), serialize.execute(), serialize.sync()];
    for (const id of ['5', '6']) {
      c.send(...group(id));
      await c.readUntilReadyForQuery();
    }
    const slow = `SELECT v AS pr_first FROM ${TABLE} WHERE id = $1 /* pr-first */`;
    c.send(serialize.parse({ text: slow }), serialize.bind({ values: ['8'] }), serialize.describe({ type: 'P' }), serialize.execute(), serialize.sync());
    await c.readUntilReadyForQuery();
    await cluster.query('SELECT pg_stat_statements_reset()');
    const { result, delta } = await measure(proxy.adminPort, async () => {
      const hold = relay.holdAfter('pr-first');
      c.send(serialize.parse({ text: slow }), serialize.bind({ values: ['9'] }), serialize.describe({ type: 'P' }), serialize.execute(), serialize.sync(),
        ...group('5'), serialize.parse({ text: 'SELEC broken' }), serialize.sync(), ...group('6'),
        ...group('6', 'pr_named'), ...group('5', 'pr_named', false),
        // The unnamed statement the client holds is the hit's, not the first read's: binary results
        // are not stored, so this goes to the server, which must be given the hit's statement first.
        serialize.bind({ values: ['7'], binary: true }), serialize.describe({ type: 'P' }), serialize.execute(), serialize.sync(),
        serialize.query(`SELECT 1 AS pr_last`));
      await hold.waitHeldContains('pr_last', 10_000).finally(() => hold.release());
      const replies: string[][] = [];
      for (let i = 0; i < 8; i++) replies.push(describeAll(await c.readUntilReadyForQuery()));
      return replies;
    });
    const answer = (v: number, parse = true): string[] => [...(parse ? ['1'] : []), '2', 'T pr_hit:23', `D ["${v}"]`, 'C SELECT 1', 'Z I'];
    assert.equal(result[0]!.slice(-3), ['D ["90"]', 'C SELECT 1', 'Z I'], 'the first read');
    assert.equal(result[1]!.map(rowDescriptionShort), answer(50), 'hit');
    assert.match(result[2]![0]!, /^E .*"code":"42601"/);
    assert.equal(result[3]!.map(rowDescriptionShort), answer(60), 'hit behind an error in the group before it');
    assert.equal(result[4]!.map(rowDescriptionShort), answer(60), 'named statement, hit');
    assert.equal(result[5]!.map(rowDescriptionShort), answer(50, false), 'the named statement bound again, hit');
    assert.equal(result[6]!.map(rowDescriptionShort).slice(0, 1), ['2'], 'binary results, from the server');
    assert.is(result[6]!.at(-1), 'Z I');
    assert.ok(result[7]!.includes('D ["1"]'), result[7]!.join(' | '));
    assert.is(delta.hits, 4, JSON.stringify(delta));
    assert.is(await upstreamCalls('pr_hit'), 1, 'only the binary execution ran on the server');
  } finally {
    c.destroy();
  }
});

/** Debian's python3-psycopg installs for the system interpreter (scripts/ensure-servers.sh installs it). */
const PYTHON = process.env.SIDECACHE_PYTHON ?? '/usr/bin/python3';

/** psycopg 3's pipeline mode: the reads of ids argv[3] run alone first, then those of argv[4] in one pipeline, printed in order as JSON. */
const PSYCOPG_PIPELINE = `
import json, sys, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
read = "SELECT v AS pp_read FROM " + sys.argv[2] + " WHERE id = %s AND v > -2"
for i in json.loads(sys.argv[3]):
    conn.execute(read, (i,)).fetchall()
ids = json.loads(sys.argv[4])
with conn.pipeline():
    cursors = [conn.cursor() for _ in ids]
    for cur, i in zip(cursors, ids):
        cur.execute(read, (i,))
    rows = [cur.fetchall() for cur in cursors]
print(json.dumps(rows))
`;
/** The statement PSYCOPG_PIPELINE runs, as psycopgGroup() takes it. */
const PSYCOPG_PIPELINE_READ = `SELECT v AS pp_read FROM ${TABLE} WHERE id = %s AND v > -2`;

async function psycopgPipeline(warm: number[], ids: number[]): Promise<unknown> {
  const dsn = `host=127.0.0.1 port=${proxy.pgPort} user=postgres dbname=${DATABASE} sslmode=disable`;
  const { stdout } = await promisify(execFile)(PYTHON, ['-c', PSYCOPG_PIPELINE, dsn, TABLE, JSON.stringify(warm), JSON.stringify(ids)],
    { timeout: 60_000, env: { PATH: process.env.PATH, LANG: 'C.UTF-8' } });
  return JSON.parse(stdout);
}

test('psycopg 3 pipeline mode read inside the block (a Flush before the Sync): cached reads are answered from the cache, in order and right', async () => {
  const { result, delta } = await measure(proxy.adminPort, () => psycopgPipeline([1, 2], [1, 2, 1]));
  assert.equal(result, [[[10]], [[20]], [[10]]]);
  // Warmed outside the pipeline: two misses. fetchall() inside the block sends a Flush before the
  // Sync: every held statement is stored, so the cache answers them (docs/consistency.md).
  assert.equal([delta.misses, delta.hits], [2, 3], JSON.stringify(delta));
  assert.is(await upstreamCalls('pp_read'), 2);
});

test('psycopg 3 pipeline mode read inside the block: the relayed reads are stored, a later group of them is answered', async () => {
  assert.equal(await psycopgPipeline([], [51, 52, 51]), [[[510]], [[520]], [[510]]]);
  await cluster.query('SELECT pg_stat_statements_reset()');
  const { result, delta } = await measure(proxy.adminPort, () => psycopgGroup([[PSYCOPG_PIPELINE_READ, [52]], [PSYCOPG_PIPELINE_READ, [51]]], []));
  assert.equal(result, [[[520]], [[510]]]);
  assert.equal([delta.hits, delta.misses], [2, 0], JSON.stringify(delta));
  assert.is(await upstreamCalls('pp_read'), 0);
});

/**
 * psycopg 3's pipeline mode: the read of id argv[3] run alone first (when argv[4] is 'warm'), then in
 * a pipeline the same read, fetched (a Flush), then argv[5]; prints the read's rows and the error's
 * SQLSTATE, if any.
 */
const PSYCOPG_AFTER_FLUSH = `
import json, sys, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
read = "SELECT v AS pf_read FROM " + sys.argv[2] + " WHERE id = %s AND v > -3"
if sys.argv[4] == "warm":
    conn.execute(read, (int(sys.argv[3]),)).fetchall()
out = []
try:
    with conn.pipeline():
        out.append(conn.execute(read, (int(sys.argv[3]),)).fetchall())
        conn.execute(sys.argv[5])
except psycopg.Error as e:
    out.append(e.sqlstate)
print(json.dumps(out))
`;

async function psycopgAfterFlush(port: number, id: number, warm: boolean, then: string): Promise<unknown> {
  const dsn = `host=127.0.0.1 port=${port} user=postgres dbname=${DATABASE} sslmode=disable`;
  const { stdout } = await promisify(execFile)(PYTHON, ['-c', PSYCOPG_AFTER_FLUSH, dsn, TABLE, String(id), warm ? 'warm' : '', then],
    { timeout: 60_000, env: { PATH: process.env.PATH, LANG: 'C.UTF-8' } });
  return JSON.parse(stdout);
}

test('psycopg 3 pipeline mode: after reads answered before a Flush, the statement that follows runs as after those reads on the server', async () => {
  // Each refused by the server "before any query" / "within a pipeline" when it follows a read in
  // the same implicit transaction: the proxy begins that transaction with a read of its own.
  assert.equal(await psycopgAfterFlush(proxy.pgPort, 61, true, 'SELECT 1'), [[[610]]], 'stored alone, then answered in the pipeline');
  for (const then of ['SET TRANSACTION ISOLATION LEVEL SERIALIZABLE', `VACUUM ${TABLE}`, 'BEGIN ISOLATION LEVEL SERIALIZABLE']) {
    const direct = await psycopgAfterFlush(cluster.port, 61, false, then);
    assert.equal(direct, [[[610]], '25001'], then);
    await cluster.query('SELECT pg_stat_statements_reset()');
    const { result, delta } = await measure(proxy.adminPort, () => psycopgAfterFlush(proxy.pgPort, 61, false, then));
    assert.equal(result, direct, then);
    assert.equal([delta.hits, delta.misses], [1, 0], JSON.stringify(delta));
    assert.is(await upstreamCalls('pf_read'), 0, 'the read answered from the cache');
  }
  // A write after them commits at the Sync; the next read sees it.
  const { result } = await measure(proxy.adminPort, () => psycopgAfterFlush(proxy.pgPort, 62, true, `UPDATE ${TABLE} SET v = 6262 WHERE id = 62`));
  assert.equal(result, [[[620]]]);
  assert.equal(await psycopgAfterFlush(proxy.pgPort, 62, false, 'SELECT 1'), [[[6262]]]);
});

/** psycopg 3's pipeline mode, the results read once the pipeline block has ended: one Sync for all its statements. */
const PSYCOPG_GROUP = `
import json, sys, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
statements = json.loads(sys.argv[2])
for sql, params in json.loads(sys.argv[3]):
    conn.execute(sql, params).fetchall()
with conn.pipeline():
    cursors = [conn.cursor() for _ in statements]
    for cur, (sql, params) in zip(cursors, statements):
        cur.execute(sql, params)
print(json.dumps([cur.fetchall() if cur.description else cur.rowcount for cur in cursors]))
`;

/** Runs PSYCOPG_GROUP: `warm` each alone, then `statements` in one pipeline; returns what each statement gave. */
async function psycopgGroup(statements: [string, number[]][], warm: [string, number[]][]): Promise<unknown> {
  const dsn = `host=127.0.0.1 port=${proxy.pgPort} user=postgres dbname=${DATABASE} sslmode=disable`;
  const { stdout } = await promisify(execFile)(PYTHON, ['-c', PSYCOPG_GROUP, dsn, JSON.stringify(statements), JSON.stringify(warm)],
    { timeout: 60_000, env: { PATH: process.env.PATH, LANG: 'C.UTF-8' } });
  return JSON.parse(stdout);
}

test('psycopg 3 pipeline mode read after the block (one Sync group of cached reads): answered wholly from the cache', async () => {
  const a = `SELECT v AS pg_group FROM ${TABLE} WHERE id = %s AND v > -3`;
  const b = `SELECT id, v AS pg_group_b FROM ${TABLE} WHERE id = %s`;
  await psycopgGroup([], [[a, [21]], [b, [22]], [a, [23]]]);
  await cluster.query('SELECT pg_stat_statements_reset()');
  const { result, delta } = await measure(proxy.adminPort, () => psycopgGroup([[a, [21]], [b, [22]], [a, [23]], [a, [21]]], []));
  assert.equal(result, [[[210]], [[22, 220]], [[230]], [[210]]]);
  assert.equal([delta.hits, delta.misses], [4, 0], JSON.stringify(delta));
  assert.is(await upstreamCalls('pg_group'), 0, 'the server never saw the group');
});

test('psycopg 3 pipeline mode: a write before the cached read in the group goes to the server with it, the read sees the new row', async () => {
  const read = `SELECT v AS pg_group_w FROM ${TABLE} WHERE id = %s AND v > -4`;
  assert.equal(await psycopgGroup([[read, [24]]], [[read, [24]]]), [[[240]]], 'stored, then a group of it alone answered');
  await cluster.query('SELECT pg_stat_statements_reset()');
  const write = `UPDATE ${TABLE} SET v = %s WHERE id = %s`;
  const { result, delta } = await measure(proxy.adminPort, () => psycopgGroup([[write, [2424, 24]], [read, [24]]], []));
  assert.equal(result, [1, [[2424]]]);
  assert.is(delta.hits, 0, JSON.stringify(delta));
  assert.is(await upstreamCalls('pg_group_w'), 1, 'the read ran on the server, after the write');
  assert.equal(await psycopgGroup([[read, [24]]], []), [[[2424]]], 'and nothing stale is answered after it');
});

test('psycopg 3 pipeline mode: a group of reads never run alone is relayed once, stored, then answered wholly', async () => {
  const a = `SELECT v AS pg_fill FROM ${TABLE} WHERE id = %s AND v > -5`;
  const b = `SELECT id, v AS pg_fill_b FROM ${TABLE} WHERE id = %s AND v > -5`;
  const group: [string, number[]][] = [[a, [41]], [b, [42]], [a, [43]]];
  const first = await measure(proxy.adminPort, () => psycopgGroup(group, []));
  assert.equal(first.result, [[[410]], [[42, 420]], [[430]]]);
  assert.equal([first.delta.hits, first.delta.misses], [0, 3], JSON.stringify(first.delta));
  await cluster.query('SELECT pg_stat_statements_reset()');
  const again = await measure(proxy.adminPort, () => psycopgGroup(group, []));
  assert.equal(again.result, first.result);
  assert.equal([again.delta.hits, again.delta.misses], [3, 0], JSON.stringify(again.delta));
  assert.is(await upstreamCalls('pg_fill'), 0, 'the server never saw the second group');
});

test('psycopg 3 pipeline mode: a write through the proxy between two groups is seen by the second', async () => {
  const a = `SELECT v AS pg_fill_w FROM ${TABLE} WHERE id = %s AND v > -6`;
  const b = `SELECT id AS pg_wfill_b FROM ${TABLE} WHERE id = %s AND v > -6`;
  const group: [string, number[]][] = [[a, [44]], [b, [45]]];
  assert.equal(await psycopgGroup(group, []), [[[440]], [[45]]]);
  const stored = await measure(proxy.adminPort, () => psycopgGroup(group, []));
  assert.equal([stored.result, stored.delta.hits], [[[[440]], [[45]]], 2], 'stored by the first group');
  const c = new pg.Client({ host: '127.0.0.1', port: proxy.pgPort, user: 'postgres', database: DATABASE });
  await c.connect();
  open.push(c);
  await c.query(`UPDATE ${TABLE} SET v = 4444 WHERE id = 44`);
  await cluster.query('SELECT pg_stat_statements_reset()');
  const { result, delta } = await measure(proxy.adminPort, () => psycopgGroup(group, []));
  assert.equal(result, [[[4444]], [[45]]]);
  assert.is(delta.hits, 0, 'the write dropped what the group stored of the table');
  assert.equal([await upstreamCalls('pg_fill_w'), await upstreamCalls('pg_wfill_b')], [1, 1], 'the reads ran on the server, after the write');
  assert.equal(await psycopgGroup(group, []), [[[4444]], [[45]]], 'and the new rows were stored');
});

test('a relayed group with an error: what ran before it is stored, the failed statement and those it skipped are not', async () => {
  const c = await RawClient.login(proxy.pgPort, { database: DATABASE });
  try {
    const ok = `SELECT v AS pe_ok FROM ${TABLE} WHERE id = $1`;
    const fails = `SELECT v / (id - 46) AS pe_fails FROM ${TABLE} WHERE id = $1`;
    const skipped = `SELECT id, v AS pe_skipped FROM ${TABLE} WHERE id = $1`;
    const stmt = (sql: string, id: string): Buffer[] => [serialize.parse({ text: sql }), serialize.bind({ values: [id] }), serialize.describe({ type: 'P' }), serialize.execute()];
    c.send(...stmt(ok, '46'), ...stmt(fails, '46'), ...stmt(skipped, '46'), serialize.sync());
    const reply = describeAll(await c.readUntilReadyForQuery());
    assert.ok(reply.some((m) => /^E .*"code":"22012"/.test(m)), reply.join(' | '));
    await cluster.query('SELECT pg_stat_statements_reset()');
    const { result, delta } = await measure(proxy.adminPort, async () => {
      const rows: string[][] = [];
      for (const sql of [ok, fails, skipped]) {
        c.send(...stmt(sql, '46'), serialize.sync());
        rows.push(describeAll(await c.readUntilReadyForQuery()).filter((m) => /^[DE] /.test(m)));
      }
      return rows;
    });
    assert.equal(result[0], ['D ["460"]']);
    assert.match(result[1]![0]!, /^E .*"code":"22012"/);
    assert.equal(result[2], ['D ["46","460"]']);
    assert.equal([delta.hits, delta.misses], [1, 2], JSON.stringify(delta));
    // pg_stat_statements counts no failed execution: the failing read's miss is in delta.
    assert.equal([await upstreamCalls('pe_ok'), await upstreamCalls('pe_skipped')], [0, 1]);
  } finally {
    c.destroy();
  }
});

/** e2e/clients/JdbcMultiStatement.java through the proxy: its output lines. */
async function jdbcStatements(mode: 'alone' | 'together', sql: string[]): Promise<string[]> {
  requireFile(PG_JDBC_JAR, 'pgJDBC', 'libpostgresql-jdbc-java');
  jdbcClasses ??= await compileJava('JdbcMultiStatement.java');
  const url = `jdbc:postgresql://127.0.0.1:${proxy.pgPort}/${DATABASE}?user=postgres&sslmode=disable`;
  const run = await runClientProgram('java', ['-cp', `${jdbcClasses}${path.delimiter}${PG_JDBC_JAR}`, 'JdbcMultiStatement', url, mode, ...sql],
    { env: { ...process.env, LANG: 'C.UTF-8' }, timeoutMs: 60_000 });
  assert.is(run.code, 0, run.stderr);
  return run.stdout.trim().split('\n');
}

test('pgJDBC, several SELECTs in one execute (one Sync group) stored before: answered wholly from the cache', async () => {
  const sql = [`SELECT v AS pj_group FROM ${TABLE} WHERE id = 31`, `SELECT id AS pj_group_b, v FROM ${TABLE} WHERE id = 32 AND v > 0`];
  assert.equal(await jdbcStatements('alone', sql), ['[310]', '[32]']);
  await cluster.query('SELECT pg_stat_statements_reset()');
  const { result, delta } = await measure(proxy.adminPort, () => jdbcStatements('together', sql));
  assert.equal(result, ['[310]', '[32]']);
  assert.equal([delta.hits, delta.misses], [2, 0], JSON.stringify(delta));
  assert.is(await upstreamCalls('pj_group'), 0, 'the server never saw the group');
});

test('pgJDBC, an UPDATE and a stored SELECT in one execute: both go to the server, the read sees the new row', async () => {
  const read = `SELECT v AS pj_group_w FROM ${TABLE} WHERE id = 33`;
  assert.equal(await jdbcStatements('alone', [read, read]), ['[330]', '[330]']);
  await cluster.query('SELECT pg_stat_statements_reset()');
  const { result, delta } = await measure(proxy.adminPort, () => jdbcStatements('together', [`UPDATE ${TABLE} SET v = 3333 WHERE id = 33`, read]));
  assert.equal(result, ['updated 1', '[3333]']);
  assert.is(delta.hits, 0, JSON.stringify(delta));
  assert.is(await upstreamCalls('pj_group_w'), 1);
});

test('pgJDBC, several SELECTs in one execute never run alone: relayed once, stored, then answered wholly', async () => {
  const sql = [`SELECT v AS pj_fill FROM ${TABLE} WHERE id = 34`, `SELECT id AS pj_fill_b, v FROM ${TABLE} WHERE id = 35 AND v > 0`];
  const first = await measure(proxy.adminPort, () => jdbcStatements('together', sql));
  assert.equal(first.result, ['[340]', '[35]']);
  assert.equal([first.delta.hits, first.delta.misses], [0, 2], JSON.stringify(first.delta));
  await cluster.query('SELECT pg_stat_statements_reset()');
  const { result, delta } = await measure(proxy.adminPort, () => jdbcStatements('together', sql));
  assert.equal(result, ['[340]', '[35]']);
  assert.equal([delta.hits, delta.misses], [2, 0], JSON.stringify(delta));
  assert.is(await upstreamCalls('pj_fill'), 0, 'the server never saw the second group');
});

/** A RowDescription described as `T name:<type oid>` (its other fields vary with the server). */
function rowDescriptionShort(m: string): string {
  const match = /^T (\w+):/.exec(m);
  return match === null ? m : `T ${match[1]}:23`;
}

test.run();
