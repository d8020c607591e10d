// The performance goals of the result cache (issue 3) and whether a bench run met them. Pure:
// measured cells in, verdicts out.
import { histogramQuantile, hitRatio, sumReadings, type CacheReading } from './cache-metrics.js';
import type { RedisCeiling } from './redis.js';
import { bestRun, cpuMicrosPerTransaction, type CellResult, type MeasuredRun, type TargetId } from './report.js';
import type { Workload } from './workloads.js';

export const GOALS = {
  hotSimpleRatio: 1.5,
  hotPreparedRatio: 1.0,
  /** Hit rate through sidecache vs Redis GET rate, same concurrency. */
  redisRatio: 0.8,
  hitP50Ms: 0.1,
  /** -S (mostly misses) and TPC-B (writes) vs direct. */
  passThroughRatio: 0.8,
  /** Issue 2: the relay alone (caching off) on -S and TPC-B vs direct. */
  relayOnlyRatio: 0.85,
  /**
   * Issue 17 item 6: sidecache's CPU per transaction over the relay alone's (caching off), same
   * run: uniform -S (mostly misses, each filled) and TPC-B (every statement inside a block).
   */
  fillCpuRatio: 1.2,
  inBlockCpuRatio: 1.1,
} as const;

/** Issue 17 item 1: with the database ~1 ms away, what a cache in front of it should give. */
export const HOP_GOALS = {
  hotRatio: 10,
  uniformRatio: 0.95,
  tpcbRatio: 0.95,
} as const;

export type Verdict = 'PASS' | 'MISS' | 'not measured';

export interface GoalResult {
  goal: string;
  measured: string;
  verdict: Verdict;
}

export interface GoalInput {
  workloads: readonly Workload[];
  cells: readonly CellResult[];
  /** Best Redis run, or why there is none. */
  redis: RedisCeiling | string;
}

function cellRuns(cells: readonly CellResult[], workload: string, target: string): MeasuredRun[] {
  return cells.find((c) => c.workload === workload && c.target === target)?.runs ?? [];
}

/** A target's tps over direct tps (best run each), or undefined when either is missing. */
function ratioToDirect(cells: readonly CellResult[], workload: string, target: TargetId = 'sidecache'): number | undefined {
  return ratioBetween(cells, workload, target, 'direct');
}

/** Best-run tps of `target` over that of `base`; undefined when either was not measured. */
function ratioBetween(cells: readonly CellResult[], workload: string, target: TargetId, base: TargetId): number | undefined {
  const baseRuns = cellRuns(cells, workload, base);
  const runs = cellRuns(cells, workload, target);
  if (baseRuns.length === 0 || runs.length === 0) return undefined;
  return bestRun({ workload, target, runs }).tps / bestRun({ workload, target: base, runs: baseRuns }).tps;
}

/** What sidecache's cache did over all measured runs of a cell; undefined when it was not read. */
export function cellCache(cells: readonly CellResult[], workload: string): CacheReading | undefined {
  const runs = cellRuns(cells, workload, 'sidecache');
  if (runs.length === 0 || runs.some((r) => r.cache === undefined)) return undefined;
  return sumReadings(runs.map((r) => r.cache!));
}

function verdict(value: number | undefined, pass: (v: number) => boolean): Verdict {
  return value === undefined ? 'not measured' : pass(value) ? 'PASS' : 'MISS';
}

const percent = (r: number | undefined): string => (r === undefined ? '-' : `${(r * 100).toFixed(1)}%`);
const micros = (ms: number | undefined): string => (ms === undefined ? '-' : `${(ms * 1000).toFixed(0)} µs`);

