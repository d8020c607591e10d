// test-timeout: 180
// 200 mysql2 clients at once through one proxy, each with its own upstream connection: every client
// gets its own answers (its own connection id, its own session variable), the connection gauges
// count them with protocol="mysql", and everything is released when they leave. MariaDB's
// max_connections (151 here) is raised for the test and restored after.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RowDataPacket } from 'mysql2/promise';
import { connectMySql, directMySql, type MySqlConnection } from './support/mysql-direct.js';
import { scrape, sumOf } from './support/metrics.js';
import { DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

const CLIENTS = 200;
let proxy: RunningProxy;
let savedMaxConnections = 0;

test.before(async () => {
  const [row] = await directMySql('SELECT @@GLOBAL.max_connections AS v') as { v: number }[];
  savedMaxConnections = Number(row!.v);
  if (savedMaxConnections < CLIENTS + 50) await directMySql(`SET GLOBAL max_connections = ${CLIENTS + 50}`);
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: DIRECT_MYSQL_URL });
});

test.after(async () => {
  await proxy?.stop();
  if (savedMaxConnections > 0) await directMySql(`SET GLOBAL max_connections = ${savedMaxConnections}`).catch(() => undefined);
});

const gauge = async (name: string): Promise<number> => sumOf(await scrape(proxy.adminPort), name, { protocol: 'mysql' });

test(`${CLIENTS} concurrent clients are each served on their own session`, async () => {
  const clients: MySqlConnection[] = await Promise.all(Array.from({ length: CLIENTS }, () => connectMySql(proxy.mysqlPort)));
  try {
    assert.is(await gauge('sidecache_client_connections'), CLIENTS);
    assert.is(await gauge('sidecache_upstream_connections'), CLIENTS);
    const answers = await Promise.all(clients.map(async (c, i) => {
      await c.query('SET @mine = ?', [i]);
      const results: number[] = [];
      for (let round = 0; round < 5; round++) {
        const [rows] = await c.execute<RowDataPacket[]>('SELECT @mine AS mine, CONNECTION_ID() AS id, ? AS round', [round]);
        assert.is(Number(rows[0]!.id), c.threadId);
        assert.is(Number(rows[0]!.round), round);
        results.push(Number(rows[0]!.mine));
      }
      return results;
    }));
    answers.forEach((r, i) => assert.equal(r, [i, i, i, i, i], `client ${i}`));
    const ids = new Set(clients.map((c) => c.threadId));
    assert.is(ids.size, CLIENTS, 'one server connection per client');
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
  const until = Date.now() + 5000;
  while ((await gauge('sidecache_client_connections')) > 0 || (await gauge('sidecache_upstream_connections')) > 0) {
    if (Date.now() > until) assert.unreachable('connections still counted after every client left');
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.is(await gauge('sidecache_client_connections_total'), CLIENTS);
});

test.run();
