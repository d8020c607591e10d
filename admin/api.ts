// The admin HTTP API under /api/: top statements, cached tables, flushes and the effective config,
// as JSON. The admin server routes /api/* here after checking the token (see `tokenMatches`).
// Documented with curl examples in docs/admin-api.md.
import { createHash, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import type { CacheEntry, ResultStore } from '../cache/store.js';
import { chargedBytes, MAX_SCANNED_ENTRIES } from '../cache/store.js';
import { databaseTag, tableTag } from '../cache/tags.js';
import type { RedisTarget } from '../config/redis-target.js';
import type { ReloadReport } from '../config/reload.js';
import type { Invalidation } from '../proxy/result-cache.js';
import { ConfigError, type CdcUrl, type Config } from '../config/settings.js';
import { declaresJson } from './browser-guard.js';
import type { Protocol } from '../telemetry/metrics.js';
import { top, type QueryItem, type QueryStats, type StatementIdentity, type TableItem, type TopOrder } from '../telemetry/query-stats.js';
import { DEFAULT_TOP, MAX_TOP } from './stats-report.js';

/** What the API needs of one protocol's cache service (PgCache and MySqlCache both fit). */
export interface CachedResults {
  readonly store: ResultStore<{ readonly identity: StatementIdentity }>;
  readonly stats: QueryStats;
  /** Drops the entries here and, in a fleet, on every other proxy too (proxy/result-cache.ts). */
  invalidateEverywhere(invalidation: Invalidation): number;
}

/** Largest request body accepted; a flush request is a few dozen bytes. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Rows of /api/tables. */
export const MAX_TABLE_ROWS = 1000;
const PROTOCOLS: readonly Protocol[] = ['postgres', 'mysql'];
const REDACTED = '(redacted)';

/** A request the API refuses, with the HTTP status and a message for the operator. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/** Does the request's `Authorization: Bearer <token>` match? Compared in constant time. */
export function tokenMatches(authorization: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(authorization ?? '');
  // Hashing first gives equal lengths, so timingSafeEqual reveals neither content nor length.
  const given = createHash('sha256').update(m ? m[1]!.trim() : '').digest();
  const wanted = createHash('sha256').update(token).digest();
  return m !== null && timingSafeEqual(given, wanted);
}

export type FlushRequest =
  | { kind: 'all'; protocol: Protocol | null }
  | { kind: 'table'; protocol: Protocol | null; database: string; table: string }
  | { kind: 'database'; protocol: Protocol | null; database: string }
  | { kind: 'fingerprint'; protocol: Protocol | null; fingerprint: string };

const FLUSH_KEYS = new Set(['all', 'table', 'database', 'fingerprint', 'protocol']);
const FLUSH_USAGE = 'send {"all":true}, {"database":"db","table":"name"}, {"database":"db"} or {"fingerprint":"..."}, each with an optional "protocol"';

/** The body of POST /api/flush, validated; throws ApiError 400 naming what is wrong. */
export function parseFlushRequest(body: unknown): FlushRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest(`expected a JSON object: ${FLUSH_USAGE}`);
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b)) if (!FLUSH_KEYS.has(key)) throw badRequest(`unknown field "${key}": ${FLUSH_USAGE}`);
  const protocol = b.protocol === undefined ? null : parseProtocol(b.protocol);
  const text = (key: string): string | undefined => {
    const v = b[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v === '') throw badRequest(`"${key}" must be a non-empty string`);
    return v;
  };
  const table = text('table');
  const database = text('database');
  const fingerprint = text('fingerprint');
  if (b.all !== undefined && b.all !== true) throw badRequest('"all" must be true');
  const chosen = [b.all === true, fingerprint !== undefined, database !== undefined || table !== undefined].filter(Boolean).length;
  if (chosen !== 1) throw badRequest(`choose exactly one of all, table/database, fingerprint: ${FLUSH_USAGE}`);
  if (b.all === true) return { kind: 'all', protocol };
  if (fingerprint !== undefined) return { kind: 'fingerprint', protocol, fingerprint };
  // Table tags are per database: a table name alone would miss the copies in other databases.
  if (database === undefined) throw badRequest('"table" needs its "database"');
  return table === undefined ? { kind: 'database', protocol, database } : { kind: 'table', protocol, database, table };
}

export interface TableUsage {
  database: string;
  table: string;
  entries: number;
  bytes: number;
}

/**
 * Entries and charged bytes per table, from the entries' table tags (tags.ts spelling). An entry
 * that read several tables counts under each. Looks at no more than `limit` entries.
 */
