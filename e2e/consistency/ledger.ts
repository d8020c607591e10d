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

/** Acknowledgements kept per key for floors in the past (a fleet's allowed lag); older ones are dropped. */
const MAX_HISTORY = 4096;

/** One acknowledgement that raised a key's floor. */
export interface Raise {
  /** When (performance.now()). */
  readonly at: number;
  readonly version: number;
  /**
   * A fleet: how many entries its bus had numbered when the write was acknowledged (read after the
   * acknowledgement, so at least the number of the write's invalidation): a proxy whose bus
   * position reached it has applied that invalidation. Undefined while it is being read; null when
   * it could not be read (the write is then held to the allowed lag alone).
   */
  mark?: number | null;
}

export class VersionLedger {
  private issued = 0;
  private readonly acked: number[];
  /** Per key, the acknowledgements that raised its floor: when (performance.now()) and to what. */
  private readonly raised: Raise[][];
  /** Versions of writes that roll back: handed out, never to be seen. */
  private readonly doomed = new Set<number>();
  constructor(readonly keys: number) {
    this.acked = new Array<number>(keys).fill(0);
    this.raised = Array.from({ length: keys }, () => []);
  }

  /** The next version, taken before its write is sent. */
  issue(): number {
    return ++this.issued;
  }

  /** `version` belongs to a write that will not commit; registered before it is sent. */
  doom(version: number): void {
    this.doomed.add(version);
  }

  /**
   * The server acknowledged the commit of `version` on `key`, at `at` (performance.now()). Returns
   * the raise of the key's floor (its `mark` may be set later), or null when it raised nothing.
   */
  acknowledge(key: number, version: number, at = performance.now()): Raise | null {
    if (version <= this.acked[key]!) return null;
    this.acked[key] = version;
    const raised = this.raised[key]!;
    const raise: Raise = { at, version };
    raised.push(raise);
    if (raised.length > MAX_HISTORY) raised.splice(0, MAX_HISTORY / 2);
    return raise;
  }

  /**
   * The highest version of every key acknowledged at or before `asOf` (performance.now() scale;
   * now when absent); taken just before a read is sent. Through another proxy of a fleet a read is
   * held to the writes acknowledged more than the allowed lag before it: `asOf` = now - lag; and,
   * given `applied` (the bus position that proxy had reached before the read was sent), only to
   * those whose invalidation it had applied by then (`mark` <= `applied`).
   */
  floors(asOf?: number, applied?: number): number[] {
    if (asOf === undefined) return this.acked.slice();
    const counts = (r: Raise): boolean => r.at <= asOf && (applied === undefined || r.mark === null || (r.mark !== undefined && r.mark <= applied));
    return this.raised.map((raised) => {
      // Versions grow along the list: the last one that counts is the highest.
      for (let i = raised.length - 1; i >= 0; i--) if (counts(raised[i]!)) return raised[i]!.version;
      return 0;
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
