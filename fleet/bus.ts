// The fleet's invalidation bus: every invalidation a proxy makes is appended to one Redis Stream
// (scripts.ts PUBLISH numbers the entries) and every other proxy reads the stream in order and
// applies it to its caches. It only drops entries; it never touches a client's session.
//
// States (the only moves; `fence` and `goLive` make them):
//   starting --goLive--> live --fence--> fenced --goLive--> live
// Outside `live` every cache is suspended: empty, refusing fills, reads are bypasses ('bus-down').
// `goLive` first publishes what was queued while away, then takes the stream's end as its position
// and resumes the caches: entries before the position are older than any fill made after it.
// `fence` happens on any connection trouble, a gap in the numbering (entries trimmed before they
// were read, a failover that lost entries), a read that does not come back in time, or a publish
// that failed. Streams and not pub/sub: pub/sub drops messages across a reconnect unnoticed.
import type { Logger } from 'pino';
import type { Protocol } from '../telemetry/metrics.js';
import { DurationHistogram } from '../telemetry/duration-histogram.js';
import type { Invalidation, InvalidationSink } from '../proxy/result-cache.js';
import type { FleetKeys } from './keys.js';
import { invalidatedFields } from './l2-entry.js';
import { decodeEntry, encodeMessage, type BusMessage } from './message.js';
import { isReady, watchConnection, type RedisConnection } from './redis-connection.js';
import { POSITION, PUBLISH, runScript } from './scripts.js';
import { Sleeper } from './sleeper.js';

/** What the bus needs of a protocol's cache (ResultCache fits). */
export interface BusCache {
  applyInvalidation(invalidation: Invalidation): number;
  suspend(reason: string): void;
  resume(): void;
}

export type BusState = 'starting' | 'live' | 'fenced';
/** Why the bus fenced the caches; a label of sidecache_bus_fences_total. */
export type FenceReason = 'connection' | 'gap' | 'timeout' | 'publish-failed';
export const FENCE_REASONS: readonly FenceReason[] = ['connection', 'gap', 'timeout', 'publish-failed'];
/** The bypass reason of cacheable reads while fenced. */
export const BYPASS_REASON = 'bus-down';

export interface BusOptions {
  keys: FleetKeys;
  /** This proxy's id in the fleet: its own entries are skipped when read back. */
  instance: string;
  maxLength: number;
  /** How long one XREAD waits for entries; the read must come back within this plus `graceMs`. */
  blockMs: number;
  graceMs: number;
  log: Logger;
  /**
   * Runs each time the bus has caught up, before the caches resume (the second tier starts a new
   * era there: entries filled before a lost connection may rest on invalidations a failover lost).
   */
  onCaughtUp?: () => Promise<void>;
}

/** Told of the change-stream leaders' reports (fleet/change-leader.ts). */
export interface StreamsWatcher {
  /** Another proxy, leading `protocol`'s change streams, reports the targets whose stream is up. */
  streams(protocol: Protocol, up: readonly string[], origin: string): void;
  /**
   * The bus went live from the stream's end: reports made while this proxy was away were missed,
   * so what it knew of them is void.
   */
  caughtUp(): void;
}

/** An entry to publish: the second tier's tag-table fields it bumps, and the entry's fields. */
interface Outgoing {
  readonly tagFields: readonly string[];
  readonly fields: readonly string[];
}

export interface BusStatus {
  readonly instance: string;
  readonly state: BusState;
  /** The numbered position read up to (0 before the first). */
  readonly position: number;
  readonly published: number;
  readonly publishFailures: number;
  /** Entries of other proxies applied. */
  readonly applied: number;
  /** Entries that could not be read: each dropped every cache. */
  readonly unreadable: number;
  /** Invalidations waiting to be published (Redis unreachable). */
  readonly queued: number;
  readonly fences: Readonly<Record<FenceReason, number>>;
  /** Publish to apply, of other proxies' entries (their clock to ours). */
  readonly lag: DurationHistogram;
}

/** Past this many unpublished invalidations the queue becomes one "everything" per protocol. */
const MAX_QUEUED = 10_000;
const READ_COUNT = 1000;
const MIN_RETRY_MS = 50;
const MAX_RETRY_MS = 2000;
const ERROR_LOG_MS = 30_000;

class BusTrouble extends Error {
  constructor(readonly reason: FenceReason, message: string) {
    super(message);
    this.name = 'BusTrouble';
  }
}

/** Wall-clock ms with sub-ms precision, comparable across processes of one machine. */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

export class InvalidationBus implements InvalidationSink {
  private state: BusState = 'starting';
  private closed = false;
  private lastSeq = 0;
  private lastId = '0-0';
  /** Bumped by every connection event; goLive refuses to finish when it moved meanwhile. */
  private troubles = 0;
  private queued: Outgoing[] = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly counts = { published: 0, publishFailures: 0, applied: 0, unreadable: 0 };
  private readonly fences: Record<FenceReason, number> = { connection: 0, gap: 0, timeout: 0, 'publish-failed': 0 };
  private readonly lag = new DurationHistogram();
  private readonly unwatch: (() => void)[] = [];
  private loop: Promise<void> | null = null;
  private readonly sleeper = new Sleeper();
  private lastError = '';
  private lastErrorAt = 0;
  private readonly watchers: StreamsWatcher[] = [];

