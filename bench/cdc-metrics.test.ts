import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseExposition } from '../e2e/support/metrics.js';
import { lagSummary, streamDelta, streamReadingOf } from './cdc-metrics.js';

const EXPOSITION = (events: number, counts: [string, number][]): string => [
  `sidecache_cdc_events_total{protocol="postgres",database="bench"} ${events}`,
  `sidecache_cdc_events_total{protocol="postgres",database="other"} 999`,
  `sidecache_cdc_invalidations_total{protocol="postgres",database="bench"} ${events / 5}`,
  ...counts.map(([le, n]) => `sidecache_cdc_lag_seconds_bucket{protocol="postgres",database="bench",le="${le}"} ${n}`),
  'sidecache_cdc_lag_seconds_bucket{protocol="mysql",database="*",le="+Inf"} 77',
].join('\n');

test('a run\'s share of one stream: events, invalidations and lag buckets around it', () => {
  const before = streamReadingOf(parseExposition(EXPOSITION(100, [['0.001', 5], ['0.01', 8], ['0.1', 10], ['+Inf', 10]])), 'postgres', 'bench');
  const after = streamReadingOf(parseExposition(EXPOSITION(600, [['0.001', 55], ['0.01', 105], ['0.1', 110], ['+Inf', 110]])), 'postgres', 'bench');
  const run = streamDelta(after, before);
  assert.is(run.events, 500);
  assert.is(run.invalidations, 100);
  assert.equal(run.lagBuckets.map((b) => b.count), [50, 97, 100, 100]);
  const lag = lagSummary(run);
  assert.is(lag.samples, 100);
  assert.ok(lag.p50!.seconds > 0 && lag.p50!.seconds <= 0.001);
  assert.is(lag.p99!.upper, 0.1);
  assert.is(lag.maxUpperSeconds, 0.1, 'the highest bucket with an observation');
});

test('no samples: no quantiles, no maximum', () => {
  const empty = streamReadingOf([], 'postgres', 'bench');
  assert.equal(lagSummary(empty), { samples: 0, p50: undefined, p99: undefined, maxUpperSeconds: undefined });
});

test.run();
