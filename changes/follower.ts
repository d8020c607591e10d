// Keeps one change stream going for one cache target (a PostgreSQL database, or a whole MySQL
// server) and tells the cache what it can rely on. The stream's own module connects and decodes;
// this owns the lifecycle around it:
//
//   starting ──(changes flow)──► up ──(lost)──► down ──(back-off)──► starting ...
//       └──────(refused)──────────────────────► down
//
// Only `up` opens the fence: the cache fills and answers for the target only while its stream is
// up. Every change of state drops the target's entries and refuses its fills in flight (a bump of
// its tags, through `FollowTarget.drop`), so a fill is stored only when the stream stayed up from
// the fill's send to its store: what went unseen while a stream was down can never be served.
// docs/consistency.md (Change streams) has the argument.
import type { ChangeStreamReading, ChangeStreamState } from '../telemetry/change-streams.js';
import { LAG_BUCKETS_SECONDS } from '../telemetry/change-streams.js';
import { DurationHistogram } from '../telemetry/duration-histogram.js';
import type { Protocol } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/log.js';
import { Backoff } from './backoff.js';
import { ECHO_MS, EchoBuffer } from './echo.js';

/** One connection's worth of a change stream. */
export interface ChangeStream {
  /** Resolves once changes flow (every commit from then on reaches the sink); rejects with why it could not start. */
  readonly started: Promise<void>;
  /** Resolves with why the stream ended, once it has. */
  readonly ended: Promise<Error>;
  /** Where the stream is, for /stats; null before it knows. */
  position(): string | null;
  /** Ends it now (sidecache stops). */
  close(): void;
}

/** What a stream reports while it runs; called synchronously as it decodes. */
export interface ChangeSink<I> {
  /** `count` messages or events decoded. */
  decoded(count: number): void;
  /** Invalidate now (a commit, a truncate, DDL). */
  invalidate(inv: I): void;
  /** From a change's commit on the server to its invalidation here. */
  lag(seconds: number): void;
}

export type OpenStream<I> = (sink: ChangeSink<I>) => ChangeStream;

/** For a stream's `started`: `start` bounded in time, failing with `timeout()` after `ms`. */
export function startWithin<T>(start: Promise<T>, ms: number, timeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeout()), ms);
  });
  return Promise.race([start, late]).finally(() => clearTimeout(timer));
}

/** The cache side of one followed target. */
export interface FollowTarget<I> {
  apply(inv: I): void;
  /** The stream's state changed: drop the target's entries, refuse its fills in flight. */
  drop(): void;
  /** One invalidation covering all of these (for the echo). */
  merge(invalidations: readonly I[]): I;
}

export class Follower<I> implements ChangeStreamReading {
  state: ChangeStreamState = 'starting';
  sinceMs = Date.now();
  lastError: string | null = null;
  events = 0;
  invalidations = 0;
  failures = 0;
  readonly lag = new DurationHistogram(LAG_BUCKETS_SECONDS);
  lastLagMs: number | null = null;
  private stream: ChangeStream | null = null;
  private lastPosition: string | null = null;
  private stopped = false;
  private readonly backoff = new Backoff();
  private wake: (() => void) | null = null;
  private echoTimer: NodeJS.Timeout | null = null;
  private readonly echo: EchoBuffer<I>;
  private running: Promise<void> | null = null;
  private readonly sink: ChangeSink<I> = {
    decoded: (count) => {
      this.events += count;
    },
    invalidate: (inv) => {
      this.invalidations++;
      this.target.apply(inv);
      this.echo.add(inv);
    },
    lag: (seconds) => {
      this.lag.observe(seconds);
      this.lastLagMs = Math.max(0, seconds) * 1000;
    },
  };

  /**
   * `onState`: called at every change of state, before the target's entries are dropped (a fleet's
   * leader tells the other proxies first, fleet/change-leader.ts).
   */
  constructor(
    readonly protocol: Protocol,
    readonly database: string,
    private readonly open: OpenStream<I>,
    private readonly target: FollowTarget<I>,
    private readonly log: Logger,
    private readonly onState: ((follower: Follower<I>) => void) | null = null,
  ) {
    this.echo = new EchoBuffer((invs) => target.merge(invs));
  }

  get position(): string | null {
    return this.stream?.position() ?? this.lastPosition;
  }

  get up(): boolean {
    return this.state === 'up';
  }

  start(): void {
    this.running ??= this.run();
  }

  /** Ends the stream for good (sidecache stops). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stream?.close();
    this.wake?.();
    this.stopEcho();
    await this.running;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      this.setState('starting');
      const stream = this.open(this.sink);
      this.stream = stream;
      let upAt = 0;
      let why: Error;
      try {
        // A stream closed (or dead) before it started counts as not started.
        await Promise.race([stream.started, stream.ended.then((reason) => Promise.reject(reason))]);
        if (this.stopped) break;
        upAt = Date.now();
        this.setState('up');
        this.startEcho();
        this.log.info({ protocol: this.protocol, database: this.database, position: stream.position() }, 'cdc: change stream up; caching resumes');
        why = await stream.ended;
      } catch (err) {
        why = err as Error;
      }
      this.lastPosition = stream.position();
      this.stream = null;
      this.stopEcho();
      stream.close();
      if (this.stopped) break;
      this.failures++;
      this.lastError = why.message;
      this.setState('down');
      const retryInMs = this.backoff.next(upAt === 0 ? 0 : Date.now() - upAt);
      this.log.warn({ protocol: this.protocol, database: this.database, err: why.message, retryInMs },
        upAt === 0 ? 'cdc: change stream could not start; reads bypass the cache (cdc-down) until it is up'
          : 'cdc: change stream lost; its cached results are dropped and reads bypass the cache (cdc-down) until it is back');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, retryInMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  private setState(state: ChangeStreamState): void {
    this.state = state;
    this.sinceMs = Date.now();
    this.onState?.(this);
    // Whatever the cache holds for the target may have missed changes, and fills in flight may
    // read data the next stream will not cover: both go, on every change of state.
    this.echo.clear();
    this.target.drop();
  }

  private startEcho(): void {
    this.echoTimer = setInterval(() => {
      const due = this.echo.tick();
      if (due !== null) this.target.apply(due);
    }, ECHO_MS);
    this.echoTimer.unref();
  }

  private stopEcho(): void {
    if (this.echoTimer !== null) clearInterval(this.echoTimer);
    this.echoTimer = null;
  }
}
