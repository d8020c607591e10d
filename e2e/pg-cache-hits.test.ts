// test-timeout: 180
//
// Cache hits through the proxy, proved twice: by the proxy's own counters (/metrics, /stats) and by
// the upstream never seeing the repeated statement. The upstream is a throwaway cluster with
// pg_stat_statements, whose `calls` count every execution the server ran. Covered: simple Query,
// node-postgres' unnamed Parse per query, named prepared statements, parameter values as part of the
// key, byte-identical hit replies, partial portal fetches, and pgbench -M prepared / -M simple on
// 1000 hot rows with every result checked by the pgbench script itself.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startCluster, type Cluster } from './support/cluster.js';
import { RawClient, codes, describeAll, rawFrames, serialize, type Received } from './support/pg-raw.js';
import { uniqueName } from './support/pg-direct.js';
import { cacheCounters, cacheStats, measure } from './support/metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const DATABASE = 'postgres';
const TABLE = uniqueName('sc_hits');
const HOT_ROWS = 1000;

let cluster: Cluster;
let proxy: RunningProxy;
let scriptDir: string;
const open: pg.Client[] = [];

async function client(): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: proxy.pgPort, user: 'postgres', database: DATABASE });
  await c.connect();
  open.push(c);
  return c;
}

/**
 * Executions the upstream ran of statements whose text contains `fragment` (a column alias unique to
 * one test). pg_stat_statements normalises constants, so `WHERE id = 7` and `= 8` share one entry;
 * it also ignores column aliases, so statements of two tests that differ only by alias would share
 * an entry too: the counts are reset before each test (test.before.each).
 */
async function upstreamCalls(fragment: string): Promise<number> {
  const rows = await cluster.query<{ calls: string }>(
    `SELECT coalesce(sum(calls), 0)::text AS calls FROM pg_stat_statements
      WHERE query LIKE '%' || $1 || '%' AND query NOT LIKE '%pg_stat_statements%'`, [fragment]);
  return Number(rows[0]!.calls);
}

function expectedV(id: number): number {
  return id * 2;
}

test.before(async () => {
  cluster = await startCluster({
    settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'all' },
  });
  await cluster.query('CREATE EXTENSION pg_stat_statements');
  await cluster.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v int NOT NULL, name text NOT NULL)`);
  await cluster.query(`INSERT INTO ${TABLE} SELECT g, g * 2, 'row ' || g FROM generate_series(1, ${HOT_ROWS}) g`);
  await cluster.query('SELECT pg_stat_statements_reset()');
  proxy = await startProxy({ pgUpstream: `postgres://${cluster.host}:${cluster.port}` });
  scriptDir = await mkdtemp(path.join(os.tmpdir(), 'sc-hits-'));
});

test.before.each(async () => {
  await cluster.query('SELECT pg_stat_statements_reset()');
});

test.after(async () => {
  await Promise.all(open.map((c) => c.end().catch(() => undefined)));
  await proxy?.stop();
  await cluster?.stop();
  if (scriptDir) await rm(scriptDir, { recursive: true, force: true });
});

test('simple Query: a miss, then hits the upstream never sees', async () => {
  const c = await client();
  const sql = `SELECT v AS simple_hit, name FROM ${TABLE} WHERE id = 7`;
  const { result, delta } = await measure(proxy.adminPort, async () => [
    (await c.query(sql)).rows, (await c.query(sql)).rows, (await c.query(sql)).rows]);
  for (const rows of result) assert.equal(rows, [{ simple_hit: 14, name: 'row 7' }]);
  assert.is(delta.misses, 1, 'first read is a miss');
  assert.is(delta.hits, 2, 'the two repeats are hits');
  assert.equal(delta.durationCountByOutcome, { miss: 1, hit: 2 }, 'sidecache_query_duration_seconds by outcome');
  assert.is(await upstreamCalls('simple_hit'), 1, 'the upstream ran the statement once');
});

test('extended protocol, unnamed statement (node-postgres parameterised query): hits, $1 is part of the key', async () => {
  const c = await client();
  const sql = `SELECT v AS unnamed_hit FROM ${TABLE} WHERE id = $1`;
  const read = async (id: number): Promise<unknown> => (await c.query(sql, [id])).rows;
  const { result, delta } = await measure(proxy.adminPort, async () => [
    await read(7), await read(7), await read(7), await read(8), await read(7), await read(8)]);
  assert.equal(result, [7, 7, 7, 8, 7, 8].map((id) => [{ unnamed_hit: expectedV(id) }]));
  assert.is(delta.misses, 2, 'one miss per distinct $1');
  assert.is(delta.hits, 4);
  assert.is(await upstreamCalls('unnamed_hit'), 2, 'the upstream ran it once per distinct $1');
});

