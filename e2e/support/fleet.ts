// A fleet of real sidecache processes sharing one Redis, for the fleet's e2e tests: start them, wait
// until each follows the bus (or is fenced off it), and run the stale-read checker with the writes
// through the first proxy and the reads through the others.
import { randomBytes } from 'node:crypto';
import * as assert from 'uvu/assert';
import { fleetKeys } from '../../fleet/keys.js';
import { isReady, openRedis, type RedisAccess } from '../../fleet/redis-connection.js';
import { checkConsistency, DEFAULT_OPTIONS, type BusProgress, type CheckOptions, type CheckReport } from '../consistency/checker.js';
import type { ConsistencyDriver } from '../consistency/driver.js';
import { details, summaryLine } from '../consistency/summary.js';
import { cacheStats, scrape, sumOf } from './metrics.js';
import { DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './sidecache.js';

/** The fleet promise the checker holds reads through the other proxies to (docs/consistency.md). */
export const ALLOWED_LAG_MS = 100;

/**
 * The checker at CI size across a fleet. Each read proxy fills its own cache and every write through
 * A empties the entries of both: fewer hits than through one proxy, so the "it did hit" bar is lower.
 */
export const FLEET_RUN: CheckOptions = { ...DEFAULT_OPTIONS, seconds: 5, minHits: 100, maxSeconds: 40, writers: 3, readers: 6 };

export function reportText(report: CheckReport): string {
  return [summaryLine(report), ...details(report)].join('\n');
}

/** No violation, no client error, hits, no failure; prints the report. */
export function assertNoStaleRead(report: CheckReport): void {
  const text = reportText(report);
  console.log(text);
  assert.is(report.violations, 0, text);
  assert.equal(report.errors, [], text);
  assert.ok(report.hits > 0, text);
  assert.equal(report.failures, [], text);
}

/** `count` proxies in front of the local PostgreSQL and MariaDB, with `redisArgs` (--redis ... or --redis-cluster ...). */
export async function startFleetProxies(count: number, redisArgs: string[], env: NodeJS.ProcessEnv = {}): Promise<RunningProxy[]> {
  const proxies: RunningProxy[] = [];
  try {
    for (let i = 0; i < count; i++) {
      proxies.push(await startProxy({ mysqlUpstream: DIRECT_MYSQL_URL, args: ['--fleet-lease', '1s', ...redisArgs], env }));
    }
    return proxies;
  } catch (err) {
    await Promise.all(proxies.map((p) => p.stop()));
    throw err;
  }
}

export async function busConnected(proxy: RunningProxy): Promise<boolean> {
  return sumOf(await scrape(proxy.adminPort), 'sidecache_bus_connected') === 1;
}

/** Waits until every proxy's bus is connected (or, with `connected` false, fenced). */
export async function waitForBus(proxies: readonly RunningProxy[], connected = true, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = await Promise.all(proxies.map((p) => busConnected(p).catch(() => !connected)));
    if (states.every((s) => s === connected)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for every bus to be ${connected ? 'connected' : 'fenced'}: ${states.join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface FleetBus extends BusProgress {
  close(): void;
}

/**
 * Where the fleet's bus is, for the checker: the entry counter in its Redis (`access`, the default
 * key prefix) and each proxy's applied position from its /stats. Resolves once Redis is reachable.
 */
export async function fleetBus(access: RedisAccess): Promise<FleetBus> {
  const redis = openRedis(access, 'checker', 2000);
  redis.on('error', () => undefined);
  const deadline = Date.now() + 30_000;
  while (!isReady(redis)) {
    if (Date.now() > deadline) {
      redis.disconnect();
      throw new Error('the checker could not reach the fleet\'s Redis');
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const seq = fleetKeys('sidecache').seq;
  return {
    async numbered() {
      return isReady(redis) ? Number(await redis.call('GET', seq) ?? 0) : null;
    },
    async applied(adminPort) {
      return ((await cacheStats(adminPort, 0)) as { fleet: { position: number } }).fleet.position;
    },
    close: () => redis.disconnect(),
  };
}

/**
 * The checker with every write through `writer` and the reads spread over `readers`, on a table of
 * its own. With `bus`, each read is held to the writes acknowledged `allowedLagMs` before it that
 * its proxy had applied (the promise; machine speed cannot fail it), and reads only the lag would
 * fail are counted (`behindLag`); without, to every write acknowledged `allowedLagMs` before it.
 */
export async function checkAcrossFleet(driver: ConsistencyDriver, writer: RunningProxy, readers: readonly RunningProxy[], options: CheckOptions,
  bus?: BusProgress, allowedLagMs = ALLOWED_LAG_MS): Promise<CheckReport> {
  const table = `sc_fleet_${process.pid}_${randomBytes(4).toString('hex')}`;
  await driver.createTable(table, options.keys);
  try {
    return await checkConsistency(driver, {
      port: driver.portOf(readers[0]!),
      adminPort: readers[0]!.adminPort,
      writePort: driver.portOf(writer),
      readPorts: readers.map((p) => driver.portOf(p)),
      adminPorts: readers.map((p) => p.adminPort),
      allowedLagMs,
      bus,
    }, table, options);
  } finally {
    await driver.dropTable(table);
  }
}