export function evaluateGoals(input: GoalInput): GoalResult[] {
  const results: GoalResult[] = [];
  const ratioGoal = (w: Workload, min: number): void => {
    const ratio = ratioToDirect(input.cells, w.label);
    const cache = cellCache(input.cells, w.label);
    const hits = w.kind === 'tpcb' ? '' : `, hit ratio ${percent(cache && hitRatio(cache))}`;
    results.push({
      goal: `${w.label}: sidecache >= ${min.toFixed(1)}x direct`,
      measured: ratio === undefined ? '-' : `${ratio.toFixed(2)}x${hits}`,
      verdict: verdict(ratio, (r) => r >= min),
    });
  };
  for (const w of input.workloads) {
    if (w.key === 'hot-simple') ratioGoal(w, GOALS.hotSimpleRatio);
    else if (w.key === 'hot-prepared') ratioGoal(w, GOALS.hotPreparedRatio);
    else if (w.kind === 'uniform' || w.kind === 'tpcb') ratioGoal(w, GOALS.passThroughRatio);
  }
  for (const w of input.workloads) {
    if (w.kind !== 'uniform' && w.kind !== 'tpcb') continue;
    const ratio = ratioToDirect(input.cells, w.label, 'passthrough');
    if (ratio === undefined) continue;
    results.push({
      goal: `${w.label}: relay alone (caching off) >= ${GOALS.relayOnlyRatio}x direct`,
      measured: `${ratio.toFixed(2)}x`,
      verdict: verdict(ratio, (r) => r >= GOALS.relayOnlyRatio),
    });
  }

  results.push(...uncachedPathGoals(input));

  // The hit rate and latency goals are judged on the faster hot workload through sidecache.
  const hot = input.workloads
    .filter((w) => w.kind === 'hot')
    .map((w) => ({ w, runs: cellRuns(input.cells, w.label, 'sidecache') }))
    .filter(({ runs }) => runs.length > 0)
    .map(({ w, runs }) => ({ w, best: bestRun({ workload: w.label, target: 'sidecache', runs }) }))
    .sort((a, b) => b.best.tps - a.best.tps)[0];
  const redis = typeof input.redis === 'string' ? undefined : input.redis;
  const redisRatio = hot && redis ? hot.best.tps / redis.rps : undefined;
  results.push({
    goal: `hits >= ${GOALS.redisRatio}x Redis GET rate (same clients)`,
    measured: redisRatio === undefined
      ? (typeof input.redis === 'string' ? input.redis : 'no hot workload through sidecache')
      : `${redisRatio.toFixed(2)}x (${hot!.w.label} ${hot!.best.tps.toFixed(0)} tps / Redis ${redis!.rps.toFixed(0)} rps)`,
    verdict: verdict(redisRatio, (r) => r >= GOALS.redisRatio),
  });
  const clientP50 = hot?.best.latencyP50Ms;
  const cache = hot && cellCache(input.cells, hot.w.label);
  const proxyP50 = cache && histogramQuantile(0.5, cache.hitBuckets);
  const proxyText = proxyP50
    ? `; inside sidecache ~${micros(proxyP50.seconds * 1000)} (bucket ${micros(proxyP50.lower * 1000)}-${micros(proxyP50.upper * 1000)})`
    : '';
  results.push({
    goal: `hit p50 < ${micros(GOALS.hitP50Ms)} (client-observed, pgbench)`,
    measured: hot && clientP50 !== undefined ? `${micros(clientP50)} (${hot.w.label}${redis ? `; Redis GET ${micros(redis.p50Ms)}` : ''})${proxyText}` : '-',
    verdict: verdict(clientP50, (ms) => ms < GOALS.hitP50Ms),
  });
  return results;
}

/**
 * Issue 17 item 6, per uniform and TPC-B workload measured with the relay alone (passthrough):
 * sidecache's CPU per transaction against the relay's (a filled miss, a statement inside a
 * transaction block may cost little more than relaying it), and, with the forwarder measured,
 * sidecache's ratio to direct at least the forwarder's (best runs).
 */
