import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMetrics } from '../telemetry/metrics.js';
import { QueryStats } from '../telemetry/query-stats.js';
import { LAG_BUCKETS_SECONDS, type ChangeStreamReading } from '../telemetry/change-streams.js';
import { DurationHistogram } from '../telemetry/duration-histogram.js';
import { buildStatsReport } from './stats-report.js';

test('with no protocols and no traffic the report is all zeros and a null hit ratio', () => {
  const report = buildStatsReport([], 20);
  assert.equal(report, {
    hits: 0, misses: 0, bypasses: 0, writes: 0, hitRatio: null, entries: 0, bytes: 0, maxBytes: 0, evictions: 0, invalidations: 0,
    protocols: {}, topQueries: { byHits: [], byMisses: [] }, topTables: { byHits: [], byMisses: [] }, changeStreams: [], fleet: null,
  });
});

test('totals add up over protocols; top lists merge them in one order', () => {
  const metrics = createMetrics();
  const pg = new QueryStats('postgres', metrics);
  const my = new QueryStats('mysql', metrics);
  pg.observeStore(() => ({ entries: 2, bytes: 100, evictions: 1, maxBytes: 1000 }));
  my.observeStore(() => ({ entries: 3, bytes: 50, evictions: 0, maxBytes: 500 }));
  const run = (stats: QueryStats, f: string, table: string, hits: number, misses: number): void => {
    const id = stats.identify(f, `SELECT * FROM ${table}`, [table]);
    for (let i = 0; i < hits; i++) stats.hit(id, 0.00002);
    for (let i = 0; i < misses; i++) stats.miss(id, 0.001);
  };
  run(pg, 'p1', 'public.a', 5, 1);
  run(pg, 'p2', 'public.b', 1, 4);
  run(my, 'm1', 'test.a', 3, 0);
  run(my, 'm2', 'test.c', 8, 2);
  my.bypass(null, 'not-cacheable', 0.001);
  pg.invalidated(['public.a'], 1);

  const report = buildStatsReport(metrics.cacheStats.values(), 3);
  assert.equal([report.hits, report.misses, report.bypasses, report.entries, report.bytes, report.maxBytes, report.evictions, report.invalidations],
    [17, 7, 1, 5, 150, 1500, 1, 1]);
  assert.is(report.hitRatio, 17 / 24);
  assert.equal(Object.keys(report.protocols).sort(), ['mysql', 'postgres']);
  assert.is(report.protocols.postgres!.hits, 6);
  assert.equal(report.topQueries.byHits.map((q) => `${q.protocol}:${q.fingerprint}`), ['mysql:m2', 'postgres:p1', 'mysql:m1']);
  assert.equal(report.topQueries.byMisses.map((q) => `${q.protocol}:${q.fingerprint}`), ['postgres:p2', 'mysql:m2', 'postgres:p1']);
  assert.equal(report.topTables.byHits.map((t) => `${t.protocol}:${t.table}`), ['mysql:test.c', 'postgres:public.a', 'mysql:test.a']);
  assert.is(report.topTables.byHits[1]!.invalidations, 1);
  assert.equal(JSON.parse(JSON.stringify(report)), report, 'the report is plain JSON');
});

test('change streams: state, position, counts and the lag quantiles of each, sorted by protocol and database', () => {
  const lag = new DurationHistogram(LAG_BUCKETS_SECONDS);
  for (const s of [0.001, 0.002, 0.004, 0.04]) lag.observe(s);
  const reading = (protocol: 'postgres' | 'mysql', database: string, state: 'up' | 'down'): ChangeStreamReading => ({
    protocol, database, state, sinceMs: Date.UTC(2026, 11, 7), lastError: state === 'down' ? 'wal_level is replica' : null,
    position: '0/16B3748', events: 10, invalidations: 4, failures: state === 'down' ? 1 : 0, lag, lastLagMs: 40,
  });
  const report = buildStatsReport([], 3, [reading('postgres', 'b', 'up'), reading('mysql', '*', 'down'), reading('postgres', 'a', 'up')]);
  assert.equal(report.changeStreams.map((s) => `${s.protocol}:${s.database}:${s.state}`), ['mysql:*:down', 'postgres:a:up', 'postgres:b:up']);
  const a = report.changeStreams[1]!;
  assert.is(a.since, '2026-12-07T00:00:00.000Z');
  assert.equal([a.events, a.invalidations, a.failures, a.lag.count, a.lag.lastMs], [10, 4, 0, 4, 40]);
  assert.ok(a.lag.p50Ms! > 1 && a.lag.p50Ms! <= 3, String(a.lag.p50Ms));
  assert.ok(a.lag.p99Ms! > 30 && a.lag.p99Ms! <= 50, String(a.lag.p99Ms));
  assert.is(report.changeStreams[0]!.lastError, 'wal_level is replica');
});

test.run();