test('extended protocol, named prepared statement: hits, a new $1 after hits still reaches the upstream', async () => {
  const c = await client();
  const query = (id: number): pg.QueryConfig => ({
    name: 'prepared_hit_stmt', text: `SELECT v AS prepared_hit FROM ${TABLE} WHERE id = $1`, values: [id] });
  const { result, delta } = await measure(proxy.adminPort, async () => [
    (await c.query(query(7))).rows, (await c.query(query(7))).rows, (await c.query(query(7))).rows,
    // The client parsed the statement once; after hits the upstream must still know it.
    (await c.query(query(9))).rows, (await c.query(query(9))).rows]);
  assert.equal(result, [7, 7, 7, 9, 9].map((id) => [{ prepared_hit: expectedV(id) }]));
  assert.is(delta.misses, 2);
  assert.is(delta.hits, 3);
  assert.is(await upstreamCalls('prepared_hit'), 2);

  // Another connection preparing the same text under the same key is answered from the cache too.
  const other = await client();
  const again = await measure(proxy.adminPort, async () => (await other.query(query(7))).rows);
  assert.equal(again.result, [{ prepared_hit: 14 }]);
  assert.is(again.delta.hits, 1, 'a second connection hits the entry the first one filled');
  assert.is(await upstreamCalls('prepared_hit'), 2);
  // That connection's Parse was answered by the proxy; the upstream must still get the statement.
  assert.equal((await other.query(query(11))).rows, [{ prepared_hit: 22 }]);
  assert.equal((await other.query(query(7))).rows, [{ prepared_hit: 14 }]);
  assert.is(await upstreamCalls('prepared_hit'), 3);
});

