// test-timeout: 180
// The probe (sidecache's own catalog query on the client's connection) against a private cluster
// with pg_stat_statements: it must not inherit the session's planner and timeout settings (no JIT
// when the session forces it, no cancel by a short statement_timeout), must leave the session as
// the client set it, must never show its own messages to the client, and a probe that fails for a
// passing reason must not turn caching off for the session. A never-seen literal, or a new
// statement over relations a probe already reported on, costs no probe, and is judged as a probe
// would judge it (views, partitions, row-level security, temporary tables, functions, cascades).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { startCluster, type Cluster } from './support/cluster.js';
import { uniqueName } from './support/pg-direct.js';
import { cacheCounters, cacheStats, measure } from './support/metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const DATABASE = 'postgres';
const TABLE = uniqueName('sc_probe_t');
const VIEW = `${TABLE}_view`;
const ROLE = uniqueName('sc_probe_role');
const P = uniqueName('sc_facts');

let cluster: Cluster;
let proxy: RunningProxy;
const open: pg.Client[] = [];

async function client(port = proxy.pgPort, user = 'postgres'): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port, user, database: DATABASE });
  await c.connect();
  open.push(c);
  return c;
}

/** A text only the probe's catalog query has (pg_stat_statements keeps it, constants normalised). */
const PROBE_FRAGMENT = '%pg_my_temp_schema%';

/** Executions of the probe's query, and the functions JIT compiled for them, since the last reset. */
async function probeStats(): Promise<{ calls: number; jitFunctions: number }> {
  const rows = await cluster.query<{ calls: string; jit: string }>(
    'SELECT coalesce(sum(calls), 0) AS calls, coalesce(sum(jit_functions), 0) AS jit FROM pg_stat_statements WHERE query LIKE $1',
    [PROBE_FRAGMENT]);
  return { calls: Number(rows[0]!.calls), jitFunctions: Number(rows[0]!.jit) };
}

test.before(async () => {
  cluster = await startCluster({ settings: { shared_preload_libraries: 'pg_stat_statements', jit: 'on' } });
  await cluster.query('CREATE EXTENSION pg_stat_statements');
  await cluster.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v text NOT NULL)`);
  await cluster.query(`INSERT INTO ${TABLE} SELECT g, 'v' || g FROM generate_series(1, 1000) g`);
  await cluster.query(`CREATE VIEW ${VIEW} AS SELECT id, v FROM ${TABLE}`);
  await cluster.query(`CREATE ROLE ${ROLE} LOGIN`);
  await cluster.query(`GRANT SELECT ON ${TABLE}, ${VIEW} TO ${ROLE}`);
  await cluster.query(`
    CREATE TABLE ${P}_items (id int PRIMARY KEY, v text NOT NULL);
    INSERT INTO ${P}_items SELECT g, 'v' || g FROM generate_series(1, 100) g;
    CREATE TABLE ${P}_ddl (id int PRIMARY KEY);
    CREATE VIEW ${P}_now AS SELECT id, now() AS at FROM ${P}_items;
    CREATE TABLE ${P}_parts (k text NOT NULL, v int NOT NULL) PARTITION BY LIST (k);
    CREATE TABLE ${P}_parts_a PARTITION OF ${P}_parts FOR VALUES IN ('a');
    CREATE TABLE ${P}_parts_b PARTITION OF ${P}_parts FOR VALUES IN ('b');
    INSERT INTO ${P}_parts VALUES ('a', 1), ('b', 2);
    CREATE TABLE ${P}_allowed (owner text NOT NULL);
    CREATE TABLE ${P}_guarded (id int, owner text NOT NULL);
    INSERT INTO ${P}_allowed VALUES ('ann');
    INSERT INTO ${P}_guarded VALUES (1, 'ann'), (2, 'bob'), (3, 'bob');
    ALTER TABLE ${P}_guarded ENABLE ROW LEVEL SECURITY;
    CREATE POLICY listed ON ${P}_guarded USING (owner IN (SELECT a.owner FROM ${P}_allowed a));
    GRANT SELECT ON ${P}_guarded, ${P}_allowed TO ${ROLE};
    CREATE FUNCTION ${P}_vol(int) RETURNS int LANGUAGE sql VOLATILE AS 'SELECT $1 + 1';
    CREATE TABLE ${P}_parent (id int PRIMARY KEY);
    CREATE TABLE ${P}_child (id int PRIMARY KEY, parent_id int REFERENCES ${P}_parent ON DELETE CASCADE);
    INSERT INTO ${P}_parent VALUES (1), (2);
    INSERT INTO ${P}_child VALUES (10, 1), (20, 2);`);
  proxy = await startProxy({ pgUpstream: `postgres://${cluster.host}:${cluster.port}` });
});

