// Request coalescing (issue 17 item 2): the fills in flight, by cache key, and the requests waiting
// for them. When a cacheable miss finds a fill of the same key already sent upstream by another
// session, it waits for that fill instead of going to the database too; when the fill is stored,
// the waiter is taken up again and answered from the store (a hit, under the store's own rules),
// otherwise (refused by the tag-version rule, too large, an error reply, the owner gone, the wait
// bound passed) it goes to the database as any miss.
//
// A waiter never gets the fill's bytes from here: it only learns that the fill ended, and looks
// its key up again. Whether an entry may answer a read is the store's business alone (tag
// versions, TTL, invalidations), so a coalesced answer is exactly a hit at the moment it is taken
// up (docs/consistency.md, "Coalesced misses").
//
// Bounded: a flight accepts at most `maxWaiters`; a waiter waits at most `waitMs` from the start
// of the fill it joined (one timer per flight, armed by its first waiter, so a fill nobody waits
// for costs a map entry and a clock reading); flights whose owner never settles them (its session
// closed mid-reply) are swept when the map grows. Pure of sockets and SQL: keys are strings.

/** How a wait ended. */
export const enum FlightEnd {
  /** The fill was stored: look the key up again. */
  Stored,
  /** The fill was not stored (refused, failed, abandoned): go to the database. */
  NotStored,
  /** The wait bound passed before the fill ended: go to the database. */
  TimedOut,
}

export type WaiterCallback = (end: FlightEnd) => void;

/** A fill in flight that others may wait for; only its owner settles it. */
export interface Flight {
  readonly key: string;
  readonly startedAt: number;
  /** Set once it is settled or timed out: nobody joins it any more. */
  ended: boolean;
  /** Made by the first waiter: most fills have none. */
  waiters: Set<WaiterCallback> | null;
  timer: ReturnType<typeof setTimeout> | null;
}

/** A request waiting for a flight, to leave it when taken up for another reason. */
export interface Waiting {
  readonly flight: Flight;
  readonly callback: WaiterCallback;
}

/** How a fill ended, as its owner settles it. */
export type FillOutcome =
  /** Stored: its waiters look the key up again. */
  | 'stored'
  /** Not stored this time (a write made it stale, its session ended or changed): the next fill may be. */
  | 'refused'
  /**
   * Not storable (too large, an error reply, a notice or warning, a statement the cache does not
   * keep): the key's later misses do not wait, until a fill of it is stored. Waiting for a fill
   * that cannot be stored would only add its duration to theirs.
   */
  | 'unstorable';

/** Why a request that could have waited did not (the caller fills or relays it as usual). */
export type JoinRefusal = 'none' | 'waiters-full';

export interface FlightTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): ReturnType<typeof setTimeout>;
  clearTimeout(timer: ReturnType<typeof setTimeout>): void;
}

const REAL_TIMERS: FlightTimers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (t) => clearTimeout(t),
};

/** The map is swept of expired flights when it reaches this size (then twice its size after a sweep). */
const FIRST_SWEEP_AT = 1024;
/** Keys remembered as unstorable; the oldest mark goes first. */
export const MAX_UNSTORABLE_KEYS = 1024;

export class FillFlights {
  private readonly flights = new Map<string, Flight>();
  private sweepAt = FIRST_SWEEP_AT;
  private waitingNow = 0;
  /** Keys whose last fill could not be stored (insertion order: oldest first). */
  private readonly unstorable = new Set<string>();

  constructor(
    /** How long a waiter may wait, from the start of the fill it joins; 0 turns coalescing off. */
    private waitMs: number,
    /** Waiters per flight; more go to the database. */
    private maxWaiters: number,
    private readonly timers: FlightTimers = REAL_TIMERS,
  ) {}

  get enabled(): boolean {
    return this.waitMs > 0 && this.maxWaiters > 0;
  }

  /** A config reload: applies to flights started and waits begun from now on. */
  setLimits(waitMs: number, maxWaiters: number): void {
    this.waitMs = waitMs;
    this.maxWaiters = maxWaiters;
  }

