// One change-stream reader for a whole fleet. Per protocol with a change stream configured
// (--pg-cdc, --mysql-cdc), the proxies elect a leader with a lease in Redis (task `cdc-postgres`,
// `cdc-mysql`); only the leader follows the database's change stream. Its invalidations go through
// the cache's invalidateEverywhere(), like a write's, so the bus carries them to every proxy.
//
// The others must not fill what no running stream covers: the leader reports which of its streams
// are up on the bus (at every change of a stream's state, before that change's drop, and every
// REPORT_MS), and each other proxy fills for a target only while the last report, not older than
// one lease, says it is up (fleet/stream-mirror.ts). A PostgreSQL database is followed at its
// first use anywhere in the fleet: a proxy whose read finds its stream not up adds it to a set in
// Redis, which the leader reads every REPORT_MS.
//
// A hand-over is a gap: the new leader's stream starts at the server's current position, and what
// the old one read last may never have been published, so the new leader first reports nothing up
// and then drops every proxy's entries of that protocol, before it starts its streams.
// docs/consistency.md ("One change-stream reader for the fleet") has the argument.
import type { Logger } from 'pino';
import type { Config } from '../config/settings.js';
import type { Metrics, Protocol } from '../telemetry/metrics.js';
import type { PgCache } from '../proxy/pg/pg-cache.js';
import type { MySqlCache } from '../proxy/mysql/mysql-cache.js';
import type { ChangeStreams } from '../changes/start.js';
import type { ChangeFence } from '../changes/change-fence.js';
import type { Invalidation } from '../proxy/result-cache.js';
import { followPostgres } from '../changes/pg/follow-postgres.js';
import { followMysql, SERVER as MYSQL_STREAM } from '../changes/mysql/follow-mysql.js';
import { databaseTag } from '../cache/tags.js';
import type { Fleet } from './fleet.js';
import { sleepUnless } from './sleeper.js';
import { StreamMirror } from './stream-mirror.js';

/** The leader task of a protocol's change streams. */
export function changeStreamTask(protocol: Protocol): string {
  return `cdc-${protocol}`;
}

/** The leader reports its streams at least this often (and reads which databases are wanted); at most a third of the lease. */
const REPORT_MS = 1000;
/** A proxy asks for a database's stream at most this often. */
const ASK_EVERY_MS = 1000;

/** What a side needs of its protocol's cache (PgCache, MySqlCache). */
interface SideCache {
  followChanges(fence: (database: string | null) => 'cdc-down' | null): void;
  invalidateEverywhere(invalidation: Invalidation): number;
  applyInvalidation(invalidation: Invalidation): number;
}

interface Side {
  readonly protocol: Protocol;
  readonly cache: SideCache;
  /** Follows the streams here (this proxy leads); `onState` before each change of state's drop. */
  follow(onState: () => void): ChangeFence;
  /** What a target's stream covers, to drop in this proxy only. */
  covers(target: string): Invalidation;
  targetOf(database: string | null): string | null;
  /** Targets followed from the start of a term rather than on demand. */
  readonly followsAtStart: boolean;
}

/** Starts competing for the change streams the config asks for; with no cache on a side, nothing for it. */
export function leadChangeStreams(fleet: Fleet, config: Config, caches: { postgres: PgCache | null; mysql: MySqlCache | null }, metrics: Metrics, log: Logger): ChangeStreams {
  const sides: Side[] = [];
  const pg = caches.postgres;
  if (config.pgCdc !== null && pg !== null) {
    sides.push({
      protocol: 'postgres',
      cache: pg,
      follow: (onState) => followPostgres(config, pg, metrics, log, onState),
      covers: (database) => ({ scope: 'tags', tags: [databaseTag(database)], tables: 'database', catalog: database }),
      targetOf: (database) => database,
      followsAtStart: false,
    });
  }
  const my = caches.mysql;
  if (config.mysqlCdc !== null && my !== null) {
    sides.push({
      protocol: 'mysql',
      cache: my,
      follow: (onState) => followMysql(config, my, metrics, log, onState),
      covers: () => ({ scope: 'all', catalog: true }),
      targetOf: () => MYSQL_STREAM,
      followsAtStart: true,
    });
  }
  for (const side of sides) leadSide(fleet, side, config.fleetLeaseMs, log);
  // The leases' release on close ends each term, which stops its streams.
  return { stop: async () => {} };
}

function leadSide(fleet: Fleet, side: Side, leaseMs: number, log: Logger): void {
  const { protocol, cache } = side;
  const dropHere = (target: string): void => void cache.applyInvalidation(side.covers(target));
  const reportMs = Math.min(REPORT_MS, leaseMs / 3);
  const mirror = new StreamMirror({
    trustMs: leaseMs,
    targetOf: side.targetOf,
    drop: dropHere,
    ask: (target) => {
      if (!side.followsAtStart) fleet.wantStream(protocol, target);
    },
    askEveryMs: ASK_EVERY_MS,
  });
  let leading: ChangeFence | null = null;
  cache.followChanges(mirror.fence);
  fleet.bus.watchStreams({
    streams(p, up, origin) {
      // While leading, another's report can only be a late one from a term that ended.
      if (p === protocol && leading === null) mirror.report(up, origin);
    },
    caughtUp: () => mirror.clear(),
  });
  fleet.showStreams(protocol, () => leading !== null
    ? { leading: true, leader: null, up: leading.upTargets(), ageMs: null }
    : { leading: false, ...mirror.view() });

  fleet.lead(changeStreamTask(protocol), async (signal) => {
    mirror.clear();
    // The gap: the others stop filling under the last leader's report, then every entry goes.
    fleet.bus.publishStreams(protocol, []);
    cache.invalidateEverywhere({ scope: 'all', catalog: false });
    let streams: ChangeFence | null = null;
    // Before the drop that goes with each change of state: a proxy that applies the drop already
    // believes the new state, so it cannot fill in between under the old one.
    const report = (): void => {
      if (streams !== null) fleet.bus.publishStreams(protocol, streams.upTargets());
    };
    // Sets the cache's fence to the streams' own.
    streams = side.follow(report);
    leading = streams;
    const announced = new Set<string>();
    try {
      while (!signal.aborted) {
        report();
        if (!side.followsAtStart) {
          // What this proxy's own reads started goes into the set too: the next leader follows it
          // from its start, not only once a read through some proxy asks again.
          for (const target of streams.targets()) {
            if (!announced.has(target)) fleet.wantStream(protocol, target);
            announced.add(target);
          }
          try {
            for (const target of await fleet.wantedStreams(protocol)) if (!signal.aborted) streams.start(target);
          } catch (err) {
            log.debug({ err: (err as Error).message, protocol }, 'fleet: could not read the wanted change streams');
          }
        }
        await sleepUnless(reportMs, signal);
      }
    } finally {
      // No stream of ours covers anything from now on: this proxy's fills wait for the next
      // leader's report, its entries go, and the others hear at once rather than after the trust.
      leading = null;
      cache.followChanges(mirror.fence);
      for (const target of streams.upTargets()) dropHere(target);
      fleet.bus.publishStreams(protocol, []);
      await streams.stop();
    }
  });
}
