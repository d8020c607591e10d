import { createHash } from 'node:crypto';
// What the PostgreSQL and MySQL cache services share: the result store, the query stats, the
// cache rules, config reloads and which server the entries came from (a restart or failover drops
// them). Each protocol's cache extends it with its own statement analysis, contexts and invalidation.
//
// Every invalidation goes through invalidateEverywhere(): applied to this proxy's store and, in a
// fleet (fleet/), handed to the bus so the other proxies apply it too, and with several workers
// (workers/) to the other workers. That is the one seam between the caches and the fleet or the
// workers; they call applyInvalidation(), suspend() and resume().
import type { Metrics, Protocol } from '../telemetry/metrics.js';
import { QueryStats, type StatementIdentity } from '../telemetry/query-stats.js';
import { MAX_SCANNED_ENTRIES, ResultStore } from '../cache/store.js';
import { StatementRules, type RuleOutcome } from '../config/rules.js';
import type { Config } from '../config/settings.js';
import type { SecondTier } from '../fleet/l2.js';
import { FillFlights } from '../cache/fill-flights.js';
import { UpstreamIdentity, type ServerIdentity } from './upstream-identity.js';
import type { FenceState } from './cache-router.js';

/**
 * One invalidation in the form every proxy of a fleet can apply without analysing SQL: the store's
 * tags (cache/tags.ts spelling), plus whether what the proxy learned of the catalog is void.
 */
export type Invalidation =
  /**
   * Entries carrying any of `tags` go. `tables` names them for the stats ('database' for a
   * database's tag); `catalog` names the database whose catalog changed (DDL), null for none.
   */
  | { readonly scope: 'tags'; readonly tags: readonly string[]; readonly tables: readonly string[] | 'database'; readonly catalog: string | null }
  /** Every entry goes (a flush, a lost upstream, a write the analysis cannot bound). */
  | { readonly scope: 'all'; readonly catalog: boolean }
  /** The entries of one statement fingerprint (an admin flush); a fill in flight may still land. */
  | { readonly scope: 'fingerprint'; readonly fingerprint: string };

/** Where a cache's invalidations go besides its own store: the fleet bus (fleet/bus.ts). */
/**
 * The prefix a context's entries have in the fleet's second tier (fleet/l2.ts): a hash of the
 * context's text, the same in every proxy (the local prefix is an id this process handed out).
 */
export function sharedContextPrefix(contextText: string): string {
  return createHash('sha256').update(contextText).digest('base64url') + '\u0001';
}

export interface InvalidationSink {
  /** Called after the local store dropped the entries, before the caller goes on (a write's ack). */
  publish(protocol: Protocol, invalidation: Invalidation): void;
}

export interface EntryMeta {
  readonly identity: StatementIdentity;
}

/** What a cache rule is matched against, in either protocol's statement info. */
export interface RuledStatement {
  /** /stats shows the rule that matched a statement through its identity. */
  readonly identity: StatementIdentity;
  readonly fingerprint: string;
  readonly shape: string;
  readonly analysis: {
    readonly tablesRead: readonly { readonly name: string }[];
    readonly tablesWritten: readonly { readonly name: string }[];
  };
}

export abstract class ResultCache<I extends RuledStatement> {
  readonly store: ResultStore<EntryMeta>;
  readonly stats: QueryStats;
  /** The fills in flight that identical misses of other sessions wait for (request coalescing). */
  readonly flights: FillFlights;
  /** Read per fill; a config reload changes it (applyConfig). */
  maxEntryBytes: number;
  private readonly rules: StatementRules<I>;
  private readonly server = new UpstreamIdentity();
  /** CDC (changes/): asked before a fill; null while no change stream is configured. */
  private changeFence: ((database: string | null) => 'cdc-down' | null) | null = null;
  /** The fleet lost its bus (suspend): nothing is stored until resume(). */
  private suspended = false;
  /** The fleet bus and/or the other workers of this proxy (workers/). */
  private sinks: InvalidationSink[] = [];
  /** The fleet's second tier in Redis (--l2 on): kept fills, asked on a miss; null without it. */
  secondTier: SecondTier | null = null;

  /** The TTL of a fill no rule gives its own (--cache-ttl); a reload changes it. */
  ttlMs: number;

  protected constructor(readonly protocol: Protocol, config: Config, metrics: Metrics) {
    this.ttlMs = config.cacheTtlMs;
    this.store = new ResultStore<EntryMeta>({
      maxBytes: config.cacheMaxBytes,
      maxEntryBytes: config.cacheMaxEntryBytes,
      defaultTtlMs: config.cacheTtlMs,
    });
    this.maxEntryBytes = config.cacheMaxEntryBytes;
    this.flights = new FillFlights(config.coalesceWaitMs, config.coalesceMaxWaiters);
    this.rules = new StatementRules<I>(config.cacheRules, (info) => ({
      fingerprint: info.fingerprint,
      shape: info.shape,
      tables: [...info.analysis.tablesRead, ...info.analysis.tablesWritten].map((t) => t.name),
    }));
    this.stats = new QueryStats(protocol, metrics);
    this.stats.observeWaiting(() => this.flights.waiting);
    this.stats.observeStore(() => {
      const c = this.store.counters();
      return { entries: c.entries, bytes: c.bytes, evictions: c.evictions, maxBytes: c.maxBytes };
    });
  }

