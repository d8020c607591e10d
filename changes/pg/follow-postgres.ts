// The PostgreSQL side of the change streams: one stream per database clients use through
// sidecache (logical replication is per database), each invalidating that database's entries in
// the PostgreSQL cache.
import type { Metrics } from '../../telemetry/metrics.js';
import type { Logger } from '../../telemetry/log.js';
import type { Config } from '../../config/settings.js';
import { WriteScope, type PgCache } from '../../proxy/pg/pg-cache.js';
import { ChangeFence } from '../change-fence.js';
import { Follower, type FollowTarget } from '../follower.js';
import { pgUpstreamTlsPlan } from '../../proxy/tls.js';
import { openPgStream } from './pg-stream.js';
import type { PgInvalidation } from './pgoutput-tracker.js';

/** `onState`: a stream's state changed, before its entries are dropped (follower.ts). */
export function followPostgres(config: Config, cache: PgCache, metrics: Metrics, log: Logger, onState: (() => void) | null = null): ChangeFence {
  const source = config.pgCdc!;
  // The relay's own TLS settings for this server: a TLS-only database is reached the same way.
  const tls = pgUpstreamTlsPlan(config.pgUpstream!.tls);
  const fence = new ChangeFence(
    (database) => database,
    (database) => new Follower<PgInvalidation>('postgres', database,
      (sink) => openPgStream({ source, tls, database, publication: config.pgCdcPublication, ddl: config.pgCdcDdl === 'on' }, sink),
      pgTarget(cache, database), log, onState),
    metrics,
    log,
  );
  cache.followChanges(fence.fence);
  log.info({ source: source.url, publication: config.pgCdcPublication, ddl: config.pgCdcDdl }, 'cdc: following PostgreSQL\'s change stream of each database at its first use');
  return fence;
}

/** Applies a database's stream to the cache. */
export function pgTarget(cache: PgCache, database: string): FollowTarget<PgInvalidation> {
  return {
    apply(inv) {
      if (inv.wide) cache.invalidate(database, [], WriteScope.Database, inv.catalogChanged);
      else if (inv.catalogChanged) cache.catalogChangedFor(database, inv.tables);
      else cache.invalidate(database, inv.tables, WriteScope.Tables, false);
    },
    drop() {
      cache.invalidate(database, [], WriteScope.Database, true);
    },
    merge(invs) {
      const tables = new Set<string>();
      for (const i of invs) for (const t of i.tables) tables.add(t);
      return {
        tables: [...tables],
        wide: invs.some((i) => i.wide),
        catalogChanged: invs.some((i) => i.catalogChanged),
        commitTimeMs: null,
      };
    },
  };
}
