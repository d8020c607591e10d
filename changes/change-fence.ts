// One protocol's change streams, one per followed target, and the fence the cache asks before it
// fills: a read of a target whose stream is not up is a bypass (reason `cdc-down`). PostgreSQL
// follows each database on its first use (logical replication is per database); MySQL's one binlog
// stream covers the whole server and starts with sidecache.
import type { ChangeStreamReading } from '../telemetry/change-streams.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/log.js';

/** What the fence needs of a follower (follower.ts), whatever its invalidations look like. */
export interface Followed extends ChangeStreamReading {
  readonly up: boolean;
  start(): void;
  stop(): Promise<void>;
}

/** The bypass reason while a target's stream is not up. */
export const CDC_DOWN = 'cdc-down' as const;

/**
 * PostgreSQL databases followed at most: each costs the server a walsender and a slot, and clients
 * naming databases at will must not make sidecache ask for thousands.
 */
export const MAX_FOLLOWED = 100;

export class ChangeFence {
  private readonly followers = new Map<string, Followed>();
  private warnedFull = false;
  private stopped = false;

  /**
   * `targetOf`: which stream covers a session's database (null: none can, e.g. no database);
   * `follow`: a new follower for a target, not yet started.
   */
  constructor(
    private readonly targetOf: (database: string | null) => string | null,
    private readonly follow: (target: string) => Followed,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /** Why the cache must not fill for `database` now, or null: its stream is up. Starts following on first use. */
  readonly fence = (database: string | null): typeof CDC_DOWN | null => {
    const target = this.targetOf(database);
    if (target === null) return CDC_DOWN;
    const f = this.followers.get(target) ?? this.start(target);
    return f !== null && f.up ? null : CDC_DOWN;
  };

  /** Follows `target` now rather than at its first read (MySQL's one stream). */
  start(target: string): Followed | null {
    const known = this.followers.get(target);
    if (known !== undefined || this.stopped) return known ?? null;
    if (this.followers.size >= MAX_FOLLOWED) {
      if (!this.warnedFull) this.log.warn({ database: target, max: MAX_FOLLOWED }, 'cdc: not following more databases; their reads bypass the cache (cdc-down)');
      this.warnedFull = true;
      return null;
    }
    const f = this.follow(target);
    this.followers.set(target, f);
    this.metrics.changeStreams.add(f);
    f.start();
    return f;
  }

  /** Every target followed (whatever its stream's state). */
  targets(): string[] {
    return [...this.followers.keys()];
  }

  /** The targets whose stream is up now. */
  upTargets(): string[] {
    return [...this.followers].filter(([, f]) => f.up).map(([target]) => target);
  }

  /** Ends every stream; they leave /stats and /metrics (a fleet's leader that stops leading). */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.followers.values()].map((f) => f.stop()));
    for (const f of this.followers.values()) this.metrics.changeStreams.delete(f);
  }
}
