import { Registry } from 'prom-client';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DURATION_BUCKETS_SECONDS, DurationHistogram, PrecountedHistogram } from './duration-histogram.js';

const TOP = DURATION_BUCKETS_SECONDS[DURATION_BUCKETS_SECONDS.length - 1]!;

test('buckets span 20 µs to 5 s in increasing order', () => {
  assert.is(DURATION_BUCKETS_SECONDS[0], 0.00002);
  assert.is(TOP, 5);
  for (let i = 1; i < DURATION_BUCKETS_SECONDS.length; i++) assert.ok(DURATION_BUCKETS_SECONDS[i]! > DURATION_BUCKETS_SECONDS[i - 1]!);
});

test('a value equal to a bound lands in that bound\'s bucket (Prometheus le is inclusive)', () => {
  const h = new DurationHistogram();
  h.observe(0.00002);
  h.observe(0.000021);
  h.observe(0);
  assert.is(h.counts[0], 2);
  assert.is(h.counts[1], 1);
  assert.is(h.count, 3);
});

test('values above the top bound are counted only in the overflow slot', () => {
  const h = new DurationHistogram();
  h.observe(7);
  assert.is(h.counts[DURATION_BUCKETS_SECONDS.length], 1);
  assert.is(h.counts.slice(0, DURATION_BUCKETS_SECONDS.length).reduce((a, b) => a + b, 0), 0);
  assert.is(h.sum, 7);
});

test('NaN and negative durations count as 0 instead of poisoning the sum', () => {
  const h = new DurationHistogram();
  h.observe(Number.NaN);
  h.observe(-1);
  h.observe(0.001);
  assert.is(h.count, 3);
  assert.is(h.sum, 0.001);
  assert.is(h.counts[0], 2);
});

test('mean and estimated quantiles in ms; null when empty', () => {
  const h = new DurationHistogram();
  assert.is(h.meanMs(), null);
  assert.is(h.quantileMs(0.5), null);
  for (let i = 0; i < 99; i++) h.observe(0.00003); // bucket (20 µs, 50 µs]
  h.observe(0.3); // bucket (200 ms, 500 ms]
  assert.ok(Math.abs(h.meanMs()! - (99 * 0.03 + 300) / 100) < 1e-9);
  const p50 = h.quantileMs(0.5)!;
  assert.ok(p50 > 0.02 && p50 <= 0.05, String(p50));
  const p999 = h.quantileMs(0.999)!;
  assert.ok(p999 > 200 && p999 <= 500, String(p999));
  const over = new DurationHistogram();
  over.observe(9);
  assert.is(over.quantileMs(0.5), TOP * 1000);
});

test('PrecountedHistogram renders cumulative buckets, +Inf, sum and count in the Prometheus text', async () => {
  const registry = new Registry();
  const a = new DurationHistogram();
  a.observe(0.00001);
  a.observe(0.0003);
  a.observe(6);
  new PrecountedHistogram('x_seconds', 'test', () => [{ labels: { protocol: 'postgres', outcome: 'hit' }, histogram: a }], registry);
  const text = await registry.metrics();
  assert.match(text, '# TYPE x_seconds histogram');
  assert.match(text, 'x_seconds_bucket{protocol="postgres",outcome="hit",le="0.00002"} 1\n');
  assert.match(text, 'x_seconds_bucket{protocol="postgres",outcome="hit",le="0.0002"} 1\n');
  assert.match(text, 'x_seconds_bucket{protocol="postgres",outcome="hit",le="0.0005"} 2\n');
  assert.match(text, 'x_seconds_bucket{protocol="postgres",outcome="hit",le="5"} 2\n');
  assert.match(text, 'x_seconds_bucket{protocol="postgres",outcome="hit",le="+Inf"} 3\n');
  assert.match(text, 'x_seconds_count{protocol="postgres",outcome="hit"} 3\n');
  assert.match(text, /x_seconds_sum\{protocol="postgres",outcome="hit"\} 6\.00031/);
  const json = await registry.getMetricsAsJSON();
  assert.is(json.length, 1, 'the JSON view works too');
});

test('a histogram with its own buckets counts, estimates and renders against them', async () => {
  const h = new DurationHistogram([0.001, 0.01, 0.1]);
  for (const s of [0.0005, 0.002, 0.003, 0.05, 3]) h.observe(s);
  assert.equal([...h.counts], [1, 2, 1, 1]);
  assert.ok(h.quantileMs(0.5)! > 1 && h.quantileMs(0.5)! <= 10);
  assert.is(h.quantileMs(0.99), 100, 'above the top bound: the top bound');
  const registry = new Registry();
  new PrecountedHistogram('lag_seconds', 'test', () => [{ labels: { protocol: 'mysql' }, histogram: h }], registry);
  const text = await registry.metrics();
  assert.match(text, 'lag_seconds_bucket{protocol="mysql",le="0.01"} 3\n');
  assert.match(text, 'lag_seconds_bucket{protocol="mysql",le="+Inf"} 5\n');
  assert.not.match(text, 'le="0.00002"');
});

test.run();
