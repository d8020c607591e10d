// The new-literals bench's table and goal (issue 12 item 5). Pure: measured runs in, text and a
// verdict out.
import { formatGoals, type GoalResult } from './goals.js';
import { formatTable } from './report.js';

/** relay: sidecache with caching off (`--cache-max-bytes 0`), the relay alone. */
export type NewLiteralsTarget = 'direct' | 'relay' | 'sidecache';
export const NEW_LITERALS_TARGETS: readonly NewLiteralsTarget[] = ['direct', 'relay', 'sidecache'];

/** A miss with a never-seen literal costs at most this many times relaying it. */
export const NEW_LITERALS_GOAL = 1.2;

export interface NewLiteralsRun {
  workload: string;
  target: NewLiteralsTarget;
  statements: number;
  seconds: number;
  /** SELECTs the server ran for them (its Com_select on the bench's own sessions): probes show as extra. */
  serverSelects: number;
  /** CPU seconds of the proxy process during the batch; undefined for direct (or without /proc). */
  proxyCpuSeconds: number | undefined;
  /** sidecache's misses during the batch (each statement should be one); undefined for the other targets. */
  misses: number | undefined;
}

/** The fastest of a cell's runs: interference on a shared machine only slows runs down. */
function best(runs: readonly NewLiteralsRun[], workload: string, target: NewLiteralsTarget): NewLiteralsRun | undefined {
  return runs.filter((r) => r.workload === workload && r.target === target).reduce<NewLiteralsRun | undefined>(
    (b, r) => (b === undefined || r.seconds < b.seconds ? r : b), undefined);
}

export function formatNewLiterals(workloads: readonly string[], runs: readonly NewLiteralsRun[]): string {
  const header = ['workload', 'statements'];
  for (const target of NEW_LITERALS_TARGETS) header.push(`${target} s`, 'selects/stmt', ...(target === 'direct' ? [] : ['CPU µs/stmt']));
  header.push('sidecache misses', 'sidecache / relay');
  const rows = workloads.map((workload) => {
    const row = [workload, String(best(runs, workload, 'direct')?.statements ?? '-')];
    for (const target of NEW_LITERALS_TARGETS) {
      const run = best(runs, workload, target);
      row.push(run ? run.seconds.toFixed(3) : '-', run ? (run.serverSelects / run.statements).toFixed(2) : '-');
      if (target !== 'direct') row.push(run?.proxyCpuSeconds === undefined ? '-' : (run.proxyCpuSeconds / run.statements * 1e6).toFixed(0));
    }
    const misses = best(runs, workload, 'sidecache')?.misses;
    const ratio = sidecacheOverRelay(runs, workload);
    row.push(misses === undefined ? '-' : String(misses), ratio === undefined ? '-' : `${ratio.toFixed(2)}x`);
    return row;
  });
  return formatTable(header, rows);
}

function sidecacheOverRelay(runs: readonly NewLiteralsRun[], workload: string): number | undefined {
  const relay = best(runs, workload, 'relay');
  const sidecache = best(runs, workload, 'sidecache');
  return relay === undefined || sidecache === undefined ? undefined : sidecache.seconds / relay.seconds;
}

export function evaluateNewLiterals(workloads: readonly string[], runs: readonly NewLiteralsRun[]): GoalResult[] {
  return workloads.map((workload) => {
    const ratio = sidecacheOverRelay(runs, workload);
    return {
      goal: `${workload}: sidecache <= ${NEW_LITERALS_GOAL}x the relay alone`,
      measured: ratio === undefined ? '-' : `${ratio.toFixed(2)}x`,
      verdict: ratio === undefined ? 'not measured' : ratio <= NEW_LITERALS_GOAL ? 'PASS' : 'MISS',
    };
  });
}

export function formatNewLiteralsGoals(workloads: readonly string[], runs: readonly NewLiteralsRun[]): string {
  return formatGoals(evaluateNewLiterals(workloads, runs), 'goal (issue 12 item 5): a miss with a never-seen literal costs at most 1.2x relaying it');
}
