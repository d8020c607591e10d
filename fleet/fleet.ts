// A fleet of sidecaches sharing one Redis: the invalidation bus, the leases of leader tasks and
// what /metrics, /stats and the dashboard show of them. cli/sidecache.ts starts it when --redis or
// --redis-cluster is set; without them nothing here runs and each proxy works alone.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Metrics, Protocol } from '../telemetry/metrics.js';
import type { Config } from '../config/settings.js';
import type { Invalidation, InvalidationSink } from '../proxy/result-cache.js';
import { InvalidationBus, type BusCache, type BusState, type BusStatus, type FenceReason } from './bus.js';
import { SecondTier, type L2Counts } from './l2.js';
import { fleetKeys } from './keys.js';
import { sleepUnless } from './sleeper.js';
import { MAX_FOLLOWED } from '../changes/change-fence.js';
import { Lease, type LeaderTask } from './lease.js';
import { registerFleetMetrics } from './metrics.js';
import { openRedis, redisAccess } from './redis-connection.js';
import { runScript, WANT } from './scripts.js';

/**
 * One XREAD waits this long; one that has not come back this much later counts as a lost bus (a
 * Redis gone silent without closing the connection is noticed within their sum).
 */
const BLOCK_MS = 1000;
const GRACE_MS = 1000;
/** Bound on a publish or a lease command. */
const COMMAND_TIMEOUT_MS = 2000;
/** A target asked for stays in the wanted set this long after the last ask. */
const WANTED_FOR_MS = 24 * 3600_000;
/** The leader's pulse. */
export const BEAT_TASK = 'beat';
const BEAT_MS = 1000;

/** What /stats and the dashboard show of the fleet. */
export interface FleetReport {
  instance: string;
  /** The Redis URL without its password. */
  redis: string;
  state: BusState;
  /** Live: following the bus, so the cache answers. */
  connected: boolean;
  position: number;
  published: number;
  applied: number;
  publishFailures: number;
  unreadable: number;
  queued: number;
  fences: Record<FenceReason, number>;
  /** Publish to apply of other proxies' entries. */
  lagMs: { count: number; p50Ms: number | null; p99Ms: number | null; meanMs: number | null };
  /** Per leader task: does this proxy lead it now? */
  leader: Record<string, boolean>;
  /**
   * Per protocol whose change streams the fleet follows: what its leader last reported up, as this
   * proxy believes it (fleet/change-leader.ts); the leader itself shows its own streams.
   */
  streams: Partial<Record<Protocol, StreamsView>>;
  /** The second tier's counts (--l2 on); null without it. */
  l2: L2Counts | null;
}

/** What the fleet needs of a protocol's cache (proxy/result-cache.ts ResultCache fits). */
export interface FleetCache extends BusCache {
  joinFleet(sink: InvalidationSink, secondTier?: SecondTier | null): void;
  invalidateEverywhere(invalidation: Invalidation): number;
}

/** A protocol's change streams as a proxy of the fleet sees them. */
export interface StreamsView {
  /** This proxy follows them. */
  leading: boolean;
  /** The instance whose report is believed (this one when leading); null: none. */
  leader: string | null;
  /** Targets reported up: PostgreSQL databases, `*` for the MySQL binlog. */
  up: string[];
  /** How old the report is; null when leading or without one. */
  ageMs: number | null;
}

export interface Fleet {
  readonly bus: InvalidationBus;
  /**
   * Runs `run` on one proxy of the fleet at a time, moving on within the lease when it dies. A
   * task whose predecessor may have died before publishing what it did treats its start as a gap
   * itself (fleet/change-leader.ts).
   */
  lead(task: string, run: LeaderTask): void;
  /** Asks the leader of `protocol`'s change streams to follow `target` (best effort; a bounded set in Redis). */
  wantStream(protocol: Protocol, target: string): void;
  /** The targets asked for. */
  wantedStreams(protocol: Protocol): Promise<string[]>;
  /** Adds a protocol's change streams to /stats. */
  showStreams(protocol: Protocol, view: () => StreamsView): void;
  report(): FleetReport;
  /** Releases the leases, stops following the bus, closes the connections. */
  close(): Promise<void>;
}

