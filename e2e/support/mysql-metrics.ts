// The MySQL side's cache counters (samples labelled protocol="mysql") and the server's own
// statement counters of one connection's upstream session, so an e2e test can prove that a read
// was answered by the cache and never reached MariaDB.
import type mysql from 'mysql2/promise';
import type { RowDataPacket } from 'mysql2/promise';
import { scrape, sumOf } from './metrics.js';

export interface MySqlCacheCounters {
  hits: number;
  misses: number;
  bypass: number;
  bypassByReason: Record<string, number>;
  invalidations: number;
  entries: number;
}

const MYSQL = { protocol: 'mysql' } as const;

export async function mysqlCacheCounters(adminPort: number): Promise<MySqlCacheCounters> {
  const samples = await scrape(adminPort);
  const bypassByReason: Record<string, number> = {};
  for (const s of samples) {
    if (s.name === 'sidecache_cache_bypass_total' && s.labels.protocol === 'mysql') bypassByReason[s.labels.reason ?? ''] = s.value;
  }
  return {
    hits: sumOf(samples, 'sidecache_cache_hits_total', MYSQL),
    misses: sumOf(samples, 'sidecache_cache_misses_total', MYSQL),
    bypass: sumOf(samples, 'sidecache_cache_bypass_total', MYSQL),
    bypassByReason,
    invalidations: sumOf(samples, 'sidecache_invalidations_total', MYSQL),
    entries: sumOf(samples, 'sidecache_cache_entries', MYSQL),
  };
}

/** Runs `work` and returns what it did to the counters (gauges as their later value). */
export async function measureMySql<T>(adminPort: number, work: () => Promise<T>): Promise<{ result: T; delta: MySqlCacheCounters }> {
  const before = await mysqlCacheCounters(adminPort);
  const result = await work();
  const after = await mysqlCacheCounters(adminPort);
  const reasons: Record<string, number> = {};
  for (const [k, v] of Object.entries(after.bypassByReason)) if (v - (before.bypassByReason[k] ?? 0) !== 0) reasons[k] = v - (before.bypassByReason[k] ?? 0);
  return {
    result,
    delta: {
      hits: after.hits - before.hits, misses: after.misses - before.misses, bypass: after.bypass - before.bypass,
      bypassByReason: reasons, invalidations: after.invalidations - before.invalidations, entries: after.entries,
    },
  };
}

/**
 * A statement counter of the connection's own server session (`Com_select`, `Com_stmt_execute`),
 * read with SHOW SESSION STATUS through the same connection: SHOW is never cached and does not
 * count itself, so the difference across some work is what the server executed for it.
 */
export async function sessionCounter(c: mysql.Connection, name: string): Promise<number> {
  const [rows] = await c.query<RowDataPacket[]>(`SHOW SESSION STATUS LIKE '${name}'`);
  return Number(rows[0]!.Value);
}