test('pipelined extended groups (hit, miss, hit, error, named, Describe, Close) sent in one write come back in order', async () => {
  const c = await RawClient.login(proxy.pgPort, { database: DATABASE });
  try {
    const sql = `SELECT v AS pipelined FROM ${TABLE} WHERE id = $1`;
    const group = (id: string, name = ''): Buffer[] => [
      serialize.parse({ name, text: sql }), serialize.bind({ statement: name, values: [id] }),
      serialize.describe({ type: 'P' }), serialize.execute(), serialize.sync()];
    c.send(...group('5'));
    const filled = describeAll(await c.readUntilReadyForQuery());
    const rowDescription = filled[2]!;
    assert.match(rowDescription, /^T pipelined:/);
    const { result, delta } = await measure(proxy.adminPort, async () => {
      c.send(...group('5'), ...group('6'), ...group('5'), serialize.parse({ text: 'SELEC broken' }), serialize.sync(),
        ...group('6', 'pipelined_named'), serialize.describe({ type: 'S', name: 'pipelined_named' }), serialize.sync(),
        serialize.close({ type: 'S', name: 'pipelined_named' }), serialize.sync());
      const replies: string[][] = [];
      for (let i = 0; i < 7; i++) replies.push(describeAll(await c.readUntilReadyForQuery()));
      return replies;
    });
    const answer = (v: number): string[] => ['1', '2', rowDescription, `D ["${v}"]`, 'C SELECT 1', 'Z I'];
    assert.equal(result[0], answer(10), 'hit');
    assert.equal(result[1], answer(12), 'miss');
    assert.equal(result[2], answer(10), 'hit');
    assert.is(result[3]!.length, 2, result[3]!.join(' | '));
    assert.match(result[3]![0]!, /^E .*"code":"42601"/);
    assert.is(result[3]![1], 'Z I');
    assert.equal(result[4], answer(12), 'named statement');
    assert.equal(result[5]!.slice(1), [rowDescription, 'Z I'], 'Describe of the named statement');
    assert.match(result[5]![0]!, /^t \[/);
    assert.equal(result[6], ['3', 'Z I'], 'Close of the named statement');
    // The first group finds nothing outstanding; the third is answered behind the miss before it
    // (or at once, if that reply was back); the named group may find the miss's entry stored.
    assert.ok(delta.hits >= 2, JSON.stringify(delta));
  } finally {
    c.destroy();
  }
});

test('parameter values are part of the key: 40 ids read twice each, every row right', async () => {
  const c = await client();
  const sql = `SELECT id, v AS param_key FROM ${TABLE} WHERE id = $1`;
  const ids = Array.from({ length: 40 }, (_, i) => 100 + i * 7);
  const { delta } = await measure(proxy.adminPort, async () => {
    for (const round of [1, 2]) {
      for (const id of ids) {
        const { rows } = await c.query(sql, [id]);
        assert.equal(rows, [{ id, param_key: expectedV(id) }], `round ${round}, id ${id}`);
      }
    }
  });
  assert.is(delta.misses, ids.length);
  assert.is(delta.hits, ids.length);
  assert.is(await upstreamCalls('param_key'), ids.length);
});

/** The reply to `sql` as one Parse/Bind/Describe/Execute/Sync group (unnamed statement and portal). */
async function extendedQuery(c: RawClient, sql: string): Promise<Received[]> {
  c.send(serialize.parse({ text: sql }), serialize.bind(), serialize.describe({ type: 'P' }), serialize.execute(),
    serialize.sync());
  return c.readUntilReadyForQuery();
}

test('a hit replies with the same bytes as the miss that filled it (simple and extended)', async () => {
  const c = await RawClient.login(proxy.pgPort, { database: DATABASE });
  try {
    // Two texts, so whether the two protocols share an entry does not matter here.
    const simpleSql = `SELECT id, v AS raw_flow_simple, name FROM ${TABLE} WHERE id BETWEEN 10 AND 14 ORDER BY id`;
    // Structurally different from simpleSql: pg_stat_statements would merge statements differing only by alias.
    const extendedSql = `SELECT id, v AS raw_flow_extended, name FROM ${TABLE} WHERE id BETWEEN 10 AND 14 AND v > 0 ORDER BY id`;
    const simple = await measure(proxy.adminPort, async () => ({
      miss: await c.query(simpleSql), hit: await c.query(simpleSql) }));
    assert.is(codes(simple.result.miss), 'TDDDDDCZ');
    assert.equal(describeAll(simple.result.hit), describeAll(simple.result.miss));
    assert.equal(rawFrames(simple.result.hit), rawFrames(simple.result.miss));
    assert.is(simple.delta.hits, 1, `simple: ${JSON.stringify(simple.delta)}`);

    const extended = await measure(proxy.adminPort, async () => ({
      miss: await extendedQuery(c, extendedSql), hit: await extendedQuery(c, extendedSql) }));
    assert.is(codes(extended.result.miss), '12TDDDDDCZ');
    assert.equal(describeAll(extended.result.hit), describeAll(extended.result.miss));
    assert.equal(rawFrames(extended.result.hit), rawFrames(extended.result.miss));
    assert.is(extended.delta.hits, 1, `extended: ${JSON.stringify(extended.delta)}`);

    // After a hit the session goes on normally: a miss, then a simple Query, on the same connection.
    const after = await extendedQuery(c, `SELECT v AS raw_flow_after FROM ${TABLE} WHERE id = 3`);
    assert.is(codes(after), '12TDCZ');
    assert.equal(describeAll(after.slice(3)), ['D ["6"]', 'C SELECT 1', 'Z I']);
    const plain = await c.query('SELECT 1 AS one');
    assert.is(codes(plain), 'TDCZ');
    assert.equal(describeAll(plain.slice(1)), ['D ["1"]', 'C SELECT 1', 'Z I']);
    assert.is(await upstreamCalls('raw_flow_simple'), 1);
    assert.is(await upstreamCalls('raw_flow_extended'), 1);
  } finally {
    c.destroy();
  }
});

test('an execution without Describe is answered from the entry a described one filled (pgJDBC describes only its first executions)', async () => {
  const sql = `SELECT id, v AS described_share FROM ${TABLE} WHERE id BETWEEN $1 AND $2 ORDER BY id`;
  const values = ['20', '22'];
  // What the server itself sends to a Bind/Execute of a prepared statement, for the comparison.
  const direct = await RawClient.login(cluster.port, { database: DATABASE });
  let expected: Received[];
  try {
    direct.send(serialize.parse({ name: 's_direct', text: sql }), serialize.sync());
    await direct.readUntilReadyForQuery();
    direct.send(serialize.bind({ statement: 's_direct', values }), serialize.execute(), serialize.sync());
    expected = await direct.readUntilReadyForQuery();
  } finally {
    direct.destroy();
  }
  const c = await RawClient.login(proxy.pgPort, { database: DATABASE });
  try {
    // First executions: the unnamed statement, described (a miss that fills).
    c.send(serialize.parse({ text: sql }), serialize.bind({ values }), serialize.describe({ type: 'P' }), serialize.execute(), serialize.sync());
    assert.is(codes(await c.readUntilReadyForQuery()), '12TDDDCZ');
    // Then a named statement, described once at Parse, executed without Describe.
    c.send(serialize.parse({ name: 's_share', text: sql }), serialize.describe({ type: 'S', name: 's_share' }), serialize.sync());
    assert.is(codes(await c.readUntilReadyForQuery()), '1tTZ');
    const { result, delta } = await measure(proxy.adminPort, async () => {
      c.send(serialize.bind({ statement: 's_share', values }), serialize.execute(), serialize.sync());
      return c.readUntilReadyForQuery();
    });
    assert.is(codes(result), '2DDDCZ');
    assert.equal(rawFrames(result), rawFrames(expected), 'the bytes the server sends');
    assert.is(delta.hits, 1, JSON.stringify(delta));
    assert.is(await upstreamCalls('described_share'), 2, 'the direct run and the first, described execution; not the Bind/Execute the cache answered');
    // Other values have no described entry: a miss.
    const other = await measure(proxy.adminPort, async () => {
      c.send(serialize.bind({ statement: 's_share', values: ['30', '31'] }), serialize.execute(), serialize.sync());
      return c.readUntilReadyForQuery();
    });
    assert.is(codes(other.result), '2DDCZ');
    assert.is(other.delta.misses, 1);
  } finally {
    c.destroy();
  }
});

test('a partial portal fetch (Execute with a row limit) is not cached as the whole result', async () => {
  const c = await RawClient.login(proxy.pgPort, { database: DATABASE });
  try {
    const sql = `SELECT id AS partial_fetch FROM ${TABLE} WHERE id <= 5 ORDER BY id`;
    c.send(serialize.parse({ text: sql }), serialize.bind(), serialize.execute({ rows: 2 }), serialize.sync());
    const partial = await c.readUntilReadyForQuery();
    assert.is(codes(partial), '12DDsZ');
    for (const round of [1, 2]) {
      c.send(serialize.parse({ text: sql }), serialize.bind(), serialize.execute(), serialize.sync());
      const whole = await c.readUntilReadyForQuery();
      assert.equal(describeAll(whole), ['1', '2', 'D ["1"]', 'D ["2"]', 'D ["3"]', 'D ["4"]', 'D ["5"]',
        'C SELECT 5', 'Z I'], `round ${round}`);
    }
  } finally {
    c.destroy();
  }
});

test('/stats agrees with /metrics', async () => {
  const counters = await cacheCounters(proxy.adminPort);
  const stats = await cacheStats(proxy.adminPort);
  assert.ok(counters.hits > 0, 'earlier tests produced hits');
  assert.is(stats.hits, counters.hits);
  assert.is(stats.misses, counters.misses);
  assert.ok(Math.abs((stats.hitRatio as number) - counters.hits / (counters.hits + counters.misses)) < 1e-6,
    JSON.stringify(stats));
  assert.is(stats.entries, counters.entries);
});

/**
 * A pgbench script that reads one of the hot rows and fails the transaction (division by zero) when
 * the value is not the one the row holds, so a wrong cached answer shows as a failed transaction.
 */
function hotRowScript(alias: string): string {
  return [
    `\\set id random(1, ${HOT_ROWS})`,
    `SELECT v AS ${alias} FROM ${TABLE} WHERE id = :id \\gset`,
    `\\if :${alias} != 2 * :id`,
    'SELECT 1 / 0 AS wrong_cached_value;',
    '\\endif',
    '',
  ].join('\n');
}

function pgbench(args: string[]): Promise<{ code: number; output: string }> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH, LANG: 'C.UTF-8', PGHOST: '127.0.0.1', PGPORT: String(proxy.pgPort), PGUSER: 'postgres',
    PGCONNECT_TIMEOUT: '5',
  };
  return new Promise((resolve, reject) => {
    execFile('pgbench', [...args, DATABASE], { env, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ code: err ? (err.code as number) : 0, output: stdout + stderr });
    });
  });
}

