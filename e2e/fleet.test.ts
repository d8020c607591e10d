// test-timeout: 300
//
// A fleet (issue 16): three sidecache processes in front of the same PostgreSQL and MariaDB sharing
// a private redis-server (requirepass). The stale-read checker writes through A and reads through B
// and C: no read may return a version older than one acknowledged through A more than 100 ms
// before it was sent. Two proxies without the bus fail that check (the checker can fail). Redis
// killed in the middle of a run: still no stale read, no failed client request, and caching comes
// back once Redis does. The leader of the fleet's pulse killed: another proxy leads within the lease.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mysqlDriver } from './consistency/mysql-driver.js';
import { pgDriver } from './consistency/pg-driver.js';
import { assertNoStaleRead, checkAcrossFleet, FLEET_RUN, reportText, startFleetProxies, waitForBus } from './support/fleet.js';
import { cacheStats, scrape, sumOf } from './support/metrics.js';
import { startRedis, type RedisServer } from './support/redis-server.js';
import type { RunningProxy } from './support/sidecache.js';

const PASSWORD = 'fleet-e2e-password';
let redis: RedisServer;
let fleet: RunningProxy[] = [];

test.before(async () => {
  redis = await startRedis({ password: PASSWORD });
  fleet = await startFleetProxies(3, ['--redis', `redis://127.0.0.1:${redis.port}`], { SIDECACHE_REDIS_PASSWORD: PASSWORD });
  await waitForBus(fleet);
});

test.after(async () => {
  await Promise.all(fleet.map((p) => p.stop()));
  await redis.stop();
});

test('PostgreSQL: a write through A is never read stale through B or C beyond the allowed lag', async () => {
  const [a, b, c] = fleet;
  assertNoStaleRead(await checkAcrossFleet(pgDriver, a!, [b!, c!], FLEET_RUN));
  const stats = await cacheStats(b!.adminPort) as { fleet: { lagMs: { count: number; p50Ms: number; p99Ms: number } } };
  console.log(`bus lag at B: ${JSON.stringify(stats.fleet.lagMs)}`);
  assert.ok(stats.fleet.lagMs.count > 0);
});

test('MySQL/MariaDB: a write through A is never read stale through B or C beyond the allowed lag', async () => {
  const [a, b, c] = fleet;
  assertNoStaleRead(await checkAcrossFleet(mysqlDriver, a!, [b!, c!], FLEET_RUN));
});

test('without the bus, reads through B return what A\'s writes made stale (the checker can fail)', async () => {
  const alone = await startFleetProxies(2, []);
  try {
    const report = await checkAcrossFleet(pgDriver, alone[0]!, [alone[1]!], { ...FLEET_RUN, seconds: 3 });
    // Stale reads during the run, or at the latest in the final reads through B.
    assert.ok(report.violations > 0, reportText(report));
  } finally {
    await Promise.all(alone.map((p) => p.stop()));
  }
});

test('Redis killed mid-run: no stale read, no failed request, reads bypass ("bus-down"), caching resumes after Redis restarts', async () => {
  const [a, b, c] = fleet;
  const chaos = async (): Promise<void> => {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await redis.kill();
    await waitForBus(fleet, false);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await redis.restart();
  };
  const [report] = await Promise.all([checkAcrossFleet(pgDriver, a!, [b!, c!], { ...FLEET_RUN, seconds: 10 }), chaos()]);
  assertNoStaleRead(report);
  await waitForBus(fleet);
  const samples = await scrape(b!.adminPort);
  assert.ok(sumOf(samples, 'sidecache_cache_bypass_total', { protocol: 'postgres', reason: 'bus-down' }) > 0, 'reads while fenced were bypasses');
  assert.ok(sumOf(samples, 'sidecache_bus_fences_total') >= 1);
  // Caching is back: a run after the restart hits again.
  assertNoStaleRead(await checkAcrossFleet(pgDriver, a!, [b!, c!], { ...FLEET_RUN, seconds: 3 }));
});

test('the leader of the fleet\'s pulse killed: another proxy leads within the lease', async () => {
  const leaders = async (): Promise<RunningProxy[]> => {
    const states = await Promise.all(fleet.map(async (p) => {
      const stats = await cacheStats(p.adminPort).catch(() => null) as { fleet: { leader: Record<string, boolean> } } | null;
      return stats?.fleet.leader.beat === true;
    }));
    return fleet.filter((_, i) => states[i]);
  };
  const deadline = Date.now() + 20_000;
  let now = await leaders();
  while (now.length !== 1 && Date.now() < deadline) now = await leaders();
  assert.is(now.length, 1, 'exactly one proxy leads');
  const old = now[0]!;
  old.child.kill('SIGKILL');
  fleet = fleet.filter((p) => p !== old);
  const killed = Date.now();
  let next: RunningProxy[] = [];
  while (next.length === 0 && Date.now() < killed + 20_000) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    next = await leaders();
  }
  assert.is(next.length, 1, 'another proxy took over');
  console.log(`leader took over ${Date.now() - killed} ms after the kill (lease 1 s)`);
  await old.stop();
});

test.run();
