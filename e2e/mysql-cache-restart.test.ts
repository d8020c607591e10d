// test-timeout: 240
// A MariaDB server that restarts or fails over while sidecache has no session open: sidecache
// learns it from the server's identity (server id, host name, port, start time) at the next login,
// before the cache answers that session, and drops what it held. A write made straight on the
// server before the restart is then seen by the next read; a second server at the same address
// (same id, host name and port, started later) is not taken for the first. A command the cache
// could answer waits for the identity check, unless the client sends more behind it. Private
// servers: the shared one cannot be restarted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { startMariadb, type MariadbServer } from './support/mariadb-server.js';
import { RawMySql, command, type Packet } from './support/mysql-raw.js';
import { mysqlCacheCounters } from './support/mysql-metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';
import { waitForUpstreamConnections } from './support/metrics.js';
import { serverChangeTests } from './support/server-change.js';

let server: MariadbServer;
let second: MariadbServer | null = null;
let proxy: RunningProxy;
const open: mysql.Connection[] = [];

async function connect(): Promise<mysql.Connection> {
  const c = await mysql.createConnection({ host: '127.0.0.1', port: proxy.mysqlPort, user: 'root', database: 'd' });
  c.on('error', () => undefined);
  open.push(c);
  return c;
}

/** Reads `sql` on `c`: its rows and whether the cache answered. */
async function read(c: mysql.Connection, sql: string): Promise<{ rows: unknown[]; hit: boolean }> {
  const before = (await mysqlCacheCounters(proxy.adminPort)).hits;
  const [rows] = await c.query<RowDataPacket[]>(sql);
  return { rows: rows.map((r) => ({ ...r })), hit: (await mysqlCacheCounters(proxy.adminPort)).hits === before + 1 };
}

/** Ends every session and waits until sidecache holds no upstream connection. */
async function closeAll(): Promise<void> {
  await Promise.all(open.splice(0).map((c) => c.end()));
  assert.is(await waitForUpstreamConnections(proxy.adminPort, 'mysql', 0), 0, 'no session is open');
}

/**
 * Waits until the second `s` started in is over: MySQL tells its start to the second, so a server
 * started from now on (same id, host name and port) is told apart by it.
 */
async function pastStartSecond(s: MariadbServer): Promise<void> {
  const deadline = Date.now() + 5000;
  const uptime = async (): Promise<number> => Number(((await s.query("SHOW GLOBAL STATUS LIKE 'Uptime'")) as RowDataPacket[])[0]!.Value);
  while ((await uptime()) < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.ok((await uptime()) >= 1);
}

const scenarios = serverChangeTests({
  logName: 'mysql',
  proxy: () => proxy,
  connect: async () => {
    const c = await connect();
    return { read: (sql) => read(c, sql) };
  },
  closeAll,
  direct: async (sql) => void await server.query(`USE d; ${sql}`),
  restart: async () => {
    await pastStartSecond(server);
    await server.restart();
  },
  replace: async () => {
    const port = server.port;
    await pastStartSecond(server);
    await server.stop();
    second = await startMariadb({ port });
    await second.query('CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v INT); INSERT INTO d.t VALUES (1, 99)');
  },
});

test.before(async () => {
  server = await startMariadb();
  await server.query('CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v INT); INSERT INTO d.t VALUES (1, 10), (2, 20)');
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: `mysql://${server.host}:${server.port}` });
});

test.after(async () => {
  await Promise.all(open.map((c) => c.end().catch(() => undefined)));
  await proxy?.stop();
  await second?.stop();
  await server?.stop();
});

scenarios.sameServer();

/** The first value of each text result set among `count` replies, read packet by packet (no DEPRECATE_EOF). */
async function firstValues(r: RawMySql, count: number): Promise<string[]> {
  const values: string[] = [];
  for (let i = 0; i < count; i++) {
    let eofs = 0;
    let row: Packet | null = null;
    while (eofs < 2) {
      const p = await r.readPacket();
      assert.not.equal(p.payload[0], 0xff, 'no error');
      if (p.payload[0] === 0xfe && p.payload.length < 9) eofs++;
      else if (eofs === 1 && row === null) row = p;
    }
    values.push(row!.payload.toString('utf8', 1, 1 + row!.payload[0]!));
  }
  return values;
}

test('a command sent right behind one waiting for the identity check sends it on: both answered, in order', async () => {
  const sql = 'SELECT v AS piped FROM t WHERE id = 2';
  // Stored under this client's capabilities (part of the key), by a session of the same kind.
  const first = await RawMySql.login(proxy.mysqlPort, { database: 'd' });
  for (let i = 0; i < 2; i++) {
    first.send(command(0x03, sql));
    assert.equal(await firstValues(first, 1), ['20']);
  }
  first.destroy();
  const raw = await RawMySql.login(proxy.mysqlPort, { database: 'd' });
  try {
    const before = (await mysqlCacheCounters(proxy.adminPort)).hits;
    // The first could be answered from the cache; the second follows in the same write.
    raw.send(Buffer.concat([command(0x03, sql), command(0x03, 'SELECT v AS other FROM t WHERE id = 1')]));
    assert.equal(await firstValues(raw, 2), ['20', '10']);
    assert.is((await mysqlCacheCounters(proxy.adminPort)).hits, before, 'the first went to the server too');
    raw.send(command(0x03, sql));
    assert.equal(await firstValues(raw, 1), ['20']);
    assert.is((await mysqlCacheCounters(proxy.adminPort)).hits, before + 1, 'the session is answered from the cache once verified');
  } finally {
    raw.destroy();
  }
});

scenarios.restart();
scenarios.failover();

test.run();