  constructor(
    private readonly commands: RedisConnection,
    private readonly reader: RedisConnection,
    private readonly caches: ReadonlyMap<Protocol, BusCache>,
    private readonly options: BusOptions,
  ) {}

  /** Suspends the caches until the bus is live, then follows the stream until close(). */
  start(): void {
    for (const cache of this.caches.values()) cache.suspend(BYPASS_REASON);
    for (const redis of [this.commands, this.reader]) {
      this.unwatch.push(watchConnection(redis, (what, err) => {
        this.troubles++;
        if (err !== undefined) this.logError(what, err);
        this.fence('connection', err === undefined ? what : `${what}: ${err.message}`);
      }));
    }
    this.loop = this.run();
  }

  get isLive(): boolean {
    return this.state === 'live';
  }

  /** The last entry applied (the second tier's `asOf` of a fill sent now). */
  position(): number {
    return this.lastSeq;
  }

  /** Sends a cache's invalidation to the other proxies (InvalidationSink). */
  publish(protocol: Protocol, invalidation: Invalidation): void {
    const fields = encodeMessage({ origin: this.options.instance, sentAt: wallClockMs(), body: { kind: 'invalidation', protocol, invalidation } });
    this.send({ tagFields: invalidatedFields(protocol, invalidation), fields });
  }

  /** The leader's pulse: shows the bus moves and gives every proxy a lag reading without writes. */
  publishBeat(): void {
    this.send({ tagFields: [], fields: encodeMessage({ origin: this.options.instance, sentAt: wallClockMs(), body: { kind: 'beat' } }) });
  }

  /**
   * The change-stream leader's report of its streams. Sent only while live and never queued or
   * published again after a failure: a report delayed past the end of its leader's term would
   * vouch for streams that no longer run. Returns whether it was sent.
   */
  publishStreams(protocol: Protocol, up: readonly string[]): boolean {
    if (this.state !== 'live' || !isReady(this.commands)) return false;
    const fields = encodeMessage({ origin: this.options.instance, sentAt: wallClockMs(), body: { kind: 'streams', protocol, up } });
    this.publishNow({ tagFields: [], fields }, false);
    return true;
  }

  watchStreams(watcher: StreamsWatcher): void {
    this.watchers.push(watcher);
  }

  status(): BusStatus {
    return {
      instance: this.options.instance,
      state: this.state,
      position: this.lastSeq,
      ...this.counts,
      queued: this.queued.length,
      fences: { ...this.fences },
      lag: this.lag,
    };
  }

  /** Stops following; publishes still in flight get a moment to finish. */
  async close(): Promise<void> {
    this.closed = true;
    this.sleeper.wake();
    for (const stop of this.unwatch) stop();
    // Ends a blocked XREAD at once instead of after its block time.
    this.reader.disconnect();
    await this.loop;
    await Promise.allSettled([...this.inFlight]);
  }

  /**
   * The entry is written to Redis's socket now, before the caller goes on: a write's
   * acknowledgement leaves after its invalidation. Queued while Redis cannot be reached.
   */
  private send(outgoing: Outgoing): void {
    this.counts.published++;
    if (!isReady(this.commands)) {
      this.enqueue(outgoing);
      return;
    }
    this.publishNow(outgoing, true);
  }

  /** Sends `outgoing` now; a failure fences the bus and, when `again`, queues it to be published again. */
  private publishNow(outgoing: Outgoing, again: boolean): void {
    const sent = this.runPublish(outgoing);
    this.inFlight.add(sent);
    sent.then(
      () => this.inFlight.delete(sent),
      (err: Error) => {
        this.inFlight.delete(sent);
        this.counts.publishFailures++;
        // It may or may not have been appended: publishing it again is harmless, losing it is not.
        if (again) this.enqueue(outgoing);
        this.fence('publish-failed', err.message);
      },
    );
  }

  private runPublish({ tagFields, fields }: Outgoing): Promise<unknown> {
    const { stream, seq, l2Tags } = this.options.keys;
    return runScript(this.commands, PUBLISH, [stream, seq, l2Tags], [this.options.maxLength, tagFields.length, ...tagFields, ...fields]);
  }

  private enqueue(outgoing: Outgoing): void {
    if (this.queued.length < MAX_QUEUED) {
      this.queued.push(outgoing);
      return;
    }
    // Too many to keep: one message per protocol that drops everything covers them all.
    this.queued = [...this.caches.keys()].map((protocol) => {
      const invalidation: Invalidation = { scope: 'all', catalog: true };
      const fields = encodeMessage({ origin: this.options.instance, sentAt: wallClockMs(), body: { kind: 'invalidation', protocol, invalidation } });
      return { tagFields: invalidatedFields(protocol, invalidation), fields };
    });
  }

