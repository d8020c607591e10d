// Turns the measured runs into the table the bench prints. Pure: results in, text out.
import type { PgbenchResult } from './pgbench.js';

export type TargetId = 'direct' | 'sidecache' | 'pgbouncer';

/** One pgbench run plus the CPU the relay in between used meanwhile (undefined for direct). */
export interface MeasuredRun extends PgbenchResult {
  relayCpuSeconds: number | undefined;
}

export interface CellResult {
  workload: string;
  target: TargetId;
  runs: MeasuredRun[];
}

/** The pass-through goal from the issue: sidecache at >= 0.85x direct on every workload. */
export const GOAL_RATIO = 0.85;
export const GOAL_TEXT = `pass-through TPC-B and -S >= ${GOAL_RATIO}x direct at 8 clients`;

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

/** Relay CPU per transaction over all runs of a cell: what the relay takes from a machine PostgreSQL shares. */
export function formatRelayCpuTable(workloads: string[], relays: TargetId[], cells: CellResult[]): string {
  const header = ['workload', ...relays.map((r) => `${r} CPU µs/tx`)];
  const rows = workloads.map((workload) => [workload, ...relays.map((relay) => {
    const runs = cells.find((c) => c.workload === workload && c.target === relay)?.runs ?? [];
    if (runs.length === 0 || runs.some((r) => r.relayCpuSeconds === undefined)) return '-';
    const cpu = runs.reduce((sum, r) => sum + r.relayCpuSeconds!, 0);
    const transactions = runs.reduce((sum, r) => sum + r.transactions, 0);
    return transactions > 0 ? (cpu / transactions * 1e6).toFixed(1) : '-';
  })]);
  return formatTable(header, rows);
}

/** One line per workload saying whether sidecache met the goal, plus an overall verdict. */
export function formatGoal(workloads: string[], cells: CellResult[]): string {
  const lines = [`goal: ${GOAL_TEXT}`];
  let allMet = true;
  let compared = 0;
  for (const workload of workloads) {
    const direct = cells.find((c) => c.workload === workload && c.target === 'direct');
    const proxied = cells.find((c) => c.workload === workload && c.target === 'sidecache');
    if (!direct?.runs.length || !proxied?.runs.length) continue;
    const ratio = bestRun(proxied).tps / bestRun(direct).tps;
    const met = ratio >= GOAL_RATIO;
    compared++;
    allMet &&= met;
    lines.push(`  ${workload.padEnd(20)} ${ratio.toFixed(2)}x  ${met ? 'met' : 'BELOW GOAL'}`);
  }
  if (compared === 0) lines.push('goal not measured: sidecache was not among the targets');
  else lines.push(allMet ? 'goal met' : 'goal NOT met (this is a measurement; the bench still exits 0)');
  return lines.join('\n');
}

/** Left-aligned first column, right-aligned numbers, columns two spaces apart. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
