// What one protocol's cache did, per statement fingerprint and in total: the numbers behind the
// cache metrics and /stats. The session calls identify() once per distinct statement and keeps the
// identity with its cached decision, so counting a hit is a few field increments on objects it
// already holds: no Map lookup, no label hashing, no allocation. prom-client reads the totals at
// scrape time (telemetry/metrics.ts).
import { createHash } from 'node:crypto';
import { DurationHistogram } from './duration-histogram.js';
import type { Metrics, Protocol } from './metrics.js';

export type Outcome = 'hit' | 'miss' | 'bypass' | 'write';
export const OUTCOMES: readonly Outcome[] = Object.freeze(['hit', 'miss', 'bypass', 'write']);

/**
 * A statement's fingerprint: the first 16 hex digits of the sha1 of its shape (its text with the
 * literals emptied: invalidation/pg-shape.ts, invalidation/mysql-shape.ts). Both protocols spell it
 * so, and /api/flush and the cache rules match it.
 */
export function shapeFingerprint(shape: string): string {
  return createHash('sha1').update(shape).digest('hex').slice(0, 16);
}

/** Longest statement text kept as a fingerprint's sample. */
export const SAMPLE_CHARS = 300;
export const DEFAULT_MAX_FINGERPRINTS = 5000;
/** Distinct tables whose invalidations are counted one by one; more are counted in the totals only. */
export const DEFAULT_MAX_TABLES = 5000;
/** Distinct bypass reasons (each one a Prometheus series); more are counted under OVERFLOW_REASON. */
export const MAX_BYPASS_REASONS = 32;
export const OVERFLOW_REASON = 'other';
/** The fingerprint of the identity shared by all statements beyond maxFingerprints. */
export const OVERFLOW_FINGERPRINT = 'other';

/**
 * One distinct statement (by fingerprint) and what happened to it. Created by QueryStats.identify;
 * the counters are QueryStats' to update.
 */
export class StatementIdentity {
  hits = 0;
  misses = 0;
  bypasses = 0;
  writes = 0;
  hitSeconds = 0;
  missSeconds = 0;
  bypassSeconds = 0;
  writeSeconds = 0;
  /** The cache rule (`rules[N]` of the config) that last matched it at a fill; null for none. */
  rule: string | null = null;

  constructor(
    /**
     * shapeFingerprint() of the statement's shape, so texts differing only in literal values
     * share one; or OVERFLOW_FINGERPRINT.
     */
    readonly fingerprint: string,
    /**
     * The text the protocol gives for the fingerprint (MySQL: its shape with each literal shown as
     * `?`; PostgreSQL: the first text seen), whitespace collapsed, at most SAMPLE_CHARS.
     */
    readonly sample: string,
    /** Tables the statement reads or writes, as the caller named them ("schema.table"). */
    readonly tables: readonly string[],
  ) {}
}

export interface StoreReading {
  entries: number;
  bytes: number;
  evictions: number;
  maxBytes: number;
}

export interface QueryStatsOptions {
  /** Distinct fingerprints tracked; later ones share one "other" identity. Default 5000. */
  maxFingerprints?: number;
  /** Distinct tables whose invalidations are counted per table. Default 5000. */
  maxTables?: number;
}

export interface LatencySummary {
  count: number;
  meanMs: number | null;
  /** Estimated from the histogram buckets. */
  p50Ms: number | null;
  p99Ms: number | null;
}

/** What /stats shows for one protocol. hitRatio = hits / (hits + misses), null before any lookup. */
export interface ProtocolStats {
  hits: number;
  misses: number;
  bypasses: number;
  bypassReasons: Record<string, number>;
  writes: number;
  hitRatio: number | null;
  invalidations: number;
  databaseInvalidations: number;
  invalidatedEntries: number;
  entries: number;
  bytes: number;
  maxBytes: number;
  evictions: number;
  fingerprints: number;
  latencyMs: Record<Outcome, LatencySummary>;
  /** Misses answered from the fill of the same key another client had in flight (counted as hits too). */
  coalesced: number;
  /** Misses that could have waited for such a fill, or did, and went to the database: by reason (CoalesceRelay). */
  coalesceRelayed: Record<string, number>;
  /** Misses waiting now for a fill of their key. */
  coalesceWaiting: number;
}

/**
 * Why a miss that found a fill of its key in flight went to the database after all: the fill was
 * not stored (a write made it stale, an error, too large), the wait bound passed, the entry was
 * gone when the waiter was taken up, the client sent something else meanwhile, or the fill had its
 * most waiters already. The `reason` label of sidecache_coalesce_relayed_total.
 */
export type CoalesceRelay = 'not-stored' | 'timeout' | 'gone' | 'interrupted' | 'waiters-full';

