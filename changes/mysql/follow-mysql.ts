// The MySQL/MariaDB side of the change streams: one binlog stream for the whole server (the binlog
// carries every database), started with sidecache, invalidating the MySQL cache.
import os from 'node:os';
import type { Metrics } from '../../telemetry/metrics.js';
import type { Logger } from '../../telemetry/log.js';
import type { Config } from '../../config/settings.js';
import type { MySqlCache } from '../../proxy/mysql/mysql-cache.js';
import { ChangeFence } from '../change-fence.js';
import { Follower, type FollowTarget } from '../follower.js';
import { mysqlUpstreamTlsPlan } from '../../proxy/tls.js';
import { openBinlogStream } from './binlog-stream.js';
import type { BinlogInvalidation, BinlogTable } from './binlog-tracker.js';

/** The one target: the binlog covers every database of the server. */
export const SERVER = '*';

/** `onState`: the stream's state changed, before the entries are dropped (follower.ts). */
export function followMysql(config: Config, cache: MySqlCache, metrics: Metrics, log: Logger, onState: (() => void) | null = null): ChangeFence {
  const source = config.mysqlCdc!;
  // The relay's own TLS settings for this server: a server with require_secure_transport is reached the same way.
  const tls = mysqlUpstreamTlsPlan(config.mysqlUpstream!.tls);
  const serverId = config.mysqlCdcServerId ?? derivedServerId(os.hostname(), process.pid);
  // The GTID position survives the stream: a reconnect resumes where the last one stopped.
  const kept = { gtid: '' };
  const fence = new ChangeFence(
    () => SERVER,
    () => new Follower<BinlogInvalidation>('mysql', SERVER, (sink) => openBinlogStream({ source, tls, serverId, kept }, sink), mysqlTarget(cache), log, onState),
    metrics,
    log,
  );
  cache.followChanges(fence.fence);
  log.info({ source: source.url, serverId, derived: config.mysqlCdcServerId === null }, config.mysqlCdcServerId === null
    ? 'cdc: following the binary log as replica server id derived from the host name and process id (set --mysql-cdc-server-id to choose one)'
    : 'cdc: following the binary log');
  fence.start(SERVER);
  return fence;
}

/**
 * A replica server id for this process: FNV-1a of host name and pid, in the upper half of the
 * range, where operators rarely number their servers.
 */
export function derivedServerId(hostname: string, pid: number): number {
  let h = 0x811c9dc5;
  for (const ch of `${hostname}:${pid}`) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return (h | 0x80000000) >>> 0;
}

export function mysqlTarget(cache: MySqlCache): FollowTarget<BinlogInvalidation> {
  return {
    apply(inv) {
      cache.invalidateStreamed(inv.tables, inv.wide, inv.catalogChanged);
    },
    drop() {
      cache.invalidate(null, [], true, true);
    },
    merge(invs) {
      const tables = new Map<string, BinlogTable>();
      for (const i of invs) for (const t of i.tables) tables.set(`${t.database}\u0000${t.name}`, t);
      return { tables: [...tables.values()], wide: invs.some((i) => i.wide), catalogChanged: invs.some((i) => i.catalogChanged) };
    },
  };
}
