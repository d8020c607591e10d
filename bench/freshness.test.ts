import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { startProxy, type RunningProxy } from '../e2e/support/sidecache.js';
import { BenchDatabase } from './bench-database.js';
import { checkHotReads, primeHotReads } from './freshness.js';
import { HOT_KEYS } from './workloads.js';

const SERVER = { host: '127.0.0.1', port: 5432, user: 'postgres' };
const dbs: BenchDatabase[] = [];
let proxy: RunningProxy | undefined;

test.before(async () => {
  dbs.push(await BenchDatabase.create(SERVER, `sidecache_freshness_${process.pid}_a`, 1));
  dbs.push(await BenchDatabase.create(SERVER, `sidecache_freshness_${process.pid}_b`, 1));
  proxy = await startProxy();
});

test.after(async () => {
  await proxy?.stop();
  await Promise.allSettled(dbs.map((db) => db.drop()));
});

async function execute(target: pg.ClientConfig, sql: string): Promise<void> {
  const client = new pg.Client(target);
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

test('hot reads are cached by priming, and a write through sidecache leaves no stale read', async () => {
  const direct = dbs[0]!.target;
  const viaProxy = { ...direct, port: proxy!.pgPort };
  const primed = await primeHotReads(viaProxy, proxy!.adminPort, direct);
  assert.is(primed.hits, 2 * HOT_KEYS);
  assert.is(primed.before.length, HOT_KEYS);
  await execute(viaProxy, 'UPDATE pgbench_accounts SET abalance = abalance + 7 WHERE aid = 5');
  const result = await checkHotReads(viaProxy, direct, primed);
  assert.equal(result, { changed: 1, stale: [] });
});

test('a read that differs from PostgreSQL is reported for each protocol', async () => {
  // Stands in for a stale cache: "through sidecache" is a copy of the data where one row differs.
  const [actual, copy] = [dbs[0]!.target, dbs[1]!.target];
  await execute(copy, 'UPDATE pgbench_accounts SET abalance = 0 WHERE aid <= 10');
  await execute(actual, 'UPDATE pgbench_accounts SET abalance = 0 WHERE aid <= 10');
  await execute(copy, 'UPDATE pgbench_accounts SET abalance = 99 WHERE aid = 7');
  const result = await checkHotReads(copy, actual, { before: new Array<number>(HOT_KEYS).fill(0), hits: 0 });
  assert.equal(result.stale, ['aid 7 (simple): sidecache 99, PostgreSQL 0', 'aid 7 (extended): sidecache 99, PostgreSQL 0']);
});

test.run();
