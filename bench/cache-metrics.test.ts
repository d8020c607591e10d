import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseExposition } from '../e2e/support/metrics.js';
import { cacheReadingOf, histogramQuantile, hitRatio, readingDelta, sumReadings } from './cache-metrics.js';

const EXPOSITION = `# HELP sidecache_cache_hits_total Reads answered from the cache
sidecache_cache_hits_total{protocol="postgres"} 280510
sidecache_cache_hits_total{protocol="mysql"} 7
sidecache_cache_misses_total{protocol="postgres"} 2029
sidecache_cache_bypass_total{protocol="postgres",reason="not-cacheable"} 8
sidecache_cache_bypass_total{protocol="postgres",reason="transaction"} 2
sidecache_query_duration_seconds_bucket{protocol="postgres",outcome="hit",le="0.0001"} 276299
sidecache_query_duration_seconds_bucket{protocol="postgres",outcome="hit",le="0.00002"} 245294
sidecache_query_duration_seconds_bucket{protocol="postgres",outcome="hit",le="+Inf"} 280510
sidecache_query_duration_seconds_bucket{protocol="postgres",outcome="miss",le="0.00002"} 5
`;

test('a reading counts only postgres samples, sums bypass reasons and orders the hit buckets', () => {
  const r = cacheReadingOf(parseExposition(EXPOSITION));
  assert.is(r.hits, 280510);
  assert.is(r.misses, 2029);
  assert.is(r.bypass, 10);
  assert.equal(r.hitBuckets, [{ le: 0.00002, count: 245294 }, { le: 0.0001, count: 276299 }, { le: Infinity, count: 280510 }]);
});

test('delta and sum work bucket by bucket', () => {
  const a = { hits: 10, misses: 2, bypass: 0, hitBuckets: [{ le: 0.001, count: 8 }, { le: Infinity, count: 10 }] };
  const b = { hits: 4, misses: 1, bypass: 0, hitBuckets: [{ le: 0.001, count: 4 }, { le: Infinity, count: 4 }] };
  const d = readingDelta(a, b);
  assert.equal(d, { hits: 6, misses: 1, bypass: 0, hitBuckets: [{ le: 0.001, count: 4 }, { le: Infinity, count: 6 }] });
  assert.equal(sumReadings([d, b]), a);
  assert.is(hitRatio(d), 6 / 7);
  assert.is(hitRatio(sumReadings([])), undefined);
});

test('the quantile is interpolated inside the bucket it falls in, the first bucket starting at zero', () => {
  const buckets = [{ le: 0.00002, count: 40 }, { le: 0.00005, count: 80 }, { le: 0.0001, count: 100 }, { le: Infinity, count: 100 }];
  const p50 = histogramQuantile(0.5, buckets)!;
  assert.equal([p50.lower, p50.upper], [0.00002, 0.00005]);
  assert.ok(Math.abs(p50.seconds - 0.0000275) < 1e-12);
  assert.ok(Math.abs(histogramQuantile(0.2, buckets)!.seconds - 0.00001) < 1e-12);
});

test('no observations, or a quantile beyond the last finite bound, gives no estimate', () => {
  assert.is(histogramQuantile(0.5, []), undefined);
  assert.is(histogramQuantile(0.5, [{ le: 0.001, count: 0 }, { le: Infinity, count: 0 }]), undefined);
  assert.is(histogramQuantile(0.5, [{ le: 0.001, count: 1 }, { le: Infinity, count: 10 }]), undefined);
});

test.run();
