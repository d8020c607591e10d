// Starts and stops the whole proxy: listeners, admin server, metrics. The CLI and tests use this.
import net from 'node:net';
import { AdminApi, type CachedResults } from '../admin/api.js';
import { AdminServer } from '../admin/server.js';
import { createMetrics, type Metrics, type Protocol } from '../telemetry/metrics.js';
import { SlowQueryLog } from '../telemetry/slow-query-log.js';
import type { ReloadReport } from '../config/reload.js';
import type { Config, HostPort } from '../config/settings.js';
import { BufferBudget } from '../proxy/buffer-budget.js';
import { MySqlListener } from '../proxy/mysql/listener.js';
import { MySqlCache } from '../proxy/mysql/mysql-cache.js';
import { PgListener } from '../proxy/pg/listener.js';
import { PgCache } from '../proxy/pg/pg-cache.js';
import { clientTls, type ClientTls } from '../proxy/tls.js';
import { startChangeStreams, type ChangeStreams } from '../changes/start.js';
import { leadChangeStreams } from '../fleet/change-leader.js';
import { startFleet, type Fleet, type FleetCache } from '../fleet/fleet.js';
import { LEAD_SLOT } from '../workers/messages.js';
import type { ChannelCache, WorkerChannel } from '../workers/worker-channel.js';
import type { Logger } from '../telemetry/log.js';

/** A listener could not bind; names the setting so the operator knows what to change. */
export class ListenError extends Error {
  constructor(readonly flag: string, readonly at: HostPort, readonly code: string | undefined, cause: Error) {
    super(`${flag} ${at.host}:${at.port}: ${code === 'EADDRINUSE' ? 'address already in use' : cause.message}`);
    this.name = 'ListenError';
  }
}

export interface RunningSidecache {
  metrics: Metrics;
  /** Null when the PostgreSQL side is off (no upstream). */
  pgAddress: net.AddressInfo | null;
  /** Null when the MySQL side is off (no --mysql-upstream). */
  mysqlAddress: net.AddressInfo | null;
  adminAddress: net.AddressInfo;
  /** The config in force (changes on reload). */
  readonly config: Config;
  /**
   * Reads the config sources again and applies the limits, cache sizes and TTL they now give,
   * without touching open connections. Throws ConfigError (and changes nothing) when invalid.
   */
  reload(): ReloadReport;
  /** Stops accepting, lets busy sessions finish until the deadline, then closes everything. */
  close(deadlineMs?: number): Promise<void>;
}

interface Listener {
  applyConfig(config: Config, tls: ClientTls): void;
  close(deadlineMs: number): Promise<void>;
}

type ReloadableCache = CachedResults & FleetCache & ChannelCache & { applyConfig(config: Config): void };

/** Where a reload reads the config again (config/reload.ts). */
export interface ConfigSource {
  reload(running: Config): ReloadReport;
}

/**
 * Starts the PostgreSQL side when `pgUpstream` is given and the MySQL side when config.mysqlUpstream is.
 * Without `source` a reload re-applies the running config (nothing to re-read). `worker`: this
 * process is one of several workers (workers/), and this is its channel to the others.
 */