function uncachedPathGoals(input: GoalInput): GoalResult[] {
  const results: GoalResult[] = [];
  for (const w of input.workloads) {
    if (w.kind !== 'uniform' && w.kind !== 'tpcb') continue;
    const relay = cpuMicrosPerTransaction(input.cells, w.label, 'passthrough');
    if (relay !== undefined) {
      const max = w.kind === 'uniform' ? GOALS.fillCpuRatio : GOALS.inBlockCpuRatio;
      const sidecache = cpuMicrosPerTransaction(input.cells, w.label, 'sidecache');
      const ratio = sidecache === undefined ? undefined : sidecache / relay;
      results.push({
        goal: `${w.label}: sidecache CPU/tx <= ${max}x the relay alone's`,
        measured: ratio === undefined ? '-' : `${ratio.toFixed(2)}x (${sidecache!.toFixed(1)} / ${relay.toFixed(1)} µs)`,
        verdict: verdict(ratio, (r) => r <= max),
      });
    }
    const forwarder = ratioToDirect(input.cells, w.label, 'forwarder');
    if (forwarder === undefined) continue;
    const ratio = ratioToDirect(input.cells, w.label);
    results.push({
      goal: `${w.label}: sidecache >= the forwarder's ratio to direct`,
      measured: ratio === undefined ? '-' : `${ratio.toFixed(2)}x vs forwarder ${forwarder.toFixed(2)}x`,
      verdict: verdict(ratio, (r) => r >= forwarder),
    });
  }
  return results;
}

/**
 * Issue 17 item 1, judged on a run across the network hop (--rtt): per workload sidecache's ratio
 * to direct against its goal, and sidecache ahead of PgBouncer (best runs; "not measured" when
 * PgBouncer is not installed). PgBouncer's own ratio is printed beside each for context.
 */
export function evaluateHopGoals(input: Omit<GoalInput, 'redis'>): GoalResult[] {
  const results: GoalResult[] = [];
  for (const w of input.workloads) {
    const min = w.kind === 'hot' ? HOP_GOALS.hotRatio : w.kind === 'uniform' ? HOP_GOALS.uniformRatio : HOP_GOALS.tpcbRatio;
    const ratio = ratioToDirect(input.cells, w.label);
    const bouncer = ratioToDirect(input.cells, w.label, 'pgbouncer');
    const cache = cellCache(input.cells, w.label);
    const hits = w.kind === 'tpcb' ? '' : `, hit ratio ${percent(cache && hitRatio(cache))}`;
    results.push({
      goal: `${w.label}: sidecache >= ${min}x direct`,
      measured: ratio === undefined ? '-' : `${ratio.toFixed(2)}x${hits}`,
      verdict: verdict(ratio, (r) => r >= min),
    });
    const ahead = ratioBetween(input.cells, w.label, 'sidecache', 'pgbouncer');
    results.push({
      goal: `${w.label}: sidecache ahead of PgBouncer`,
      measured: ahead === undefined ? 'PgBouncer not measured' : `${ahead.toFixed(2)}x PgBouncer (PgBouncer ${bouncer!.toFixed(2)}x direct)`,
      verdict: verdict(ahead, (r) => r > 1),
    });
  }
  return results;
}

/** The goal lines under `title`, then how many were met; for both bench commands. */
export function formatGoals(results: readonly GoalResult[], title = 'goals (issues 2, 3 and 17 item 6):'): string {
  const width = Math.max(...results.map((r) => r.goal.length));
  const lines = results.map((r) => `  ${r.verdict.padEnd(12)} ${r.goal.padEnd(width)}  ${r.measured}`);
  const missed = results.filter((r) => r.verdict === 'MISS').length;
  const unmeasured = results.filter((r) => r.verdict === 'not measured').length;
  const summary = missed === 0 && unmeasured === 0
    ? 'all goals met'
    : `${results.length - missed - unmeasured} of ${results.length} goals met, ${missed} missed, ${unmeasured} not measured (a measurement: the bench still exits 0)`;
  return [title, ...lines, summary].join('\n');
}
