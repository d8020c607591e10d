// How many CPUs this process may keep busy: for `--workers auto` (config/settings.ts). Node's
// availableParallelism() follows the CPU affinity mask but not a container's CPU quota, so a pod
// limited to one CPU on a 32-core node would start 32 workers, each with its own cache budget.
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** cgroup v2's limit of the process's own group (the container's, seen from inside it). */
const CPU_MAX = '/sys/fs/cgroup/cpu.max';

/** The CPUs the affinity mask and the cgroup's quota allow, at least 1. */
export function usableCpus(readCpuMax: () => string | null = readCgroupCpuMax): number {
  const quota = cpuQuota(readCpuMax());
  const cpus = os.availableParallelism();
  return quota === null ? cpus : Math.max(1, Math.min(cpus, Math.ceil(quota)));
}

/** `cpu.max` is "QUOTA PERIOD" in µs, or "max PERIOD" for no limit: the CPUs the quota is worth, or null. */
export function cpuQuota(cpuMax: string | null): number | null {
  const m = /^(\d+)\s+(\d+)\s*$/.exec(cpuMax ?? '');
  if (m === null || Number(m[2]) === 0) return null;
  return Number(m[1]) / Number(m[2]);
}

function readCgroupCpuMax(): string | null {
  try {
    return readFileSync(CPU_MAX, 'utf8');
  } catch {
    return null;
  }
}
