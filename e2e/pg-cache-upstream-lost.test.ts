// When an upstream session ends without its client asking (server restart, failover, an
// administrator's pg_terminate_backend, an idle timeout), cached results may have missed writes:
// sidecache drops them all instead of serving them as if nothing happened.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { direct, uniqueName } from './support/pg-direct.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';
import { cacheCounters } from './support/metrics.js';

const TABLE = uniqueName('sc_lost');
let proxy: RunningProxy;

async function connect(): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: proxy.pgPort, user: 'postgres', database: 'test' });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

test.before(async () => {
  await direct(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v int)`);
  await direct(`INSERT INTO ${TABLE} VALUES (1, 10)`);
  proxy = await startProxy();
});

test.after(async () => {
  await proxy?.stop();
  await direct(`DROP TABLE IF EXISTS ${TABLE}`);
});

test('an upstream session terminated behind the client\'s back flushes the cache', async () => {
  const reader = await connect();
  const sql = `SELECT v FROM ${TABLE} WHERE id = 1`;
  await reader.query(sql);
  await reader.query(sql);
  assert.ok((await cacheCounters(proxy.adminPort)).entries > 0, 'the read is cached');
  const victim = await connect();
  const pid = (await victim.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
  // A write that bypasses sidecache, then the upstream session goes away (as on a restart).
  await direct(`UPDATE ${TABLE} SET v = 11 WHERE id = 1`);
  await direct('SELECT pg_terminate_backend($1)', [pid]);
  const deadline = Date.now() + 5000;
  while ((await cacheCounters(proxy.adminPort)).entries > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.is((await cacheCounters(proxy.adminPort)).entries, 0, 'every entry was dropped');
  assert.equal((await reader.query(sql)).rows, [{ v: 11 }], 'the next read goes to the server');
  await reader.end();
});

test('a client that ends its own session does not flush anything', async () => {
  const reader = await connect();
  const sql = `SELECT v AS again FROM ${TABLE} WHERE id = 1`;
  await reader.query(sql);
  const entries = (await cacheCounters(proxy.adminPort)).entries;
  assert.ok(entries > 0);
  const leaver = await connect();
  await leaver.query('SELECT 1');
  await leaver.end();
  await new Promise((r) => setTimeout(r, 200));
  // The leaver's own read may have added an entry; none may have gone.
  assert.ok((await cacheCounters(proxy.adminPort)).entries >= entries, 'nothing was flushed');
  assert.equal((await reader.query(sql)).rows, [{ again: 11 }]);
  await reader.end();
});

test.run();
