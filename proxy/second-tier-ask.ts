// What both relays do with the fleet's second tier (--l2 on, fleet/l2.ts) before a fill: whether a
// read may ask Redis now, must first wait for what tells its key and its right to be served (the
// identity check, the catalog probe, sent alone), or may not ask; and the lookup itself, whose
// current answer is stored in this proxy's memory under a fill token taken before it, so that the
// request taken up again is answered from there. The relay parks the request meanwhile (as for the
// identity check) and takes it up again when the lookup is back; a request taken up again does not
// ask twice, nor does one the client's next message sends on first (it may not wait).
import { IdentityState, type SessionView, type Verdict } from './cache-router.js';
import type { ResultCache, RuledStatement } from './result-cache.js';

/** What the lookup needs of either protocol's cache. */
type TierCache = Pick<ResultCache<RuledStatement>, 'secondTier' | 'store' | 'protocol'>;

/** What a relay should do with a read about to go upstream. */
export const enum SecondTierMove {
  /** Go upstream as the verdict says. */
  No,
  /** Send the identity check and the probe (as needed) alone, park, and route again when back. */
  WaitFirst,
  /** Park and look the key up in Redis (start). */
  Ask,
}

/** The parts of a session's context the second tier needs (PgContext, MySqlContext). */
export interface TierContext {
  readonly keyPrefix: string;
  readonly sharedPrefix: string | null;
}

export class SecondTierAsk<T> {
  /** The parked request whose lookup is in flight. */
  private lookup: T | null = null;
  /** Set while a request is taken up again that must not ask (again). */
  private asking = true;

  constructor(private readonly cache: TierCache) {}

  /** A lookup is in flight: the relay must not take the parked request up on a server message. */
  get pending(): boolean {
    return this.lookup !== null;
  }

  move(verdict: Verdict<unknown>, view: SessionView, ctx: TierContext | null): SecondTierMove {
    if (this.cache.secondTier === null || !this.asking || !view.quiet || view.identity === IdentityState.Failed) return SecondTierMove.No;
    const fill = verdict.kind === 'fill' && !verdict.inBlock;
    if (verdict.kind === 'probe-then-fill' || (fill && view.identity !== IdentityState.Verified)) return SecondTierMove.WaitFirst;
    return fill && ctx !== null && ctx.sharedPrefix !== null ? SecondTierMove.Ask : SecondTierMove.No;
  }

  /**
   * Looks `keySuffix` up for the parked request `parked`; when it is back and `parked` still waits
   * (`stillParked`), a current entry is stored here and `resume` takes the request up again.
   */
  start(ctx: TierContext, keySuffix: string, identity: RuledStatement['identity'], parked: T, stillParked: (p: T) => boolean, resume: () => void): void {
    const cache = this.cache;
    const tier = cache.secondTier!;
    this.lookup = parked;
    const token = cache.store.startFill();
    void tier.get(cache.protocol, ctx.sharedPrefix! + keySuffix).then((entry) => {
      if (this.lookup !== parked) return;
      this.lookup = null;
      if (!stillParked(parked)) return;
      if (entry !== null) {
        cache.store.set(ctx.keyPrefix + keySuffix, entry.bytes, { identity }, { token, tags: entry.tags, ttlMs: Math.max(1, entry.expiresAt - Date.now()) });
      }
      this.withoutAsking(resume);
    });
  }

  /** The parked request is taken up now, for whatever reason: a lookup in flight is forgotten. */
  forget(): void {
    this.lookup = null;
  }

  /** Runs `takeUp` (the relay's unpark) so that the request taken up does not ask Redis. */
  withoutAsking(takeUp: () => void): void {
    this.asking = false;
    try {
      takeUp();
    } finally {
      this.asking = true;
    }
  }
}