/** Null when no fleet is configured. Throws FleetConfigError when a secret file cannot be read. */
export function startFleet(config: Config, caches: ReadonlyMap<Protocol, FleetCache>, metrics: Metrics, log: Logger): Fleet | null {
  const access = redisAccess(config);
  if (access === null) return null;
  const instance = `${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`;
  const keys = fleetKeys(config.redisKeyPrefix);
  const commands = openRedis(access, 'fleet', COMMAND_TIMEOUT_MS);
  const reader = openRedis(access, 'fleet-reader', BLOCK_MS + GRACE_MS + COMMAND_TIMEOUT_MS);
  let tier: SecondTier | null = null;
  const bus = new InvalidationBus(commands, reader, caches, {
    keys, instance, maxLength: config.fleetStreamMaxLength, blockMs: BLOCK_MS, graceMs: GRACE_MS, log,
    onCaughtUp: async () => tier?.readEra(),
  });
  // Entries may be large and are read on a client's miss: not on the bus's command connection,
  // where a publish must not wait behind them.
  const l2Connection = config.l2 === 'on' ? openRedis(access, 'l2', COMMAND_TIMEOUT_MS) : null;
  if (l2Connection !== null) tier = new SecondTier(l2Connection, keys, bus, log, config.cacheMaxEntryBytes);
  log.info({ redis: access.target.display, cluster: access.cluster, instance, stream: keys.stream }, 'fleet: joining; caching off until the bus is connected');
  for (const cache of caches.values()) cache.joinFleet(bus, tier);
  bus.start();

  const leases = new Map<string, Lease>();
  const streamViews = new Map<Protocol, () => StreamsView>();
  const fleet: Fleet = {
    bus,
    lead(task, run) {
      if (leases.has(task)) throw new Error(`a leader task named ${task} runs already`);
      const lease = new Lease(commands, { key: keys.lease(task), holder: instance, ttlMs: config.fleetLeaseMs, log });
      leases.set(task, lease);
      lease.whileLeader(run);
    },
    wantStream(protocol, target) {
      runScript(commands, WANT, [keys.streamsWanted(protocol)], [target, MAX_FOLLOWED, WANTED_FOR_MS]).catch((err: Error) => {
        log.debug({ err: err.message, protocol, target }, 'fleet: could not ask for a change stream');
      });
    },
    async wantedStreams(protocol) {
      return await commands.call('SMEMBERS', keys.streamsWanted(protocol)) as string[];
    },
    showStreams(protocol, view) {
      streamViews.set(protocol, view);
    },
    report: () => report(access.target.display, bus.status(), leases, tier, streamViews),
    async close() {
      await Promise.all([...leases.values()].map((l) => l.stop()));
      await bus.close();
      commands.disconnect();
      reader.disconnect();
      l2Connection?.disconnect();
    },
  };
  fleet.lead(BEAT_TASK, async (signal) => {
    while (!signal.aborted) {
      bus.publishBeat();
      await sleepUnless(BEAT_MS, signal);
    }
  });
  registerFleetMetrics(metrics.registry, () => bus.status(), () => leases, tier);
  return fleet;
}

function report(redis: string, bus: BusStatus, leases: ReadonlyMap<string, Lease>, tier: SecondTier | null, streams: ReadonlyMap<Protocol, () => StreamsView>): FleetReport {
  const { lag, instance, state, position, published, applied, publishFailures, unreadable, queued, fences } = bus;
  return {
    instance, redis, state, connected: state === 'live', position, published, applied, publishFailures, unreadable, queued, fences: { ...fences },
    lagMs: { count: lag.count, p50Ms: lag.quantileMs(0.5), p99Ms: lag.quantileMs(0.99), meanMs: lag.meanMs() },
    leader: Object.fromEntries([...leases].map(([task, lease]) => [task, lease.isLeader])),
    streams: Object.fromEntries([...streams].map(([protocol, view]) => [protocol, view()])),
    l2: tier === null ? null : { ...tier.counts },
  };
}
