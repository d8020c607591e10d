// The load loops of bench/fleet-l2.ts and the clients they drive: lanes (one connection each) that
// read keys by id back to back for a time, once each, or paced at a rate with Zipf-drawn keys, each
// round trip timed at the client; and readers for PostgreSQL (node-postgres, a named prepared
// statement), MySQL (mysql2's execute) and Redis (ioredis, configured as sidecache's connections).
import { once } from 'node:events';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { zipf, prng } from '../cache/admission-sim.js';
import { parseRedisUrl } from '../config/redis-target.js';
import { DIRECT_MYSQL } from '../e2e/support/sidecache.js';
import { openRedis, type RedisConnection } from '../fleet/redis-connection.js';

/** One client connection that reads a key by id. */
export interface Reader {
  read(id: number): Promise<void>;
  close(): Promise<void>;
}

export type OpenReader = () => Promise<Reader>;

export class WrongReplyError extends Error {
  override name = 'WrongReplyError';
}

/** node-postgres with a named prepared statement: Parse once per connection, then Bind/Execute. */
export function pgReader(server: pg.ClientConfig, name: string, sql: string): OpenReader {
  return async () => {
    const client = new pg.Client(server);
    await client.connect();
    return {
      async read(id) {
        const { rowCount } = await client.query({ name, text: sql, values: [id] });
        if (rowCount !== 1) throw new WrongReplyError(`${sql} with ${id}: ${rowCount} rows`);
      },
      close: () => client.end(),
    };
  };
}

/** mysql2's execute: a server-side prepared statement (COM_STMT_EXECUTE), as sysbench's hot-prepared. */
export function mysqlReader(port: number, database: string, sql: string): OpenReader {
  return async () => {
    const c = await mysql.createConnection({ host: DIRECT_MYSQL.host, port, user: DIRECT_MYSQL.user, password: DIRECT_MYSQL.password, database });
    return {
      async read(id) {
        const [rows] = await c.execute(sql, [id]);
        if ((rows as unknown[]).length !== 1) throw new WrongReplyError(`${sql} with ${id}: ${(rows as unknown[]).length} rows`);
      },
      close: () => c.end(),
    };
  };
}

/** A bare GET of `keys` (id 1 the first), from Node with ioredis as sidecache reads them. */
export function redisReader(port: number, keys: readonly string[]): OpenReader {
  return async () => {
    const redis = await connectRedis(port, 'bench-get');
    return {
      async read(id) {
        const key = keys[(id - 1) % keys.length]!;
        const data = await redis.callBuffer('GET', key) as Buffer | null;
        if (data === null) throw new WrongReplyError(`GET ${key}: gone`);
      },
      async close() {
        redis.disconnect();
      },
    };
  };
}

/** A connection configured as sidecache's (fleet/redis-connection.ts), once it is ready. */
export async function connectRedis(port: number, name: string): Promise<RedisConnection> {
  const redis = openRedis({ target: parseRedisUrl(`redis://127.0.0.1:${port}`), cluster: false, password: null, ca: null }, name, 5000);
  // A lost connection shows as a failed command, which fails the bench; no reconnect chatter on stderr.
  redis.on('error', () => {});
  try {
    if (redis.status !== 'ready') await once(redis, 'ready');
    return redis;
  } catch (err) {
    redis.disconnect();
    throw err;
  }
}

/** `count` readers; when one cannot open, those that did are closed. */
async function openAll(open: OpenReader, count: number): Promise<Reader[]> {
  const opened = await Promise.allSettled(Array.from({ length: count }, () => open()));
  const readers = opened.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
  const failed = opened.find((o) => o.status === 'rejected');
  if (failed === undefined) return readers;
  await Promise.allSettled(readers.map((r) => r.close()));
  throw failed.reason;
}

/** `lanes` readers, `fn` on each, all closed afterwards whatever happened. */
async function withReaders<T>(open: OpenReader, lanes: number, fn: (readers: Reader[]) => Promise<T>): Promise<T> {
  const readers = await openAll(open, lanes);
  try {
    return await fn(readers);
  } finally {
    await Promise.allSettled(readers.map((r) => r.close()));
  }
}

export interface LoopResult {
  reads: number;
  seconds: number;
  /** Client-observed round trip of every read, ms. */
  latenciesMs: number[];
}

/** `clients` lanes reading `nextId()` back to back for `seconds`. */
export function closedLoop(open: OpenReader, clients: number, seconds: number, nextId: () => number): Promise<LoopResult> {
  return withReaders(open, clients, async (readers) => {
    const latenciesMs: number[] = [];
    const started = performance.now();
    const deadline = started + seconds * 1000;
    await Promise.all(readers.map(async (reader) => {
      while (performance.now() < deadline) {
        const id = nextId();
        const t0 = performance.now();
        await reader.read(id);
        latenciesMs.push(performance.now() - t0);
      }
    }));
    return { reads: latenciesMs.length, seconds: (performance.now() - started) / 1000, latenciesMs };
  });
}

/** Reads every id 1..count once over `clients` lanes. */
export function readAll(open: OpenReader, clients: number, count: number): Promise<void> {
  return withReaders(open, clients, async (readers) => {
    let next = 1;
    await Promise.all(readers.map(async (reader) => {
      while (next <= count) await reader.read(next++);
    }));
  });
}

export interface PacedZipf {
  lanes: number;
  /** Reads per second over all lanes. */
  rate: number;
  seconds: number;
  /** Keys 1..keys, with Zipf's exponent `exponent`. */
  keys: number;
  exponent: number;
  /** Lane i draws from the seeded generator `seed + i`: the same seed, the same sequence. */
  seed: number;
  bucketSeconds: number;
  /** Called at the end of each bucket (and once more when the lanes are done) with the reads so far. */
  sample(endSeconds: number, reads: number): Promise<void>;
}

/**
 * Zipf-drawn reads at a steady rate: each lane sends at its share of it, and one that falls behind
 * sends back to back until it catches up. Returns every read's round trip, ms.
 */
export function pacedZipf(open: OpenReader, plan: PacedZipf): Promise<number[]> {
  return withReaders(open, plan.lanes, async (readers) => {
    const latenciesMs: number[] = [];
    const started = performance.now();
    const deadline = started + plan.seconds * 1000;
    const intervalMs = (1000 * plan.lanes) / plan.rate;
    const lanes = readers.map(async (reader, lane) => {
      const rank = zipf(plan.keys, plan.exponent, prng(plan.seed + lane));
      for (let n = 0; ; n++) {
        const due = started + n * intervalMs;
        if (due >= deadline) return;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
        const t0 = performance.now();
        await reader.read(rank() + 1);
        latenciesMs.push(performance.now() - t0);
      }
    });
    const buckets = (async () => {
      for (let end = plan.bucketSeconds; end < plan.seconds; end += plan.bucketSeconds) {
        await sleep(started + end * 1000 - performance.now());
        await plan.sample(end, latenciesMs.length);
      }
    })();
    await Promise.all([...lanes, buckets]);
    await plan.sample(plan.seconds, latenciesMs.length);
    return latenciesMs;
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
