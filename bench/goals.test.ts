import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CacheReading } from './cache-metrics.js';
import { evaluateGoals, evaluateHopGoals, formatGoals, type GoalResult } from './goals.js';
import type { CellResult, MeasuredRun, TargetId } from './report.js';
import { WORKLOADS, type Workload } from './workloads.js';

const HOT_CACHE: CacheReading = { hits: 99, misses: 1, bypass: 0, hitBuckets: [{ le: 0.00002, count: 99 }, { le: Infinity, count: 99 }] };

function run(tps: number, p50Ms: number, cache?: CacheReading): MeasuredRun {
  return { tps, latencyAvgMs: 0.2, latencyP50Ms: p50Ms, latencySamples: tps, transactions: tps, failedTransactions: 0, queryMode: 'simple', output: '', relayCpuSeconds: undefined, cache };
}

function cell(workload: string, target: TargetId, tps: number, p50Ms = 0.2, cache?: CacheReading): CellResult {
  return { workload, target, runs: [run(tps, p50Ms, cache)] };
}

const pick = (...keys: string[]): Workload[] => keys.map((k) => WORKLOADS.find((w) => w.key === k)!);
const find = (results: GoalResult[], start: string): GoalResult => results.find((r) => r.goal.startsWith(start))!;

test('each workload is judged against its own ratio; Redis and p50 on the faster hot workload', () => {
  const cells = [
    cell('hot simple', 'direct', 40000), cell('hot simple', 'sidecache', 59000, 0.12, HOT_CACHE),
    cell('hot prepared', 'direct', 60000), cell('hot prepared', 'sidecache', 66000, 0.09, HOT_CACHE),
    cell('-S simple', 'direct', 30000), cell('-S simple', 'sidecache', 24000),
    cell('TPC-B simple', 'direct', 3000), cell('TPC-B simple', 'sidecache', 2300),
  ];
  const results = evaluateGoals({
    workloads: pick('hot-simple', 'hot-prepared', 'select-simple', 'tpcb-simple'),
    cells,
    redis: { rps: 80000, p50Ms: 0.055, command: 'redis-benchmark' },
  });
  assert.is(find(results, 'hot simple').verdict, 'MISS'); // 1.475x < 1.5x
  assert.match(find(results, 'hot simple').measured, '1.48x, hit ratio 99.0%');
  assert.is(find(results, 'hot prepared').verdict, 'PASS');
  assert.is(find(results, '-S simple').verdict, 'PASS'); // exactly 0.8x
  assert.is(find(results, 'TPC-B simple').verdict, 'MISS');
  const redis = find(results, 'hits >=');
  assert.is(redis.verdict, 'PASS'); // 66000 / 80000 = 0.825
  assert.match(redis.measured, 'hot prepared 66000 tps');
  const p50 = find(results, 'hit p50');
  assert.is(p50.verdict, 'PASS');
  assert.match(p50.measured, /^90 µs \(hot prepared; Redis GET 55 µs\); inside sidecache ~10 µs \(bucket 0 µs-20 µs\)$/);
  assert.match(formatGoals(results), '4 of 6 goals met, 2 missed, 0 not measured');
});

test('a skipped Redis and a missing sidecache column are "not measured", never a pass', () => {
  const results = evaluateGoals({
    workloads: pick('hot-simple'),
    cells: [cell('hot simple', 'direct', 40000)],
    redis: 'Redis ceiling skipped: no Redis reachable on 127.0.0.1:6379',
  });
  assert.equal(results.map((r) => r.verdict), ['not measured', 'not measured', 'not measured']);
  assert.match(find(results, 'hits >=').measured, 'no Redis reachable');
  assert.match(formatGoals(results), '0 of 3 goals met, 0 missed, 3 not measured');
});

test('all goals met says so', () => {
  const results = evaluateGoals({
    workloads: pick('hot-prepared'),
    cells: [cell('hot prepared', 'direct', 60000), cell('hot prepared', 'sidecache', 70000, 0.08, HOT_CACHE)],
    redis: { rps: 80000, p50Ms: 0.055, command: 'redis-benchmark' },
  });
  assert.match(formatGoals(results), /\nall goals met$/);
});

