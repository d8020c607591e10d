// The JSON behind GET /stats: the cache totals over every protocol, each protocol's own numbers,
// and the statements and tables with the most hits and misses.
import { changeStreamItems, type ChangeStreamItem } from './change-streams.js';
import type { ChangeStreamReading } from '../telemetry/change-streams.js';
import type { FleetReport } from '../fleet/fleet.js';
import type { Protocol } from '../telemetry/metrics.js';
import { ratio, top, type ProtocolStats, type QueryItem, type QueryStats, type TableItem } from '../telemetry/query-stats.js';

export const DEFAULT_TOP = 20;
export const MAX_TOP = 200;

export interface StatsReport {
  hits: number;
  misses: number;
  bypasses: number;
  writes: number;
  /** hits / (hits + misses); null before any cache lookup. */
  hitRatio: number | null;
  entries: number;
  bytes: number;
  maxBytes: number;
  evictions: number;
  invalidations: number;
  protocols: Partial<Record<Protocol, ProtocolStats>>;
  topQueries: { byHits: QueryItem[]; byMisses: QueryItem[] };
  topTables: { byHits: TableItem[]; byMisses: TableItem[] };
  /** Each change stream followed (--pg-cdc, --mysql-cdc); empty when none is configured. */
  changeStreams: ChangeStreamItem[];
  /** The fleet bus and leases (--redis); null when this proxy works alone. */
  fleet: FleetReport | null;
}

export function buildStatsReport(sources: Iterable<QueryStats>, topN: number, streams: Iterable<ChangeStreamReading> = [],
  fleet: FleetReport | null = null): StatsReport {
  const report: StatsReport = {
    hits: 0,
    misses: 0,
    bypasses: 0,
    writes: 0,
    hitRatio: null,
    entries: 0,
    bytes: 0,
    maxBytes: 0,
    evictions: 0,
    invalidations: 0,
    protocols: {},
    topQueries: { byHits: [], byMisses: [] },
    topTables: { byHits: [], byMisses: [] },
    changeStreams: changeStreamItems(streams),
    fleet,
  };
  for (const stats of sources) {
    const p = stats.snapshot();
    report.protocols[stats.protocol] = p;
    report.hits += p.hits;
    report.misses += p.misses;
    report.bypasses += p.bypasses;
    report.writes += p.writes;
    report.entries += p.entries;
    report.bytes += p.bytes;
    report.maxBytes += p.maxBytes;
    report.evictions += p.evictions;
    report.invalidations += p.invalidations;
    // The overall top n is within the union of each protocol's top n.
    report.topQueries.byHits.push(...stats.topQueries(topN, 'hits'));
    report.topQueries.byMisses.push(...stats.topQueries(topN, 'misses'));
    report.topTables.byHits.push(...stats.topTables(topN, 'hits'));
    report.topTables.byMisses.push(...stats.topTables(topN, 'misses'));
  }
  report.hitRatio = ratio(report.hits, report.misses);
  const queryName = (q: QueryItem): string => `${q.protocol} ${q.fingerprint}`;
  const tableName = (t: TableItem): string => `${t.protocol} ${t.table}`;
  report.topQueries = { byHits: top(report.topQueries.byHits, topN, 'hits', queryName), byMisses: top(report.topQueries.byMisses, topN, 'misses', queryName) };
  report.topTables = { byHits: top(report.topTables.byHits, topN, 'hits', tableName), byMisses: top(report.topTables.byMisses, topN, 'misses', tableName) };
  return report;
}