  /** Requests waiting now, over every flight (a gauge). */
  get waiting(): number {
    return this.waitingNow;
  }

  /** Flights tracked now (a gauge for tests and memory). */
  get size(): number {
    return this.flights.size;
  }

  /**
   * A fill of `key` is being sent upstream. Returns its flight, for the owner to settle, or null
   * when coalescing is off or a live flight of the key exists already (this fill leads no one).
   */
  begin(key: string): Flight | null {
    if (!this.enabled) return null;
    const now = this.timers.now();
    const live = this.flights.get(key);
    if (live !== undefined && !live.ended && now < live.startedAt + this.waitMs) return null;
    if (this.flights.size >= this.sweepAt) this.sweep(now);
    const flight: Flight = { key, startedAt: now, ended: false, waiters: null, timer: null };
    this.flights.set(key, flight);
    return flight;
  }

  /** A fill of `key` is in flight that a request may still join (join() would not say 'none'). */
  live(key: string): boolean {
    return this.joinable(key) !== undefined;
  }

  /** The flight of `key` a request may join: not ended, its key storable, its wait bound not passed. */
  private joinable(key: string): Flight | undefined {
    const flight = this.flights.get(key);
    return flight !== undefined && !flight.ended && !this.unstorable.has(key) && this.timers.now() < flight.startedAt + this.waitMs ? flight : undefined;
  }

  /**
   * Waits for the live fill of `key`: `callback` is called once, asynchronously to the settling
   * owner's own work (a microtask), when the fill ends or the wait bound passes. Returns the
   * waiting (to leave it) or why the request may not wait.
   */
  join(key: string, callback: WaiterCallback): Waiting | JoinRefusal {
    const flight = this.joinable(key);
    if (flight === undefined) return 'none';
    // joinable() checked the bound: some time is left.
    const left = flight.startedAt + this.waitMs - this.timers.now();
    flight.waiters ??= new Set();
    if (flight.waiters.size >= this.maxWaiters) return 'waiters-full';
    flight.waiters.add(callback);
    this.waitingNow++;
    flight.timer ??= this.timers.setTimeout(() => this.end(flight, FlightEnd.TimedOut), left);
    return { flight, callback };
  }

  /** The waiter was taken up for another reason: it is not called. */
  leave(waiting: Waiting): void {
    if (waiting.flight.waiters?.delete(waiting.callback) === true) this.waitingNow--;
  }

  /** The owner's fill ended: its waiters are called. */
  settle(flight: Flight, outcome: FillOutcome): void {
    if (outcome === 'stored') {
      this.unstorable.delete(flight.key);
    } else if (outcome === 'unstorable') {
      this.unstorable.delete(flight.key);
      this.unstorable.add(flight.key);
      if (this.unstorable.size > MAX_UNSTORABLE_KEYS) this.unstorable.delete(this.unstorable.values().next().value!);
    }
    this.end(flight, outcome === 'stored' ? FlightEnd.Stored : FlightEnd.NotStored);
  }

  private end(flight: Flight, end: FlightEnd): void {
    if (flight.ended) return;
    flight.ended = true;
    if (flight.timer !== null) this.timers.clearTimeout(flight.timer);
    flight.timer = null;
    if (this.flights.get(flight.key) === flight) this.flights.delete(flight.key);
    if (flight.waiters === null || flight.waiters.size === 0) return;
    const waiters = [...flight.waiters];
    flight.waiters = null;
    this.waitingNow -= waiters.length;
    // Not inside the owner's reply handling: each waiter's session runs on its own, after it.
    for (const callback of waiters) queueMicrotask(() => callback(end));
  }

  /** Drops flights past their wait bound that nobody waits for (their owner never settled them). */
  private sweep(now: number): void {
    for (const [key, flight] of this.flights) {
      if (now >= flight.startedAt + this.waitMs && (flight.waiters?.size ?? 0) === 0) this.flights.delete(key);
    }
    this.sweepAt = Math.max(FIRST_SWEEP_AT, this.flights.size * 2);
  }
}