/** Transactions per pgbench client: a count, where `-T` would give a slow machine fewer than HOT_ROWS. */
const PER_CLIENT = 750;

for (const mode of ['prepared', 'extended', 'simple'] as const) {
  test(`pgbench -M ${mode}, 1000 hot rows, 4 clients x ${PER_CLIENT}: hits, right values, upstream ran fewer queries`, async () => {
    const alias = `bench_${mode}`;
    const script = path.join(scriptDir, `${alias}.sql`);
    await writeFile(script, hotRowScript(alias));
    const { result: run, delta } = await measure(proxy.adminPort,
      () => pgbench(['-n', '-M', mode, '-c', '4', '-j', '2', '-t', String(PER_CLIENT), '-f', script]));
    assert.is(run.code, 0, run.output);
    assert.not.match(run.output, /aborted|division by zero/i, run.output);
    assert.match(run.output, /number of failed transactions: 0 \(/, run.output);
    const processed = Number(/number of transactions actually processed: (\d+)/.exec(run.output)?.[1] ?? 0);
    assert.is(processed, 4 * PER_CLIENT, run.output);
    assert.ok(delta.hits > 0, `no hits: ${JSON.stringify(delta)}`);
    const calls = await upstreamCalls(alias);
    assert.ok(calls < processed, `upstream ran ${calls} of ${processed} reads`);
    assert.ok(calls <= HOT_ROWS * 4, `upstream ran ${calls} reads for ${HOT_ROWS} distinct rows`);
  });
}

test.run();
