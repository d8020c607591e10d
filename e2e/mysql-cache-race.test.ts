// test-timeout: 120
// The race rule on the MySQL side, made deterministic with a relay between sidecache and MariaDB
// that holds one connection's replies: a read whose result is in flight while another client's
// write commits must not be stored, and a write's OK must not reach its client before the
// invalidation.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RowDataPacket } from 'mysql2/promise';
import { DIRECT_MYSQL, connectMySql, directMySql, uniqueName, type MySqlConnection } from './support/mysql-direct.js';
import { measureMySql } from './support/mysql-metrics.js';
import { startHoldRelay, type HoldRelay } from './support/hold-relay.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

let relay: HoldRelay;
let proxy: RunningProxy;
const db = uniqueName('sc_mrace');
const open: MySqlConnection[] = [];

async function connect(): Promise<MySqlConnection> {
  const c = await connectMySql(proxy.mysqlPort, { database: db });
  open.push(c);
  return c;
}

test.before(async () => {
  relay = await startHoldRelay({ host: DIRECT_MYSQL.host, port: DIRECT_MYSQL.port });
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: `mysql://127.0.0.1:${relay.port}` });
  await directMySql(`CREATE DATABASE ${db}`, `CREATE TABLE ${db}.t (id INT PRIMARY KEY, v INT)`, `INSERT INTO ${db}.t VALUES (1, 1)`);
});

test.after(async () => {
  for (const c of open) await c.end().catch(() => undefined);
  await directMySql(`DROP DATABASE IF EXISTS ${db}`).catch(() => undefined);
  await proxy?.stop();
  await relay?.close();
});

test('a read in flight while a write commits is not stored', async () => {
  const reader = await connect();
  const writer = await connect();
  const sql = 'SELECT /* hold-read */ v FROM t WHERE id = 1';
  // The session's context and this statement's verdict are known, so no probe of the proxy's own
  // goes before the held read (its reply would be the first held bytes, before the read had run);
  // the write through the proxy drops the entry the first read stored.
  await reader.query(sql);
  await writer.query('UPDATE t SET v = 1 WHERE id = 1');
  const hold = relay.holdAfter('hold-read');
  const pending = reader.query<RowDataPacket[]>(sql);
  await hold.waitHeld(); // MariaDB answered v = 1; sidecache has not seen it
  await writer.query('UPDATE t SET v = 2 WHERE id = 1');
  hold.release();
  const [old] = await pending;
  assert.equal(old, [{ v: 1 }], 'the read ran before the write');
  const { result, delta } = await measureMySql(proxy.adminPort, () => reader.query<RowDataPacket[]>(sql));
  assert.is(delta.hits, 0, 'the stale result was not stored');
  assert.equal(result[0], [{ v: 2 }]);
});

test('a write\'s OK reaches its client only after the invalidation', async () => {
  const reader = await connect();
  const writer = await connect();
  const sql = 'SELECT v FROM t WHERE id = 1';
  await reader.query(sql);
  await reader.query(sql);
  const hold = relay.holdAfter('hold-write');
  const write = writer.query('UPDATE /* hold-write */ t SET v = 3 WHERE id = 1');
  await hold.waitHeld(); // committed on the server; the OK is held
  const [during] = await reader.query<RowDataPacket[]>(sql);
  assert.equal(during, [{ v: 2 }], 'the writer has no acknowledgement yet, so the old value is allowed');
  hold.release();
  await write;
  const [after] = await reader.query<RowDataPacket[]>(sql);
  assert.equal(after, [{ v: 3 }], 'once the write is acknowledged, no read sees the old value');
});

test.run();