export function tableUsage(entries: Iterable<CacheEntry<unknown>>, limit: number): { tables: TableUsage[]; scanned: number; truncated: boolean } {
  const byTag = new Map<string, TableUsage>();
  let scanned = 0;
  for (const entry of entries) {
    if (scanned === limit) return { tables: [...byTag.values()], scanned, truncated: true };
    scanned++;
    const size = chargedBytes(entry.key, entry.bytes.length, entry.tags.length);
    for (const tag of entry.tags) {
      let usage = byTag.get(tag);
      if (usage === undefined) {
        const parts = tag.split('\u0000');
        if (parts.length !== 3) continue; // a database tag
        usage = { database: parts[0]!, table: parts[2]!, entries: 0, bytes: 0 };
        byTag.set(tag, usage);
      }
      usage.entries++;
      usage.bytes += size;
    }
  }
  return { tables: [...byTag.values()], scanned, truncated: false };
}

/** The effective config as the API shows it: the token and the passwords (change streams, Redis) never leave the process. */
export function redactedConfig(config: Config): Config {
  const secret = <T>(value: T | null): T | string | null => (value === null ? null : REDACTED);
  const cdc = (url: CdcUrl | null): CdcUrl | null => (url === null ? null : { ...url, password: secret(url.password) as string | null });
  const target = (t: RedisTarget | null): RedisTarget | null => (t === null ? null : { ...t, password: secret(t.password) });
  return Object.freeze({
    ...config,
    adminToken: secret(config.adminToken),
    pgCdc: cdc(config.pgCdc),
    pgCdcPassword: secret(config.pgCdcPassword),
    mysqlCdc: cdc(config.mysqlCdc),
    mysqlCdcPassword: secret(config.mysqlCdcPassword),
    redis: target(config.redis),
    redisCluster: target(config.redisCluster),
    redisPassword: secret(config.redisPassword),
    pgAuthPassword: secret(config.pgAuthPassword),
  });
}

export interface TableRow extends TableUsage {
  protocol: Protocol;
  /** Counted per table name, summed over databases (statements are counted by the names they use). */
  hits: number;
  misses: number;
  invalidations: number;
}

export class AdminApi {
  /**
   * `config` is asked per request so a reload shows; `reload` re-reads the config sources and
   * applies them (POST /api/config/reload), null where nothing can be reloaded.
   */
  constructor(
    private readonly caches: ReadonlyMap<Protocol, CachedResults>,
    private readonly config: () => Config,
    private readonly reload: (() => ReloadReport) | null = null,
  ) {}

