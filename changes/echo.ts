// A second invalidation, shortly after the first, of everything a change stream invalidated.
//
// Why: a server writes a commit to its log (WAL flush, binlog write) a moment before the commit is
// visible to other sessions (PostgreSQL removes the transaction from its proc array after the flush,
// and after a synchronous standby confirmed it where synchronous replication is on; MariaDB commits
// in the storage engine after the binlog). The stream may deliver the commit inside that moment: a
// miss sent after the invalidation can still read the old rows and be stored, and nothing would
// drop it again. Invalidating the same tables once more, ECHO_MS to 2 x ECHO_MS later, drops such
// an entry and refuses such a fill still in flight; a read sent after the echo sees the commit, as
// long as it became visible within ECHO_MS of being streamed.
//
// What arrived during one tick is merged into one invalidation, so the echo costs at most one
// invalidation per tick whatever the commit rate.

export const ECHO_MS = 50;

export class EchoBuffer<I> {
  private current: I[] = [];
  private previous: I[] = [];

  /** `merge`: one invalidation covering all of the given ones (never called with an empty list). */
  constructor(private readonly merge: (invalidations: readonly I[]) => I) {}

  add(inv: I): void {
    this.current.push(inv);
  }

  /** Call every ECHO_MS: what arrived one to two ticks ago, merged; null when nothing did. */
  tick(): I | null {
    const due = this.previous;
    this.previous = this.current;
    this.current = [];
    return due.length === 0 ? null : due.length === 1 ? due[0]! : this.merge(due);
  }

  /** The stream was lost and its database dropped whole: nothing before needs an echo any more. */
  clear(): void {
    this.current = [];
    this.previous = [];
  }
}
