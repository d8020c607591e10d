// The Prometheus registry and every metric sidecache exports. Proxy modules get the metric objects
// from here (telemetry/ sits below proxy/, changes/, fleet/ and admin/); only the admin server
// renders them. The cache metrics are not counted here: each protocol's QueryStats counts in plain
// fields, and these metrics read them when Prometheus scrapes.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { registerChangeStreamMetrics, type ChangeStreamReading } from './change-streams.js';
import { PrecountedHistogram, type LabelledHistogram } from './duration-histogram.js';
import { OUTCOMES, type QueryStats, type StoreReading } from './query-stats.js';

export type Protocol = 'postgres' | 'mysql';

export interface Metrics {
  registry: Registry;
  clientConnections: Gauge<'protocol'>;
  upstreamConnections: Gauge<'protocol'>;
  clientConnectionsTotal: Counter<'protocol'>;
  rejectedConnections: Counter<'protocol' | 'reason'>;
  protocolErrors: Counter<'protocol' | 'reason'>;
  upstreamErrors: Counter<'protocol' | 'reason'>;
  /** Each protocol's cache statistics; QueryStats' constructor adds itself. Read by the cache metrics and /stats. */
  cacheStats: Map<Protocol, QueryStats>;
  /** The budget of client messages that arrived in part (proxy/buffer-budget.ts), set at start; read at scrape time. */
  messageBuffers: { readonly used: number; readonly limit: number } | null;
  /** The change streams followed (changes/ adds one per stream): sidecache_cdc_*, /stats and the dashboard read them. */
  changeStreams: Set<ChangeStreamReading>;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'sidecache_process_' });
  const registers = [registry];
  const cacheStats = new Map<Protocol, QueryStats>();
  registerCacheMetrics(registry, cacheStats);
  const changeStreams = new Set<ChangeStreamReading>();
  registerChangeStreamMetrics(registry, changeStreams);
  const metrics: Metrics = {
    registry,
    clientConnections: new Gauge({ name: 'sidecache_client_connections', help: 'Client connections open now', labelNames: ['protocol'], registers }),
    upstreamConnections: new Gauge({ name: 'sidecache_upstream_connections', help: 'Upstream database connections open now', labelNames: ['protocol'], registers }),
    clientConnectionsTotal: new Counter({ name: 'sidecache_client_connections_total', help: 'Client connections accepted', labelNames: ['protocol'], registers }),
    rejectedConnections: new Counter({ name: 'sidecache_rejected_connections_total', help: 'Client connections refused by a limit', labelNames: ['protocol', 'reason'], registers }),
    protocolErrors: new Counter({ name: 'sidecache_protocol_errors_total', help: 'Client connections closed for breaking the protocol', labelNames: ['protocol', 'reason'], registers }),
    upstreamErrors: new Counter({ name: 'sidecache_upstream_errors_total', help: 'Upstream connection failures', labelNames: ['protocol', 'reason'], registers }),
    cacheStats,
    messageBuffers: null,
    changeStreams,
  };
  const bufferGauge = (name: string, help: string, value: (b: NonNullable<Metrics['messageBuffers']>) => number): void => {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        if (metrics.messageBuffers !== null) this.set(value(metrics.messageBuffers));
      },
    });
  };
  bufferGauge('sidecache_buffered_message_bytes', 'Bytes held now for client messages that have arrived in part (all connections)', (b) => b.used);
  bufferGauge('sidecache_buffered_message_max_bytes', 'The limit on those bytes (--max-buffered-message-bytes)', (b) => b.limit);
  return metrics;
}

/**
 * Counters here mirror cumulative counts kept elsewhere: at each scrape, collect() resets the
 * counter and adds the current totals, so the series always equal their source.
 */
function registerCacheMetrics(registry: Registry, cacheStats: ReadonlyMap<Protocol, QueryStats>): void {
  const registers = [registry];

  const total = (name: string, help: string, value: (stats: QueryStats) => number): void => {
    new Counter({
      name,
      help,
      labelNames: ['protocol'],
      registers,
      collect() {
        this.reset();
        for (const stats of cacheStats.values()) this.inc({ protocol: stats.protocol }, value(stats));
      },
    });
  };
  total('sidecache_cache_hits_total', 'Reads answered from the cache', (s) => s.hits);
  total('sidecache_cache_misses_total', 'Cacheable reads sent upstream and offered to the cache', (s) => s.misses);
  total('sidecache_cache_writes_total', 'Writes seen (their tables are invalidated on commit)', (s) => s.writes);
  total('sidecache_invalidations_total', 'Invalidations: of the tables of a committed write, or of a whole database', (s) => s.invalidations);
  total('sidecache_invalidated_entries_total', 'Cache entries dropped by invalidations', (s) => s.invalidatedEntries);
  total('sidecache_coalesced_total', 'Misses answered from the fill of the same key another client had in flight (request coalescing; also counted as hits)', (s) => s.coalesced);

  new Gauge({
    name: 'sidecache_coalesce_waiting',
    help: 'Misses waiting now for the fill of their key another client has in flight',
    labelNames: ['protocol'],
    registers,
    collect() {
      this.reset();
      for (const stats of cacheStats.values()) this.set({ protocol: stats.protocol }, stats.coalesceWaiting);
    },
  });
  const byReason = (name: string, help: string, counts: (stats: QueryStats) => Iterable<readonly [string, number]>): void => {
    new Counter({
      name,
      help,
      labelNames: ['protocol', 'reason'],
      registers,
      collect() {
        this.reset();
        for (const stats of cacheStats.values()) {
          for (const [reason, count] of counts(stats)) this.inc({ protocol: stats.protocol, reason }, count);
        }
      },
    });
  };
  byReason('sidecache_coalesce_relayed_total', 'Misses that found a fill of their key in flight and went to the database after all, by reason',
    (s) => s.coalesceRelays());
  byReason('sidecache_cache_bypass_total', 'Statements sent upstream without consulting the cache, by reason',
    function* (s) {
      for (const [reason, { count }] of s.bypassReasons()) yield [reason, count] as const;
    });

  // The store keeps its own counts; each series reads them at scrape time.
  const storeGauge = (name: string, help: string, value: (r: StoreReading) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['protocol'],
      registers,
      collect() {
        this.reset();
        for (const stats of cacheStats.values()) {
          const reading = stats.storeReading();
          if (reading !== null) this.set({ protocol: stats.protocol }, value(reading));
        }
      },
    });
  };
  storeGauge('sidecache_cache_entries', 'Entries in the cache now', (r) => r.entries);
  storeGauge('sidecache_cache_bytes', 'Bytes charged to the cache budget now (payload plus overhead)', (r) => r.bytes);
  storeGauge('sidecache_cache_max_bytes', 'The cache budget in bytes (--cache-max-bytes)', (r) => r.maxBytes);
  new Counter({
    name: 'sidecache_evictions_total',
    help: 'Entries evicted to stay within the cache budget',
    labelNames: ['protocol'],
    registers,
    collect() {
      this.reset();
      for (const stats of cacheStats.values()) {
        const reading = stats.storeReading();
        if (reading !== null) this.inc({ protocol: stats.protocol }, reading.evictions);
      }
    },
  });

  new PrecountedHistogram(
    'sidecache_query_duration_seconds',
    'Time from a statement arriving to its answer being written, by outcome',
    function* (): Iterable<LabelledHistogram> {
      for (const stats of cacheStats.values()) {
        for (const outcome of OUTCOMES) yield { labels: { protocol: stats.protocol, outcome }, histogram: stats.durations(outcome) };
      }
    },
    registry,
  );
}
