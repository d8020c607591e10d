// Helpers for the change-stream tests: a private PostgreSQL cluster that can stream (the shared
// server runs wal_level=replica), the change streams' state as /stats and /metrics show it, and
// polling until something is seen or a deadline passes (the tests assert what was seen, never how
// fast).
import type { ChangeStreamItem } from '../../admin/change-streams.js';
import { ECHO_MS } from '../../changes/echo.js';
import { startCluster, type Cluster, type ClusterOptions } from './cluster.js';
import { cacheStats, scrape, sumOf } from './metrics.js';

/**
 * A cluster with logical decoding on. synchronous_commit stays on (cluster.ts turns it off for
 * speed): with it off a commit reaches the stream only when the WAL writer flushes it, up to
 * wal_writer_delay later. logical_decoding_work_mem at its minimum makes large transactions stream
 * while in progress (pgoutput protocol 2) after 64 kB.
 */
export function startLogicalCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  return startCluster({
    ...opts,
    settings: {
      wal_level: 'logical',
      synchronous_commit: 'on',
      max_wal_senders: 10,
      max_replication_slots: 10,
      logical_decoding_work_mem: '64kB',
      ...opts.settings,
    },
  });
}

export type StreamItem = ChangeStreamItem;

/** The change stream of `database` ('*' for MySQL) as /stats shows it; undefined when not followed. */
export async function streamOf(adminPort: number, protocol: string, database: string): Promise<StreamItem | undefined> {
  const streams = (await cacheStats(adminPort)).changeStreams as StreamItem[];
  return streams.find((s) => s.protocol === protocol && s.database === database);
}

/** Polls `probe` every `everyMs` until it returns a value other than undefined; throws after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last === undefined ? '' : ` (last error: ${(last as Error).message})`}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Waits until the stream of `database` is in `state`; returns it. */
export function waitForStream(adminPort: number, protocol: string, database: string, state: StreamItem['state'], timeoutMs = 60_000): Promise<StreamItem> {
  return waitFor(`the ${protocol} stream of ${database} to be ${state}`, async () => {
    const s = await streamOf(adminPort, protocol, database);
    return s?.state === state ? s : undefined;
  }, timeoutMs, 50);
}

/** sidecache_cdc_connected of one stream, from /metrics. */
export async function connectedMetric(adminPort: number, protocol: string, database: string): Promise<number> {
  return sumOf(await scrape(adminPort), 'sidecache_cdc_connected', { protocol, database });
}

/** Bypasses of `protocol` with reason cdc-down so far. */
export async function cdcDownBypasses(adminPort: number, protocol: string): Promise<number> {
  return sumOf(await scrape(adminPort), 'sidecache_cache_bypass_total', { protocol, reason: 'cdc-down' });
}

/**
 * Reads through sidecache until a read is a hit twice, the echo window apart (a fill right after an
 * invalidation is dropped again by the echo, changes/echo.ts, by design); returns the rows.
 */
export function stableHit<R>(read: () => Promise<{ rows: R; hit: boolean }>, what: string): Promise<R> {
  return waitFor(`${what} to stay a hit`, async () => {
    if (!(await read()).hit) return undefined;
    await new Promise((r) => setTimeout(r, 3 * ECHO_MS));
    const again = await read();
    return again.hit ? again.rows : undefined;
  }, 20_000, 50);
}

/** Reads until the result equals `expected` (as JSON); returns how many reads it took. */
export async function readUntil(read: () => Promise<unknown>, expected: unknown, what: string): Promise<number> {
  let reads = 0;
  await waitFor(`${what} to return ${JSON.stringify(expected)}`, async () => {
    reads++;
    return JSON.stringify(await read()) === JSON.stringify(expected) ? true : undefined;
  }, 20_000);
  return reads;
}

/** One kind of write sent straight to the database, and a read through sidecache that must see it. */
export interface WriteCase {
  name: string;
  read: string;
  write: () => Promise<unknown>;
  /** What `read` returns once the write is seen. */
  after: unknown[];
}

export interface WriteCaseIo {
  /** Reads through sidecache until the read stays a hit; returns its rows. */
  cached(sql: string): Promise<unknown[]>;
  /** Reads through sidecache until it returns `expected`. */
  seen(sql: string, expected: unknown[]): Promise<number>;
  /** The stream's invalidations so far. */
  invalidations(): Promise<number>;
}

/**
 * For each case in turn: its read cached, the write sent straight to the database, the read seen
 * through sidecache with the new result (polled up to a deadline), and the stream having invalidated.
 * Throws naming the case that failed.
 */
export async function everyWriteSeen(cases: readonly WriteCase[], io: WriteCaseIo): Promise<void> {
  for (const c of cases) {
    const before = await io.cached(c.read);
    if (JSON.stringify(before) === JSON.stringify(c.after)) throw new Error(`${c.name}: the case must change what is read`);
    const invalidations = await io.invalidations();
    await c.write();
    await io.seen(c.read, c.after);
    if ((await io.invalidations()) <= invalidations) throw new Error(`${c.name}: not invalidated by the stream`);
  }
}
