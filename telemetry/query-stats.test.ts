import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMetrics, type Metrics } from './metrics.js';
import { DuplicateQueryStatsError, MAX_BYPASS_REASONS, OVERFLOW_FINGERPRINT, QueryStats, SAMPLE_CHARS } from './query-stats.js';

function fresh(options?: { maxFingerprints?: number }): { metrics: Metrics; stats: QueryStats } {
  const metrics = createMetrics();
  return { metrics, stats: new QueryStats('postgres', metrics, options) };
}

/** The value of one sample line of the Prometheus text, or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('identify returns one identity per fingerprint, keeping the first text and tables', () => {
  const { stats } = fresh();
  const tables = ['public.users'];
  const a = stats.identify('f1', 'SELECT * FROM users WHERE id = 1', tables);
  tables.push('mutated.later');
  const b = stats.identify('f1', 'SELECT * FROM users WHERE id = 2', ['other']);
  assert.is(a, b);
  assert.is(a.sample, 'SELECT * FROM users WHERE id = 1');
  assert.equal(a.tables, ['public.users'], 'the identity keeps its own copy of the tables');
  assert.ok(Object.isFrozen(a.tables));
  assert.is.not(stats.identify('f2', 'SELECT 1', []), a);
});

test('the sample collapses whitespace and is cut to SAMPLE_CHARS', () => {
  const { stats } = fresh();
  const id = stats.identify('f', `SELECT\n\t  a,   b\nFROM t WHERE x IN (${'1, '.repeat(50_000)}1)`, ['t']);
  assert.is(id.sample.length, SAMPLE_CHARS);
  assert.ok(id.sample.startsWith('SELECT a, b FROM t WHERE x IN (1, 1, '));
  assert.ok(id.sample.endsWith('…'));
});

test('hits, misses, bypasses and writes count per identity and in total', () => {
  const { stats } = fresh();
  const q = stats.identify('q', 'SELECT 1', ['t']);
  const w = stats.identify('w', 'UPDATE t SET a = 1', ['t']);
  stats.hit(q, 0.00003);
  stats.hit(q, 0.00005);
  stats.miss(q, 0.001);
  stats.bypass(q, 'in-transaction', 0.002);
  stats.bypass(null, 'no-context', 0.002);
  stats.write(w, 0.003);
  stats.write(null, 0.004);
  assert.equal([q.hits, q.misses, q.bypasses, q.writes], [2, 1, 1, 0]);
  assert.equal([w.hits, w.misses, w.bypasses, w.writes], [0, 0, 0, 1]);
  assert.ok(Math.abs(q.hitSeconds - 0.00008) < 1e-12);
  const s = stats.snapshot();
  assert.equal([s.hits, s.misses, s.bypasses, s.writes], [2, 1, 2, 2]);
  assert.equal(s.bypassReasons, { 'in-transaction': 1, 'no-context': 1 });
  assert.is(s.fingerprints, 2);
});

test('hitRatio is null with no lookups, hits / (hits + misses) after', () => {
  const { stats } = fresh();
  assert.is(stats.snapshot().hitRatio, null);
  const q = stats.identify('q', 'SELECT 1', []);
  stats.bypass(q, 'not-cacheable', 0.001);
  assert.is(stats.snapshot().hitRatio, null, 'a bypass is not a cache lookup');
  assert.is(stats.topQueries(5, 'hits').length, 0);
  stats.hit(q, 0.00002);
  stats.hit(q, 0.00002);
  stats.hit(q, 0.00002);
  stats.miss(q, 0.001);
  assert.is(stats.snapshot().hitRatio, 0.75);
  assert.is(stats.topQueries(5, 'hits')[0]!.hitRatio, 0.75);
});

test('durations are observed in the histogram of their outcome', () => {
  const { stats } = fresh();
  const q = stats.identify('q', 'SELECT 1', []);
  stats.hit(q, 0.00003);
  stats.miss(q, 0.0004);
  stats.miss(q, 0.0006);
  stats.write(null, 0.01);
  assert.is(stats.durations('hit').count, 1);
  assert.is(stats.durations('miss').count, 2);
  assert.is(stats.durations('bypass').count, 0);
  assert.is(stats.durations('write').count, 1);
  const latency = stats.snapshot().latencyMs;
  assert.ok(Math.abs(latency.miss.meanMs! - 0.5) < 1e-9);
  assert.is(latency.bypass.meanMs, null);
  const item = stats.topQueries(1, 'misses')[0]!;
  assert.ok(Math.abs(item.meanMs.miss! - 0.5) < 1e-9);
  assert.ok(Math.abs(item.meanMs.hit! - 0.03) < 1e-9);
  assert.is(item.meanMs.write, null);
});

test('top queries: most first, ties by the other count then fingerprint, zeros left out, n bounded', () => {
  const { stats } = fresh();
  const counts: Array<[string, number, number]> = [['a', 5, 0], ['b', 9, 1], ['c', 5, 3], ['d', 0, 7], ['e', 5, 0]];
  for (const [f, hits, misses] of counts) {
    const id = stats.identify(f, `SELECT '${f}'`, []);
    for (let i = 0; i < hits; i++) stats.hit(id, 0.00002);
    for (let i = 0; i < misses; i++) stats.miss(id, 0.001);
  }
  assert.equal(stats.topQueries(10, 'hits').map((q) => q.fingerprint), ['b', 'c', 'a', 'e']);
  assert.equal(stats.topQueries(2, 'hits').map((q) => q.fingerprint), ['b', 'c']);
  assert.equal(stats.topQueries(10, 'misses').map((q) => q.fingerprint), ['d', 'c', 'b']);
  assert.equal(stats.topQueries(0, 'hits'), []);
  const b = stats.topQueries(1, 'hits')[0]!;
  assert.equal({ ...b, meanMs: undefined }, {
    protocol: 'postgres', fingerprint: 'b', sample: "SELECT 'b'", tables: [], hits: 9, misses: 1, bypasses: 0, writes: 0, hitRatio: 0.9, meanMs: undefined, rule: null,
  });
});

test('top tables sum the counts of the statements that name them, with their invalidations', () => {
  const { stats } = fresh();
  const users = stats.identify('u', 'SELECT * FROM users', ['public.users']);
  const join = stats.identify('j', 'SELECT * FROM users JOIN orders USING (id)', ['public.users', 'public.orders']);
  const upd = stats.identify('w', 'UPDATE orders SET x = 1', ['public.orders']);
  stats.hit(users, 0.00002);
  stats.hit(users, 0.00002);
  stats.hit(join, 0.00002);
  stats.miss(join, 0.001);
  stats.miss(join, 0.001);
  stats.write(upd, 0.002);
  stats.invalidated(['public.orders'], 3);
  stats.invalidated(['public.orders', 'public.users'], 1);
  stats.invalidated('database', 10);
  const byHits = stats.topTables(10, 'hits');
  assert.equal(byHits.map((t) => [t.table, t.hits, t.misses, t.writes, t.invalidations]), [
    ['public.users', 3, 2, 0, 1],
    ['public.orders', 1, 2, 1, 2],
  ]);
  assert.is(byHits[0]!.hitRatio, 0.6);
  assert.equal(stats.topTables(10, 'misses').map((t) => t.table), ['public.users', 'public.orders'], 'equal misses: more hits first');
  const s = stats.snapshot();
  assert.equal([s.invalidations, s.databaseInvalidations, s.invalidatedEntries], [3, 1, 14]);
});

test('past maxFingerprints, new statements share the "other" identity, which shows in the top lists', () => {
  const { stats } = fresh({ maxFingerprints: 2 });
  const a = stats.identify('a', 'SELECT 1', ['t']);
  stats.identify('b', 'SELECT 2', ['t']);
  const c = stats.identify('c', 'SELECT 3', ['t']);
  const d = stats.identify('d', 'SELECT 4', ['t']);
  assert.is(c, d);
  assert.is(c.fingerprint, OVERFLOW_FINGERPRINT);
  assert.is(stats.identify('a', 'SELECT 1', ['t']), a, 'known fingerprints keep their identity');
  stats.hit(c, 0.00002);
  stats.hit(d, 0.00002);
  stats.hit(a, 0.00002);
  assert.is(stats.snapshot().fingerprints, 2);
  assert.equal(stats.topQueries(10, 'hits').map((q) => [q.fingerprint, q.hits]), [[OVERFLOW_FINGERPRINT, 2], ['a', 1]]);
  assert.equal(stats.snapshot().hits, 3);
});

test('bypass reasons beyond the limit are counted as "other"', () => {
  const { stats } = fresh();
  for (let i = 0; i < MAX_BYPASS_REASONS + 5; i++) stats.bypass(null, `reason-${i}`, 0.001);
  const reasons = stats.snapshot().bypassReasons;
  assert.is(Object.keys(reasons).length, MAX_BYPASS_REASONS + 1);
  assert.is(reasons.other, 5);
  assert.is(stats.snapshot().bypasses, MAX_BYPASS_REASONS + 5);
});

test('a second QueryStats for the same protocol in one Metrics is refused', () => {
  const { metrics } = fresh();
  assert.throws(() => new QueryStats('postgres', metrics), (err: unknown) => err instanceof DuplicateQueryStatsError);
  assert.ok(new QueryStats('mysql', metrics));
});

test('the Prometheus text carries every cache metric with the protocol label, equal to the counts', async () => {
  const { metrics, stats } = fresh();
  let evictions = 4;
  stats.observeStore(() => ({ entries: 7, bytes: 4096, evictions, maxBytes: 1 << 20 }));
  const q = stats.identify('q', 'SELECT 1', ['t']);
  stats.hit(q, 0.00003);
  stats.hit(q, 0.00003);
  stats.hit(q, 0.00003);
  stats.miss(q, 0.0004);
  stats.bypass(q, 'in-transaction', 0.002);
  stats.bypass(null, 'pipelined', 0.002);
  stats.bypass(null, 'pipelined', 0.002);
  stats.write(null, 0.01);
  stats.invalidated(['t'], 2);

  const text = await metrics.registry.metrics();
  const pg = '{protocol="postgres"}';
  assert.is(sample(text, `sidecache_cache_hits_total${pg}`), 3);
  assert.is(sample(text, `sidecache_cache_misses_total${pg}`), 1);
  assert.is(sample(text, `sidecache_cache_writes_total${pg}`), 1);
  assert.is(sample(text, 'sidecache_cache_bypass_total{protocol="postgres",reason="in-transaction"}'), 1);
  assert.is(sample(text, 'sidecache_cache_bypass_total{protocol="postgres",reason="pipelined"}'), 2);
  assert.is(sample(text, `sidecache_invalidations_total${pg}`), 1);
  assert.is(sample(text, `sidecache_invalidated_entries_total${pg}`), 2);
  assert.is(sample(text, `sidecache_cache_entries${pg}`), 7);
  assert.is(sample(text, `sidecache_cache_bytes${pg}`), 4096);
  assert.is(sample(text, `sidecache_cache_max_bytes${pg}`), 1 << 20);
  assert.is(sample(text, `sidecache_evictions_total${pg}`), 4);
  assert.match(text, '# TYPE sidecache_evictions_total counter');
  assert.match(text, '# TYPE sidecache_query_duration_seconds histogram');
  for (const [outcome, n] of [['hit', 3], ['miss', 1], ['bypass', 3], ['write', 1]] as const) {
    assert.is(sample(text, `sidecache_query_duration_seconds_count{protocol="postgres",outcome="${outcome}"}`), n, outcome);
  }
  assert.is(sample(text, 'sidecache_query_duration_seconds_bucket{protocol="postgres",outcome="hit",le="0.00005"}'), 3);
  assert.is(sample(text, 'sidecache_query_duration_seconds_bucket{protocol="postgres",outcome="miss",le="0.0002"}'), 0);
  assert.is(sample(text, 'sidecache_client_connections{protocol="postgres"}') ?? 0, 0, 'the relay metrics are still there');
  assert.match(text, 'sidecache_process_');

  // A second scrape reports the totals again, not totals added to the last scrape's.
  stats.hit(q, 0.00003);
  evictions = 6;
  const again = await metrics.registry.metrics();
  assert.is(sample(again, `sidecache_cache_hits_total${pg}`), 4);
  assert.is(sample(again, `sidecache_evictions_total${pg}`), 6);
  assert.is(sample(again, 'sidecache_cache_bypass_total{protocol="postgres",reason="pipelined"}'), 2);
});

test('before any QueryStats exists the cache metrics have no series, and the store gauges wait for observeStore', async () => {
  const metrics = createMetrics();
  assert.not.match(await metrics.registry.metrics(), 'sidecache_cache_hits_total{');
  new QueryStats('postgres', metrics);
  const text = await metrics.registry.metrics();
  assert.is(sample(text, 'sidecache_cache_hits_total{protocol="postgres"}'), 0);
  assert.not.match(text, 'sidecache_cache_entries{');
});

test.run();
