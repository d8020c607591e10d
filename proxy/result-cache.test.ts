// The cache services' invalidation seam: what is applied here, what is published to a fleet, what
// a peer's invalidation changes (entries, catalog generations), and a suspended cache.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMetrics } from '../telemetry/metrics.js';
import { databaseTag, dependencyTags, tableTag } from '../cache/tags.js';
import { loadConfig } from '../config/settings.js';
import { MySqlCache } from './mysql/mysql-cache.js';
import { PgCache, WriteScope } from './pg/pg-cache.js';
import type { Invalidation } from './result-cache.js';

const config = loadConfig(['--cache-ttl', '0'], {}).config;

function put(cache: PgCache | MySqlCache, key: string, database: string, table: string): void {
  const identity = cache.stats.identify(`fp-${table}`, `SELECT * FROM ${table}`, [table]);
  cache.store.set(key, Buffer.from(key), { identity }, { token: cache.store.startFill(), tags: dependencyTags(database, [{ database, schema: '', table }]) });
}

test('a write is applied here and published; a peer\'s invalidation is applied and not published again', async () => {
  const cache = await PgCache.create(config, createMetrics());
  const published: Invalidation[] = [];
  cache.joinFleet({ publish: (protocol, invalidation) => void published.push(invalidation) }, null);
  put(cache, 'a', 'app', 'orders');
  put(cache, 'b', 'app', 'users');
  cache.invalidate('app', ['orders'], WriteScope.Tables, false);
  assert.equal([cache.store.get('a'), published], [undefined, [{ scope: 'tags', tags: [tableTag('app', '', 'orders')], tables: ['orders'], catalog: null }]]);
  assert.is(cache.applyInvalidation({ scope: 'tags', tags: [tableTag('app', '', 'users')], tables: ['users'], catalog: null }), 1);
  assert.is(published.length, 1);
  assert.is(cache.stats.invalidations, 2);
  cache.serverSeen({ server: '1', startedAtMs: 1 });
  cache.serverSeen({ server: '1', startedAtMs: 2 });
  assert.equal(published[1], { scope: 'all', catalog: true }, 'a restarted server is every proxy\'s concern');
});

test('PostgreSQL: DDL from a peer voids that database\'s decisions; "all" with catalog voids every database\'s', async () => {
  const cache = await PgCache.create(config, createMetrics());
  const [app, shop] = [cache.generation('app'), cache.generation('shop')];
  cache.applyInvalidation({ scope: 'tags', tags: [databaseTag('app')], tables: 'database', catalog: 'app' });
  assert.equal([cache.generation('app'), cache.generation('shop')], [app + 1, shop]);
  cache.applyInvalidation({ scope: 'all', catalog: true });
  assert.equal([cache.generation('app'), cache.generation('shop'), cache.generation('never-seen')], [app + 2, shop + 1, 1]);
});

test('MySQL: DDL (wide, catalog) is published as everything with the catalog, and applied as such', () => {
  const cache = new MySqlCache(config, createMetrics());
  const published: Invalidation[] = [];
  cache.joinFleet({ publish: (protocol, invalidation) => void published.push(invalidation) }, null);
  const before = cache.generation;
  cache.invalidate('app', [], true, true);
  assert.equal(published, [{ scope: 'all', catalog: true }]);
  assert.is(cache.generation, before + 1);
  cache.applyInvalidation({ scope: 'all', catalog: true });
  assert.is(cache.generation, before + 2);
});

test('a fingerprint flush drops that statement\'s entries only', async () => {
  const cache = await PgCache.create(config, createMetrics());
  put(cache, 'a', 'app', 'orders');
  put(cache, 'b', 'app', 'users');
  assert.is(cache.applyInvalidation({ scope: 'fingerprint', fingerprint: 'fp-orders' }), 1);
  assert.equal([cache.store.get('a'), cache.store.get('b')?.key], [undefined, 'b']);
});

test('suspended: empty, no fill kept, reads count as bypasses "bus-down"; resumed: misses again', async () => {
  const cache = await PgCache.create(config, createMetrics());
  put(cache, 'a', 'app', 'orders');
  const id = cache.stats.identify('fp-x', 'SELECT 1', []);
  cache.suspend('bus-down');
  assert.is(cache.store.size, 0);
  put(cache, 'b', 'app', 'orders');
  assert.is(cache.store.size, 0, 'a fill is refused');
  cache.stats.miss(id, 0.001);
  assert.equal([cache.stats.misses, cache.stats.snapshot().bypassReasons], [0, { 'bus-down': 1 }]);
  cache.resume();
  put(cache, 'c', 'app', 'orders');
  assert.is(cache.store.size, 1);
  cache.stats.miss(id, 0.001);
  assert.is(cache.stats.misses, 1);
});

test.run();
