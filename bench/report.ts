// Turns the measured runs into the table the bench prints. Pure: results in, text out.
import { histogramQuantile, hitRatio, sumReadings, type CacheReading } from './cache-metrics.js';
import type { PgbenchResult } from './pgbench.js';
import { formatRtt, summarizeRtt, type HopPlan, type RttSummary } from './rtt.js';

/**
 * forwarder: a bare byte forwarder (bench/forwarder.ts), the floor for any proxy process in the path;
 * passthrough: sidecache with caching off (`--cache-max-bytes 0`), the relay alone.
 */
export type TargetId = 'direct' | 'forwarder' | 'sidecache' | 'passthrough' | 'pgbouncer' | 'pgpool';

/** One pgbench run plus the CPU the relay in between used meanwhile (undefined for direct). */
export interface MeasuredRun extends PgbenchResult {
  relayCpuSeconds: number | undefined;
  /** What sidecache's cache counted during the run; undefined for other targets. */
  cache: CacheReading | undefined;
  /** With --rtt: the delay relay's CPU during the run and round trips sampled through it meanwhile. */
  hop?: HopReading;
}

export interface HopReading {
  cpuSeconds: number | undefined;
  rttSamplesUs: number[];
}

export interface CellResult {
  workload: string;
  target: TargetId;
  runs: MeasuredRun[];
}

/** The run a cell is reported by: the fastest, since interference on a shared machine only slows runs down. */
export function bestRun(cell: CellResult): MeasuredRun {
  return cell.runs.reduce((best, run) => (run.tps > best.tps ? run : best));
}

export function formatResultsTable(workloads: string[], targets: TargetId[], cells: CellResult[]): string {
  const find = (workload: string, target: TargetId): PgbenchResult | undefined => {
    const cell = cells.find((c) => c.workload === workload && c.target === target);
    return cell && cell.runs.length > 0 ? bestRun(cell) : undefined;
  };
  const header = ['workload'];
  for (const target of targets) {
    header.push(`${target} tps`);
    if (target !== 'direct') header.push('ratio');
    header.push('avg/p50 ms');
  }
  const rows = workloads.map((workload) => {
    const direct = find(workload, 'direct');
    const row = [workload];
    for (const target of targets) {
      const run = find(workload, target);
      row.push(run ? run.tps.toFixed(0) : '-');
      if (target !== 'direct') row.push(run && direct ? `${(run.tps / direct.tps).toFixed(2)}x` : '-');
      row.push(run ? `${run.latencyAvgMs.toFixed(3)}/${run.latencyP50Ms?.toFixed(3) ?? '-'}` : '-');
    }
    return row;
  });
  return formatTable(header, rows);
}

/**
 * The relay's CPU per transaction in µs over all runs of a cell (less noisy than any one run's
 * tps on a shared machine); undefined when the cell or a run's CPU reading is missing.
 */
export function cpuMicrosPerTransaction(cells: readonly CellResult[], workload: string, relay: TargetId): number | undefined {
  const runs = cells.find((c) => c.workload === workload && c.target === relay)?.runs ?? [];
  if (runs.length === 0 || runs.some((r) => r.relayCpuSeconds === undefined)) return undefined;
  const cpu = runs.reduce((sum, r) => sum + r.relayCpuSeconds!, 0);
  const transactions = runs.reduce((sum, r) => sum + r.transactions, 0);
  return transactions > 0 ? cpu / transactions * 1e6 : undefined;
}

/** Relay CPU per transaction over all runs of a cell: what the relay takes from a machine PostgreSQL shares. */
export function formatRelayCpuTable(workloads: string[], relays: TargetId[], cells: CellResult[]): string {
  const header = ['workload', ...relays.map((r) => `${r} CPU µs/tx`)];
  const rows = workloads.map((workload) => [workload, ...relays.map((relay) => cpuMicrosPerTransaction(cells, workload, relay)?.toFixed(1) ?? '-')]);
  return formatTable(header, rows);
}

/** A cell of either bench (pgbench or sysbench runs) as the hop report reads it. */
export interface HopCell<T extends string> {
  workload: string;
  target: T;
  runs: readonly { transactions: number; hop?: HopReading | undefined }[];
}

/** What both benches know of their hop at the end: what was asked, the idle RTT, the relay's lateness line. */
export interface HopSummary {
  plan: Pick<HopPlan, 'rttUs' | 'oneWayUs' | 'namespace'>;
  idleRtt: RttSummary | undefined;
  lateness: string | undefined;
  /** How often the RTT was sampled during the runs. */
  sampleIntervalMs: number;
}

