// The table `make bench-stampede` prints (bench/stampede.ts): one row per protocol and mode. Pure.

export interface StampedeRow {
  protocol: 'postgres' | 'mysql';
  coalescing: boolean;
  /** Reads the clients completed in the window. */
  reads: number;
  /** Writes of the hot row (each one drops the entry). */
  writes: number;
  /** The database's executions of the read in the window. */
  executions: number;
  hits: number;
  misses: number;
  coalesced: number;
  /** Requests that found a fill in flight and went to the database after all, by reason. */
  relayed: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
  /** sidecache's own miss p99 over the whole run (its /stats). */
  missP99Ms: number | null;
}

const HEADER = ['protocol', 'coalescing', 'reads', 'writes', 'DB executions', 'per write', 'hits', 'misses', 'coalesced', 'relayed after waiting', 'read p50 ms', 'read p99 ms', 'miss p99 ms'];

export function stampedeTable(rows: readonly StampedeRow[]): string {
  const fmt = (n: number | null, digits = 1): string => (n === null || Number.isNaN(n) ? '–' : n.toFixed(digits));
  const lines = rows.map((r) => [
    r.protocol,
    r.coalescing ? 'on' : 'off',
    String(r.reads),
    String(r.writes),
    String(r.executions),
    r.writes === 0 ? '–' : fmt(r.executions / r.writes),
    String(r.hits),
    String(r.misses),
    String(r.coalesced),
    Object.entries(r.relayed).map(([k, v]) => `${k} ${v}`).join(', ') || '0',
    fmt(r.p50Ms, 2),
    fmt(r.p99Ms, 2),
    fmt(r.missP99Ms, 2),
  ]);
  const all = [HEADER, ...lines];
  return all.map((cells) => `| ${cells.join(' | ')} |`).join('\n').replace(/^(\|[^\n]*\n)/, (first) => first + `|${HEADER.map(() => '---').join('|')}|\n`);
}
