// The dashboard's pure half, in Node: what the charts and cards show for a given run of /stats answers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMetrics } from '../../telemetry/metrics.js';
import { QueryStats } from '../../telemetry/query-stats.js';
import { buildStatsReport } from '../stats-report.js';
import {
  ALL, GAP_MS, HISTORY_MS, History, WINDOW_MS, authHeaders, countersOf, fleetLine, formatBytes, formatCompact, formatCount, formatMs, formatPercent,
  formatRate, hitRatioPoints, niceScale, ratePoints, recentRate, timeTicks, topQueries, topTables, type Counters, type Sample,
} from './client.js';

function counters(c: Partial<Counters>): Counters {
  return { hits: 0, misses: 0, bypasses: 0, writes: 0, invalidations: 0, evictions: 0, entries: 0, bytes: 0, maxBytes: 0, ...c };
}

function sample(at: number, c: Partial<Counters>): Sample {
  return { at, views: { [ALL]: counters(c) } };
}

test('countersOf: the totals as ALL and one view per protocol, from a real report', () => {
  const metrics = createMetrics();
  const pg = new QueryStats('postgres', metrics);
  const my = new QueryStats('mysql', metrics);
  pg.observeStore(() => ({ entries: 2, bytes: 300, evictions: 1, maxBytes: 1000 }));
  my.observeStore(() => ({ entries: 1, bytes: 100, evictions: 0, maxBytes: 500 }));
  const id = pg.identify('f1', 'SELECT 1 FROM t', ['public.t']);
  pg.hit(id, 0.001);
  pg.hit(id, 0.001);
  pg.miss(id, 0.002);
  my.miss(my.identify('f2', 'SELECT 2 FROM u', ['test.u']), 0.002);
  my.bypass(null, 'transaction', 0.001);
  const views = countersOf(buildStatsReport(metrics.cacheStats.values(), 10));
  assert.equal(Object.keys(views).sort(), [ALL, 'mysql', 'postgres']);
  assert.equal(views[ALL], counters({ hits: 2, misses: 2, bypasses: 1, entries: 3, bytes: 400, maxBytes: 1500, evictions: 1 }));
  assert.equal(views.postgres, counters({ hits: 2, misses: 1, entries: 2, bytes: 300, maxBytes: 1000, evictions: 1 }));
  assert.equal(views.mysql, counters({ misses: 1, bypasses: 1, entries: 1, bytes: 100, maxBytes: 500 }));
});

test('History keeps the last five minutes and starts over when the counters go backwards', () => {
  const h = new History();
  for (let s = 0; s <= 400; s++) h.add(sample(s * 1000, { hits: s }));
  assert.is(h.samples[0]!.at, 400_000 - HISTORY_MS);
  assert.is(h.samples.length, HISTORY_MS / 1000 + 1);
  h.add(sample(401_000, { hits: 3 }));
  assert.equal(h.samples.map((s) => s.views[ALL]!.hits), [3], 'a restarted proxy');
});

test('ratePoints: per-second rates per poll interval, null across a gap', () => {
  const samples = [sample(0, { hits: 0 }), sample(1000, { hits: 10 }), sample(1500, { hits: 20 }), sample(1500 + GAP_MS + 1, { hits: 30 }), sample(2500 + GAP_MS + 1, { hits: 31 })];
  assert.equal(ratePoints(samples, ALL, 'hits').map((p) => p.value), [10, 20, null, 1]);
  assert.equal(ratePoints(samples, 'mysql', 'hits').map((p) => p.value), [null, null, null, null], 'a view absent from the samples');
});

test('hitRatioPoints: the ratio over the window before each sample; null without lookups', () => {
  const samples: Sample[] = [];
  // 1 hit per second for 10 s, then 1 miss per second for 10 s, then nothing.
  for (let s = 0; s <= 25; s++) samples.push(sample(s * 1000, { hits: Math.min(s, 10), misses: Math.max(0, Math.min(s, 20) - 10) }));
  const points = hitRatioPoints(samples, ALL);
  const at = (s: number): number | null => points.find((p) => p.at === s * 1000)!.value;
  assert.is(at(1), 1);
  assert.is(at(10), 1);
  assert.is(at(12), (WINDOW_MS / 1000 - 2) / (WINDOW_MS / 1000), 'three hits and two misses in the 5 s before');
  assert.is(at(20), 0);
  assert.is(at(25), null, 'no lookups in the window');
});

test('recentRate: the rate over the last window, null before two samples', () => {
  assert.is(recentRate([sample(0, {})], ALL, 'hits'), null);
  const samples = [0, 1, 2, 3, 4, 5, 6, 7].map((s) => sample(s * 1000, { misses: s * s }));
  // The window is 5 s: from 2 s (4 misses) to 7 s (49 misses).
  assert.is(recentRate(samples, ALL, 'misses'), (49 - 4) / 5);
  assert.is(recentRate([sample(0, {}), sample(GAP_MS + 1, { hits: 5 })], ALL, 'hits'), null, 'across a gap');
});

test('niceScale and timeTicks give round axis labels', () => {
  const scales = [0, 0.3, 1, 7, 12, 21, 230, 999, 1001].map((n) => niceScale(n));
  assert.equal(scales.map((s) => [s.max, s.step]), [[1, 0.25], [0.3, 0.1], [1, 0.25], [8, 2], [15, 5], [30, 10], [300, 100], [1000, 250], [1500, 500]]);
  assert.equal(timeTicks(1_001, 61_000), [10_000, 20_000, 30_000, 40_000, 50_000, 60_000]);
  assert.equal(timeTicks(0, 300_000).length, 6);
  assert.ok(timeTicks(0, 300_000).every((t) => t % 60_000 === 0));
});

