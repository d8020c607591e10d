// The checker's oracle: which versions were handed out, which were acknowledged as committed, which
// can never commit, and whether a value read back is allowed. Pure bookkeeping, no I/O.
//
// Versions come from one counter, so each is unique and names exactly one write. A row only moves
// up (`SET version = V WHERE version < V`), so once the commit of V on key K is acknowledged, the
// row of K holds V or more for good. A read sent after that acknowledgement returning less is stale.

export type ViolationKind =
  /** Older than a write acknowledged before the read was sent. */
  | 'stale'
  /** A version whose write was rolled back: it never committed. */
  | 'rolled-back'
  /** A version the checker never handed out. */
  | 'unknown'
  /** A row missing from, or unexpected in, a result. */
  | 'rows'
  /** After the run: a value differing from what the database holds. */
  | 'final';

export interface Violation {
  kind: ViolationKind;
  key: number;
  /** null when the row was missing. */
  returned: number | null;
  /** The floor the read had to reach (for 'final', the database's value). */
  required: number;
  /** How the read was made, for the report. */
  how: string;
}

export class VersionLedger {
  private issued = 0;
  private readonly acked: number[];
  /** Versions of writes that roll back: handed out, never to be seen. */
  private readonly doomed = new Set<number>();
  /**
   * With an allowed lag: per key, [when, highest version acknowledged by then], oldest first, so
   * a read may be held to what was acknowledged `allowedLagMs` before it was sent.
   */
  private readonly history: Array<Array<[number, number]>>;

  /** `allowedLagMs`: how long after its acknowledgement a write may still be unseen (writes behind the proxy's back, seen through a change stream). */
  constructor(readonly keys: number, private readonly allowedLagMs = 0) {
    this.acked = new Array<number>(keys).fill(0);
    this.history = Array.from({ length: keys }, () => []);
  }

  /** The next version, taken before its write is sent. */
  issue(): number {
    return ++this.issued;
  }

  /** `version` belongs to a write that will not commit; registered before it is sent. */
  doom(version: number): void {
    this.doomed.add(version);
  }

  /** The server acknowledged the commit of `version` on `key` at `at` (performance.now()). */
  acknowledge(key: number, version: number, at = performance.now()): void {
    if (version <= this.acked[key]!) return;
    this.acked[key] = version;
    if (this.allowedLagMs === 0) return;
    const h = this.history[key]!;
    h.push([at, version]);
    // Keep one entry older than any floor still asked for, as the base.
    let drop = 0;
    while (drop + 1 < h.length && h[drop + 1]![0] <= at - this.allowedLagMs - 1000) drop++;
    if (drop > 0) h.splice(0, drop);
  }

  /**
   * The floors of a read about to be sent at `at`: the highest version of every key acknowledged
   * at least the allowed lag before (just acknowledged, without a lag).
   */
  floors(at = performance.now()): number[] {
    if (this.allowedLagMs === 0) return this.acked.slice();
    const until = at - this.allowedLagMs;
    return this.history.map((h) => {
      let floor = 0;
      for (const [when, version] of h) {
        if (when > until) break;
        floor = version;
      }
      return floor;
    });
  }

  /** The highest acknowledged version of `key`. */
  ackedOf(key: number): number {
    return this.acked[key]!;
  }

  /** Judges one value read back, given the floors taken before the read was sent. */
  judge(key: number, returned: number, floors: readonly number[], how: string): Violation | null {
    const required = floors[key]!;
    if (returned > this.issued || (returned !== 0 && !Number.isInteger(returned))) return { kind: 'unknown', key, returned, required, how };
    if (this.doomed.has(returned)) return { kind: 'rolled-back', key, returned, required, how };
    if (returned < required) return { kind: 'stale', key, returned, required, how };
    return null;
  }

  /**
   * Judges a whole result: every value, and that it holds exactly the rows asked for (`key`, or
   * every key in order when null).
   */
  judgeRows(rows: ReadonlyArray<{ key: number; version: number }>, key: number | null, floors: readonly number[], how: string): Violation[] {
    const out: Violation[] = [];
    const expected = key === null ? Array.from({ length: this.keys }, (_, k) => k) : [key];
    const sameKeys = rows.length === expected.length && rows.every((r, i) => r.key === expected[i]);
    if (!sameKeys) {
      out.push({ kind: 'rows', key: key ?? -1, returned: null, required: expected.length, how: `${how}: got keys [${rows.map((r) => r.key).join(',')}]` });
      return out;
    }
    for (const r of rows) {
      const v = this.judge(r.key, r.version, floors, how);
      if (v !== null) out.push(v);
    }
    return out;
  }
}
