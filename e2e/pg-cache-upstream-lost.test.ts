// One upstream session ending is not the server going away: a client that terminates its own
// backend (any role may), or sends what makes the server drop that one connection, must not empty
// everybody's cache. Other sessions keep their hits; a restart or failover is seen by the server's
// identity at the next login instead (pg-cache-restart.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { connectPg, direct, rejectionOf, uniqueName } from './support/pg-direct.js';
import { RawClient, errorOf, frontendMessage } from './support/pg-raw.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';
import { cacheCounters, measure, upstreamConnections, waitForUpstreamConnections } from './support/metrics.js';

const TABLE = uniqueName('sc_lost');
let proxy: RunningProxy;
const open: pg.Client[] = [];

async function connect(): Promise<pg.Client> {
  const c = await connectPg(proxy.pgPort);
  c.on('error', () => undefined);
  open.push(c);
  return c;
}

function upstreams(): Promise<number> {
  return upstreamConnections(proxy.adminPort, 'postgres');
}

/** Waits until sidecache has handled the end of an upstream connection (the gauge drops to `n`). */
async function waitForUpstreams(n: number): Promise<void> {
  assert.is(await waitForUpstreamConnections(proxy.adminPort, 'postgres', n), n, 'sidecache saw the upstream connection end');
}

/** Reads `sql` on `c` and says whether the cache answered. */
async function hit(c: pg.Client, sql: string): Promise<boolean> {
  const { delta } = await measure(proxy.adminPort, () => c.query(sql));
  return delta.hits === 1;
}

test.before(async () => {
  await direct(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v int)`);
  await direct(`INSERT INTO ${TABLE} VALUES (1, 10)`);
  proxy = await startProxy();
});

test.after(async () => {
  await Promise.all(open.map((c) => c.end().catch(() => undefined)));
  await proxy?.stop();
  await direct(`DROP TABLE IF EXISTS ${TABLE}`);
});

test('a session that terminates its own backend drops nothing: the other sessions still hit', async () => {
  const reader = await connect();
  const sql = `SELECT v FROM ${TABLE} WHERE id = 1`;
  await reader.query(sql);
  assert.ok(await hit(reader, sql), 'the read is cached');
  const victim = await connect();
  await victim.query('SELECT 1');
  const entries = (await cacheCounters(proxy.adminPort)).entries;
  const before = await upstreams();
  const err = await rejectionOf(victim.query('SELECT pg_terminate_backend(pg_backend_pid())'));
  assert.is(err.code, '57P01', 'the server ended that session');
  await waitForUpstreams(before - 1);
  assert.is((await cacheCounters(proxy.adminPort)).entries, entries, 'no entry was dropped');
  assert.ok(await hit(reader, sql), 'the open session still hits');
  assert.ok(await hit(await connect(), sql), 'a new session (same server) hits too');
});

test('a message that makes the server drop one connection drops nothing', async () => {
  const reader = await connect();
  const sql = `SELECT v AS again FROM ${TABLE} WHERE id = 1`;
  await reader.query(sql);
  assert.ok(await hit(reader, sql));
  const raw = await RawClient.login(proxy.pgPort);
  const before = await upstreams();
  // An unknown message type: the server answers FATAL "invalid frontend message type" and closes.
  raw.send(frontendMessage('z', Buffer.alloc(0)));
  const answer = await raw.readUntilClosed();
  assert.is(errorOf(answer).code, '08P01', 'the server refused the message and closed');
  await waitForUpstreams(before - 1);
  assert.ok(await hit(reader, sql), 'the other session still hits');
});

test('a client that ends its own session drops nothing', async () => {
  const reader = await connect();
  const sql = `SELECT v AS third FROM ${TABLE} WHERE id = 1`;
  await reader.query(sql);
  const leaver = await connect();
  await leaver.query('SELECT 1');
  const before = await upstreams();
  await leaver.end();
  await waitForUpstreams(before - 1);
  assert.ok(await hit(reader, sql));
});

test.run();
