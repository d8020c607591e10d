// What the PostgreSQL and MySQL cache services share: the result store, the query stats, the
// cache rules, config reloads and which server the entries came from (a restart or failover drops
// them). Each protocol's cache extends it with its own statement analysis, contexts and invalidation.
import type { Metrics, Protocol } from '../admin/metrics.js';
import { QueryStats, type StatementIdentity } from '../admin/query-stats.js';
import { ResultStore } from '../cache/store.js';
import { StatementRules, type RuleOutcome } from '../config/rules.js';
import type { Config } from '../config/settings.js';
import { UpstreamIdentity, type ServerIdentity } from './upstream-identity.js';

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
  /** Read per fill; a config reload changes it (applyConfig). */
  maxEntryBytes: number;
  private readonly rules: StatementRules<I>;
  private readonly server = new UpstreamIdentity();
  /** CDC (changes/): asked before a fill; null while no change stream is configured. */
  private changeFence: ((database: string | null) => string | null) | null = null;

  protected constructor(protocol: Protocol, config: Config, metrics: Metrics) {
    this.store = new ResultStore<EntryMeta>({
      maxBytes: config.cacheMaxBytes,
      maxEntryBytes: config.cacheMaxEntryBytes,
      defaultTtlMs: config.cacheTtlMs,
    });
    this.maxEntryBytes = config.cacheMaxEntryBytes;
    this.rules = new StatementRules<I>(config.cacheRules, (info) => ({
      fingerprint: info.fingerprint,
      shape: info.shape,
      tables: [...info.analysis.tablesRead, ...info.analysis.tablesWritten].map((t) => t.name),
    }));
    this.stats = new QueryStats(protocol, metrics);
    this.stats.observeStore(() => {
      const c = this.store.counters();
      return { entries: c.entries, bytes: c.bytes, evictions: c.evictions, maxBytes: c.maxBytes };
    });
  }

  /**
   * A config reload: the new budget, entry limit and TTL apply to the next fills. New rules drop
   * every entry: one stored under the old rules may now be "never" or have a shorter TTL, and a
   * hit does not look at rules.
   */
  applyConfig(config: Config): void {
    this.store.setLimits({ maxBytes: config.cacheMaxBytes, maxEntryBytes: config.cacheMaxEntryBytes, defaultTtlMs: config.cacheTtlMs });
    this.maxEntryBytes = config.cacheMaxEntryBytes;
    if (this.rules.replace(config.cacheRules)) this.stats.invalidated('database', this.store.invalidateAll());
  }

  /**
   * CDC (changes/): why the cache must not fill for `database` now (`cdc-down`: its change stream
   * is not up), or null. Entries of a fenced database were dropped when it was fenced and none is
   * stored until its stream is up again, so only the fill path needs to ask.
   */
  fence(database: string | null): string | null {
    return this.changeFence === null ? null : this.changeFence(database);
  }

  /** CDC (changes/): from now on fills ask `fence` first. */
  followChanges(fence: (database: string | null) => string | null): void {
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

  /** Drops every entry of every database and what was learned of the server; returns the entries dropped. */
  protected invalidateServer(): number {
    this.forgetServer();
    const dropped = this.store.invalidateAll();
    this.stats.invalidated('database', dropped);
    return dropped;
  }

  /** Forgets what was learned of the server's catalog and of its sessions' startup state. */
  protected abstract forgetServer(): void;
}
