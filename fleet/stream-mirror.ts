// The change-stream fence of a proxy that does not lead its fleet's change streams: what the
// leader last reported up (fleet/change-leader.ts), trusted for one lease. The cache fills for a
// target (a PostgreSQL database, or `*` for the MySQL binlog) only while it is in that report.
//
// Like a follower's own states (changes/follower.ts), every change of this view drops the target's
// entries here and refuses its fills in flight (a bump of its tags): a fill is stored only if the
// leader's stream was reported up from its send to its store. A report not renewed within the
// trust (the leader died, or lost Redis) ends the view as a report "nothing up" would: the
// entries go and reads bypass (`cdc-down`) until a leader reports again.
import { CDC_DOWN } from '../changes/change-fence.js';

export interface MirrorOptions {
  /** How long a report is believed without a newer one (the lease: a dead leader's is void by then). */
  trustMs: number;
  /** Which stream covers a session's database (null: none can). */
  targetOf(database: string | null): string | null;
  /** Drops the target's entries in this proxy only and bumps their tags. */
  drop(target: string): void;
  /** A read found `target` not up: the leader should follow it (asked at most once per `askEveryMs` per target). */
  ask(target: string): void;
  askEveryMs: number;
}

/** Targets remembered as asked at most; beyond, the memory starts over (a bound, not a policy). */
const MAX_ASKED = 1000;

export class StreamMirror {
  private up: ReadonlySet<string> = new Set();
  private leaderId: string | null = null;
  private reportedAt: number | null = null;
  private expiry: NodeJS.Timeout | null = null;
  private readonly asked = new Map<string, number>();

  constructor(private readonly options: MirrorOptions) {}

  /** The cache's fence (ResultCache.followChanges): null while the leader reports the target's stream up. */
  readonly fence = (database: string | null): typeof CDC_DOWN | null => {
    const target = this.options.targetOf(database);
    if (target === null) return CDC_DOWN;
    if (this.up.has(target)) return null;
    const now = performance.now();
    if (now - (this.asked.get(target) ?? -Infinity) >= this.options.askEveryMs) {
      if (this.asked.size >= MAX_ASKED) this.asked.clear();
      this.asked.set(target, now);
      this.options.ask(target);
    }
    return CDC_DOWN;
  };

  /** What /stats shows: the leader's last report, or nothing. */
  view(): { leader: string | null; up: string[]; ageMs: number | null } {
    return { leader: this.leaderId, up: [...this.up], ageMs: this.reportedAt === null ? null : Math.round(performance.now() - this.reportedAt) };
  }

  /** The leader `origin` reports these targets up. */
  report(up: readonly string[], origin: string): void {
    this.change(new Set(up));
    this.leaderId = origin;
    this.reportedAt = performance.now();
    if (this.expiry !== null) clearTimeout(this.expiry);
    this.expiry = setTimeout(() => this.clear(), this.options.trustMs);
    this.expiry.unref();
  }

  /** Nothing is known any more: the report ran out, the bus missed reports, this proxy's own term began or ended. */
  clear(): void {
    if (this.expiry !== null) clearTimeout(this.expiry);
    this.expiry = null;
    this.leaderId = null;
    this.reportedAt = null;
    this.change(new Set());
  }

  private change(next: ReadonlySet<string>): void {
    const before = this.up;
    this.up = next;
    for (const t of before) if (!next.has(t)) this.options.drop(t);
    for (const t of next) if (!before.has(t)) this.options.drop(t);
  }
}
