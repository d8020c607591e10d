// /stats of a proxy with several workers: each worker's report (admin/stats-report.ts) summed into
// one, plus a line per worker. Counts add up exactly. Latency quantiles cannot be merged from
// summaries: the merged p50/p99 is the largest of the workers' (an upper estimate), the mean is
// exact. The top lists are the union of each worker's top N re-ranked: a statement just outside
// every worker's top N may be missing though its sum would rank it.
import type { Protocol } from '../telemetry/metrics.js';
import { OUTCOMES, ratio, top, type LatencySummary, type ProtocolStats, type QueryItem, type TableItem } from '../telemetry/query-stats.js';
import type { StatsReport } from '../admin/stats-report.js';
import type { WorkerStats } from './messages.js';

/** One worker's share, to see how the primary spread the connections. */
export interface WorkerSummary {
  slot: number;
  pid: number;
  hits: number;
  misses: number;
  bypasses: number;
  writes: number;
  entries: number;
  bytes: number;
}

export interface WholeStatsReport extends StatsReport {
  workers: WorkerSummary[];
}

const TOTALS = ['hits', 'misses', 'bypasses', 'writes', 'entries', 'bytes', 'maxBytes', 'evictions', 'invalidations'] as const;
const PROTOCOL_TOTALS = ['hits', 'misses', 'bypasses', 'writes', 'invalidations', 'databaseInvalidations', 'invalidatedEntries',
  'entries', 'bytes', 'maxBytes', 'evictions', 'coalesced', 'coalesceWaiting'] as const;

export function mergeStatsReports(all: readonly WorkerStats[], topN: number): WholeStatsReport {
  const sorted = [...all].sort((a, b) => a.slot - b.slot);
  const reports = sorted.map((w) => w.report);
  const merged: WholeStatsReport = {
    hits: 0, misses: 0, bypasses: 0, writes: 0, hitRatio: null, entries: 0, bytes: 0, maxBytes: 0, evictions: 0, invalidations: 0,
    protocols: {},
    topQueries: { byHits: [], byMisses: [] },
    topTables: { byHits: [], byMisses: [] },
    changeStreams: reports.flatMap((r) => r.changeStreams),
    // Each worker is a member of the fleet; the first one's view stands for the proxy.
    fleet: reports.find((r) => r.fleet !== null)?.fleet ?? null,
    workers: sorted.map(({ slot, pid, report: r }) => ({ slot, pid, hits: r.hits, misses: r.misses, bypasses: r.bypasses, writes: r.writes, entries: r.entries, bytes: r.bytes })),
  };
  for (const r of reports) for (const k of TOTALS) merged[k] += r[k];
  merged.hitRatio = ratio(merged.hits, merged.misses);
  for (const protocol of ['postgres', 'mysql'] as const satisfies readonly Protocol[]) {
    const parts = reports.map((r) => r.protocols[protocol]).filter((p): p is ProtocolStats => p !== undefined);
    if (parts.length > 0) merged.protocols[protocol] = mergeProtocol(parts);
  }
  const queries = mergeItems(reports.map((r) => [...r.topQueries.byHits, ...r.topQueries.byMisses]), (q) => `${q.protocol} ${q.fingerprint}`, addQuery);
  const tables = mergeItems(reports.map((r) => [...r.topTables.byHits, ...r.topTables.byMisses]), (t) => `${t.protocol} ${t.table}`, addTable);
  const queryName = (q: QueryItem): string => `${q.protocol} ${q.fingerprint}`;
  const tableName = (t: TableItem): string => `${t.protocol} ${t.table}`;
  merged.topQueries = { byHits: top(queries, topN, 'hits', queryName), byMisses: top(queries, topN, 'misses', queryName) };
  merged.topTables = { byHits: top(tables, topN, 'hits', tableName), byMisses: top(tables, topN, 'misses', tableName) };
  return merged;
}

function mergeProtocol(parts: readonly ProtocolStats[]): ProtocolStats {
  const p: ProtocolStats = structuredClone(parts[0]!);
  for (const other of parts.slice(1)) {
    for (const k of PROTOCOL_TOTALS) p[k] += other[k];
    for (const [reason, n] of Object.entries(other.bypassReasons)) p.bypassReasons[reason] = (p.bypassReasons[reason] ?? 0) + n;
    for (const [reason, n] of Object.entries(other.coalesceRelayed)) p.coalesceRelayed[reason] = (p.coalesceRelayed[reason] ?? 0) + n;
    // The same statement counts once per worker that saw it: the largest count is the floor.
    p.fingerprints = Math.max(p.fingerprints, other.fingerprints);
    for (const outcome of OUTCOMES) p.latencyMs[outcome] = mergeLatency(p.latencyMs[outcome], other.latencyMs[outcome]);
  }
  p.hitRatio = ratio(p.hits, p.misses);
  return p;
}

function mergeLatency(a: LatencySummary, b: LatencySummary): LatencySummary {
  const count = a.count + b.count;
  return {
    count,
    meanMs: count === 0 ? null : ((a.meanMs ?? 0) * a.count + (b.meanMs ?? 0) * b.count) / count,
    p50Ms: maxOf(a.p50Ms, b.p50Ms),
    p99Ms: maxOf(a.p99Ms, b.p99Ms),
  };
}

function maxOf(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.max(a, b);
}

/**
 * Items by name, each name's counts summed over the workers. `perWorker` holds each worker's
 * items; one worker may list an item in both of its top lists, and it counts once.
 */
function mergeItems<T extends { hits: number; misses: number }>(perWorker: readonly (readonly T[])[], name: (item: T) => string, add: (into: T, item: T) => void): T[] {
  const merged = new Map<string, T>();
  for (const items of perWorker) {
    const own = new Map<string, T>();
    for (const item of items) own.set(name(item), item);
    for (const [key, item] of own) {
      const known = merged.get(key);
      if (known === undefined) merged.set(key, structuredClone(item));
      else add(known, item);
    }
  }
  return [...merged.values()];
}

function addQuery(into: QueryItem, q: QueryItem): void {
  const counts = { hit: [into.hits, q.hits], miss: [into.misses, q.misses], bypass: [into.bypasses, q.bypasses], write: [into.writes, q.writes] } as const;
  for (const outcome of OUTCOMES) {
    const [n1, n2] = counts[outcome];
    const m1 = into.meanMs[outcome];
    const m2 = q.meanMs[outcome];
    into.meanMs[outcome] = n1 + n2 === 0 ? null : ((m1 ?? 0) * n1 + (m2 ?? 0) * n2) / (n1 + n2);
  }
  into.hits += q.hits;
  into.misses += q.misses;
  into.bypasses += q.bypasses;
  into.writes += q.writes;
  into.hitRatio = ratio(into.hits, into.misses);
}

function addTable(into: TableItem, t: TableItem): void {
  into.hits += t.hits;
  into.misses += t.misses;
  into.bypasses += t.bypasses;
  into.writes += t.writes;
  into.invalidations += t.invalidations;
  into.hitRatio = ratio(into.hits, into.misses);
}
