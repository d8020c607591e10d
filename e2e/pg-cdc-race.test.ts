// test-timeout: 240
// The change stream and fills in flight, made deterministic with a relay that holds a read's reply
// (e2e/support/hold-relay.ts) between sidecache and a private cluster while the stream follows the
// cluster directly: a change the stream delivers while a miss is in flight keeps that fill out of
// the cache (the same tag-version rule as writes through the proxy), and so does the stream going
// down while the fill is in flight.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import type { Cluster } from './support/cluster.js';
import { startLogicalCluster, streamOf, waitFor, waitForStream } from './support/cdc.js';
import { startHoldRelay, type HoldRelay } from './support/hold-relay.js';
import { cacheCounters, measure } from './support/metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const DB = 'cdc_race';
let cluster: Cluster;
let relay: HoldRelay;
let proxy: RunningProxy;
let db: pg.Client;

async function client(port: number): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: DB });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/**
 * A session through the proxy whose identity check and context are behind it: the first bytes the
 * relay then holds are the read's own reply. (A new session's first read carries the identity
 * check, and maybe the probe, pipelined in front: holding from their replies let the write commit
 * before the server even ran the read.)
 */
async function warmClient(): Promise<pg.Client> {
  const c = await client(proxy.pgPort);
  await c.query('SELECT v FROM kv WHERE k = 0 /* warm */');
  return c;
}

async function stream(): Promise<{ state: string; invalidations: number; failures: number }> {
  return (await streamOf(proxy.adminPort, 'postgres', DB))!;
}

test.before(async () => {
  cluster = await startLogicalCluster();
  await cluster.query(`CREATE DATABASE ${DB}`);
  await cluster.query('CREATE ROLE repl LOGIN REPLICATION');
  db = await client(cluster.port);
  await db.query('CREATE TABLE kv (k int PRIMARY KEY, v int); INSERT INTO kv VALUES (1, 0), (2, 0); CREATE PUBLICATION sidecache FOR ALL TABLES');
  relay = await startHoldRelay({ host: '127.0.0.1', port: cluster.port });
  // Client sessions go through the relay; the stream connects to the cluster itself.
  proxy = await startProxy({ pgUpstream: relay.url, args: ['--pg-cdc', `postgres://repl@127.0.0.1:${cluster.port}`, '--cache-ttl', '10m'] });
  const c = await client(proxy.pgPort);
  await c.query('SELECT 1 FROM kv');
  await c.end();
  await waitForStream(proxy.adminPort, 'postgres', DB, 'up');
});

test.after(async () => {
  await db?.end().catch(() => undefined);
  await proxy?.stop();
  await relay?.close();
  await cluster?.stop();
});

test('a change delivered by the stream while a miss is in flight keeps that fill out of the cache', async () => {
  const c = await warmClient();
  const sql = 'SELECT v FROM kv WHERE k = 1 /* race-a */';
  const hold = relay.holdAfter('race-a');
  const read = c.query(sql);
  await hold.waitHeld(1);
  // The server answered the read (v = 0); before the answer reaches sidecache, a direct write commits
  // and the stream delivers it.
  const before = (await stream()).invalidations;
  await db.query('UPDATE kv SET v = 1 WHERE k = 1');
  await waitFor('the stream to deliver the write', async () => ((await stream()).invalidations > before ? true : undefined));
  hold.release();
  assert.equal((await read).rows, [{ v: 0 }], 'the read began before the change was received: it may be older');
  const next = await measure(proxy.adminPort, () => c.query(sql));
  assert.equal(next.result.rows, [{ v: 1 }], 'a read after it must not be served the fill');
  assert.is(next.delta.hits, 0);
  await c.end();
});

test('the stream going down while a fill is in flight keeps that fill out of the cache', async () => {
  const c = await warmClient();
  const sql = 'SELECT v FROM kv WHERE k = 2 /* race-b */';
  const hold = relay.holdAfter('race-b');
  const read = c.query(sql);
  await hold.waitHeld(1);
  // The stream goes down and stays down (its role may no longer replicate) while the reply is held.
  const failures = (await stream()).failures;
  await db.query('ALTER ROLE repl NOREPLICATION');
  await db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = 'sidecache-cdc'");
  await waitFor('the stream to fail twice', async () => ((await stream()).failures >= failures + 2 ? true : undefined));
  await db.query('UPDATE kv SET v = 2 WHERE k = 2'); // never streamed: no stream follows now
  hold.release();
  assert.equal((await read).rows, [{ v: 0 }]);
  assert.is((await cacheCounters(proxy.adminPort)).entries, 0, 'the fill was refused: sent while up, complete while down');
  await db.query('ALTER ROLE repl REPLICATION');
  await waitForStream(proxy.adminPort, 'postgres', DB, 'up');
  assert.equal((await c.query(sql)).rows, [{ v: 2 }]);
  await c.end();
});

test.run();
