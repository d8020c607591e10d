// CPU time a relay process used, read from /proc. On a 2-core machine the relay's CPU is taken from
// PostgreSQL and pgbench, so "µs of relay CPU per transaction" explains a tps ratio and is far less
// noisy than the ratio itself.
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';

let ticksPerSecond: number | undefined;

function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100; // the value on every Linux this runs on; getconf is only a confirmation
    }
  }
  return ticksPerSecond;
}

/** User + system CPU seconds of a process so far; undefined where /proc is missing or the process is gone. */
export async function processCpuSeconds(pid: number): Promise<number | undefined> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return parseCpuSeconds(stat, clockTicksPerSecond());
}

/** Fields 14 and 15 of /proc/PID/stat (utime, stime), counted after the `(comm)` field, which may contain spaces. */
export function parseCpuSeconds(stat: string, ticks: number): number | undefined {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) / ticks : undefined;
}
