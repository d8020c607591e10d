// The change streams sidecache follows, per the config: PostgreSQL's (--pg-cdc) and the MySQL
// binlog (--mysql-cdc), each feeding its protocol's cache. The only place the rest of sidecache
// starts and stops them (cli/sidecache.ts).
import type { Metrics } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/log.js';
import type { Config } from '../config/settings.js';
import type { MySqlCache } from '../proxy/mysql/mysql-cache.js';
import type { PgCache } from '../proxy/pg/pg-cache.js';
import type { ChangeFence } from './change-fence.js';
import { followMysql } from './mysql/follow-mysql.js';
import { followPostgres } from './pg/follow-postgres.js';

export interface ChangeStreams {
  stop(): Promise<void>;
}

/** Starts what the config asks for; a configured stream whose side has no cache is pointless and says so. */
export function startChangeStreams(config: Config, caches: { postgres: PgCache | null; mysql: MySqlCache | null }, metrics: Metrics, log: Logger): ChangeStreams {
  const fences: ChangeFence[] = [];
  for (const [flag, configured, cache, follow] of [
    ['--pg-cdc', config.pgCdc !== null, caches.postgres, () => followPostgres(config, caches.postgres!, metrics, log)],
    ['--mysql-cdc', config.mysqlCdc !== null, caches.mysql, () => followMysql(config, caches.mysql!, metrics, log)],
  ] as const) {
    if (!configured) continue;
    if (cache === null) log.info({ flag }, 'cdc: the cache is off (cache-max-bytes 0): no change stream is needed');
    else fences.push(follow());
  }
  return {
    async stop() {
      await Promise.all(fences.map((f) => f.stop()));
    },
  };
}
