// What a change stream did during a measured run, from sidecache's /metrics: messages decoded,
// invalidations applied and the histogram of commit-to-invalidation lag. Readings are cumulative;
// a run's share is the difference of the readings around it.
import type { MetricSample } from '../e2e/support/metrics.js';
import { histogramQuantile, type Bucket, type QuantileEstimate } from './cache-metrics.js';

export interface StreamReading {
  events: number;
  invalidations: number;
  /** sidecache_cdc_lag_seconds, cumulative, ascending by `le`, ending with +Inf. */
  lagBuckets: Bucket[];
}

export function streamReadingOf(samples: readonly MetricSample[], protocol: string, database: string): StreamReading {
  const mine = (s: MetricSample): boolean => s.labels.protocol === protocol && s.labels.database === database;
  const value = (name: string): number => samples.filter((s) => s.name === name && mine(s)).reduce((sum, s) => sum + s.value, 0);
  return {
    events: value('sidecache_cdc_events_total'),
    invalidations: value('sidecache_cdc_invalidations_total'),
    lagBuckets: samples
      .filter((s) => s.name === 'sidecache_cdc_lag_seconds_bucket' && mine(s))
      .map((s) => ({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), count: s.value }))
      .sort((a, b) => a.le - b.le),
  };
}

export function streamDelta(after: StreamReading, before: StreamReading): StreamReading {
  const countAt = (r: StreamReading, le: number): number => r.lagBuckets.find((b) => b.le === le)?.count ?? 0;
  return {
    events: after.events - before.events,
    invalidations: after.invalidations - before.invalidations,
    lagBuckets: after.lagBuckets.map((b) => ({ le: b.le, count: b.count - countAt(before, b.le) })),
  };
}

export interface LagSummary {
  samples: number;
  p50: QuantileEstimate | undefined;
  p99: QuantileEstimate | undefined;
  /** The upper bound of the highest bucket with an observation (Infinity past the last bound). */
  maxUpperSeconds: number | undefined;
}

export function lagSummary(r: StreamReading): LagSummary {
  const samples = r.lagBuckets.at(-1)?.count ?? 0;
  let maxUpperSeconds: number | undefined;
  let below = 0;
  for (const b of r.lagBuckets) {
    if (b.count > below) maxUpperSeconds = b.le;
    below = b.count;
  }
  return { samples, p50: histogramQuantile(0.5, r.lagBuckets), p99: histogramQuantile(0.99, r.lagBuckets), maxUpperSeconds };
}
