import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CacheReading } from './cache-metrics.js';
import { formatCacheTable, formatHopSection, formatHopTable, formatRelayCpuTable, formatResultsTable, type CellResult, type MeasuredRun, type TargetId } from './report.js';

function run(tps: number, relayCpuSeconds?: number, cache?: CacheReading): MeasuredRun {
  return { tps, latencyAvgMs: 8 / tps * 1000, latencyP50Ms: 0.1, latencySamples: tps, transactions: tps, failedTransactions: 0, queryMode: 'simple', output: '', relayCpuSeconds, cache };
}

function cell(workload: string, target: TargetId, ...tps: number[]): CellResult {
  return { workload, target, runs: tps.map((t) => run(t)) };
}

test('the table reports the best run per cell and its ratio to direct', () => {
  const table = formatResultsTable(['-S simple'], ['direct', 'sidecache'], [
    cell('-S simple', 'direct', 30000, 40000),
    cell('-S simple', 'sidecache', 36000, 20000),
  ]);
  const row = table.split('\n')[2]!;
  assert.match(row, /^-S simple\s+40000\s+0\.200\/0\.100\s+36000\s+0\.90x/);
});

test('a target without runs for a workload shows dashes, not a ratio', () => {
  const table = formatResultsTable(['hot simple'], ['direct', 'pgpool'], [cell('hot simple', 'direct', 1000)]);
  assert.match(table.split('\n')[2]!, /^hot simple\s+1000\s+\S+\s+-\s+-\s+-$/);
});

test('relay CPU per transaction is summed over all runs of a cell', () => {
  const relayed: CellResult = { workload: '-S simple', target: 'sidecache', runs: [run(10000, 0.2), run(30000, 0.4)] };
  const row = formatRelayCpuTable(['-S simple'], ['sidecache'], [relayed]).split('\n')[2]!;
  assert.match(row, /^-S simple\s+15\.0$/);
});

test('the cache table sums hits and misses over the runs and estimates the hit p50 from the buckets', () => {
  const reading = (hits: number, misses: number): CacheReading => ({
    hits, misses, bypass: 1,
    hitBuckets: [{ le: 0.00002, count: 0 }, { le: 0.00005, count: hits }, { le: Infinity, count: hits }],
  });
  const cells: CellResult[] = [{ workload: 'hot simple', target: 'sidecache', runs: [run(1000, 1, reading(900, 10)), run(1000, 1, reading(90, 0))] }];
  const row = formatCacheTable(['hot simple', '-S simple'], cells).split('\n');
  // 990 hits of 1000 lookups; half the hits lie in the 20-50 µs bucket, so the p50 is interpolated to its middle.
  assert.match(row[2]!, /^hot simple\s+990\s+10\s+2\s+99\.0%\s+~35 µs \(20 µs-50 µs\)\s+100 µs$/);
  assert.match(row[3]!, /^-S simple(\s+-){6}$/);
});

test('the hop table: delay relay CPU per transaction over all runs, RTT percentiles over all samples', () => {
  const withHop = (tps: number, cpuSeconds: number | undefined, rttSamplesUs: number[]): MeasuredRun => ({ ...run(tps), hop: { cpuSeconds, rttSamplesUs } });
  const cells: CellResult[] = [
    { workload: 'hot simple', target: 'direct', runs: [withHop(1000, 0.05, [1000, 1100]), withHop(3000, 0.15, [1200, 1300, 5000])] },
    { workload: 'hot simple', target: 'sidecache', runs: [withHop(1000, undefined, [])] },
  ];
  const lines = formatHopTable(['hot simple'], ['direct', 'sidecache'], cells).split('\n');
  assert.match(lines[0]!, /^workload\s+direct hop µs\/tx\s+RTT p50\/p90 ms\s+sidecache hop µs\/tx\s+RTT p50\/p90 ms$/);
  // 0.2 s over 4000 transactions = 50 µs; p50 of the five samples 1.2 ms, p90 5.0 ms.
  assert.match(lines[2]!, /^hot simple\s+50\.0\s+1\.20\/5\.00\s+-\s+-$/);
});

test('the hop section: asked and measured RTT, idle and during the runs, the relay\'s lateness, then the table', () => {
  const withHop = (rttSamplesUs: number[]): MeasuredRun => ({ ...run(1000), hop: { cpuSeconds: 0.1, rttSamplesUs } });
  const cells: CellResult[] = [{ workload: 'hot simple', target: 'direct', runs: [withHop([1500, 1600]), withHop([1700])] }];
  const idleRtt = { count: 2, minUs: 1100, p50Us: 1200, p90Us: 1300, avgUs: 1200, maxUs: 1300 };
  const text = formatHopSection({ plan: { rttUs: 1000, oneWayUs: 500, namespace: 'ns1' }, idleRtt, lateness: undefined, sampleIntervalMs: 20 },
    ['hot simple'], ['direct'], cells);
  const lines = text.split('\n');
  assert.is(lines[0], 'network hop: 1000 µs round trip asked (500 µs each way, delay relay in namespace ns1)');
  assert.match(lines[1]!, /idle p50 1\.20 ms .*; during the measured runs p50 1\.60 ms \(min 1\.50, avg 1\.60, p90 1\.70, n 3\)$/);
  assert.match(lines[2]!, /lateness .*: not reported$/);
  assert.match(lines[3]!, /every 20 ms/);
  assert.match(lines[4]!, /^workload\s+direct hop µs\/tx/);
});

test.run();