export async function startSidecache(config: Config, pgUpstream: HostPort | null, log: Logger, source: ConfigSource | null = null,
  worker: WorkerChannel | null = null): Promise<RunningSidecache> {
  const metrics = createMetrics();
  // One budget for both protocols: it bounds the process's memory, whichever side the clients use.
  const buffers = new BufferBudget(config.maxBufferedMessageBytes);
  metrics.messageBuffers = buffers;
  const listeners: Listener[] = [];
  // Filled below as each side starts; the admin API and reloads read it per call.
  const caches = new Map<Protocol, ReloadableCache>();
  let running = config;
  const slowQueries = new SlowQueryLog(log, config.slowQueryThresholdMs);
  const reload = (): ReloadReport => {
    let report: ReloadReport;
    try {
      report = source === null ? { applied: [], needsRestart: [], config: running } : source.reload(running);
    } catch (err) {
      log.error({ err: (err as Error).message }, 'config reload failed; the running config is kept');
      throw err;
    }
    report = keepCacheSwitch(report, running, caches.size > 0);
    let tls: ClientTls;
    try {
      // Read again even under the same file names: a renewed certificate replaces the old in place.
      tls = clientTls(report.config);
    } catch (err) {
      log.error({ err: (err as Error).message }, 'config reload failed; the running config is kept');
      throw err;
    }
    for (const l of listeners) l.applyConfig(report.config, tls);
    buffers.limit = report.config.maxBufferedMessageBytes;
    for (const c of caches.values()) c.applyConfig(report.config);
    slowQueries.applyConfig(report.config);
    log.level = report.config.logLevel;
    running = report.config;
    if (report.needsRestart.length === 0) log.info({ applied: report.applied }, 'config reloaded');
    else log.warn({ applied: report.applied, needsRestart: report.needsRestart }, 'config reloaded; the settings in needsRestart changed but keep their old values until a restart');
    return report;
  };
  let pgAddress: net.AddressInfo | null = null;
  let mysqlAddress: net.AddressInfo | null = null;
  let adminAddress: net.AddressInfo;
  let fleet: Fleet | null = null;
  // A reload through the admin API reaches one worker: the others re-read the file too.
  const apiReload = worker === null ? reload : (): ReloadReport => {
    const report = reload();
    worker.reloaded();
    return report;
  };
  const whole = worker === null ? null : { metrics: () => worker.metricsText(), stats: (top: number) => worker.stats(top) };
  const admin = new AdminServer(metrics, { api: new AdminApi(caches, () => running, apiReload), token: config.adminToken, allowedHosts: config.adminAllowedHosts, whole, fleet: () => fleet?.report() ?? null });
  const pgCache = pgUpstream !== null && config.cacheMaxBytes > 0 ? await PgCache.create(config, metrics) : null;
  const mysqlCache = config.mysqlUpstream !== null && config.cacheMaxBytes > 0 ? new MySqlCache(config, metrics) : null;
  // CDC: writes that bypass sidecache invalidate too, through the databases' own change streams;
  // fenced from the start, before any client can connect. In a fleet (--redis) one proxy follows
  // them for all (fleet/change-leader.ts, started with the fleet below). With workers, one of them
  // follows the streams and the others mirror its fence (workers/worker-channel.ts).
  const inFleet = config.redis !== null || config.redisCluster !== null;
  const sides = { postgres: pgCache, mysql: mysqlCache };
  const followsStreams = !inFleet && (worker === null || worker.slot === LEAD_SLOT);
  let changes: ChangeStreams = inFleet ? { stop: async () => {} }
    : followsStreams ? startChangeStreams(config, sides, metrics, log) : mirrorChangeFences(config, sides, worker!);
  try {
    for (const cache of [pgCache, mysqlCache]) {
      if (cache === null) continue;
      caches.set(cache.stats.protocol, cache);
      slowQueries.watch(cache.stats);
    }
    if (worker !== null) {
      // Before any listener: a write through this worker must reach the others' caches.
      for (const cache of caches.values()) cache.joinFleet(worker);
      worker.serve(caches, metrics, followsStreams ? metrics.changeStreams : null, () => fleet?.report() ?? null);
    }
    // Before any listener: with --redis the caches stay off until the fleet's bus is followed.
    fleet = startFleet(config, caches, metrics, log);
    if (fleet !== null) changes = leadChangeStreams(fleet, config, sides, metrics, log);
    if (pgUpstream !== null) {
      const pg = new PgListener(config, pgUpstream, log, metrics, buffers, pgCache);
      pgAddress = await bind('--pg-listen', config.pgListen, (at) => pg.listen(at));
      listeners.push(pg);
    }
    if (config.mysqlUpstream !== null) {
      const mysql = new MySqlListener(config, config.mysqlUpstream, log, metrics, buffers, mysqlCache);
      mysqlAddress = await bind('--mysql-listen', config.mysqlListen, (at) => mysql.listen(at));
      listeners.push(mysql);
    }
    adminAddress = await bind('--admin-listen', config.adminListen, (at) => admin.listen(at));
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close(0)));
    await changes.stop();
    await fleet?.close();
    throw err;
  }
  return {
    metrics,
    pgAddress,
    mysqlAddress,
    adminAddress,
    get config() {
      return running;
    },
    reload,
    async close(deadlineMs = 10_000) {
      await Promise.all(listeners.map((l) => l.close(deadlineMs)));
      await changes.stop();
      // After the sessions: the invalidations of their last writes still reach the fleet.
      await fleet?.close();
      await admin.close();
    },
  };
}

/** A worker that does not follow the change streams asks the one that does before each fill. */
function mirrorChangeFences(config: Config, caches: { postgres: PgCache | null; mysql: MySqlCache | null }, worker: WorkerChannel): { stop(): Promise<void> } {
  if (config.pgCdc !== null) caches.postgres?.followChanges(worker.remoteFence('postgres'));
  if (config.mysqlCdc !== null) caches.mysql?.followChanges(worker.remoteFence('mysql'));
  return { stop: async () => {} };
}

/**
 * Binds and releases each listener the config asks for (port 0 aside), so a taken port is found
 * at once, before several workers load everything only to fail at their first listen. Throws
 * ListenError.
 */
export async function checkListenPorts(config: Config): Promise<void> {
  const wanted: [string, HostPort][] = [
    ...(config.pgUpstream !== null ? [['--pg-listen', config.pgListen] as [string, HostPort]] : []),
    ...(config.mysqlUpstream !== null ? [['--mysql-listen', config.mysqlListen] as [string, HostPort]] : []),
    ['--admin-listen', config.adminListen],
  ];
  for (const [flag, at] of wanted) {
    if (at.port === 0) continue;
    const server = net.createServer();
    await bind(flag, at, (a) => new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(a.port, a.host, () => resolve(server.address() as net.AddressInfo));
    }));
    await new Promise((resolve) => server.close(resolve));
  }
}

async function bind(flag: string, at: HostPort, listen: (at: HostPort) => Promise<net.AddressInfo>): Promise<net.AddressInfo> {
  try {
    return await listen(at);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ListenError(flag, at, e.code, e);
  }
}

/**
 * With --cache-max-bytes 0 at start no cache was built, so turning caching on needs a restart;
 * turning it off (0) just empties the stores and refuses fills, which setLimits does.
 */
function keepCacheSwitch(report: ReloadReport, running: Config, haveCaches: boolean): ReloadReport {
  if (haveCaches || report.config.cacheMaxBytes === running.cacheMaxBytes) return report;
  return {
    applied: report.applied.filter((f) => f !== 'cache-max-bytes'),
    needsRestart: [...report.needsRestart, 'cache-max-bytes'],
    config: Object.freeze({ ...report.config, cacheMaxBytes: running.cacheMaxBytes }),
  };
}