  /** Connection errors (refused, wrong password, TLS) at warn: each new one, then at most every ERROR_LOG_MS. */
  private logError(what: string, err: Error): void {
    const now = performance.now();
    if (err.message === this.lastError && now - this.lastErrorAt < ERROR_LOG_MS) return;
    this.lastError = err.message;
    this.lastErrorAt = now;
    this.options.log.warn({ err: err.message }, `fleet: Redis ${what}`);
  }

  private fence(reason: FenceReason, detail: string): void {
    if (this.state !== 'live') return;
    this.state = 'fenced';
    this.fences[reason]++;
    for (const cache of this.caches.values()) cache.suspend(BYPASS_REASON);
    this.options.log.warn({ reason, detail, position: this.lastSeq }, 'fleet: bus lost; answering nothing from the cache until it is back and caught up');
    this.sleeper.wake();
  }

  private async run(): Promise<void> {
    let retryMs = MIN_RETRY_MS;
    while (!this.closed) {
      try {
        if (this.state !== 'live') await this.goLive();
        retryMs = MIN_RETRY_MS;
        await this.readOnce();
      } catch (err) {
        if (this.closed) break;
        const trouble = err instanceof BusTrouble ? err : new BusTrouble('connection', (err as Error).message);
        this.fence(trouble.reason, trouble.message);
        this.options.log.debug({ err: trouble.message, retryMs }, 'fleet: bus not ready');
        await this.sleeper.sleep(retryMs);
        retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
      }
    }
  }

  /** Publishes what was queued, takes the stream's end as the position, resumes the caches. */
  private async goLive(): Promise<void> {
    const troubles = this.troubles;
    const { stream, seq } = this.options.keys;
    while (this.queued.length > 0) {
      const batch = this.queued;
      this.queued = [];
      try {
        await Promise.all(batch.map((outgoing) => this.runPublish(outgoing)));
      } catch (err) {
        this.queued.push(...batch);
        throw err;
      }
    }
    const [id, position] = await runScript(this.reader, POSITION, [stream, seq], []) as [string, string];
    if (this.troubles !== troubles || this.closed) throw new BusTrouble('connection', 'the connection changed while catching up');
    await this.options.onCaughtUp?.();
    if (this.troubles !== troubles || this.closed) throw new BusTrouble('connection', 'the connection changed while catching up');
    this.lastId = id;
    this.lastSeq = Number(position);
    const wasStarting = this.state === 'starting';
    for (const w of this.watchers) w.caughtUp();
    this.state = 'live';
    for (const cache of this.caches.values()) cache.resume();
    this.options.log.info({ position: this.lastSeq, stream }, wasStarting ? 'fleet: bus connected; caching on' : 'fleet: bus back and caught up; caching on');
  }

  /** One XREAD: applies what came, or throws when the stream cannot be followed without a gap. */
  private async readOnce(): Promise<void> {
    const { blockMs, graceMs, keys } = this.options;
    const read = this.reader.call('XREAD', 'COUNT', READ_COUNT, 'BLOCK', blockMs, 'STREAMS', keys.stream, this.lastId) as Promise<XreadReply>;
    const reply = await withDeadline(read, blockMs + graceMs, () => {
      // The reply may still come; on a new connection it cannot be taken for another command's.
      this.reader.disconnect(true);
      return new BusTrouble('timeout', `XREAD did not return within ${blockMs + graceMs} ms`);
    });
    if (this.state !== 'live' || reply === null) return;
    for (const [, entries] of reply) {
      for (const [id, fields] of entries) {
        const entry = decodeEntry(fields);
        if (entry.seq !== this.lastSeq + 1) throw new BusTrouble('gap', `expected entry ${this.lastSeq + 1} after ${this.lastId}, read ${entry.seq ?? 'an unnumbered one'} at ${id}`);
        this.lastSeq = entry.seq;
        this.lastId = id;
        this.apply(entry.message);
      }
    }
  }

  private apply(message: BusMessage | null): void {
    if (message === null) {
      // From a newer sidecache, or damaged: what it invalidates is unknown, so everything goes.
      this.counts.unreadable++;
      for (const cache of this.caches.values()) cache.applyInvalidation({ scope: 'all', catalog: true });
      return;
    }
    if (message.origin === this.options.instance) return;
    this.counts.applied++;
    const body = message.body;
    if (body.kind === 'invalidation') this.caches.get(body.protocol)?.applyInvalidation(body.invalidation);
    else if (body.kind === 'streams') for (const w of this.watchers) w.streams(body.protocol, body.up, message.origin);
    this.lag.observe((wallClockMs() - message.sentAt) / 1000);
  }
}

/** [stream, [[id, [field, value, ...]], ...]] per stream; null when the block time passed. */
type XreadReply = [string, [string, string[]][]][] | null;

/**
 * `promise`, or `onExpiry()`'s error when it has not settled `ms` after now. After a stall of the
 * event loop the timer runs before the socket that holds the reply is read; the verdict waits for
 * the next check phase (setImmediate), after that read, so a stall alone is no lost bus.
 */
function withDeadline<T>(promise: Promise<T>, ms: number, onExpiry: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => setImmediate(() => {
      if (!settled) reject(onExpiry());
    }), ms);
    promise.then(
      (value) => {
        settled = true;
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        settled = true;
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