test('across the hop: hot >= 10x, -S and TPC-B >= 0.95x direct, and ahead of PgBouncer on each', () => {
  const results = evaluateHopGoals({
    workloads: pick('hot-simple', 'select-simple', 'tpcb-simple'),
    cells: [
      cell('hot simple', 'direct', 4000), cell('hot simple', 'sidecache', 40000, 0.1, HOT_CACHE), cell('hot simple', 'pgbouncer', 3000),
      cell('-S simple', 'direct', 3000), cell('-S simple', 'sidecache', 2800), cell('-S simple', 'pgbouncer', 2900),
      cell('TPC-B simple', 'direct', 500), cell('TPC-B simple', 'sidecache', 480), cell('TPC-B simple', 'pgbouncer', 470),
    ],
  });
  assert.equal(results.map((r) => `${r.verdict} ${r.goal}`), [
    'PASS hot simple: sidecache >= 10x direct', // exactly 10x
    'PASS hot simple: sidecache ahead of PgBouncer',
    'MISS -S simple: sidecache >= 0.95x direct', // 0.933x
    'MISS -S simple: sidecache ahead of PgBouncer',
    'PASS TPC-B simple: sidecache >= 0.95x direct', // 0.96x
    'PASS TPC-B simple: sidecache ahead of PgBouncer',
  ]);
  assert.is(find(results, 'hot simple: sidecache ahead').measured, '13.33x PgBouncer (PgBouncer 0.75x direct)');
  assert.is(find(results, 'TPC-B simple: sidecache >=').measured, '0.96x');
});

test('across the hop without PgBouncer installed, "ahead of PgBouncer" is not measured', () => {
  const results = evaluateHopGoals({ workloads: pick('hot-prepared'), cells: [cell('hot prepared', 'direct', 4000), cell('hot prepared', 'sidecache', 30000)] });
  assert.equal(results.map((r) => r.verdict), ['MISS', 'not measured']);
  assert.is(results[1]!.measured, 'PgBouncer not measured');
});

test('issue 17 item 6: CPU per transaction against the relay alone, and the ratio against the forwarder\'s', () => {
  // CPU per transaction sums every run of a cell: (0.05 + 0.07) s / (1000 + 2000) tx = 40 µs.
  const cpu = (workload: string, target: TargetId, tps: number, runs: [number, number][]): CellResult => ({
    workload, target, runs: runs.map(([seconds, transactions]) => ({ ...run(tps, 0.2), relayCpuSeconds: seconds, transactions })),
  });
  const cells = [
    cell('-S simple', 'direct', 30000), cell('TPC-B simple', 'direct', 3000),
    cpu('-S simple', 'sidecache', 15000, [[0.05, 1000], [0.07, 2000]]), cpu('-S simple', 'passthrough', 17000, [[0.1, 3000]]),
    cpu('-S simple', 'forwarder', 16000, [[0.09, 3000]]),
    cpu('TPC-B simple', 'sidecache', 2000, [[0.11, 1000]]), cpu('TPC-B simple', 'passthrough', 2100, [[0.1, 1000]]),
  ];
  const results = evaluateGoals({ workloads: pick('select-simple', 'tpcb-simple'), cells, redis: 'skipped' });
  const fill = find(results, '-S simple: sidecache CPU/tx');
  assert.is(fill.goal, "-S simple: sidecache CPU/tx <= 1.2x the relay alone's");
  assert.is(fill.measured, '1.20x (40.0 / 33.3 µs)');
  assert.is(fill.verdict, 'PASS'); // 40 / 33.3 = 1.2 exactly
  const forwarder = find(results, '-S simple: sidecache >= the forwarder');
  assert.is(forwarder.measured, '0.50x vs forwarder 0.53x');
  assert.is(forwarder.verdict, 'MISS');
  const inBlock = find(results, 'TPC-B simple: sidecache CPU/tx');
  assert.is(inBlock.goal, "TPC-B simple: sidecache CPU/tx <= 1.1x the relay alone's");
  assert.is(inBlock.measured, '1.10x (110.0 / 100.0 µs)');
  assert.is(inBlock.verdict, 'PASS');
  assert.is(find(results, 'TPC-B simple: sidecache >= the forwarder'), undefined, 'no forwarder measured: no goal line');
});

test('item 6: the relay alone measured without sidecache\'s CPU is "not measured"; without the relay alone there is no line', () => {
  const cells = [cell('TPC-B simple', 'direct', 3000), { workload: 'TPC-B simple', target: 'passthrough' as const, runs: [{ ...run(2000, 0.2), relayCpuSeconds: 0.2 }] }];
  const results = evaluateGoals({ workloads: pick('tpcb-simple', 'select-simple'), cells, redis: 'skipped' });
  assert.is(find(results, 'TPC-B simple: sidecache CPU/tx').verdict, 'not measured');
  assert.is(find(results, '-S simple: sidecache CPU/tx'), undefined);
});

test.run();
