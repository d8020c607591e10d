// test-timeout: 120
// A pooled MySQL connection that meets one passing error in the cache's probe or identity check
// (interrupted, a timeout, a lock, resources) caches again once it passes: the statement goes
// uncached and the probe is tried again after a few statements. The session's own
// max_statement_time (MariaDB) interrupts the probe deterministically: it reads
// information_schema, which takes far longer than a microsecond.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connectMySql, directMySql, uniqueName, type MySqlConnection } from './support/mysql-direct.js';
import { measureMySql } from './support/mysql-metrics.js';
import { DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

let proxy: RunningProxy;
const db = uniqueName('sc_mretry');
const timed = `${db}_t`;
const open: MySqlConnection[] = [];
/** More than the backoff after one failure (2 statements), the retry and the fill. */
const MAX_READS = 8;

async function connect(extra: Parameters<typeof connectMySql>[1] = {}): Promise<MySqlConnection> {
  const c = await connectMySql(proxy.mysqlPort, { database: db, ...extra });
  open.push(c);
  return c;
}

/** Reads `sql` until a read is a hit, at most MAX_READS times; how many reads that took (0: none was) and the bypass reasons met. */
async function readsUntilHit(c: MySqlConnection, sql: string): Promise<{ reads: number; bypassByReason: Record<string, number> }> {
  const reasons: Record<string, number> = {};
  for (let i = 1; i <= MAX_READS; i++) {
    const { delta } = await measureMySql(proxy.adminPort, () => c.query(sql));
    for (const [k, v] of Object.entries(delta.bypassByReason)) reasons[k] = (reasons[k] ?? 0) + v;
    if (delta.hits === 1) return { reads: i, bypassByReason: reasons };
  }
  return { reads: 0, bypassByReason: reasons };
}

test.before(async () => {
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: DIRECT_MYSQL_URL });
  await directMySql(
    `CREATE DATABASE ${db}`,
    `CREATE TABLE ${db}.items (id INT PRIMARY KEY, name VARCHAR(40))`,
    `INSERT INTO ${db}.items VALUES (1, 'one'), (2, 'two')`,
    // MariaDB's per-user limit: the login's sessions start with it, so the identity check sent
    // ahead of the session's first command is interrupted.
    `CREATE USER '${timed}'@'%' IDENTIFIED BY 'pw3' WITH MAX_STATEMENT_TIME 0.000001`,
    `GRANT SELECT ON ${db}.* TO '${timed}'@'%'`,
  );
});

test.after(async () => {
  for (const c of open) await c.end().catch(() => undefined);
  await directMySql(`DROP DATABASE IF EXISTS ${db}`, `DROP USER IF EXISTS '${timed}'@'%'`).catch(() => undefined);
  await proxy?.stop();
});

test('a probe interrupted by max_statement_time is tried again: the read becomes a hit', async () => {
  const c = await connect();
  // The session's first command: the identity check goes ahead of it, under the default limit.
  await c.query('SET SESSION max_statement_time = 0.000001');
  const sql = 'SELECT name FROM items WHERE id = 1';
  // The probe is interrupted; the read itself may be too.
  const { delta } = await measureMySql(proxy.adminPort, () => c.query(sql).catch((err: { errno?: number }) => {
    assert.is(err.errno, 1969);
  }));
  assert.is(delta.hits, 0);
  await c.query('SET SESSION max_statement_time = 0');
  const { reads, bypassByReason } = await readsUntilHit(c, sql);
  assert.ok(reads > 0, `a hit within ${MAX_READS} reads (bypassed: ${JSON.stringify(bypassByReason)})`);
  // What was interrupted is the probe, or the identity check when it was not sent ahead of the
  // SET (it goes with the first command that needs it; seen once in a full run): which one is not
  // asserted. Without the retry either turns caching off for the session, and no read is a hit.
  assert.is(bypassByReason.unanalysable, undefined, 'caching never went off');
});

test('an identity check interrupted by max_statement_time is sent again: the read becomes a hit', async () => {
  const c = await connect({ user: timed, password: 'pw3' });
  await c.query('SET SESSION max_statement_time = 0');
  const { reads, bypassByReason } = await readsUntilHit(c, 'SELECT name FROM items WHERE id = 2');
  assert.ok(reads > 0, `a hit within ${MAX_READS} reads (bypassed: ${JSON.stringify(bypassByReason)})`);
  assert.is(bypassByReason['unidentified-server'], undefined, 'the server was identified in the end');
});

test.run();
