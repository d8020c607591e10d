// Starts and stops the whole proxy: listeners, admin server, metrics. The CLI and tests use this.
import type net from 'node:net';
import { AdminServer } from '../admin/server.js';
import { createMetrics, type Metrics } from '../admin/metrics.js';
import type { Config, HostPort } from '../config/settings.js';
import { PgListener } from '../proxy/pg/listener.js';
import { PgCache } from '../proxy/pg/pg-cache.js';
import type { Logger } from './log.js';

/** A listener could not bind; names the setting so the operator knows what to change. */
export class ListenError extends Error {
  constructor(readonly flag: string, readonly at: HostPort, readonly code: string | undefined, cause: Error) {
    super(`${flag} ${at.host}:${at.port}: ${code === 'EADDRINUSE' ? 'address already in use' : cause.message}`);
    this.name = 'ListenError';
  }
}

export interface RunningSidecache {
  metrics: Metrics;
  pgAddress: net.AddressInfo;
  adminAddress: net.AddressInfo;
  /** Stops accepting, lets busy sessions finish until the deadline, then closes everything. */
  close(deadlineMs?: number): Promise<void>;
}

export async function startSidecache(config: Config, pgUpstream: HostPort, log: Logger): Promise<RunningSidecache> {
  const metrics = createMetrics();
  const cache = config.cacheMaxBytes > 0 ? await PgCache.create(config, metrics) : null;
  const pg = new PgListener(config, pgUpstream, log, metrics, cache);
  const admin = new AdminServer(metrics);
  const pgAddress = await bind('--pg-listen', config.pgListen, (at) => pg.listen(at));
  let adminAddress: net.AddressInfo;
  try {
    adminAddress = await bind('--admin-listen', config.adminListen, (at) => admin.listen(at));
  } catch (err) {
    await pg.close(0);
    throw err;
  }
  return {
    metrics,
    pgAddress,
    adminAddress,
    async close(deadlineMs = 10_000) {
      await pg.close(deadlineMs);
      await admin.close();
    },
  };
}

async function bind(flag: string, at: HostPort, listen: (at: HostPort) => Promise<net.AddressInfo>): Promise<net.AddressInfo> {
  try {
    return await listen(at);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ListenError(flag, at, e.code, e);
  }
}