test.before.each(async () => {
  await cluster.query('SELECT pg_stat_statements_reset()');
});

test.after(async () => {
  await Promise.all(open.map((c) => c.end().catch(() => undefined)));
  await proxy?.stop();
  await cluster?.stop();
});

test('enable_seqscan = off and jit_above_cost = 0 in the session: the probe is not JIT compiled, the session keeps its settings', async () => {
  const c = await client();
  await c.query("SET enable_seqscan = off; SET jit_above_cost = 0; SET statement_timeout = '20s'");
  const reported: string[] = [];
  (c as unknown as { connection: { on(e: string, f: (m: { parameterName: string }) => void): void } })
    .connection.on('parameterStatus', (m) => reported.push(m.parameterName));
  const sql = `SELECT v AS jit_probe FROM ${TABLE} WHERE id = 7`;
  assert.equal((await c.query(sql)).rows, [{ jit_probe: 'v7' }]);
  const stats = await probeStats();
  assert.is(stats.calls, 1, 'the statement was probed once');
  assert.is(stats.jitFunctions, 0, 'the probe ran with jit off');
  const { delta } = await measure(proxy.adminPort, () => c.query(sql));
  assert.is(delta.hits, 1, 'and its verdict stands: the read is cached');
  assert.equal(reported, [], 'no ParameterStatus the client did not cause');
  const shown = await c.query("SELECT current_setting('enable_seqscan') AS s, current_setting('jit_above_cost') AS j, current_setting('statement_timeout') AS t");
  assert.equal(shown.rows, [{ s: 'off', j: '0', t: '20s' }], 'the session keeps the settings it made');
  const jitted = await cluster.query<{ jit: string }>(
    'SELECT coalesce(sum(jit_functions), 0) AS jit FROM pg_stat_statements WHERE query LIKE $1', ['%jit_probe%']);
  assert.ok(Number(jitted[0]!.jit) > 0, 'the client\'s own statement is JIT compiled: the session forces it');
});

test('a statement_timeout shorter than a probe under the session\'s planner settings: no error, and the reads are cached', async () => {
  const c = await client();
  // Without the probe's own settings its plan costs ~1e10 here, past jit_above_cost: JIT takes far
  // longer than 200 ms, while the client's own statement (an index scan) stays cheap.
  await c.query("SET enable_seqscan = off; SET statement_timeout = '200ms'");
  const sql = `SELECT v AS short_timeout FROM ${TABLE} WHERE id = 8`;
  const { result, delta } = await measure(proxy.adminPort, async () => {
    const rows = [];
    for (let i = 0; i < 4; i++) rows.push((await c.query(sql)).rows);
    return rows;
  });
  for (const rows of result) assert.equal(rows, [{ short_timeout: 'v8' }]);
  assert.is(delta.hits, 3, JSON.stringify(delta));
});

test('a probe cancelled while it waits: the client never sees it, and caching resumes for the session', async () => {
  const c = await client();
  const locker = await client(cluster.port);
  // The probe reads the view's definition, which locks the view's table: it waits behind this lock.
  await locker.query(`BEGIN; LOCK TABLE ${TABLE} IN ACCESS EXCLUSIVE MODE`);
  const sql = `SELECT v AS cancelled_probe FROM ${VIEW} WHERE id = 9`;
  const first = c.query(sql);
  const cancelled = await cancelWaitingProbe(10_000);
  await locker.query('COMMIT');
  assert.ok(cancelled, 'the probe was seen waiting for the lock and cancelled');
  assert.equal((await first).rows, [{ cancelled_probe: 'v9' }], 'the statement itself ran');
  // The next probes wait a few statements, then the session is probed again and served.
  let hits = 0;
  for (let i = 0; i < 12 && hits < 2; i++) {
    const { result, delta } = await measure(proxy.adminPort, () => c.query(sql));
    assert.equal(result.rows, [{ cancelled_probe: 'v9' }]);
    hits += delta.hits;
  }
  assert.is(hits, 2, 'caching resumed');
  assert.match(proxy.output(), /cache probe failed/);
});

