// One MySQL upstream session ending is not the server going away: a KILL of one thread (a
// driver's own test suite does this), the server's wait_timeout, a client's COM_QUIT or an
// upstream that cannot be reached for a moment must not empty everybody's cache. Other sessions
// keep their hits; a restart or failover is seen by the server's identity at the next login
// instead (mysql-cache-restart.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RowDataPacket } from 'mysql2/promise';
import { waitFor } from './support/cdc.js';
import { startHoldRelay } from './support/hold-relay.js';
import { connectMySql, directMySql, uniqueName, type MySqlConnection } from './support/mysql-direct.js';
import { mysqlCacheCounters } from './support/mysql-metrics.js';
import { upstreamConnections, waitForUpstreamConnections } from './support/metrics.js';
import { DIRECT_MYSQL, DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

const TABLE = uniqueName('sc_mlost');
let proxy: RunningProxy;
const open: MySqlConnection[] = [];

async function connect(port = proxy.mysqlPort): Promise<MySqlConnection> {
  const c = await connectMySql(port);
  c.on('error', () => undefined);
  open.push(c);
  return c;
}

async function entries(adminPort = proxy.adminPort): Promise<number> {
  return (await mysqlCacheCounters(adminPort)).entries;
}

function upstreams(adminPort = proxy.adminPort): Promise<number> {
  return upstreamConnections(adminPort, 'mysql');
}

/** Waits until sidecache has handled the end of an upstream connection (the gauge drops to `n`). */
async function waitForUpstreams(n: number, adminPort = proxy.adminPort): Promise<void> {
  // The server closes an idle session a second or so after its wait_timeout.
  assert.is(await waitForUpstreamConnections(adminPort, 'mysql', n, 10_000), n, 'sidecache saw the upstream connection end');
}

/** Reads `sql` on `c` and says whether the cache answered. */
async function hit(c: MySqlConnection, sql: string, adminPort = proxy.adminPort): Promise<boolean> {
  const before = (await mysqlCacheCounters(adminPort)).hits;
  await c.query(sql);
  return (await mysqlCacheCounters(adminPort)).hits === before + 1;
}

/** A new session with `sql` cached (read twice, the second a hit). */
async function cachedReader(sql: string, port = proxy.mysqlPort, adminPort = proxy.adminPort): Promise<MySqlConnection> {
  const reader = await connect(port);
  await reader.query(sql);
  assert.ok(await hit(reader, sql, adminPort), 'the read is cached');
  return reader;
}

test.before(async () => {
  await directMySql(`CREATE TABLE ${TABLE} (id INT PRIMARY KEY, v INT)`, `INSERT INTO ${TABLE} VALUES (1, 10)`);
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: DIRECT_MYSQL_URL });
});

test.after(async () => {
  for (const c of open) c.destroy();
  await proxy?.stop();
  await directMySql(`DROP TABLE IF EXISTS ${TABLE}`);
});

test('a KILL of one session\'s thread drops nothing: the other sessions still hit', async () => {
  const sql = `SELECT v FROM ${TABLE} WHERE id = 1`;
  const reader = await cachedReader(sql);
  const victim = await connect();
  // The proxy relays the server's connection id: the victim's own upstream thread.
  const [[{ id }]] = await victim.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id') as unknown as [[{ id: number }]];
  const killer = await connect();
  const before = await entries();
  const threads = await upstreams();
  await killer.query(`KILL ${id}`);
  await waitForUpstreams(threads - 1);
  assert.is(await entries(), before, 'no entry was dropped');
  assert.ok(await hit(reader, sql), 'the open session still hits');
  assert.ok(await hit(await connect(), sql), 'a new session (same server) hits too');
});

test('a session the server closes for wait_timeout drops nothing', async () => {
  const sql = `SELECT v AS timed FROM ${TABLE} WHERE id = 1`;
  const reader = await cachedReader(sql);
  const idler = await connect();
  await idler.query('SET SESSION wait_timeout = 1');
  const threads = await upstreams();
  await waitForUpstreams(threads - 1);
  assert.ok(await hit(reader, sql), 'the other session still hits');
});

test('a client that quits normally drops nothing', async () => {
  const sql = `SELECT v AS again FROM ${TABLE} WHERE id = 1`;
  const reader = await cachedReader(sql);
  const leaver = await connectMySql(proxy.mysqlPort);
  await leaver.query('SELECT 1');
  const threads = await upstreams();
  await leaver.end();
  await waitForUpstreams(threads - 1);
  assert.ok(await hit(reader, sql));
});

test('an upstream that cannot be reached drops nothing by itself', async () => {
  const relay = await startHoldRelay({ host: DIRECT_MYSQL.host, port: DIRECT_MYSQL.port });
  const own = await startProxy({ pgUpstream: null, mysqlUpstream: `mysql://127.0.0.1:${relay.port}` });
  try {
    const reader = await cachedReader(`SELECT v AS unreachable FROM ${TABLE} WHERE id = 1`, own.mysqlPort, own.adminPort);
    await reader.end();
    await waitForUpstreams(0, own.adminPort);
    const before = await entries(own.adminPort);
    assert.ok(before > 0);
    await relay.close();
    const err = await connectMySql(own.mysqlPort).then((c) => { c.destroy(); return null; }, (e: Error) => e);
    assert.ok(err !== null, 'the upstream is gone');
    // The log line comes through the process's stdout pipe, maybe after the client saw the error.
    await waitFor('the unreachable upstream to be logged', async () => (/mysql: upstream unreachable/.test(own.output()) ? true : undefined), 10_000);
    assert.is(await entries(own.adminPort), before, 'the entries stay until a login shows another server');
  } finally {
    await own.stop();
    await relay.close().catch(() => undefined);
  }
});

test.run();
