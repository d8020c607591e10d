// What both relays do for request coalescing (../cache/fill-flights.ts): a cacheable read about to
// be filled whose key another session is filling right now waits for that fill instead of going
// to the database. The relay parks the request meanwhile (as for the identity check or the second
// tier) and takes it up again when the fill ends: stored, the request is looked up again and
// answered from the store; otherwise it is routed as any miss. Only a request of an idle session
// (nothing outstanding) with its server verified waits, so replies keep their order and the
// entry it is answered from is one it could have hit anyway. The session never touches the
// filling session: all it learns comes through the cache's flights, keyed by the full cache key.
// A request taken up again after a fill that was not stored (a write made it stale) may wait once
// more, for the fill of the first of its fellow waiters taken up (which goes to the database): so
// a write during a fill costs the database two executions, not one per waiter. Otherwise a
// request taken up again does not wait a second time; nor does one the client's next message
// sends on first. A PostgreSQL Sync group of reads waits for one statement's fill at a time
// (waitForGroup): taken up after a stored fill, it may wait for the next, at most once per
// statement in all; any other end sends it to the database.
import type { Waiting } from '../cache/fill-flights.js';
import { FlightEnd } from '../cache/fill-flights.js';
import type { CoalesceRelay } from '../telemetry/query-stats.js';
import { IdentityState, type SessionView, type Verdict } from './cache-router.js';
import type { ResultCache, RuledStatement } from './result-cache.js';

type CoalesceCache = Pick<ResultCache<RuledStatement>, 'flights' | 'stats'>;

export class CoalescedWait {
  private waiting: Waiting | null = null;
  /** Cleared while a request is taken up again that must not wait (again). */
  private allowed = true;
  /** Set while a request is taken up after a refused fill: a wait it starts is its last. */
  private retrying = false;
  /** While a group is taken up after a stored fill: how many more waits it may start; null otherwise. */
  private groupWaitsLeft: number | null = null;

  constructor(private readonly cache: CoalesceCache) {}

  /** A wait is in progress: the relay must not take the parked request up on a server message. */
  get pending(): boolean {
    return this.waiting !== null;
  }

  /**
   * For a read the router would fill under `key` (the full cache key): waits for the fill of the
   * same key in flight, if any and if it may. True when it waits: the relay parks the request, and
   * `takeUp` (the relay's unpark) is called when the wait ends; it returns whether the request was
   * answered from the cache (nothing sent upstream).
   */
  wait(verdict: Verdict<unknown>, view: SessionView, key: string, takeUp: () => boolean): boolean {
    if (!this.allowed || verdict.kind !== 'fill' || verdict.inBlock || !view.idle || view.identity !== IdentityState.Verified) return false;
    return this.join(key, takeUp, null);
  }

  /**
   * For a group of `statements` reads each stored or being filled, none needing anything else: waits
   * for the fill of `key` (one of them), if it may. Stored, the group is taken up again and may wait
   * for the next statement's fill, `statements` waits at most in all (each ends by its fill's wait
   * bound, so the group waits at most that bound per statement); any other end, or a wait it may not
   * start, sends it to the database. No retry after a refused fill: the group would go on waiting
   * while its other statements' entries age.
   */
  waitForGroup(view: SessionView, key: string, statements: number, takeUp: () => boolean): boolean {
    if (!this.allowed || !view.idle || view.identity !== IdentityState.Verified) return false;
    const left = this.groupWaitsLeft ?? statements;
    return left > 0 && this.join(key, takeUp, left - 1);
  }

  /** `groupLeft`: the waits a group taken up after this one's stored fill may still start; null for a lone request. */
  private join(key: string, takeUp: () => boolean, groupLeft: number | null): boolean {
    let mine: Waiting | null = null;
    const last = this.retrying;
    const joined = this.cache.flights.join(key, (end) => {
      if (this.waiting !== mine || mine === null) return;
      this.waiting = null;
      const answered = groupLeft !== null
        ? end === FlightEnd.Stored ? this.inGroup(groupLeft, takeUp) : this.withoutWaiting(takeUp)
        : end === FlightEnd.NotStored && !last ? this.retry(takeUp) : this.withoutWaiting(takeUp);
      // Waiting again: counted when that wait ends.
      if (this.waiting !== null) return;
      const stats = this.cache.stats;
      if (answered) stats.coalescedMiss();
      else stats.coalesceRelay(end === FlightEnd.Stored ? 'gone' : end === FlightEnd.TimedOut ? 'timeout' : 'not-stored');
    });
    if (joined === 'none') return false;
    if (joined === 'waiters-full') {
      this.cache.stats.coalesceRelay('waiters-full');
      return false;
    }
    mine = joined;
    this.waiting = joined;
    return true;
  }

  /**
   * The parked request is taken up now for another reason (the client sent more; `interrupted`),
   * or the session is closing: the wait in progress, if any, is left.
   */
  forget(interrupted: boolean): void {
    const waiting = this.waiting;
    if (waiting === null) return;
    this.waiting = null;
    this.cache.flights.leave(waiting);
    if (interrupted) this.cache.stats.coalesceRelay('interrupted' satisfies CoalesceRelay);
  }

  /** Runs `takeUp` so that the group taken up may start `left` more waits. */
  private inGroup(left: number, takeUp: () => boolean): boolean {
    const was = this.groupWaitsLeft;
    this.groupWaitsLeft = left;
    try {
      return takeUp();
    } finally {
      this.groupWaitsLeft = was;
    }
  }

  /** Runs `takeUp` so that the request taken up may wait once more, for the last time. */
  private retry(takeUp: () => boolean): boolean {
    this.retrying = true;
    try {
      return takeUp();
    } finally {
      this.retrying = false;
    }
  }

  /** Runs `takeUp` (the relay's unpark) so that the request taken up does not wait for a fill. */
  withoutWaiting<R>(takeUp: () => R): R {
    const was = this.allowed;
    this.allowed = false;
    try {
      return takeUp();
    } finally {
      this.allowed = was;
    }
  }
}
