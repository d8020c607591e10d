// CPU time of a process and all its descendants, for relays that fork a process per client
// (pgpool-II): the main process alone does almost none of the work.
import { readdir, readFile } from 'node:fs/promises';
import { processCpuSeconds } from './process-cpu.js';

/** Parent pid (field 4 of /proc/PID/stat), counted after the `(comm)` field, which may contain spaces. */
export function parseParentPid(stat: string): number | undefined {
  const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  return Number.isInteger(ppid) ? ppid : undefined;
}

/**
 * User + system CPU seconds of `rootPid` and every live descendant; undefined when the root is gone.
 * Descendants that already exited are not counted, so relays measured this way should keep their
 * workers alive for the whole run.
 */
export async function processTreeCpuSeconds(rootPid: number): Promise<number | undefined> {
  const stats = new Map<number, string>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      stats.set(Number(name), await readFile(`/proc/${name}/stat`, 'utf8'));
    } catch {
      // exited between readdir and readFile
    }
  }
  if (!stats.has(rootPid)) return undefined;
  const children = new Map<number, number[]>();
  for (const [pid, stat] of stats) {
    const parent = parseParentPid(stat);
    if (parent !== undefined) children.set(parent, [...(children.get(parent) ?? []), pid]);
  }
  let total = 0;
  const pending = [rootPid];
  while (pending.length > 0) {
    const pid = pending.pop()!;
    total += (await processCpuSeconds(pid)) ?? 0;
    pending.push(...(children.get(pid) ?? []));
  }
  return total;
}
