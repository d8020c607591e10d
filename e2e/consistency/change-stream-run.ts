// The stale-read checker's change-stream mode: the writers write straight to the database, behind
// sidecache's back, and only its change stream (--pg-cdc, --mysql-cdc) can invalidate what they
// change; readers read through sidecache and may see a write no later than the allowed lag after
// its acknowledgement. The shared servers cannot stream (wal_level=replica, no binlog), so each run
// starts a private one: a PostgreSQL cluster with wal_level=logical, or mariadbd with a ROW binlog.
import { randomBytes } from 'node:crypto';
import { startLogicalCluster, streamOf, waitForStream, type StreamItem } from '../support/cdc.js';
import { startMariadb } from '../support/mariadb-server.js';
import { startProxy } from '../support/sidecache.js';
import { checkConsistency, type CheckOptions, type CheckReport } from './checker.js';
import { withWorkers } from './own-proxy.js';
import type { ConsistencyDriver } from './driver.js';
import { mysqlDriverAt } from './mysql-driver.js';
import { pgDriverAt } from './pg-driver.js';

/**
 * Allowed lag when none is given. The stream's median lag here is about a millisecond, its p99
 * tens of ms, and under a load average of 16 on two cores single commits took up to ~300 ms: the
 * bound leaves room for that. Whatever it is, the final check (every read path exact once the
 * writers stopped and the lag passed) catches an invalidation that never came.
 */
export const DEFAULT_ALLOWED_LAG_MS = 1000;

export interface ChangeStreamRun {
  report: CheckReport;
  /** The stream as /stats showed it after the run (its lag distribution among the rest). */
  stream: StreamItem | undefined;
}

const DATABASE = 'consistency';

/** `follow: false` leaves the change stream off: only to show that the checker then fails. */
export async function checkWithChangeStream(protocol: string, options: CheckOptions, follow = true): Promise<ChangeStreamRun> {
  const server = protocol === 'postgres' ? await privatePostgres(follow) : await privateMariadb(follow);
  try {
    const table = `sc_consistency_${process.pid}_${randomBytes(4).toString('hex')}`;
    await server.driver.createTable(table, options.keys);
    const proxy = await startProxy(withWorkers(server.driver.proxyOptions(), options));
    try {
      // PostgreSQL follows a database from its first read: start it, and wait until it is up.
      const first = await server.driver.connect(server.driver.portOf(proxy), table);
      await first.read('simple', 0);
      await first.close();
      const target = protocol === 'postgres' ? DATABASE : '*';
      if (follow) await waitForStream(proxy.adminPort, protocol, target, 'up');
      const port = server.driver.portOf(proxy);
      const report = await checkConsistency(server.driver, { port, adminPort: proxy.adminPort, writePort: server.port }, table, options);
      return { report, stream: await streamOf(proxy.adminPort, protocol, target) };
    } finally {
      await proxy.stop();
    }
  } finally {
    await server.stop();
  }
}

interface PrivateServer {
  driver: ConsistencyDriver;
  port: number;
  stop(): Promise<void>;
}

async function privatePostgres(follow: boolean): Promise<PrivateServer> {
  const cluster = await startLogicalCluster();
  await cluster.query(`CREATE DATABASE ${DATABASE}`);
  const url = `postgres://127.0.0.1:${cluster.port}`;
  const driver = pgDriverAt({ host: cluster.host, port: cluster.port, database: DATABASE },
    { pgUpstream: url, args: [...(follow ? ['--pg-cdc', `postgres://postgres@127.0.0.1:${cluster.port}`] : []), '--cache-ttl', '10m'] });
  return { driver, port: cluster.port, stop: () => cluster.stop() };
}

async function privateMariadb(follow: boolean): Promise<PrivateServer> {
  const server = await startMariadb();
  await server.query(`CREATE DATABASE ${DATABASE}`);
  const driver = mysqlDriverAt({ port: server.port, database: DATABASE },
    { pgUpstream: null, mysqlUpstream: server.url, args: [...(follow ? ['--mysql-cdc', server.url] : []), '--cache-ttl', '10m'] });
  return { driver, port: server.port, stop: () => server.stop() };
}

/** One line on the stream itself, for the summary. */
export function streamLine(run: ChangeStreamRun): string {
  const s = run.stream;
  if (s === undefined) return '  change stream: not followed';
  const ms = (v: number | null): string => (v === null ? '–' : `${v.toFixed(1)} ms`);
  return `  change stream: ${s.state}, ${s.invalidations} invalidations, lag p50 ${ms(s.lag.p50Ms)}, p99 ${ms(s.lag.p99Ms)} (${s.lag.count} samples), failures ${s.failures}`;
}
