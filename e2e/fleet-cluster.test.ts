// test-timeout: 300
//
// A fleet on a Redis Cluster (issue 16): three masters with a replica each, made by redis-cli
// --cluster create, and three sidecache processes given its seed nodes. The master holding the bus
// is killed in the middle of a stale-read check and its replica promoted: no read through B or C
// is older than a write acknowledged through A more than the allowed lag before it, no client
// request fails, and the proxies follow the bus on the promoted replica afterwards.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pgDriver } from './consistency/pg-driver.js';
import { parseRedisCluster } from '../config/redis-target.js';
import { assertNoStaleRead, checkAcrossFleet, FLEET_RUN, fleetBus, startFleetProxies, waitForBus, type FleetBus } from './support/fleet.js';
import { scrape, sumOf } from './support/metrics.js';
import { startRedisCluster, type RedisCluster } from './support/redis-server.js';
import type { RunningProxy } from './support/sidecache.js';

/** The stream of the default --redis-key-prefix. */
const STREAM_KEY = '{sidecache}:bus';
let cluster: RedisCluster;
let fleet: RunningProxy[] = [];
let bus: FleetBus;

test.before(async () => {
  cluster = await startRedisCluster(3, 1);
  fleet = await startFleetProxies(3, ['--redis-cluster', cluster.seeds]);
  await waitForBus(fleet);
  bus = await fleetBus({ target: parseRedisCluster(cluster.seeds), cluster: true, password: null, ca: null });
});

test.after(async () => {
  bus?.close();
  await Promise.all(fleet.map((p) => p.stop()));
  await cluster.stop();
});

test('on a Redis Cluster: a write through A is never read stale through B or C beyond the allowed lag', async () => {
  const [a, b, c] = fleet;
  assertNoStaleRead(await checkAcrossFleet(pgDriver, a!, [b!, c!], FLEET_RUN, bus));
});

test('the master holding the bus killed and its replica promoted: no stale read, no failed request, the bus resumes', async () => {
  const [a, b, c] = fleet;
  let failover: { killed: number; promoted: number } | null = null;
  const chaos = async (): Promise<void> => {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const { killed, promoted } = await cluster.failOver(STREAM_KEY);
    failover = { killed: killed.port, promoted: promoted.port };
  };
  const [report] = await Promise.all([checkAcrossFleet(pgDriver, a!, [b!, c!], { ...FLEET_RUN, seconds: 12 }, bus), chaos()]);
  console.log(`failover: ${JSON.stringify(failover)}`);
  assertNoStaleRead(report);
  await waitForBus(fleet);
  const fences = await Promise.all(fleet.map(async (p) => sumOf(await scrape(p.adminPort), 'sidecache_bus_fences_total')));
  assert.ok(fences.every((n) => n >= 1), `every proxy fenced itself at the failover: ${fences.join(', ')}`);
  assertNoStaleRead(await checkAcrossFleet(pgDriver, a!, [b!, c!], { ...FLEET_RUN, seconds: 3 }, bus));
});

test.run();