test('formatting of counts, rates, bytes, ratios and latencies', () => {
  assert.is(formatCount(1234567), '1,234,567');
  assert.equal([99_999, 123_456, 2_345_678].map(formatCompact), ['99,999', '123k', '2.3M']);
  assert.equal([null, 0, 3.46, 42.4, 1234, 56789, 2.5e6].map(formatRate), ['–', '0.0', '3.5', '42', '1.2k', '57k', '2.5M']);
  assert.equal([0, 512, 2048, 1536 * 1024, 64 * 1024 ** 2, 300 * 1024 ** 3].map(formatBytes), ['0 B', '512 B', '2.00 KiB', '1.50 MiB', '64.0 MiB', '300 GiB']);
  assert.equal([null, 0, 0.5, 465 / 495, 1].map(formatPercent), ['–', '0.0%', '50.0%', '93.9%', '100.0%']);
  assert.equal([null, 0.045, 1.234, 12.34, 456.7].map(formatMs), ['–', '45 µs', '1.23 ms', '12.3 ms', '457 ms']);
});

test('fleetLine: nothing alone; live with the lag and the tasks led; fenced says the cache is off', () => {
  assert.is(fleetLine(null), null);
  const fleet = {
    instance: 'a/1/x', redis: 'redis://127.0.0.1:6390', state: 'live' as const, connected: true, position: 7, published: 3, applied: 4,
    publishFailures: 0, unreadable: 0, queued: 0, fences: { connection: 0, gap: 0, timeout: 0, 'publish-failed': 0 },
    lagMs: { count: 4, p50Ms: 0.4, p99Ms: 1.5, meanMs: 0.5 }, leader: { beat: true, cdc: false }, l2: null, streams: {},
  };
  assert.equal(fleetLine(fleet), { ok: true, text: 'Fleet: live · lag p99 1.50 ms · leads beat' });
  assert.equal(fleetLine({ ...fleet, leader: {}, lagMs: { count: 0, p50Ms: null, p99Ms: null, meanMs: null } }), { ok: true, text: 'Fleet: live' });
  const l2 = { hits: 1234, misses: 56, stale: 7, errors: 0, writes: 60, bytesWritten: 1e6, bytesServed: 2e6 };
  assert.equal(fleetLine({ ...fleet, l2 })?.text, 'Fleet: live · lag p99 1.50 ms · leads beat · L2 hits 1,234 / 1,290', 'the second tier\'s hits of its lookups');
  const streams = {
    postgres: { leading: false, leader: 'b/2/y', up: ['app', 'billing'], ageMs: 300 },
    mysql: { leading: true, leader: null, up: ['*'], ageMs: null },
  };
  assert.equal(fleetLine({ ...fleet, leader: { beat: true, 'cdc-mysql': true }, streams })?.text,
    'Fleet: live · lag p99 1.50 ms · leads beat, cdc-mysql · postgres CDC by leader: 2 up · mysql CDC here: up', 'the change streams the fleet follows');
  assert.equal(fleetLine({ ...fleet, streams: { postgres: { leading: false, leader: null, up: [], ageMs: null } } })?.text, 'Fleet: live · lag p99 1.50 ms · leads beat · postgres CDC by leader: none up');
  assert.equal(fleetLine({ ...fleet, state: 'fenced', connected: false }), { ok: false, text: 'Fleet: bus down, cache off (bypass "bus-down")' });
  assert.equal(fleetLine({ ...fleet, state: 'starting', connected: false })?.text, 'Fleet: connecting to Redis, cache off (bypass "bus-down")');
});

test('authHeaders: ?token= becomes a bearer token; no token, no header', () => {
  assert.equal(authHeaders('?token=s3cr%2Bt&x=1'), { authorization: 'Bearer s3cr+t' });
  assert.equal(authHeaders(''), {});
  assert.equal(authHeaders('?token='), {});
});

test('topTables joins both top lists so tables that only miss show too; topQueries filters by protocol', () => {
  const metrics = createMetrics();
  const pg = new QueryStats('postgres', metrics);
  const my = new QueryStats('mysql', metrics);
  const hot = pg.identify('hot', 'SELECT * FROM hot', ['public.hot']);
  for (let i = 0; i < 5; i++) pg.hit(hot, 0.001);
  pg.miss(hot, 0.001);
  const cold = pg.identify('cold', 'SELECT * FROM cold', ['public.cold']);
  for (let i = 0; i < 3; i++) pg.miss(cold, 0.001);
  my.hit(my.identify('m', 'SELECT * FROM m', ['test.m']), 0.001);
  const report = buildStatsReport(metrics.cacheStats.values(), 10);
  assert.equal(topTables(report, ALL, 10).map((t) => t.table), ['public.hot', 'public.cold', 'test.m']);
  assert.equal(topTables(report, 'mysql', 10).map((t) => t.table), ['test.m']);
  assert.equal(topTables(report, ALL, 1).map((t) => t.table), ['public.hot']);
  assert.equal(topQueries(report.topQueries.byMisses, 'postgres', 10).map((q) => q.fingerprint), ['cold', 'hot']);
  assert.equal(topQueries(report.topQueries.byHits, 'mysql', 10).map((q) => q.fingerprint), ['m']);
});

test.run();
