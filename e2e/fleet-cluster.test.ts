// test-timeout: 300
//
// A fleet on a Redis Cluster (issue 16): three masters with a replica each, made by redis-cli
// --cluster create, and three sidecache processes given its seed nodes. The master holding the bus
// is killed in the middle of a stale-read check and its replica promoted: no read through B or C
// is older than a write acknowledged through A more than the allowed lag before it, no client
// request fails, and the proxies follow the bus on the promoted replica afterwards.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_OPTIONS, type CheckOptions, type CheckReport } from './consistency/checker.js';
import { pgDriver } from './consistency/pg-driver.js';
import { details, summaryLine } from './consistency/summary.js';
import { checkAcrossFleet, startFleetProxies, waitForBus } from './support/fleet.js';
import { scrape, sumOf } from './support/metrics.js';
import { startRedisCluster, type RedisCluster } from './support/redis-server.js';
import type { RunningProxy } from './support/sidecache.js';

const CI_RUN: CheckOptions = { ...DEFAULT_OPTIONS, seconds: 5, writers: 3, readers: 6, minHitRatio: 0.05 };
/** The stream of the default --redis-key-prefix. */
const STREAM_KEY = '{sidecache}:bus';
let cluster: RedisCluster;
let fleet: RunningProxy[] = [];

function assertPassed(report: CheckReport): void {
  const t = [summaryLine(report), ...details(report)].join('\n');
  console.log(t);
  assert.is(report.violations, 0, t);
  assert.equal(report.errors, [], t);
  assert.ok(report.hits > 0, t);
  assert.equal(report.failures, [], t);
}

test.before(async () => {
  cluster = await startRedisCluster(3, 1);
  fleet = await startFleetProxies(3, ['--redis-cluster', cluster.seeds]);
  await waitForBus(fleet);
});

test.after(async () => {
  await Promise.all(fleet.map((p) => p.stop()));
  await cluster.stop();
});

test('on a Redis Cluster: a write through A is never read stale through B or C beyond the allowed lag', async () => {
  const [a, b, c] = fleet;
  assertPassed(await checkAcrossFleet(pgDriver, a!, [b!, c!], CI_RUN));
});

test('the master holding the bus killed and its replica promoted: no stale read, no failed request, the bus resumes', async () => {
  const [a, b, c] = fleet;
  let failover: { killed: number; promoted: number } | null = null;
  const chaos = async (): Promise<void> => {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const { killed, promoted } = await cluster.failOver(STREAM_KEY);
    failover = { killed: killed.port, promoted: promoted.port };
  };
  const [report] = await Promise.all([checkAcrossFleet(pgDriver, a!, [b!, c!], { ...CI_RUN, seconds: 12 }), chaos()]);
  console.log(`failover: ${JSON.stringify(failover)}`);
  assertPassed(report);
  await waitForBus(fleet);
  const fences = await Promise.all(fleet.map(async (p) => sumOf(await scrape(p.adminPort), 'sidecache_bus_fences_total')));
  assert.ok(fences.every((n) => n >= 1), `every proxy fenced itself at the failover: ${fences.join(', ')}`);
  assertPassed(await checkAcrossFleet(pgDriver, a!, [b!, c!], { ...CI_RUN, seconds: 3 }));
});

test.run();
