// The second tier's figures (`make bench-l2`, bench/fleet-l2.ts) turned into the tables it prints.
// Pure: measured runs in, text out.
import { formatTable } from './report.js';

/** The paths a read is measured through; ratios are to `direct`. */
export type TierTarget = 'direct' | 'l1-hit' | 'l2-hit' | 'redis-get';

export const TIER_TARGETS: readonly TierTarget[] = ['direct', 'l1-hit', 'l2-hit', 'redis-get'];

/** One measured run of one target at one concurrency. */
export interface TierRun {
  protocol: string;
  target: TierTarget;
  clients: number;
  reads: number;
  seconds: number;
  /** Client-observed round trip of every read, ms. */
  latenciesMs: number[];
  /** The sidecache in the path: its CPU (from /proc) per read, µs; undefined for direct and Redis. */
  proxyCpuUs?: number | undefined;
}

export interface LatencySummary {
  count: number;
  avgMs: number;
  p50Ms: number;
  p99Ms: number;
}

/** Nearest-rank quantile of ascending `sorted`; undefined when empty. */
export function quantile(sorted: readonly number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function summarizeLatencies(latenciesMs: readonly number[]): LatencySummary | undefined {
  if (latenciesMs.length === 0) return undefined;
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  return {
    count: sorted.length,
    avgMs: sorted.reduce((sum, x) => sum + x, 0) / sorted.length,
    p50Ms: quantile(sorted, 0.5)!,
    p99Ms: quantile(sorted, 0.99)!,
  };
}

/** The run a (protocol, target, clients) cell is reported by: the fastest, as in the other benches. */
export function bestTierRun(runs: readonly TierRun[], protocol: string, target: TierTarget, clients: number): TierRun | undefined {
  let best: TierRun | undefined;
  for (const run of runs) {
    if (run.protocol !== protocol || run.target !== target || run.clients !== clients) continue;
    if (best === undefined || rate(run) > rate(best)) best = run;
  }
  return best;
}

function rate(run: TierRun): number {
  return run.seconds > 0 ? run.reads / run.seconds : 0;
}

/**
 * One row per protocol, concurrency and target: reads/s and its ratio to direct, p50 and p99 with
 * the p50's ratio to direct's (below 1: faster than the database), and the sidecache's CPU per read
 * in the best run (on a shared 2-core machine that explains a ratio better than the timings do).
 */
export function formatTierTable(runs: readonly TierRun[]): string {
  const header = ['protocol', 'clients', 'target', 'reads/s', 'vs direct', 'p50 ms', 'p50 vs direct', 'p99 ms', 'avg ms', 'sidecache CPU µs/read'];
  const rows: string[][] = [];
  const protocols = [...new Set(runs.map((r) => r.protocol))];
  for (const protocol of protocols) {
    const clientCounts = [...new Set(runs.filter((r) => r.protocol === protocol).map((r) => r.clients))].sort((a, b) => a - b);
    for (const clients of clientCounts) {
      const direct = bestTierRun(runs, protocol, 'direct', clients);
      const directLatency = direct && summarizeLatencies(direct.latenciesMs);
      for (const target of TIER_TARGETS) {
        const run = bestTierRun(runs, protocol, target, clients);
        if (run === undefined) continue;
        const latency = summarizeLatencies(run.latenciesMs);
        const vsDirect = target !== 'direct' && direct !== undefined && rate(direct) > 0 ? `${(rate(run) / rate(direct)).toFixed(2)}x` : '';
        const p50VsDirect = target !== 'direct' && latency && directLatency ? `${(latency.p50Ms / directLatency.p50Ms).toFixed(2)}x` : '';
        rows.push([
          protocol, String(clients), target, rate(run).toFixed(0), vsDirect,
          latency ? latency.p50Ms.toFixed(3) : '-', p50VsDirect,
          latency ? latency.p99Ms.toFixed(3) : '-', latency ? latency.avgMs.toFixed(3) : '-',
          run.proxyCpuUs === undefined ? '' : run.proxyCpuUs.toFixed(1),
        ]);
      }
    }
  }
  return formatTable(header, rows);
}

/** What a new proxy's cache did during one time bucket of its first minute. */
export interface WarmBucket {
  /** Seconds since the new proxy's first measured read, at the bucket's end. */
  endSeconds: number;
  requests: number;
  hits: number;
  misses: number;
  /** Of the hits, those answered from the second tier. */
  l2Hits: number;
}

/** One new proxy's first minute. */
export interface WarmRun {
  label: string;
  buckets: WarmBucket[];
  /** Reads the database executed for it (its misses and bypasses). */
  databaseReads: number;
  /** Round trips its clients saw over the whole run. */
  latency: LatencySummary | undefined;
}

function percent(part: number, whole: number): string {
  return whole > 0 ? `${(part / whole * 100).toFixed(1)}%` : '-';
}

export function totalOf(buckets: readonly WarmBucket[]): Omit<WarmBucket, 'endSeconds'> {
  return buckets.reduce(
    (sum, b) => ({ requests: sum.requests + b.requests, hits: sum.hits + b.hits, misses: sum.misses + b.misses, l2Hits: sum.l2Hits + b.l2Hits }),
    { requests: 0, hits: 0, misses: 0, l2Hits: 0 },
  );
}

/**
 * The hit ratio of each new proxy per bucket and overall (hits / (hits + misses)), the share of
 * reads answered from the second tier, and the database reads per client request: direct, every
 * request is one (1.00), so this is the ratio to direct.
 */
export function formatWarmTable(runs: readonly WarmRun[]): string {
  const header = ['new proxy', 'seconds', 'requests', 'hit ratio', 'from L2', 'db reads', 'db reads / request', 'p50/p99 ms'];
  const rows: string[][] = [];
  for (const run of runs) {
    let start = 0;
    for (const b of run.buckets) {
      rows.push([run.label, `${start.toFixed(0)}-${b.endSeconds.toFixed(0)}`, String(b.requests), percent(b.hits, b.hits + b.misses), percent(b.l2Hits, b.hits + b.misses), String(b.misses), '', '']);
      start = b.endSeconds;
    }
    const total = totalOf(run.buckets);
    rows.push([run.label, 'overall', String(total.requests), percent(total.hits, total.hits + total.misses), percent(total.l2Hits, total.hits + total.misses),
      String(run.databaseReads), total.requests > 0 ? (run.databaseReads / total.requests).toFixed(2) : '-',
      run.latency ? `${run.latency.p50Ms.toFixed(3)}/${run.latency.p99Ms.toFixed(3)}` : '-']);
  }
  return formatTable(header, rows);
}