  /**
   * A config reload: the new budget, entry limit, TTL and coalescing bounds apply to the next fills. New rules drop
   * every entry: one stored under the old rules may now be "never" or have a shorter TTL, and a
   * hit does not look at rules.
   */
  applyConfig(config: Config): void {
    this.store.setLimits({ maxBytes: config.cacheMaxBytes, maxEntryBytes: config.cacheMaxEntryBytes, defaultTtlMs: config.cacheTtlMs });
    this.maxEntryBytes = config.cacheMaxEntryBytes;
    this.ttlMs = config.cacheTtlMs;
    this.flights.setLimits(config.coalesceWaitMs, config.coalesceMaxWaiters);
    if (this.rules.replace(config.cacheRules)) this.stats.invalidated('database', this.store.invalidateAll());
  }

  /**
   * CDC (changes/): why the cache must not fill for `database` now (`cdc-down`: its change stream
   * is not up), or null. Entries of a fenced database were dropped when it was fenced and none is
   * stored until its stream is up again, so only the fill path needs to ask.
   */
  fence(database: string | null): 'cdc-down' | null {
    return this.changeFence === null ? null : this.changeFence(database);
  }

  /** What stops fills for `database` now (cache-router.ts): its change stream, the fleet's bus. */
  fences(database: string | null): FenceState {
    return { change: this.fence(database), busDown: this.suspended };
  }

  /** CDC (changes/): from now on fills ask `fence` first. */
  followChanges(fence: (database: string | null) => 'cdc-down' | null): void {
    this.changeFence = fence;
  }

  /** The cache rule for a cacheable read, evaluated once per statement shape and rules. */
  rule(info: I): RuleOutcome {
    return this.rules.get(info);
  }

  /** Changes when the server changes: a session uses the cache while it verified its server under this one. */
  get serverEpoch(): number {
    return this.server.epoch;
  }

  /**
   * A session read its server's identity. When it is not the server the entries were filled from
   * (a restart, a failover, a restore), they may have missed writes or hold another server's data:
   * every entry goes, in every database, and what was learned of the catalog with them. Returns
   * how many entries were dropped, or null when the server is the known one.
   */
  serverSeen(seen: ServerIdentity): number | null {
    return this.server.observe(seen) ? this.invalidateServer() : null;
  }

  /**
   * Drops every entry of every database, and what was learned of every database's catalog, here
   * and in the fleet; returns the entries dropped here.
   */
  protected invalidateServer(): number {
    return this.invalidateEverywhere({ scope: 'all', catalog: true });
  }

  /**
   * From now on this cache's invalidations are also published to `sink`: the other proxies of a
   * fleet, the other workers of this proxy, or both. The fleet brings its second tier (--l2 on).
   */
  joinFleet(sink: InvalidationSink, secondTier: SecondTier | null = null): void {
    this.sinks = [...this.sinks, sink];
    if (secondTier !== null) this.secondTier = secondTier;
  }

  /**
   * Drops what `invalidation` covers from this proxy's store and publishes it to the fleet, if
   * any. Writes call it before their acknowledgement is relayed. Returns the entries dropped here.
   */
  invalidateEverywhere(invalidation: Invalidation): number {
    const dropped = this.applyInvalidation(invalidation);
    for (const sink of this.sinks) sink.publish(this.stats.protocol, invalidation);
    return dropped;
  }

  /** Drops what `invalidation` covers from this proxy's store only (one that another proxy made). */
  applyInvalidation(invalidation: Invalidation): number {
    switch (invalidation.scope) {
      case 'tags': {
        if (invalidation.catalog !== null) this.catalogChanged(invalidation.catalog);
        if (invalidation.tags.length === 0) return 0;
        const dropped = this.store.invalidateTags(invalidation.tags);
        this.stats.invalidated(invalidation.tables, dropped);
        return dropped;
      }
      case 'all': {
        if (invalidation.catalog) this.catalogChanged(null);
        const dropped = this.store.invalidateAll();
        this.stats.invalidated('database', dropped);
        return dropped;
      }
      case 'fingerprint': {
        // No tag stands for a statement: find its entries, then delete (the iterator forbids
        // mutation while it runs).
        const keys: string[] = [];
        let scanned = 0;
        for (const entry of this.store.entriesByRecency()) {
          if (scanned++ === MAX_SCANNED_ENTRIES) break;
          if (entry.meta.identity.fingerprint === invalidation.fingerprint) keys.push(entry.key);
        }
        for (const key of keys) this.store.delete(key);
        return keys.length;
      }
    }
  }

  /**
   * The cache cannot know what other writers changed (a fleet member that lost its bus, or found
   * a gap in it): every entry goes and nothing is stored or served until resume(); cacheable
   * reads count as bypasses with `reason`.
   */
  suspend(reason: string): void {
    this.suspended = true;
    this.stats.invalidated('database', this.store.suspend());
    this.stats.divertMisses(reason);
  }

  /** Serves and stores again; fills sent upstream before now are refused. */
  resume(): void {
    this.suspended = false;
    this.store.resume();
    this.stats.divertMisses(null);
  }

  /** What was learned about `database`'s catalog (every database's when null) is void: DDL ran. */
  protected abstract catalogChanged(database: string | null): void;
}