/** The hop section of either bench's report: the delay asked and measured, idle and under load, and the per-cell table. */
export function formatHopSection<T extends string>(hop: HopSummary, workloads: readonly string[], targets: readonly T[], cells: readonly HopCell<T>[]): string {
  const loaded = summarizeRtt(cells.flatMap((c) => c.runs.flatMap((r) => r.hop?.rttSamplesUs ?? [])));
  return [
    `network hop: ${hop.plan.rttUs} µs round trip asked (${hop.plan.oneWayUs} µs each way, delay relay in namespace ${hop.plan.namespace})`,
    `  measured RTT (1-byte echo through the relay): idle ${formatRtt(hop.idleRtt)}; during the measured runs ${formatRtt(loaded)}`,
    `  the relay's own lateness (send time - deadline, over the whole bench): ${hop.lateness ?? 'not reported'}`,
    `  per cell: the delay relay's CPU per transaction and the RTT sampled every ${hop.sampleIntervalMs} ms during the runs (p50/p90):`,
    formatHopTable(workloads, targets, cells),
  ].join('\n');
}

/**
 * The network hop per cell (--rtt): the delay relay's CPU per transaction (what the hop itself
 * takes from the 2 cores, so a ratio can be read against it) and the RTT sampled through it
 * during that cell's runs, p50/p90 in ms (a relay that falls behind under load shows here).
 */
export function formatHopTable<T extends string>(workloads: readonly string[], targets: readonly T[], cells: readonly HopCell<T>[]): string {
  const header = ['workload', ...targets.flatMap((t) => [`${t} hop µs/tx`, 'RTT p50/p90 ms'])];
  const rows = workloads.map((workload) => [workload, ...targets.flatMap((target) => {
    const runs = cells.find((c) => c.workload === workload && c.target === target)?.runs ?? [];
    const transactions = runs.reduce((sum, r) => sum + r.transactions, 0);
    const cpu = runs.some((r) => r.hop?.cpuSeconds === undefined) ? undefined : runs.reduce((sum, r) => sum + r.hop!.cpuSeconds!, 0);
    const rtt = summarizeRtt(runs.flatMap((r) => r.hop?.rttSamplesUs ?? []));
    return [
      cpu === undefined || transactions === 0 ? '-' : (cpu / transactions * 1e6).toFixed(1),
      rtt ? `${(rtt.p50Us / 1000).toFixed(2)}/${(rtt.p90Us / 1000).toFixed(2)}` : '-',
    ];
  })]);
  return formatTable(header, rows);
}

/**
 * Sidecache's own counts over all measured runs of each workload: how many reads were hits, and
 * the hit latency twice — inside the proxy (its histogram: statement arrival to answer written) and
 * as pgbench saw it (round trip including the kernel and pgbench itself, best run).
 */
export function formatCacheTable(workloads: string[], cells: CellResult[]): string {
  const header = ['workload', 'hits', 'misses', 'bypass', 'hit ratio', 'hit p50 in sidecache', 'p50 at pgbench'];
  const rows = workloads.map((workload) => {
    const cell = cells.find((c) => c.workload === workload && c.target === 'sidecache');
    const runs = cell?.runs ?? [];
    if (runs.length === 0 || runs.some((r) => r.cache === undefined)) return [workload, '-', '-', '-', '-', '-', '-'];
    const total = sumReadings(runs.map((r) => r.cache!));
    const ratio = hitRatio(total);
    const p50 = histogramQuantile(0.5, total.hitBuckets);
    const clientP50 = bestRun(cell!).latencyP50Ms;
    return [
      workload,
      String(total.hits),
      String(total.misses),
      String(total.bypass),
      ratio === undefined ? '-' : `${(ratio * 100).toFixed(1)}%`,
      p50 ? `~${us(p50.seconds)} (${us(p50.lower)}-${us(p50.upper)})` : '-',
      clientP50 === undefined ? '-' : `${(clientP50 * 1000).toFixed(0)} µs`,
    ];
  });
  return formatTable(header, rows);
}

function us(seconds: number): string {
  return `${(seconds * 1e6).toFixed(0)} µs`;
}

/** Left-aligned first column, right-aligned numbers, columns two spaces apart. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
