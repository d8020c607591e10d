// Reads sidecache's cache counters from its admin endpoint (/metrics, /stats) so e2e tests can prove
// a read was a hit, a miss or a bypass, and that writes, evictions and limits did what they promise.
// Only the samples labelled protocol="postgres" are counted.

export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The cache's view of itself at one moment; counters only grow, gauges (entries, bytes) move. */
export interface CacheCounters {
  hits: number;
  misses: number;
  /** Sum over every reason. */
  bypass: number;
  bypassByReason: Record<string, number>;
  invalidations: number;
  evictions: number;
  entries: number;
  bytes: number;
  /** Observations of sidecache_query_duration_seconds per outcome (hit, miss, bypass, write). */
  durationCountByOutcome: Record<string, number>;
}

export class MetricsUnavailableError extends Error {
  constructor(url: string, detail: string) {
    super(`GET ${url}: ${detail}`);
    this.name = 'MetricsUnavailableError';
  }
}

const PROTOCOL = 'postgres';
const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Every sample of the Prometheus text exposition at http://127.0.0.1:adminPort/metrics. */
export async function scrape(adminPort: number): Promise<MetricSample[]> {
  return parseExposition(await getText(adminPort, '/metrics'));
}

export function parseExposition(text: string): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = SAMPLE_LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, '$1');
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** Sum of the samples named `name` whose labels include `labels`. */
export function sumOf(samples: readonly MetricSample[], name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) total += s.value;
  }
  return total;
}

function byLabel(samples: readonly MetricSample[], name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) {
    if (s.name !== name || s.labels.protocol !== PROTOCOL) continue;
    const key = s.labels[label] ?? '';
    out[key] = (out[key] ?? 0) + s.value;
  }
  return out;
}

export async function cacheCounters(adminPort: number): Promise<CacheCounters> {
  const samples = await scrape(adminPort);
  const pg = { protocol: PROTOCOL };
  return {
    hits: sumOf(samples, 'sidecache_cache_hits_total', pg),
    misses: sumOf(samples, 'sidecache_cache_misses_total', pg),
    bypass: sumOf(samples, 'sidecache_cache_bypass_total', pg),
    bypassByReason: byLabel(samples, 'sidecache_cache_bypass_total', 'reason'),
    invalidations: sumOf(samples, 'sidecache_invalidations_total', pg),
    evictions: sumOf(samples, 'sidecache_evictions_total', pg),
    entries: sumOf(samples, 'sidecache_cache_entries', pg),
    bytes: sumOf(samples, 'sidecache_cache_bytes', pg),
    durationCountByOutcome: byLabel(samples, 'sidecache_query_duration_seconds_count', 'outcome'),
  };
}

/** What changed between two readings; gauges (entries, bytes) are given as their later value. */
export function counterDelta(after: CacheCounters, before: CacheCounters): CacheCounters {
  const diff = (a: Record<string, number>, b: Record<string, number>): Record<string, number> =>
    Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v - (b[k] ?? 0)]).filter(([, v]) => v !== 0));
  return {
    hits: after.hits - before.hits,
    misses: after.misses - before.misses,
    bypass: after.bypass - before.bypass,
    bypassByReason: diff(after.bypassByReason, before.bypassByReason),
    invalidations: after.invalidations - before.invalidations,
    evictions: after.evictions - before.evictions,
    entries: after.entries,
    bytes: after.bytes,
    durationCountByOutcome: diff(after.durationCountByOutcome, before.durationCountByOutcome),
  };
}

/**
 * Runs `work` and returns what it did to the counters. Each e2e file runs its own proxy and its
 * tests one after another, so the difference is exactly what `work` caused.
 */
export async function measure<T>(adminPort: number, work: () => Promise<T>): Promise<{ result: T; delta: CacheCounters }> {
  const before = await cacheCounters(adminPort);
  const result = await work();
  return { result, delta: counterDelta(await cacheCounters(adminPort), before) };
}

/** Upstream connections sidecache holds open now for `protocol` ('postgres', 'mysql'). */
export async function upstreamConnections(adminPort: number, protocol: string): Promise<number> {
  return sumOf(await scrape(adminPort), 'sidecache_upstream_connections', { protocol });
}

/**
 * Waits (`timeoutMs` at most) until sidecache holds `n` upstream connections for `protocol`: it
 * has handled the end of the ones that closed. Returns the count it saw last.
 */
export async function waitForUpstreamConnections(adminPort: number, protocol: string, n: number, timeoutMs = 5000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let count = await upstreamConnections(adminPort, protocol);
  while (count !== n && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    count = await upstreamConnections(adminPort, protocol);
  }
  return count;
}

/** GET /stats as parsed JSON (`top`: how many queries and tables it lists, the server's default when unset). */
export async function cacheStats(adminPort: number, top?: number): Promise<Record<string, unknown>> {
  return JSON.parse(await getText(adminPort, top === undefined ? '/stats' : `/stats?top=${top}`)) as Record<string, unknown>;
}

async function getText(adminPort: number, pathname: string): Promise<string> {
  const url = `http://127.0.0.1:${adminPort}${pathname}`;
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new MetricsUnavailableError(url, (err as Error).message);
  }
  const body = await res.text();
  if (res.status !== 200) throw new MetricsUnavailableError(url, `status ${res.status}: ${body.slice(0, 200)}`);
  return body;
}
