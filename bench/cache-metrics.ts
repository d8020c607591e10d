// What sidecache's cache did during a measured run, from its /metrics: hits, misses, bypasses and
// the histogram of hit durations (statement arrival to answer written, inside the proxy). Readings
// are cumulative; a run's share is the difference of the readings around it.
import { scrape, sumOf, type MetricSample } from '../e2e/support/metrics.js';

/** Cumulative count of observations <= `le` seconds, as Prometheus buckets are. */
export interface Bucket {
  le: number;
  count: number;
}

export interface CacheReading {
  hits: number;
  misses: number;
  bypass: number;
  /** sidecache_query_duration_seconds{outcome="hit"}, ascending by `le`, ending with +Inf. */
  hitBuckets: Bucket[];
}

const PG = { protocol: 'postgres' };

export function cacheReadingOf(samples: readonly MetricSample[]): CacheReading {
  const hitBuckets = samples
    .filter((s) => s.name === 'sidecache_query_duration_seconds_bucket' && s.labels.protocol === PG.protocol && s.labels.outcome === 'hit')
    .map((s) => ({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), count: s.value }))
    .sort((a, b) => a.le - b.le);
  return {
    hits: sumOf(samples, 'sidecache_cache_hits_total', PG),
    misses: sumOf(samples, 'sidecache_cache_misses_total', PG),
    bypass: sumOf(samples, 'sidecache_cache_bypass_total', PG),
    hitBuckets,
  };
}

export async function readCache(adminPort: number): Promise<CacheReading> {
  return cacheReadingOf(await scrape(adminPort));
}

export const EMPTY_READING: CacheReading = { hits: 0, misses: 0, bypass: 0, hitBuckets: [] };

/** `a - b` (sign -1) or `a + b` (sign 1), bucket by bucket; a missing bucket counts as zero. */
function combine(a: CacheReading, b: CacheReading, sign: 1 | -1): CacheReading {
  const les = [...new Set([...a.hitBuckets, ...b.hitBuckets].map((x) => x.le))].sort((x, y) => x - y);
  const countAt = (r: CacheReading, le: number): number => r.hitBuckets.find((x) => x.le === le)?.count ?? 0;
  return {
    hits: a.hits + sign * b.hits,
    misses: a.misses + sign * b.misses,
    bypass: a.bypass + sign * b.bypass,
    hitBuckets: les.map((le) => ({ le, count: countAt(a, le) + sign * countAt(b, le) })),
  };
}

export function readingDelta(after: CacheReading, before: CacheReading): CacheReading {
  return combine(after, before, -1);
}

export function sumReadings(readings: readonly CacheReading[]): CacheReading {
  return readings.reduce((sum, r) => combine(sum, r, 1), EMPTY_READING);
}

export function hitRatio(r: CacheReading): number | undefined {
  const lookups = r.hits + r.misses;
  return lookups > 0 ? r.hits / lookups : undefined;
}

export interface QuantileEstimate {
  /** Seconds, by linear interpolation inside the bucket (Prometheus' histogram_quantile). */
  seconds: number;
  /** Bounds of the bucket the quantile falls in; the estimate is no better than this. */
  lower: number;
  upper: number;
}

/** The q-quantile of cumulative buckets, or undefined with no observations or past the last finite bound. */
export function histogramQuantile(q: number, buckets: readonly Bucket[]): QuantileEstimate | undefined {
  const total = buckets.at(-1)?.count ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const bucket of buckets) {
    if (bucket.count >= rank) {
      if (!Number.isFinite(bucket.le)) return undefined;
      const inBucket = bucket.count - below;
      const seconds = inBucket > 0 ? lower + (bucket.le - lower) * ((rank - below) / inBucket) : bucket.le;
      return { seconds, lower, upper: bucket.le };
    }
    lower = bucket.le;
    below = bucket.count;
  }
  return undefined;
}
