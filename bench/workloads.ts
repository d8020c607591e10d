// The pgbench workloads the bench can run, and the one script it writes for them.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';

export type WorkloadKind =
  /** Point reads over a small key set: after a warm-up, nearly every read through a cache is a hit. */
  | 'hot'
  /** pgbench -S, uniform over every account: a cache mostly misses. */
  | 'uniform'
  /** pgbench's TPC-B: writes; checked for lost or doubled transactions after every run. */
  | 'tpcb';

export interface Workload {
  key: string;
  label: string;
  kind: WorkloadKind;
  /** pgbench arguments besides connection, clients, duration and logging. */
  args(files: WorkloadFiles): string[];
}

/** Where the written scripts are. */
export interface WorkloadFiles {
  hotScript: string;
}

/** Rows the hot workload reads: aid 1..HOT_KEYS, present at every scale (scale 1 has 100k accounts). */
export const HOT_KEYS = 1000;
export const HOT_SCRIPT = `\\set aid random(1, ${HOT_KEYS})\nSELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n`;

export const WORKLOADS: readonly Workload[] = [
  { key: 'hot-simple', label: 'hot simple', kind: 'hot', args: (f) => ['-f', f.hotScript, '-M', 'simple'] },
  { key: 'hot-prepared', label: 'hot prepared', kind: 'hot', args: (f) => ['-f', f.hotScript, '-M', 'prepared'] },
  { key: 'select-simple', label: '-S simple', kind: 'uniform', args: () => ['-S', '-M', 'simple'] },
  { key: 'select-extended', label: '-S extended', kind: 'uniform', args: () => ['-S', '-M', 'extended'] },
  { key: 'select-prepared', label: '-S prepared', kind: 'uniform', args: () => ['-S', '-M', 'prepared'] },
  { key: 'tpcb-simple', label: 'TPC-B simple', kind: 'tpcb', args: () => ['-M', 'simple'] },
  { key: 'tpcb-prepared', label: 'TPC-B prepared', kind: 'tpcb', args: () => ['-M', 'prepared'] },
];

/** TPC-B last: its writes invalidate what the reads before it cached. */
export const DEFAULT_WORKLOADS = ['hot-simple', 'hot-prepared', 'select-simple', 'tpcb-simple'];

export async function writeWorkloadFiles(dir: string): Promise<WorkloadFiles> {
  const hotScript = path.join(dir, 'hot.sql');
  await writeFile(hotScript, HOT_SCRIPT);
  return { hotScript };
}
