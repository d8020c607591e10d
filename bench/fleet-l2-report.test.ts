import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bestTierRun, formatTierTable, formatWarmTable, quantile, summarizeLatencies, totalOf, type TierRun, type TierTarget, type WarmRun } from './fleet-l2-report.js';

function run(target: TierTarget, clients: number, reads: number, latenciesMs: number[], protocol = 'postgres'): TierRun {
  return { protocol, target, clients, reads, seconds: 1, latenciesMs };
}

test('quantiles are nearest-rank: p50 of 1..100 is 50, p99 is 99, and one sample is every quantile', () => {
  const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.is(quantile(sorted, 0.5), 50);
  assert.is(quantile(sorted, 0.99), 99);
  assert.is(quantile([7], 0.99), 7);
  assert.is(quantile([], 0.5), undefined);
});

test('a latency summary sorts its samples and averages them; no samples, no summary', () => {
  assert.equal(summarizeLatencies([3, 1, 2, 4]), { count: 4, avgMs: 2.5, p50Ms: 2, p99Ms: 4 });
  assert.is(summarizeLatencies([]), undefined);
});

test('each cell is reported by its fastest run', () => {
  const runs = [run('direct', 1, 100, [1]), run('direct', 1, 300, [1]), run('direct', 8, 900, [1]), run('direct', 1, 999, [1], 'mysql')];
  assert.is(bestTierRun(runs, 'postgres', 'direct', 1)!.reads, 300);
  assert.is(bestTierRun(runs, 'postgres', 'l2-hit', 1), undefined);
});

test('the tier table gives reads/s and p50 as ratios to direct at the same concurrency, direct without a ratio', () => {
  const table = formatTierTable([
    run('direct', 1, 1000, [0.2, 0.2, 0.4]),
    { ...run('l2-hit', 1, 500, [0.4, 0.4, 0.8]), proxyCpuUs: 61.25 },
    run('redis-get', 1, 4000, [0.05]),
    run('direct', 8, 2000, [1]),
  ]).split('\n');
  assert.match(table[2]!, /^postgres\s+1\s+direct\s+1000\s+0\.200\s+0\.400\s+0\.267$/);
  assert.match(table[3]!, /^postgres\s+1\s+l2-hit\s+500\s+0\.50x\s+0\.400\s+2\.00x\s+0\.800\s+0\.533\s+61\.3$/);
  assert.match(table[4]!, /^postgres\s+1\s+redis-get\s+4000\s+4\.00x\s+0\.050\s+0\.25x/);
  assert.match(table[5]!, /^postgres\s+8\s+direct\s+2000\s/);
  assert.is(table.length, 6, 'targets not measured have no row');
});

test('the first-minute table gives each bucket\'s hit ratio and an overall row with database reads per request', () => {
  const withL2: WarmRun = {
    label: 'with --l2 on',
    buckets: [
      { endSeconds: 10, requests: 1000, hits: 800, misses: 200, l2Hits: 300 },
      { endSeconds: 20, requests: 1000, hits: 900, misses: 100, l2Hits: 100 },
    ],
    databaseReads: 300,
    latency: { count: 2000, avgMs: 0.5, p50Ms: 0.25, p99Ms: 4 },
  };
  assert.equal(totalOf(withL2.buckets), { requests: 2000, hits: 1700, misses: 300, l2Hits: 400 });
  const rows = formatWarmTable([withL2]).split('\n');
  assert.match(rows[2]!, /^with --l2 on\s+0-10\s+1000\s+80\.0%\s+30\.0%\s+200$/);
  assert.match(rows[3]!, /^with --l2 on\s+10-20\s+1000\s+90\.0%\s+10\.0%\s+100$/);
  assert.match(rows[4]!, /^with --l2 on\s+overall\s+2000\s+85\.0%\s+20\.0%\s+300\s+0\.15\s+0\.250\/4\.000$/);
});

test('a bucket without lookups shows a dash, not a division by zero', () => {
  const rows = formatWarmTable([{ label: 'x', buckets: [{ endSeconds: 5, requests: 0, hits: 0, misses: 0, l2Hits: 0 }], databaseReads: 0, latency: undefined }]).split('\n');
  assert.match(rows[2]!, /^x\s+0-5\s+0\s+-\s+-\s+0$/);
  assert.match(rows[3]!, /^x\s+overall\s+0\s+-\s+-\s+0\s+-\s+-$/);
});

test.run();
