// What the change streams (changes/) record of themselves: their state per protocol and database,
// and the sidecache_cdc_* series read from it. The streams keep these readings up to date; /metrics
// reads them when Prometheus scrapes, and admin/change-streams.ts shapes them for /stats and the
// dashboard.
import { Counter, Gauge, type Registry } from 'prom-client';
import { PrecountedHistogram, type DurationHistogram } from './duration-histogram.js';
import type { Protocol } from './metrics.js';

/**
 * Upper bounds of the lag histogram in seconds: a stream keeping up answers in a few ms, one
 * falling behind in seconds; the goal sits at 50 ms, so the buckets are fine around it.
 */
export const LAG_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60,
]);

/**
 * `starting`: being connected (first use, or after a loss); `up`: streaming, the cache answers for
 * its database; `down`: lost or refused, retried after a back-off. Only `up` lets the cache serve.
 */
export type ChangeStreamState = 'starting' | 'up' | 'down';

export interface ChangeStreamReading {
  readonly protocol: Protocol;
  /** The database followed; `*` for MySQL, whose one binlog stream covers every database. */
  readonly database: string;
  readonly state: ChangeStreamState;
  /** When the state last changed (ms since 1970). */
  readonly sinceMs: number;
  /** Why the stream last went down or could not start; null before any failure. */
  readonly lastError: string | null;
  /** Where the stream is: an LSN, or a binlog file:position and GTID position. */
  readonly position: string | null;
  /** Messages or events decoded. */
  readonly events: number;
  /** Invalidations applied from the stream (a commit that wrote tables, a DDL, a truncate). */
  readonly invalidations: number;
  /** Times the stream went down or failed to start. */
  readonly failures: number;
  /** From a change's commit on the server to its invalidation here. */
  readonly lag: DurationHistogram;
  readonly lastLagMs: number | null;
}

/** The sidecache_cdc_* series, read from `streams` at each scrape. */
export function registerChangeStreamMetrics(registry: Registry, streams: ReadonlySet<ChangeStreamReading>): void {
  const registers = [registry];
  const labelNames = ['protocol', 'database'] as const;
  const each = (set: (labels: { protocol: string; database: string }, s: ChangeStreamReading) => void): void => {
    for (const s of streams) set({ protocol: s.protocol, database: s.database }, s);
  };
  new Gauge({
    name: 'sidecache_cdc_connected',
    help: 'Whether the change stream of a database is up (1) and the cache answers for it, or not (0: its reads bypass the cache)',
    labelNames,
    registers,
    collect() {
      this.reset();
      each((labels, s) => this.set(labels, s.state === 'up' ? 1 : 0));
    },
  });
  const total = (name: string, help: string, value: (s: ChangeStreamReading) => number): void => {
    new Counter({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        each((labels, s) => this.inc(labels, value(s)));
      },
    });
  };
  total('sidecache_cdc_events_total', 'Change stream messages (pgoutput) or events (binlog) decoded', (s) => s.events);
  total('sidecache_cdc_invalidations_total', 'Invalidations applied from a change stream', (s) => s.invalidations);
  total('sidecache_cdc_failures_total', 'Times a change stream went down or could not start', (s) => s.failures);
  new PrecountedHistogram(
    'sidecache_cdc_lag_seconds',
    'From a change\'s commit on the server to its invalidation in sidecache (PostgreSQL: the commit timestamp; MySQL: probes of the binlog position)',
    function* () {
      for (const s of streams) yield { labels: { protocol: s.protocol, database: s.database }, histogram: s.lag };
    },
    registry,
  );
}
