import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMetrics } from '../telemetry/metrics.js';
import { QueryStats } from '../telemetry/query-stats.js';
import { buildStatsReport } from '../admin/stats-report.js';
import { mergeStatsReports } from './stats-merge.js';

/** One worker's /stats after `hits` hits and `misses` misses of statement f1 on table public.a. */
function workerReport(hits: number, misses: number, entries: number, extra?: (stats: QueryStats) => void) {
  const metrics = createMetrics();
  const pg = new QueryStats('postgres', metrics);
  pg.observeStore(() => ({ entries, bytes: entries * 10, evictions: 0, maxBytes: 1000 }));
  const id = pg.identify('f1', 'SELECT * FROM a', ['public.a']);
  for (let i = 0; i < hits; i++) pg.hit(id, 0.00002);
  for (let i = 0; i < misses; i++) pg.miss(id, 0.001);
  extra?.(pg);
  return buildStatsReport(metrics.cacheStats.values(), 20);
}

test('counts add up over workers; each worker keeps a line; the ratio is recomputed', () => {
  const merged = mergeStatsReports([
    { slot: 2, pid: 20, report: workerReport(3, 1, 1) },
    { slot: 1, pid: 10, report: workerReport(5, 1, 2, (s) => s.bypass(null, 'not-cacheable', 0.001)) },
  ], 20);
  assert.equal([merged.hits, merged.misses, merged.bypasses, merged.entries, merged.bytes, merged.maxBytes], [8, 2, 1, 3, 30, 2000]);
  assert.is(merged.hitRatio, 0.8);
  assert.equal(merged.workers.map((w) => [w.slot, w.pid, w.hits, w.misses, w.entries]), [[1, 10, 5, 1, 2], [2, 20, 3, 1, 1]]);
  const pg = merged.protocols.postgres!;
  assert.equal([pg.hits, pg.misses, pg.bypasses, pg.entries], [8, 2, 1, 3]);
  assert.is(pg.bypassReasons['not-cacheable'], 1);
  assert.is(pg.latencyMs.hit.count, 8);
  assert.is(pg.hitRatio, 0.8);
});

test('a statement in both workers\' top lists is one item with the summed counts, counted once per worker', () => {
  const merged = mergeStatsReports([
    { slot: 1, pid: 10, report: workerReport(5, 1, 1) },
    { slot: 2, pid: 20, report: workerReport(3, 2, 1) },
  ], 20);
  // Each worker lists f1 in byHits and in byMisses: still one item, 8 hits and 3 misses.
  assert.is(merged.topQueries.byHits.length, 1);
  const q = merged.topQueries.byHits[0]!;
  assert.equal([q.fingerprint, q.hits, q.misses, q.hitRatio], ['f1', 8, 3, 8 / 11]);
  assert.equal(merged.topQueries.byMisses[0], q);
  const t = merged.topTables.byHits[0]!;
  assert.equal([t.table, t.hits, t.misses], ['public.a', 8, 3]);
});

test('one worker\'s report merges into itself', () => {
  const report = workerReport(4, 2, 1);
  const merged = mergeStatsReports([{ slot: 1, pid: 10, report }], 20);
  const { workers, ...rest } = merged;
  assert.equal(rest, report);
  assert.is(workers.length, 1);
});

test.run();
