import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { evaluateMysqlCpuGoals, evaluateMysqlGoals, evaluateMysqlHopGoals, formatMysqlCache, formatMysqlFloor, type MysqlCell, type MysqlMeasuredRun, type MysqlTargetId } from './mysql-report.js';
import { MYSQL_WORKLOADS } from './mysql-workloads.js';

const hot = MYSQL_WORKLOADS.find((w) => w.key === 'hot-text')!;
const rw = MYSQL_WORKLOADS.find((w) => w.key === 'read-write')!;

function run(tps: number, extra: Partial<MysqlMeasuredRun> = {}): MysqlMeasuredRun {
  return {
    transactions: tps * 4, tps, queries: tps * 4, qps: tps, ignoredErrors: 0, reconnects: 0,
    latencyAvgMs: 0.1, latencyP95Ms: 0.2, relayCpuSeconds: undefined, cache: undefined, queryCacheHits: undefined, ...extra,
  };
}

const cell = (workload: string, target: MysqlTargetId, ...runs: MysqlMeasuredRun[]): MysqlCell => ({ workload, target, runs });

test('hot goals: the best runs give 1.5x direct and ahead of the query cache', () => {
  const cells = [
    cell(hot.label, 'direct', run(40_000), run(50_000)),
    cell(hot.label, 'sidecache', run(76_000), run(60_000)),
    cell(hot.label, 'qcache', run(70_000)),
  ];
  const results = evaluateMysqlGoals([hot], cells);
  assert.equal(results.map((r) => r.verdict), ['PASS', 'PASS']);
  assert.match(results[0]!.measured, /^1\.52x/);
});

test('hot goals miss when sidecache trails the query cache or 1.5x direct', () => {
  const cells = [cell(hot.label, 'direct', run(60_000)), cell(hot.label, 'sidecache', run(70_000)), cell(hot.label, 'qcache', run(71_000))];
  assert.equal(evaluateMysqlGoals([hot], cells).map((r) => r.verdict), ['MISS', 'MISS']);
});

test('read_write has one goal, 0.85x direct; a missing target is "not measured"', () => {
  const met = evaluateMysqlGoals([rw], [cell(rw.label, 'direct', run(1000)), cell(rw.label, 'sidecache', run(850))]);
  assert.equal(met.map((r) => r.verdict), ['PASS']);
  const unmeasured = evaluateMysqlGoals([rw], [cell(rw.label, 'direct', run(1000))]);
  assert.equal(unmeasured.map((r) => r.verdict), ['not measured']);
});

test('read_write CPU goal: sidecache\'s CPU per transaction over all runs within 1.1x the forwarder\'s', () => {
  const cells = (sidecacheCpu: number) => [
    cell(rw.label, 'forwarder', run(500, { transactions: 1000, relayCpuSeconds: 0.5 }), run(500, { transactions: 1000, relayCpuSeconds: 0.5 })),
    cell(rw.label, 'sidecache', run(400, { transactions: 1000, relayCpuSeconds: sidecacheCpu }), run(900, { transactions: 1000, relayCpuSeconds: 0.5 })),
  ];
  const met = evaluateMysqlCpuGoals([hot, rw], cells(0.6));
  assert.equal(met.map((r) => r.verdict), ['PASS'], 'one goal, for read_write only');
  assert.match(met[0]!.measured, /^1\.10x \(550 \/ 500 µs per transaction\)$/);
  assert.equal(evaluateMysqlCpuGoals([rw], cells(0.7)).map((r) => r.verdict), ['MISS']);
  assert.equal(evaluateMysqlCpuGoals([rw], [cell(rw.label, 'sidecache', run(400, { transactions: 1000, relayCpuSeconds: 0.6 }))]).map((r) => r.verdict), ['not measured']);
});

test('cache table: hit ratio and sidecache CPU per transaction over all runs, Qcache_hits beside them', () => {
  const cells = [
    cell(hot.label, 'sidecache',
      run(1000, { transactions: 1000, relayCpuSeconds: 0.01, cache: { hits: 990, misses: 10, bypass: 0 } }),
      run(1000, { transactions: 1000, relayCpuSeconds: 0.01, cache: { hits: 1000, misses: 0, bypass: 0 } })),
    cell(hot.label, 'qcache', run(1000, { queries: 500, queryCacheHits: 450 })),
  ];
  const row = formatMysqlCache([hot.label], cells).split('\n')[2]!;
  assert.match(row, /1990\s+10\s+0\s+99\.5%\s+10\.0\s+-\s+450 \/ 500$/);
});

test('the forwarder floor: its ratio to direct and sidecache\'s share of it; nothing without a forwarder run', () => {
  const cells = [
    cell(rw.label, 'direct', run(1000)),
    cell(rw.label, 'forwarder', run(600, { transactions: 1000, relayCpuSeconds: 0.5 })),
    cell(rw.label, 'sidecache', run(540)),
  ];
  assert.match(formatMysqlFloor([rw.label], cells)!, /oltp_read_write: a bare byte forwarder reaches 0\.60x direct; sidecache 0\.54x direct = 0\.90x the forwarder/);
  assert.match(formatMysqlCache([rw.label], cells).split('\n')[2]!, /500\.0\s+-$/);
  assert.is(formatMysqlFloor([rw.label], [cell(rw.label, 'direct', run(1000))]), undefined);
});

test('hop goals (issue 17): hot >= 10x direct and ahead of the query cache; read_write >= 0.95x direct and ahead of the forwarder', () => {
  const cells = [
    cell(hot.label, 'direct', run(5000)),
    cell(hot.label, 'sidecache', run(52_000, { cache: { hits: 999, misses: 1, bypass: 0 } })),
    cell(hot.label, 'qcache', run(6000)),
    cell(rw.label, 'direct', run(300)),
    cell(rw.label, 'forwarder', run(250)),
    cell(rw.label, 'sidecache', run(270)),
  ];
  const results = evaluateMysqlHopGoals([hot, rw], cells);
  assert.equal(results.map((r) => r.verdict), ['PASS', 'PASS', 'MISS', 'PASS']);
  assert.is(results[0]!.goal, `${hot.label}: sidecache >= 10x direct`);
  assert.match(results[0]!.measured, /^10\.40x \(52000 \/ 5000 tps\), hit ratio 99\.9%$/);
  assert.match(results[1]!.goal, /ahead of MariaDB's query cache$/);
  assert.match(results[1]!.measured, /^8\.67x qcache \(qcache 1\.20x direct\)$/);
  assert.match(results[2]!.goal, /oltp_read_write: sidecache >= 0\.95x direct$/);
  assert.match(results[3]!.goal, /ahead of the forwarder \(ProxySQL is not packaged in Debian\)$/);
  assert.match(results[3]!.measured, /^1\.08x forwarder \(forwarder 0\.83x direct\)$/);
});

test('hop goals: a rival not run is "not measured", not a pass', () => {
  const results = evaluateMysqlHopGoals([rw], [cell(rw.label, 'direct', run(300)), cell(rw.label, 'sidecache', run(200))]);
  assert.equal(results.map((r) => r.verdict), ['MISS', 'not measured']);
  assert.is(results[1]!.measured, 'forwarder not measured');
});

test.run();
