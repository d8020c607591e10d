import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatGoal, formatRelayCpuTable, formatResultsTable, type CellResult, type MeasuredRun, type TargetId } from './report.js';

function run(tps: number, relayCpuSeconds?: number): MeasuredRun {
  return { tps, latencyAvgMs: 8 / tps * 1000, latencyP50Ms: 0.1, transactions: tps, failedTransactions: 0, queryMode: 'simple', output: '', relayCpuSeconds };
}

function cell(workload: string, target: TargetId, ...tps: number[]): CellResult {
  return { workload, target, runs: tps.map(run) };
}

test('the table reports the best run per cell and its ratio to direct', () => {
  const table = formatResultsTable(['-S simple'], ['direct', 'sidecache'], [
    cell('-S simple', 'direct', 30000, 40000),
    cell('-S simple', 'sidecache', 36000, 20000),
  ]);
  const row = table.split('\n')[2]!;
  assert.match(row, /^-S simple\s+40000\s+0\.200\/0\.100\s+36000\s+0\.90x/);
});

test('the goal is met only when every workload reaches 0.85x direct', () => {
  const cells = [
    cell('-S simple', 'direct', 1000), cell('-S simple', 'sidecache', 900),
    cell('TPC-B simple', 'direct', 1000), cell('TPC-B simple', 'sidecache', 840),
  ];
  const verdict = formatGoal(['-S simple', 'TPC-B simple'], cells);
  assert.match(verdict, /TPC-B simple\s+0\.84x\s+BELOW GOAL/);
  assert.match(verdict, /goal NOT met/);
  assert.match(formatGoal(['-S simple'], cells), /\ngoal met$/);
});

test('without sidecache results the goal is reported as not measured', () => {
  assert.match(formatGoal(['-S simple'], [cell('-S simple', 'direct', 1000)]), 'goal not measured');
});

test('relay CPU per transaction is summed over all runs of a cell', () => {
  const relayed: CellResult = { workload: '-S simple', target: 'sidecache', runs: [run(10000, 0.2), run(30000, 0.4)] };
  const row = formatRelayCpuTable(['-S simple'], ['sidecache'], [relayed]).split('\n')[2]!;
  assert.match(row, /^-S simple\s+15\.0$/);
});

test.run();