export interface QueryItem {
  protocol: Protocol;
  fingerprint: string;
  sample: string;
  tables: readonly string[];
  /** The cache rule that matched (`rules[N]`), null when none did. */
  rule: string | null;
  hits: number;
  misses: number;
  bypasses: number;
  writes: number;
  hitRatio: number | null;
  meanMs: Record<Outcome, number | null>;
}

export interface TableItem {
  protocol: Protocol;
  table: string;
  hits: number;
  misses: number;
  bypasses: number;
  writes: number;
  hitRatio: number | null;
  invalidations: number;
}

export type TopOrder = 'hits' | 'misses';

/** Who sent a statement: the client's address and login, as the connection log names them. */
export interface SessionLabel {
  readonly remote: string;
  readonly user: string | null;
  readonly database: string | null;
}

/** The session a statement came from; its label is read only when the statement is logged as slow. */
export interface StatementSource {
  readonly label: SessionLabel;
}

/** Where QueryStats sends the statements at or over the slow-query threshold (telemetry/slow-query-log.ts). */
export interface SlowStatementSink {
  slow(protocol: Protocol, outcome: Outcome, id: StatementIdentity | null, bypassReason: string | null, seconds: number, source: StatementSource | undefined): void;
}

/** A second QueryStats for a protocol would publish its Prometheus series twice. */
export class DuplicateQueryStatsError extends Error {
  override name = 'DuplicateQueryStatsError';
  constructor(readonly protocol: Protocol) {
    super(`query statistics for ${protocol} already exist in this Metrics`);
  }
}

interface ReasonCount {
  count: number;
}

export class QueryStats {
  private readonly identities = new Map<string, StatementIdentity>();
  private readonly other = new StatementIdentity(OVERFLOW_FINGERPRINT, '(statements beyond the fingerprint limit)', []);
  private readonly maxFingerprints: number;
  private readonly maxTables: number;

  private hitCount = 0;
  private missCount = 0;
  private bypassCount = 0;
  private writeCount = 0;
  private invalidationCount = 0;
  private databaseInvalidationCount = 0;
  private invalidatedEntryCount = 0;
  private readonly hitDurations = new DurationHistogram();
  private readonly missDurations = new DurationHistogram();
  private readonly bypassDurations = new DurationHistogram();
  private readonly writeDurations = new DurationHistogram();
  private readonly bypassByReason = new Map<string, ReasonCount>();
  private coalescedCount = 0;
  private readonly coalesceRelayedByReason = new Map<CoalesceRelay, number>();
  private readWaiting: () => number = () => 0;
  private readonly invalidationsByTable = new Map<string, number>();
  private readStore: (() => StoreReading) | null = null;
  /** Infinity while the slow-query log is off, so a statement under it costs one comparison. */
  private slowSeconds = Infinity;
  private slowSink: SlowStatementSink | null = null;
  /** Set while the store takes no fills (a fleet member fenced off its bus): misses count as bypasses. */
  private missesDivertedTo: string | null = null;

  /** Registers itself in `metrics`, where the Prometheus metrics and /stats find it. */
  constructor(
    readonly protocol: Protocol,
    metrics: Metrics,
    options: QueryStatsOptions = {},
  ) {
    this.maxFingerprints = options.maxFingerprints ?? DEFAULT_MAX_FINGERPRINTS;
    this.maxTables = options.maxTables ?? DEFAULT_MAX_TABLES;
    if (metrics.cacheStats.has(protocol)) throw new DuplicateQueryStatsError(protocol);
    metrics.cacheStats.set(protocol, this);
  }

  /** The identity for a fingerprint, created on first use; past maxFingerprints, the shared "other". */
  identify(fingerprint: string, text: string, tables: readonly string[]): StatementIdentity {
    const known = this.identities.get(fingerprint);
    if (known !== undefined) return known;
    if (this.identities.size >= this.maxFingerprints) return this.other;
    const identity = new StatementIdentity(fingerprint, sampleOf(text), Object.freeze([...tables]));
    this.identities.set(fingerprint, identity);
    return identity;
  }

  /** Statements taking at least `thresholdMs` are passed to `sink`; 0 (or a null sink) turns it off. */
  reportSlow(sink: SlowStatementSink | null, thresholdMs: number): void {
    this.slowSink = sink;
    this.slowSeconds = sink === null || thresholdMs <= 0 ? Infinity : thresholdMs / 1000;
  }

  hit(id: StatementIdentity, seconds: number, source?: StatementSource): void {
    id.hits++;
    id.hitSeconds += seconds;
    this.hitCount++;
    this.hitDurations.observe(seconds);
    if (seconds >= this.slowSeconds) this.slowSink!.slow(this.protocol, 'hit', id, null, seconds, source);
  }