/** Cancels the probe once pg_stat_activity shows it waiting for a lock; false when it never does. */
async function cancelWaitingProbe(timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const rows = await cluster.query<{ cancelled: boolean }>(
      "SELECT pg_cancel_backend(pid) AS cancelled FROM pg_stat_activity WHERE query LIKE '%sidecache probe%' AND wait_event_type = 'Lock'");
    if (rows.some((r) => r.cancelled)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

test('a probe that cannot work in the session (no privilege on a function it calls): caching off for that session only, said in the log', async () => {
  await cluster.query('REVOKE EXECUTE ON FUNCTION pg_catalog.pg_my_temp_schema() FROM PUBLIC');
  try {
    const c = await client(proxy.pgPort, ROLE);
    const sql = `SELECT v AS unprivileged FROM ${TABLE} WHERE id = 10`;
    const { result, delta } = await measure(proxy.adminPort, async () => [(await c.query(sql)).rows, (await c.query(sql)).rows]);
    assert.equal(result, [[{ unprivileged: 'v10' }], [{ unprivileged: 'v10' }]]);
    assert.is(delta.hits, 0);
    assert.is(delta.bypassByReason['unanalysable'], 1, JSON.stringify(delta));
    assert.match(proxy.output(), /caching off for this session/);
    const other = await client();
    const before = (await cacheCounters(proxy.adminPort)).hits;
    await other.query(sql);
    await other.query(sql);
    assert.is((await cacheCounters(proxy.adminPort)).hits - before, 1, 'another session still caches');
  } finally {
    await cluster.query('GRANT EXECUTE ON FUNCTION pg_catalog.pg_my_temp_schema() TO PUBLIC');
  }
});

test('the probe\'s notices are not relayed: a session at client_min_messages = debug5 sees what it sees directly', async () => {
  const sql = `SELECT v AS debug_notices FROM ${TABLE} WHERE id = 11`;
  const notices = async (port: number): Promise<string[]> => {
    const c = await client(port);
    await c.query('SET client_min_messages = debug5');
    const seen: string[] = [];
    c.on('notice', (n) => seen.push(n.message!.replace(/ xid\/subid\/cid: .*/, '')));
    await c.query(sql);
    await c.query('RESET client_min_messages');
    return seen;
  };
  const direct = await notices(cluster.port);
  assert.ok(direct.length > 0, 'debug5 shows the transaction starting and ending');
  const { calls } = await probeStats();
  const proxied = await notices(proxy.pgPort);
  assert.ok((await probeStats()).calls > calls, 'the statement was probed');
  assert.equal(proxied, direct);
});

/** Runs `sql` twice through `c`: the rows of each run, the hits, and the probes the server ran. */
async function twice(c: pg.Client, sql: string): Promise<{ rows: unknown[][]; hits: number; probes: number }> {
  const before = (await probeStats()).calls;
  const { result, delta } = await measure(proxy.adminPort, async () => [(await c.query(sql)).rows, (await c.query(sql)).rows]);
  return { rows: result, hits: delta.hits, probes: (await probeStats()).calls - before };
}

/** Distinct statements (fingerprints of statement shapes) /stats tracks. */
async function pgFingerprints(): Promise<number> {
  return ((await cacheStats(proxy.adminPort)) as { protocols: { postgres: { fingerprints: number } } }).protocols.postgres.fingerprints;
}

/** What PostgreSQL itself answers. */
async function truth(sql: string): Promise<unknown[]> {
  return cluster.query(sql);
}

test('distinct string literals over one relation: one statement shape, one probe, and each literal its own entry', async () => {
  const c = await client();
  const fingerprints = await pgFingerprints();
  const { result, delta } = await measure(proxy.adminPort, async () => {
    const rows = [];
    for (let i = 1; i <= 40; i++) rows.push((await c.query(`SELECT id, v FROM ${P}_items WHERE v = 'v${i}'`)).rows);
    return rows;
  });
  result.forEach((rows, i) => assert.equal(rows, [{ id: i + 1, v: `v${i + 1}` }]));
  assert.is(delta.misses, 40, JSON.stringify(delta));
  assert.is((await probeStats()).calls, 1, 'one probe for forty literals');
  assert.is(await pgFingerprints(), fingerprints + 1, 'one shape: analysed once, one line in /stats');
  for (const i of [3, 4, 3]) {
    const { result: again, delta: d } = await measure(proxy.adminPort, () => c.query(`SELECT id, v FROM ${P}_items WHERE v = 'v${i}'`));
    assert.equal(again.rows, [{ id: i, v: `v${i}` }], 'a literal is answered with its own result');
    assert.is(d.hits, 1);
  }
});

test('new statement shapes over relations already probed: no probe, cached, also in a new session of the same startup', async () => {
  const c = await client();
  // What the shapes below use: the table and count().
  await c.query(`SELECT count(*) FROM ${P}_items WHERE id = 1`);
  await cluster.query('SELECT pg_stat_statements_reset()');
  for (const sql of [`SELECT count(*) FROM ${P}_items WHERE id IN (1, 2, 3)`, `SELECT v FROM ${P}_items ORDER BY id LIMIT 3`,
    `SELECT i.id FROM ${P}_items i JOIN ${P}_items j USING (id) WHERE j.v = 'v7' AND lower(i.v) = 'v7'`]) {
    const r = await twice(c, sql);
    assert.equal(r.rows, [await truth(sql), await truth(sql)], sql);
    assert.is(r.probes, sql.includes('lower') ? 1 : 0, `${sql}: a function not named before is probed, known names are not`);
    assert.is(r.hits, 1, sql);
  }
  const other = await client();
  const r = await twice(other, `SELECT v FROM ${P}_items WHERE id = 42 AND v <> 'x'`);
  assert.equal(r.rows, [[{ v: 'v42' }], [{ v: 'v42' }]]);
  assert.equal([r.probes, r.hits], [0, 1], 'a session with the same startup knows the context and its facts');
});

test('a new shape over a view computing now() is still refused, without a probe', async () => {
  const c = await client();
  await c.query(`SELECT * FROM ${P}_now WHERE id = 1`);
  const { probes, hits } = await twice(c, `SELECT at FROM ${P}_now WHERE id IN (1, 2)`);
  assert.equal([probes, hits], [0, 0]);
});

test('a new shape over a partitioned table: a write to a partition shows in the next read', async () => {
  const c = await client();
  const writer = await client();
  await c.query(`SELECT sum(v) FROM ${P}_parts WHERE k = 'a'`);
  const sql = `SELECT sum(v) AS total FROM ${P}_parts`;
  const r = await twice(c, sql);
  assert.equal([r.probes, r.hits], [0, 1]);
  await writer.query(`UPDATE ${P}_parts_b SET v = v + 10`);
  assert.equal((await c.query(sql)).rows, await truth(sql), 'the entry depended on the partition');
});

test('row-level security: a new shape over a guarded table shows a write to the table its policy reads', async () => {
  const c = await client(proxy.pgPort, ROLE);
  const writer = await client();
  await c.query(`SELECT count(*) FROM ${P}_guarded WHERE id = 1`);
  const sql = `SELECT count(*) AS n FROM ${P}_guarded`;
  const r = await twice(c, sql);
  assert.equal(r.rows[0], [{ n: '1' }]);
  assert.equal([r.probes, r.hits], [0, 1]);
  await writer.query(`INSERT INTO ${P}_allowed VALUES ('bob')`);
  assert.equal((await c.query(sql)).rows, [{ n: '3' }], 'the policy now lets bob\'s rows through');
});

test('a temporary table shadowing a known one: never cached, never answered with the real table\'s entries', async () => {
  const c = await client();
  const other = await client();
  const sql = `SELECT count(*) AS n FROM ${P}_items WHERE v <> 'none'`;
  assert.equal((await twice(other, sql)).hits, 1);
  await c.query(`CREATE TEMP TABLE ${P}_items (id int, v text); INSERT INTO ${P}_items VALUES (1, 'temp')`);
  const r = await twice(c, sql);
  assert.equal(r.rows, [[{ n: '1' }], [{ n: '1' }]]);
  assert.is(r.hits, 0);
  const shape = await twice(c, `SELECT v FROM ${P}_items WHERE id = 1`);
  assert.equal(shape.rows, [[{ v: 'temp' }], [{ v: 'temp' }]]);
  assert.is(shape.hits, 0);
  assert.equal((await other.query(sql)).rows, [{ n: '100' }]);
});

test('a new shape calling a volatile function over a known relation: refused', async () => {
  const c = await client();
  await c.query(`SELECT ${P}_vol(id) FROM ${P}_items WHERE id = 1`);
  // A user function may change settings: after each call the session's context is read again.
  const { result, delta } = await measure(proxy.adminPort, async () => {
    const sql = `SELECT ${P}_vol(id) + 1 AS w FROM ${P}_items WHERE id IN (1, 2) ORDER BY 1`;
    return [(await c.query(sql)).rows, (await c.query(sql)).rows];
  });
  assert.equal(result, [[{ w: 3 }, { w: 4 }], [{ w: 3 }, { w: 4 }]]);
  assert.equal([delta.hits, delta.bypassByReason['function']], [0, 2], JSON.stringify(delta));
});

test('a new shape over a table a cascade reaches: a delete of the parent shows in the next read', async () => {
  const c = await client();
  const writer = await client();
  await c.query(`SELECT count(*) FROM ${P}_child WHERE id = 10`);
  const sql = `SELECT count(*) AS n FROM ${P}_child`;
  const r = await twice(c, sql);
  assert.equal([r.probes, r.hits], [0, 1]);
  await writer.query(`DELETE FROM ${P}_parent WHERE id = 1`);
  assert.equal((await c.query(sql)).rows, [{ n: '1' }]);
});

test('DDL through the proxy: what was learned of the catalog is learned again', async () => {
  const c = await client();
  await c.query(`SELECT id FROM ${P}_ddl WHERE id = 1`);
  await c.query(`ALTER TABLE ${P}_ddl ADD COLUMN note text`);
  const r = await twice(c, `SELECT note FROM ${P}_ddl WHERE id = 2`);
  assert.equal([r.probes, r.hits], [1, 1]);
});

test.run();
