// test-timeout: 180
// The probe (sidecache's own catalog query on the client's connection) against a private cluster
// with pg_stat_statements: it must not inherit the session's planner and timeout settings (no JIT
// when the session forces it, no cancel by a short statement_timeout), must leave the session as
// the client set it, must never show its own messages to the client, and a probe that fails for a
// passing reason must not turn caching off for the session.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { startCluster, type Cluster } from './support/cluster.js';
import { uniqueName } from './support/pg-direct.js';
import { cacheCounters, measure } from './support/metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const DATABASE = 'postgres';
const TABLE = uniqueName('sc_probe_t');
const VIEW = `${TABLE}_view`;
const ROLE = uniqueName('sc_probe_role');

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
  // longer than 100 ms, while the client's own statement (an index scan) stays cheap.
  await c.query("SET enable_seqscan = off; SET statement_timeout = '100ms'");
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

test.run();
