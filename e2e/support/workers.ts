// Which worker of a `--workers N` proxy serves a connection, learned from /stats (`workers`: each
// worker's counters): a statement that is always a bypass (now()) is counted by the worker that
// served it.
import * as assert from 'uvu/assert';
import type { WorkerSummary } from '../../workers/stats-merge.js';
import { cacheStats } from './metrics.js';

/** Connections opened at most to find enough on each worker (the primary hands them out in turn). */
const MAX_CONNECTIONS = 24;

export async function workers(adminPort: number): Promise<WorkerSummary[]> {
  return (await cacheStats(adminPort)).workers as WorkerSummary[];
}

/** The slot of the worker serving a connection: the one whose bypass count `bypass` (a now()) moves. */
export async function slotOf(adminPort: number, bypass: () => Promise<unknown>): Promise<number> {
  const before = await workers(adminPort);
  await bypass();
  const after = await workers(adminPort);
  const moved = after.filter((w) => w.bypasses > (before.find((b) => b.slot === w.slot)?.bypasses ?? 0));
  assert.is(moved.length, 1, `one worker served the statement: ${JSON.stringify({ before, after })}`);
  return moved[0]!.slot;
}

/** Opens connections until each of the two workers serves at least `each` of them; by slot. */
export async function connectionsOnEachWorker<C>(adminPort: number, each: number, connect: () => Promise<C>, bypass: (c: C) => Promise<unknown>): Promise<Map<number, C[]>> {
  const bySlot = new Map<number, C[]>();
  for (let i = 0; i < MAX_CONNECTIONS && !(bySlot.size === 2 && [...bySlot.values()].every((l) => l.length >= each)); i++) {
    const c = await connect();
    const slot = await slotOf(adminPort, () => bypass(c));
    bySlot.set(slot, [...(bySlot.get(slot) ?? []), c]);
  }
  assert.is(bySlot.size, 2, 'connections reached both workers');
  return bySlot;
}