  /** Answers a request whose path starts with /api/; the caller has checked the token. */
  async handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    try {
      const body = await this.route(req, url);
      sendJson(res, 200, body);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (err.status === 405) res.setHeader('allow', err.message.replace(/^use /, ''));
      // The rest of an oversized body was not read: the connection cannot carry another request.
      if (err.status === 413) res.setHeader('connection', 'close');
      sendJson(res, err.status, { error: err.code, message: err.message });
    }
  }

  private async route(req: http.IncomingMessage, url: URL): Promise<unknown> {
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const expect = (wanted: string): void => {
      if (method !== wanted) throw new ApiError(405, 'method-not-allowed', `use ${wanted}${wanted === 'GET' ? ', HEAD' : ''}`);
      // Even a POST without a body: a page of another site can send one as text/plain.
      if (wanted === 'POST' && !declaresJson(req.headers['content-type'])) {
        throw new ApiError(415, 'unsupported-media-type', 'send Content-Type: application/json (a web page cannot send that to another site without asking first)');
      }
    };
    switch (url.pathname) {
      case '/api/queries':
        expect('GET');
        return this.queries(url.searchParams);
      case '/api/tables':
        expect('GET');
        return this.tables(url.searchParams);
      case '/api/flush':
        expect('POST');
        return this.flush(parseFlushRequest(await readJson(req)));
      case '/api/config':
        expect('GET');
        return { config: redactedConfig(this.config()) };
      case '/api/config/reload':
        expect('POST');
        return this.reloadConfig();
      default:
        throw new ApiError(404, 'not-found', 'try /api/queries, /api/tables, /api/flush (POST), /api/config or /api/config/reload (POST)');
    }
  }

  private reloadConfig(): { applied: readonly string[]; needsRestart: readonly string[]; config: Config } {
    if (this.reload === null) throw new ApiError(404, 'not-found', 'this admin server cannot reload a config');
    try {
      const report = this.reload();
      return { applied: report.applied, needsRestart: report.needsRestart, config: redactedConfig(report.config) };
    } catch (err) {
      if (err instanceof ConfigError) throw new ApiError(400, 'invalid-config', `${err.message}; the running config is kept`);
      throw err;
    }
  }

  private queries(params: URLSearchParams): { queries: QueryItem[] } {
    const n = parseTopParam(params.get('top'));
    const by = parseOrder(params.get('by'));
    const all: QueryItem[] = [];
    // The overall top n is within the union of each protocol's top n.
    for (const cache of this.selected(params.get('protocol'))) all.push(...cache.stats.topQueries(n, by));
    return { queries: top(all, n, by, (q) => `${q.protocol} ${q.fingerprint}`) };
  }

  private tables(params: URLSearchParams): { tables: TableRow[]; scannedEntries: number; truncated: boolean } {
    const rows: TableRow[] = [];
    let scannedEntries = 0;
    let truncated = false;
    for (const cache of this.selected(params.get('protocol'))) {
      const protocol = cache.stats.protocol;
      const counted = new Map<string, TableItem>();
      // Every table with a hit or a miss is in one of the two lists.
      for (const by of ['hits', 'misses'] as const) for (const t of cache.stats.topTables(Infinity, by)) counted.set(t.table, t);
      const usage = tableUsage(cache.store.entriesByRecency(), MAX_SCANNED_ENTRIES - scannedEntries);
      scannedEntries += usage.scanned;
      truncated ||= usage.truncated;
      const withEntries = new Set<string>();
      for (const u of usage.tables) {
        withEntries.add(u.table);
        rows.push({ protocol, ...u, ...counts(counted.get(u.table)) });
      }
      for (const t of counted.values()) {
        if (!withEntries.has(t.table)) rows.push({ protocol, database: '', table: t.table, entries: 0, bytes: 0, ...counts(t) });
      }
    }
    rows.sort((a, b) => b.entries - a.entries || b.bytes - a.bytes || b.hits + b.misses - a.hits - a.misses
      || compare(`${a.protocol} ${a.database} ${a.table}`, `${b.protocol} ${b.database} ${b.table}`));
    if (rows.length > MAX_TABLE_ROWS) truncated = true;
    return { tables: rows.slice(0, MAX_TABLE_ROWS), scannedEntries, truncated };
  }

  private flush(request: FlushRequest): { dropped: number; byProtocol: Partial<Record<Protocol, number>> } {
    const byProtocol: Partial<Record<Protocol, number>> = {};
    let dropped = 0;
    for (const cache of this.selected(request.protocol)) {
      const n = flushOne(cache, request);
      byProtocol[cache.stats.protocol] = n;
      dropped += n;
    }
    return { dropped, byProtocol };
  }

  /** The caches a `protocol` parameter selects: all when absent, none when that side is off. */
  private selected(protocol: unknown): CachedResults[] {
    if (protocol === null || protocol === undefined) return [...this.caches.values()];
    const cache = this.caches.get(parseProtocol(protocol));
    return cache === undefined ? [] : [cache];
  }
}

/** A flush as the invalidation the cache applies here and publishes to the other proxies of a fleet. */
function flushOne(cache: CachedResults, request: FlushRequest): number {
  switch (request.kind) {
    case 'all':
      return cache.invalidateEverywhere({ scope: 'all', catalog: false });
    case 'database':
      // The same tags a write's invalidation uses, so fills in flight go stale too.
      return cache.invalidateEverywhere({ scope: 'tags', tags: [databaseTag(request.database)], tables: 'database', catalog: null });
    case 'table':
      return cache.invalidateEverywhere({ scope: 'tags', tags: [tableTag(request.database, '', request.table)], tables: [request.table], catalog: null });
    case 'fingerprint':
      return cache.invalidateEverywhere({ scope: 'fingerprint', fingerprint: request.fingerprint });
  }
}

function counts(t: TableItem | undefined): { hits: number; misses: number; invalidations: number } {
  return { hits: t?.hits ?? 0, misses: t?.misses ?? 0, invalidations: t?.invalidations ?? 0 };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function badRequest(message: string): ApiError {
  return new ApiError(400, 'bad-request', message);
}

function parseProtocol(value: unknown): Protocol {
  if (typeof value === 'string' && (PROTOCOLS as readonly string[]).includes(value)) return value as Protocol;
  throw badRequest(`protocol must be one of ${PROTOCOLS.join(', ')}`);
}

/** `?top=N`: DEFAULT_TOP when absent, 0..MAX_TOP. */
export function parseTopParam(value: string | null): number {
  if (value === null) return DEFAULT_TOP;
  if (!/^\d{1,4}$/.test(value) || Number(value) > MAX_TOP) throw badRequest(`top must be an integer from 0 to ${MAX_TOP}`);
  return Number(value);
}

function parseOrder(value: string | null): TopOrder {
  if (value === null || value === 'hits' || value === 'misses') return value ?? 'hits';
  throw badRequest('by must be hits or misses');
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new ApiError(413, 'body-too-large', `the body may have at most ${MAX_BODY_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new ApiError(413, 'body-too-large', `the body may have at most ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw badRequest(`the body is not JSON: ${FLUSH_USAGE}`);
  }
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(`${JSON.stringify(body, null, 2)}\n`);
}