  miss(id: StatementIdentity, seconds: number, source?: StatementSource): void {
    if (this.missesDivertedTo !== null) {
      this.bypass(id, this.missesDivertedTo, seconds, source);
      return;
    }
    id.misses++;
    id.missSeconds += seconds;
    this.missCount++;
    this.missDurations.observe(seconds);
    if (seconds >= this.slowSeconds) this.slowSink!.slow(this.protocol, 'miss', id, null, seconds, source);
  }

  /** A statement sent upstream without consulting the cache; `id` null when it has no fingerprint. */
  bypass(id: StatementIdentity | null, reason: string, seconds: number, source?: StatementSource): void {
    if (id !== null) {
      id.bypasses++;
      id.bypassSeconds += seconds;
    }
    this.bypassCount++;
    this.bypassDurations.observe(seconds);
    this.reasonCount(reason).count++;
    if (seconds >= this.slowSeconds) this.slowSink!.slow(this.protocol, 'bypass', id, reason, seconds, source);
  }

  write(id: StatementIdentity | null, seconds: number, source?: StatementSource): void {
    if (id !== null) {
      id.writes++;
      id.writeSeconds += seconds;
    }
    this.writeCount++;
    this.writeDurations.observe(seconds);
    if (seconds >= this.slowSeconds) this.slowSink!.slow(this.protocol, 'write', id, null, seconds, source);
  }

  /** A miss was answered from the fill of its key another client had in flight (its hit is counted apart). */
  coalescedMiss(): void {
    this.coalescedCount++;
  }

  /** A miss that found a fill of its key in flight went to the database after all. */
  coalesceRelay(reason: CoalesceRelay): void {
    this.coalesceRelayedByReason.set(reason, (this.coalesceRelayedByReason.get(reason) ?? 0) + 1);
  }

  /** Binds the gauge of misses waiting now for a fill (read at scrape time and by /stats). */
  observeWaiting(read: () => number): void {
    this.readWaiting = read;
  }

  get coalesceWaiting(): number {
    return this.readWaiting();
  }

  get coalesced(): number {
    return this.coalescedCount;
  }

  coalesceRelays(): ReadonlyMap<CoalesceRelay, number> {
    return this.coalesceRelayedByReason;
  }

  /**
   * While the cache can neither serve nor store (ResultCache.suspend), a cacheable read sent
   * upstream is no miss: it counts as a bypass with `reason`. null ends that.
   */
  divertMisses(reason: string | null): void {
    this.missesDivertedTo = reason;
  }

  /** One invalidation: of the named tables, or of a whole database (DDL, statements not understood). */
  invalidated(tables: readonly string[] | 'database', entriesDropped: number): void {
    this.invalidationCount++;
    this.invalidatedEntryCount += entriesDropped;
    if (tables === 'database') {
      this.databaseInvalidationCount++;
      return;
    }
    for (let i = 0; i < tables.length; i++) {
      const table = tables[i]!;
      const count = this.invalidationsByTable.get(table);
      if (count !== undefined) this.invalidationsByTable.set(table, count + 1);
      else if (this.invalidationsByTable.size < this.maxTables) this.invalidationsByTable.set(table, 1);
    }
  }

  /** Binds the store's gauges: `read` is called at scrape time and by /stats, never per query. */
  observeStore(read: () => StoreReading): void {
    this.readStore = read;
  }

  get hits(): number {
    return this.hitCount;
  }
  get misses(): number {
    return this.missCount;
  }
  get bypasses(): number {
    return this.bypassCount;
  }
  get writes(): number {
    return this.writeCount;
  }
  get invalidations(): number {
    return this.invalidationCount;
  }
  get invalidatedEntries(): number {
    return this.invalidatedEntryCount;
  }

  /** null until observeStore() is called. */
  storeReading(): StoreReading | null {
    return this.readStore === null ? null : this.readStore();
  }

  bypassReasons(): ReadonlyMap<string, { readonly count: number }> {
    return this.bypassByReason;
  }

  durations(outcome: Outcome): DurationHistogram {
    switch (outcome) {
      case 'hit':
        return this.hitDurations;
      case 'miss':
        return this.missDurations;
      case 'bypass':
        return this.bypassDurations;
      case 'write':
        return this.writeDurations;
    }
  }

