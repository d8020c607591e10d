// When a MySQL upstream session ends without its client's COM_QUIT (an administrator's KILL, the
// server's wait_timeout, a restart) or the server cannot be reached, cached results may have missed
// writes: sidecache drops them all instead of serving them as if nothing happened. A client that
// quits normally flushes nothing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RowDataPacket } from 'mysql2/promise';
import { startHoldRelay } from './support/hold-relay.js';
import { connectMySql, directMySql, uniqueName, type MySqlConnection } from './support/mysql-direct.js';
import { mysqlCacheCounters } from './support/mysql-metrics.js';
import { DIRECT_MYSQL, DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

const TABLE = uniqueName('sc_mlost');
let proxy: RunningProxy;

async function connect(port = proxy.mysqlPort): Promise<MySqlConnection> {
  const c = await connectMySql(port);
  c.on('error', () => undefined);
  return c;
}

async function entries(adminPort = proxy.adminPort): Promise<number> {
  return (await mysqlCacheCounters(adminPort)).entries;
}

async function waitForNoEntries(adminPort = proxy.adminPort): Promise<number> {
  const deadline = Date.now() + 5000;
  while ((await entries(adminPort)) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return entries(adminPort);
}

/** Reads `sql` twice on `c` and checks the second read was a hit. */
async function cacheRead(c: MySqlConnection, sql: string, adminPort = proxy.adminPort): Promise<RowDataPacket[]> {
  await c.query(sql);
  const hits = (await mysqlCacheCounters(adminPort)).hits;
  const [rows] = await c.query<RowDataPacket[]>(sql);
  assert.is((await mysqlCacheCounters(adminPort)).hits, hits + 1, 'the read is cached');
  return rows;
}

test.before(async () => {
  await directMySql(`CREATE TABLE ${TABLE} (id INT PRIMARY KEY, v INT)`, `INSERT INTO ${TABLE} VALUES (1, 10)`);
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: DIRECT_MYSQL_URL });
});

test.after(async () => {
  await proxy?.stop();
  await directMySql(`DROP TABLE IF EXISTS ${TABLE}`);
});

test('an upstream session KILLed behind the client\'s back flushes the cache', async () => {
  const reader = await connect();
  const sql = `SELECT v FROM ${TABLE} WHERE id = 1`;
  assert.equal(await cacheRead(reader, sql), [{ v: 10 }]);
  const victim = await connect();
  // The proxy relays the server's connection id: the victim's own upstream thread.
  const [[{ id }]] = await victim.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id') as unknown as [[{ id: number }]];
  // A write that bypasses sidecache, then the upstream session goes away (as on a restart).
  await directMySql(`UPDATE ${TABLE} SET v = 11 WHERE id = 1`, `KILL ${id}`);
  assert.is(await waitForNoEntries(), 0, 'every entry was dropped');
  assert.match(proxy.output(), /mysql: an upstream session ended unexpectedly; cached results dropped/);
  const [after] = await reader.query<RowDataPacket[]>(sql);
  assert.equal(after, [{ v: 11 }], 'the next read goes to the server');
  await reader.end();
  victim.destroy();
});

test('an upstream session closed by wait_timeout flushes the cache', async () => {
  const reader = await connect();
  const sql = `SELECT v AS timed FROM ${TABLE} WHERE id = 1`;
  assert.equal(await cacheRead(reader, sql), [{ timed: 11 }]);
  const idler = await connect();
  await idler.query('SET SESSION wait_timeout = 1');
  await directMySql(`UPDATE ${TABLE} SET v = 12 WHERE id = 1`);
  assert.is(await waitForNoEntries(), 0, 'every entry was dropped once the server closed the idle session');
  const [after] = await reader.query<RowDataPacket[]>(sql);
  assert.equal(after, [{ timed: 12 }]);
  await reader.end();
  idler.destroy();
});

test('a client that quits normally does not flush anything', async () => {
  const reader = await connect();
  const sql = `SELECT v AS again FROM ${TABLE} WHERE id = 1`;
  await cacheRead(reader, sql);
  const before = await entries();
  assert.ok(before > 0);
  const leaver = await connect();
  await leaver.query('SELECT 1');
  await leaver.end();
  await new Promise((r) => setTimeout(r, 300));
  assert.ok((await entries()) >= before, 'nothing was flushed');
  const hits = (await mysqlCacheCounters(proxy.adminPort)).hits;
  await reader.query(sql);
  assert.is((await mysqlCacheCounters(proxy.adminPort)).hits, hits + 1, 'the entry is still served');
  await reader.end();
});

test('an unreachable upstream flushes the cache', async () => {
  const relay = await startHoldRelay({ host: DIRECT_MYSQL.host, port: DIRECT_MYSQL.port });
  const own = await startProxy({ pgUpstream: null, mysqlUpstream: `mysql://127.0.0.1:${relay.port}` });
  try {
    const reader = await connect(own.mysqlPort);
    await cacheRead(reader, `SELECT v AS unreachable FROM ${TABLE} WHERE id = 1`, own.adminPort);
    await reader.end();
    assert.ok((await entries(own.adminPort)) > 0, 'a normal quit left the entry');
    await relay.close();
    const err = await connect(own.mysqlPort).then((c) => { c.destroy(); return null; }, (e: Error) => e);
    assert.ok(err !== null, 'the upstream is gone');
    assert.is(await waitForNoEntries(own.adminPort), 0, 'every entry was dropped');
  } finally {
    await own.stop();
    await relay.close().catch(() => undefined);
  }
});

test.run();
