// test-timeout: 300
// The change stream (--pg-cdc) through two workers (docs/workers.md, "Change streams"): worker slot 1
// follows the stream, slot 2 mirrors its fence. When slot 1 dies, what it read last may never have
// reached slot 2, and until the worker started in its place follows again no change reaches anyone:
// slot 2 must stop answering from its entries. A write sent straight to the database after the kill
// is read through slot 2 as the database has it (within the read deadline, while no worker follows);
// caching resumes once the new slot 1 follows, and its changes reach slot 2.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import type { Cluster } from './support/cluster.js';
import { readUntil, stableHit, startLogicalCluster, waitFor } from './support/cdc.js';
import { measure } from './support/metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';
import { connectionsOnEachWorker, workers } from './support/workers.js';

const DB = 'cdc_workers';
const SQL = 'SELECT v FROM kv WHERE k = 1';
let cluster: Cluster;
let proxy: RunningProxy;
let db: pg.Client;
const open: pg.Client[] = [];

function client(port: number): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: DB });
  c.on('error', () => undefined);
  open.push(c);
  return c.connect().then(() => c);
}

/** Reads through `via` until the read stays a hit; returns its rows. */
function cached(via: pg.Client): Promise<unknown[]> {
  return stableHit(async () => {
    const { result, delta } = await measure(proxy.adminPort, () => via.query(SQL));
    return { rows: result.rows, hit: delta.hits === 1 };
  }, SQL);
}

/** A connection served by worker slot 2 (the one that does not follow the stream). */
async function onSlot2(): Promise<pg.Client> {
  const bySlot = await connectionsOnEachWorker(proxy.adminPort, 1, () => client(proxy.pgPort), (c) => c.query('SELECT now()'));
  return bySlot.get(2)![0]!;
}

test.before(async () => {
  cluster = await startLogicalCluster();
  await cluster.query(`CREATE DATABASE ${DB}`);
  db = await client(cluster.port);
  await db.query('CREATE TABLE kv (k int PRIMARY KEY, v int); INSERT INTO kv VALUES (1, 0)');
  // A long TTL: an entry nothing invalidated must not be rescued by its expiry.
  proxy = await startProxy({
    pgUpstream: `postgres://127.0.0.1:${cluster.port}`,
    args: ['--pg-cdc', `postgres://postgres@127.0.0.1:${cluster.port}`, '--cache-ttl', '10m', '--workers', '2'],
    timeoutMs: 90_000,
  });
});

test.after(async () => {
  await Promise.all(open.map((c) => c.end().catch(() => undefined)));
  await proxy?.stop();
  await cluster?.stop();
});

test('the following worker killed: the other stops answering from its entries, and follows the new one once it is up', async () => {
  const reader = await onSlot2();
  assert.equal(await cached(reader), [{ v: 0 }], 'slot 2 answers from its cache while slot 1 follows the stream');
  const lines = await workers(proxy.adminPort);
  const follower = lines.find((w) => w.slot === 1)!;
  // The primary stopped: no worker is started in slot 1's place, and no word of its end comes from
  // the primary; slot 2 learns of it from its own connection to slot 1. (The reader's connection
  // goes straight to slot 2.)
  process.kill(proxy.child.pid!, 'SIGSTOP');
  try {
    process.kill(follower.pid, 'SIGKILL');
    // Straight to the database, while no worker follows its stream.
    await db.query('UPDATE kv SET v = 1 WHERE k = 1');
    await readUntil(async () => (await reader.query(SQL)).rows, [{ v: 1 }], 'the direct write, through slot 2, with no follower');
  } finally {
    process.kill(proxy.child.pid!, 'SIGCONT');
  }
  // The worker started in its place follows the stream and reaches slot 2 through the channel.
  // (The admin port's keep-alive connection may have been the dead worker's: waitFor retries.)
  await waitFor('slot 1 to be started again', async () => (await workers(proxy.adminPort)).find((w) => w.slot === 1 && w.pid !== follower.pid), 60_000, 100);
  assert.equal(await cached(reader), [{ v: 1 }], 'slot 2 caches again');
  await db.query('UPDATE kv SET v = 2 WHERE k = 1');
  await readUntil(async () => (await reader.query(SQL)).rows, [{ v: 2 }], 'a change the new follower read, through slot 2');
});

test.run();
