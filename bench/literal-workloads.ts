// The statements `make bench-literals` sends (every one with literals no earlier statement had) and
// the table it prints. Pure: statement texts and timings in, text out.

export interface LiteralWorkload {
  key: string;
  /** What a statement looks like, for the printed table. */
  example: string;
  /** The i-th statement of run number `run` (one per round and target: nothing repeats). */
  statement(run: number, i: number): string;
}

/** The bench's table: `rows` ids with a text column. */
export const LITERAL_TABLE_ROWS = 1000;

export const LITERAL_WORKLOADS: readonly LiteralWorkload[] = [
  {
    key: 'strings',
    example: "SELECT id FROM items WHERE v = 'v<run>-<i>'",
    statement: (run, i) => `SELECT id FROM items WHERE v = 'v${run}-${i}'`,
  },
  {
    key: 'numbers',
    example: 'SELECT id FROM items WHERE id = <run*N+i>',
    statement: (run, i) => `SELECT id FROM items WHERE id = ${run * 100_000 + i}`,
  },
  {
    // A never-seen statement shape over a known table each time (an alias no statement had):
    // parsed once, but judged from what is known of the table.
    key: 'shapes',
    example: 'SELECT id AS c<run>_<i> FROM items WHERE id = 1',
    statement: (run, i) => `SELECT id AS c${run}_${i} FROM items WHERE id = 1`,
  },
];

export type LiteralTarget = 'direct' | 'passthrough' | 'sidecache';

/** Statements timed together: a run is a series of batches. */
export const BATCH_STATEMENTS = 25;

export interface LiteralRun {
  workload: string;
  target: LiteralTarget;
  /** Seconds per statement of each batch of the run. */
  batches: number[];
  /** CPU seconds the relay (sidecache, passthrough) used during the run, per statement; undefined for direct. */
  relayCpu: number | undefined;
}

/** The relay's CPU per statement over all runs of a cell: far steadier than durations on a shared machine. */
export function relayCpuSeconds(runs: readonly LiteralRun[], workload: string, target: LiteralTarget): number | undefined {
  const cpu = runs.filter((r) => r.workload === workload && r.target === target).map((r) => r.relayCpu);
  if (cpu.length === 0 || cpu.some((c) => c === undefined)) return undefined;
  return cpu.reduce((sum, c) => sum! + c!, 0)! / cpu.length;
}

/**
 * Seconds per statement of a cell: the median over the batches of all its runs. Passing load on a
 * shared machine slows some batches a lot; the median leaves them out where a mean would not.
 */
export function medianSeconds(runs: readonly LiteralRun[], workload: string, target: LiteralTarget): number | undefined {
  const batches = runs.filter((r) => r.workload === workload && r.target === target).flatMap((r) => r.batches).sort((a, b) => a - b);
  if (batches.length === 0) return undefined;
  const mid = batches.length >> 1;
  return batches.length % 2 === 1 ? batches[mid]! : (batches[mid - 1]! + batches[mid]!) / 2;
}

/** The goal of issue 12 item 5: a miss with a never-seen literal costs at most this much relaying it. */
export const NEW_LITERAL_GOAL = 1.2;

export function formatLiteralTable(runs: readonly LiteralRun[], targets: readonly LiteralTarget[]): string {
  const workloads = [...new Set(runs.map((r) => r.workload))];
  const relays = targets.filter((t) => t !== 'direct');
  const header = ['workload', ...targets.map((t) => `${t} µs/stmt`), 'sidecache/passthrough', 'sidecache/direct', 'passthrough/direct',
    ...relays.map((t) => `${t} CPU µs/stmt`)];
  const ratio = (a: number | undefined, b: number | undefined): string => (a === undefined || b === undefined ? '-' : `${(a / b).toFixed(2)}x`);
  const rows = workloads.map((w) => {
    const per = new Map(targets.map((t) => [t, medianSeconds(runs, w, t)] as const));
    return [
      w,
      ...targets.map((t) => (per.get(t) === undefined ? '-' : (per.get(t)! * 1e6).toFixed(0))),
      ratio(per.get('sidecache'), per.get('passthrough')),
      ratio(per.get('sidecache'), per.get('direct')),
      ratio(per.get('passthrough'), per.get('direct')),
      ...relays.map((t) => {
        const cpu = relayCpuSeconds(runs, w, t);
        return cpu === undefined ? '-' : (cpu * 1e6).toFixed(0);
      }),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** PASS when a never-seen string literal through sidecache costs at most NEW_LITERAL_GOAL x the relay alone. */
export function literalGoal(runs: readonly LiteralRun[]): string {
  const sidecache = medianSeconds(runs, 'strings', 'sidecache');
  const relay = medianSeconds(runs, 'strings', 'passthrough');
  if (sidecache === undefined || relay === undefined) return `goal: new string literal <= ${NEW_LITERAL_GOAL}x the relay alone: not measured`;
  const r = sidecache / relay;
  return `goal: new string literal <= ${NEW_LITERAL_GOAL}x the relay alone: ${r.toFixed(2)}x ${r <= NEW_LITERAL_GOAL ? 'PASS' : 'MISS'}`;
}