  snapshot(): ProtocolStats {
    const store = this.storeReading();
    const latencyMs = {} as Record<Outcome, LatencySummary>;
    for (const outcome of OUTCOMES) {
      const h = this.durations(outcome);
      latencyMs[outcome] = { count: h.count, meanMs: h.meanMs(), p50Ms: h.quantileMs(0.5), p99Ms: h.quantileMs(0.99) };
    }
    const bypassReasons: Record<string, number> = {};
    for (const [reason, { count }] of this.bypassByReason) bypassReasons[reason] = count;
    return {
      hits: this.hitCount,
      misses: this.missCount,
      bypasses: this.bypassCount,
      bypassReasons,
      writes: this.writeCount,
      hitRatio: ratio(this.hitCount, this.missCount),
      invalidations: this.invalidationCount,
      databaseInvalidations: this.databaseInvalidationCount,
      invalidatedEntries: this.invalidatedEntryCount,
      entries: store?.entries ?? 0,
      bytes: store?.bytes ?? 0,
      maxBytes: store?.maxBytes ?? 0,
      evictions: store?.evictions ?? 0,
      fingerprints: this.identities.size,
      latencyMs,
      coalesced: this.coalescedCount,
      coalesceRelayed: Object.fromEntries(this.coalesceRelayedByReason),
      coalesceWaiting: this.readWaiting(),
    };
  }

  /** The `n` statements with the most hits (or misses), leaving out those with none. */
  topQueries(n: number, by: TopOrder): QueryItem[] {
    const all = this.other.hits + this.other.misses > 0 ? [...this.identities.values(), this.other] : [...this.identities.values()];
    return top(all, n, by, (id) => id.fingerprint).map((id) => this.queryItem(id));
  }

  /** The `n` tables whose statements had the most hits (or misses), summed over those statements. */
  topTables(n: number, by: TopOrder): TableItem[] {
    const byTable = new Map<string, TableItem>();
    for (const id of this.identities.values()) {
      for (const table of id.tables) {
        let item = byTable.get(table);
        if (item === undefined) {
          item = { protocol: this.protocol, table, hits: 0, misses: 0, bypasses: 0, writes: 0, hitRatio: null, invalidations: this.invalidationsByTable.get(table) ?? 0 };
          byTable.set(table, item);
        }
        item.hits += id.hits;
        item.misses += id.misses;
        item.bypasses += id.bypasses;
        item.writes += id.writes;
      }
    }
    const chosen = top([...byTable.values()], n, by, (item) => item.table);
    for (const item of chosen) item.hitRatio = ratio(item.hits, item.misses);
    return chosen;
  }

  private queryItem(id: StatementIdentity): QueryItem {
    return {
      protocol: this.protocol,
      fingerprint: id.fingerprint,
      sample: id.sample,
      tables: id.tables,
      rule: id.rule,
      hits: id.hits,
      misses: id.misses,
      bypasses: id.bypasses,
      writes: id.writes,
      hitRatio: ratio(id.hits, id.misses),
      meanMs: {
        hit: meanMs(id.hitSeconds, id.hits),
        miss: meanMs(id.missSeconds, id.misses),
        bypass: meanMs(id.bypassSeconds, id.bypasses),
        write: meanMs(id.writeSeconds, id.writes),
      },
    };
  }

  private reasonCount(reason: string): ReasonCount {
    let counter = this.bypassByReason.get(reason);
    if (counter === undefined) {
      // A caller passing unbounded reasons (e.g. error messages) must not create unbounded series.
      const key = this.bypassByReason.size < MAX_BYPASS_REASONS ? reason : OVERFLOW_REASON;
      counter = this.bypassByReason.get(key) ?? { count: 0 };
      this.bypassByReason.set(key, counter);
    }
    return counter;
  }
}

/** hits / (hits + misses): the share of cache lookups the cache answered; null before any lookup. */
export function ratio(hits: number, misses: number): number | null {
  const lookups = hits + misses;
  return lookups === 0 ? null : hits / lookups;
}

/**
 * Most first by `by`, then by the other of hits/misses, then by name so equal counts list in a
 * stable order. Items with zero of `by` are left out.
 */
export function top<T extends { hits: number; misses: number }>(items: T[], n: number, by: TopOrder, name: (item: T) => string): T[] {
  const other: TopOrder = by === 'hits' ? 'misses' : 'hits';
  return items
    .filter((item) => item[by] > 0)
    .sort((a, b) => b[by] - a[by] || b[other] - a[other] || (name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : 0))
    .slice(0, n);
}

function meanMs(seconds: number, count: number): number | null {
  return count === 0 ? null : (seconds / count) * 1000;
}

/**
 * Whitespace collapsed and cut to SAMPLE_CHARS, as a fresh string: V8 may keep a slice as a view
 * into its parent, and the parent can be a 64 KiB statement the sample must not keep alive.
 */
function sampleOf(text: string): string {
  const head = text.slice(0, SAMPLE_CHARS * 4).replace(/\s+/g, ' ').trim();
  const cut = head.length > SAMPLE_CHARS ? `${head.slice(0, SAMPLE_CHARS - 1)}…` : head;
  return Buffer.from(cut, 'utf8').toString('utf8');
}
