// Connections to the fleet's Redis (one node or a Cluster) with ioredis, set up so that a lost
// connection is never hidden: the bus must learn of every loss, because messages published while
// it was away, or lost by a failover to a replica that had not received them yet, are gone for it.
//
// ioredis: Cluster and Sentinel built in, one API for a node and a Cluster (`call`), and options to
// turn off what would hide a loss: no offline queue, no resending of commands in flight after a
// reconnect, no transparent retry on another node after a failover.
import { readFileSync } from 'node:fs';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Config } from '../config/settings.js';
import type { RedisTarget } from '../config/redis-target.js';

export type RedisConnection = Redis | Cluster;

/** An unreadable password or CA file: a configuration error found at start. */
export class FleetConfigError extends Error {
  override name = 'FleetConfigError';
}

/** How to reach the fleet's Redis, with the secrets read. */
export interface RedisAccess {
  readonly target: RedisTarget;
  readonly cluster: boolean;
  readonly password: string | null;
  readonly ca: Buffer | null;
}

/** Null when no fleet is configured. Reads the password and CA files now. */
export function redisAccess(config: Config): RedisAccess | null {
  const target = config.redis ?? config.redisCluster;
  if (target === null) return null;
  let password = config.redisPassword ?? target.password;
  if (config.redisPasswordFile !== null) password = readSecret(config.redisPasswordFile, '--redis-password-file').replace(/\r?\n$/, '');
  const ca = target.caFile === null ? null : Buffer.from(readSecret(target.caFile, '?ca='));
  return { target, cluster: config.redisCluster !== null, password, ca };
}

function readSecret(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new FleetConfigError(`${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

const CONNECT_TIMEOUT_MS = 3000;
const MAX_RECONNECT_DELAY_MS = 1000;

/**
 * A new connection named `name` (CLIENT LIST shows `sidecache-<name>`). Commands fail at once
 * while it is not ready; `commandTimeoutMs` bounds every non-blocking command.
 */
export function openRedis(access: RedisAccess, name: string, commandTimeoutMs: number): RedisConnection {
  const common: RedisOptions = {
    username: access.target.username ?? undefined,
    password: access.password ?? undefined,
    tls: access.target.tls ? (access.ca === null ? {} : { ca: access.ca }) : undefined,
    connectionName: `sidecache-${name}`,
    // RESP2: plain arrays from every server version, managed services included.
    protocol: 2,
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: commandTimeoutMs,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // A blocking XREAD must not be replayed on a new connection without the bus knowing.
    reconnectOnError: null,
  };
  if (access.cluster) {
    const options: ClusterOptions = {
      enableOfflineQueue: false,
      // A command that met a closed connection or a cluster without a master for its slot fails
      // instead of being sent again to whichever node now owns the slot.
      retryDelayOnFailover: 0,
      retryDelayOnClusterDown: 0,
      clusterRetryStrategy: (times) => Math.min(100 * times, MAX_RECONNECT_DELAY_MS),
      slotsRefreshTimeout: CONNECT_TIMEOUT_MS,
      redisOptions: common,
    };
    return new Cluster(access.target.nodes.map((n) => ({ host: n.host, port: n.port })), options);
  }
  const node = access.target.nodes[0]!;
  return new Redis({
    ...common,
    host: node.host,
    port: node.port,
    db: access.target.db,
    enableOfflineQueue: false,
    retryStrategy: (times) => Math.min(100 * times, MAX_RECONNECT_DELAY_MS),
  });
}

/**
 * Calls `trouble` on anything that may mean entries were missed: a connection closed, a node
 * lost or replaced. Returns a function that stops watching.
 */
export function watchConnection(redis: RedisConnection, trouble: (what: string, err?: Error) => void): () => void {
  const handlers: [string, (...args: unknown[]) => void][] = [
    ['close', () => trouble('connection closed')],
    ['error', (err) => trouble('connection error', err as Error)],
    // Cluster only: a node's connection failed or the node left the topology.
    ['node error', (err) => trouble('cluster node error', err as Error)],
    ['-node', () => trouble('cluster node lost')],
  ];
  for (const [event, handler] of handlers) redis.on(event, handler);
  return () => {
    for (const [event, handler] of handlers) redis.off(event, handler);
  };
}

/** True when commands can be sent now. */
export function isReady(redis: RedisConnection): boolean {
  return redis.status === 'ready';
}
