// Helpers for e2e tests that compare the proxy with PostgreSQL itself: node-postgres clients for either
// side, unique object names, and look-ups in pg_stat_activity through a direct connection.
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { DIRECT_PG } from './sidecache.js';

export { DIRECT_PG };

/** A name no other test run uses, e.g. for a table or a database: `${prefix}_<pid>_<random>`. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

export function pgConfig(port: number, extra: pg.ClientConfig = {}): pg.ClientConfig {
  return { host: DIRECT_PG.host, port, user: DIRECT_PG.user, database: DIRECT_PG.database, ...extra };
}

export async function connectPg(port: number, extra: pg.ClientConfig = {}): Promise<pg.Client> {
  const client = new pg.Client(pgConfig(port, extra));
  await client.connect();
  return client;
}

/** One statement on a short-lived direct connection. */
export async function direct<R extends pg.QueryResultRow = pg.QueryResultRow>(
  sql: string, params: unknown[] = [], database = DIRECT_PG.database): Promise<pg.QueryResult<R>> {
  const client = await connectPg(DIRECT_PG.port, { database });
  try {
    return await client.query<R>(sql, params);
  } finally {
    await client.end();
  }
}

export async function backendExists(pid: number): Promise<boolean> {
  const r = await direct('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
  return r.rowCount === 1;
}

/** Polls pg_stat_activity until the backend `pid` has exited; fails after `timeoutMs`. */
export async function waitForBackendGone(pid: number, timeoutMs = 5000): Promise<number> {
  const start = Date.now();
  while (await backendExists(pid)) {
    if (Date.now() - start > timeoutMs) throw new Error(`backend ${pid} still exists after ${timeoutMs} ms`);
    await sleep(50);
  }
  return Date.now() - start;
}

/** Polls until backend `pid` is running a statement containing `fragment` (so a cancel hits it). */
export async function waitForActiveQuery(pid: number, fragment: string, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  for (;;) {
    const r = await direct(`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'
      AND position($2 in query) > 0`, [pid, fragment]);
    if (r.rowCount === 1) return;
    if (Date.now() - start > timeoutMs) {
      throw new Error(`backend ${pid} did not start running "${fragment}" within ${timeoutMs} ms`);
    }
    await sleep(20);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves with the error a promise rejects with; fails if it resolves. */
export async function rejectionOf(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected the promise to reject, but it resolved');
}
