// test-timeout: 180
//
// A fleet member's secrets and its start (issue 16): sidecache reaches a TLS redis-server (CA and
// certificate made by openssl in the test) with the password from a file, from the environment
// or from the URL, and the password appears nowhere it could leak: stdout, stderr at debug level,
// /api/config, /stats, /metrics. With Redis unreachable (or the password wrong) the proxy still
// relays every request and answers nothing from its cache (bypass "bus-down").
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { busConnected, waitForBus } from './support/fleet.js';
import { cacheStats, scrape, sumOf } from './support/metrics.js';
import { startRedis, type RedisServer } from './support/redis-server.js';
import { DIRECT_PG, startProxy, type RunningProxy } from './support/sidecache.js';

const SECRET = 'Sup3r-s3cret-fleet-pw';
const ADMIN_TOKEN = 'admin-token-for-fleet-test';
let redis: RedisServer;
const dir = mkdtempSync(path.join(os.tmpdir(), 'sidecache-fleet-secret-'));

async function get(proxy: RunningProxy, pathname: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${proxy.adminPort}${pathname}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  return res.text();
}

async function assertNoSecret(proxy: RunningProxy): Promise<void> {
  for (const pathname of ['/api/config', '/stats', '/metrics']) {
    const body = await get(proxy, pathname);
    assert.not.ok(body.includes(SECRET), `${pathname} shows the password`);
  }
  assert.not.ok(proxy.output().includes(SECRET), `the log shows the password:\n${proxy.output()}`);
}

/** Reads through the proxy twice; the second is a hit when the cache answers. */
async function readTwice(proxy: RunningProxy): Promise<void> {
  const client = new pg.Client({ ...DIRECT_PG, port: proxy.pgPort });
  await client.connect();
  try {
    for (let i = 0; i < 2; i++) assert.equal((await client.query('SELECT 40 + 2 AS answer')).rows, [{ answer: 42 }]);
  } finally {
    await client.end();
  }
}

test.before(async () => {
  redis = await startRedis({ password: SECRET, tls: true });
});

test.after(async () => {
  await redis.stop();
});

test('TLS with ?ca= and the password from a file, from the environment or in the URL: connected, and the password shows nowhere', async () => {
  const file = path.join(dir, 'redis-password');
  writeFileSync(file, `${SECRET}\n`);
  const base = ['--admin-token', ADMIN_TOKEN, '--log-level', 'debug'];
  const ways: { args: string[]; env?: NodeJS.ProcessEnv }[] = [
    { args: ['--redis', redis.url, '--redis-password-file', file] },
    { args: ['--redis', redis.url], env: { SIDECACHE_REDIS_PASSWORD: SECRET } },
    { args: ['--redis', redis.url.replace('rediss://', `rediss://default:${SECRET}@`)] },
  ];
  for (const way of ways) {
    const proxy = await startProxy({ args: [...base, ...way.args], env: way.env });
    try {
      await waitForBus([proxy]);
      await readTwice(proxy);
      const stats = JSON.parse(await get(proxy, '/stats')) as { fleet: { connected: boolean; redis: string } };
      assert.ok(stats.fleet.connected);
      assert.match(stats.fleet.redis, /^rediss:\/\/(default@)?127\.0\.0\.1:\d+\?ca=/);
      assert.ok(sumOf(await scrape(proxy.adminPort), 'sidecache_cache_hits_total') >= 1, 'the cache answers once the bus is followed');
      await assertNoSecret(proxy);
    } finally {
      await proxy.stop();
    }
  }
});

test('a wrong password: the proxy relays every read, answers none from its cache, and logs the refusal without any password', async () => {
  const proxy = await startProxy({ args: ['--admin-token', ADMIN_TOKEN, '--log-level', 'debug', '--redis', redis.url, '--redis-password', `${SECRET}-wrong`] });
  try {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.not.ok(await busConnected(proxy));
    await readTwice(proxy);
    const samples = await scrape(proxy.adminPort);
    assert.is(sumOf(samples, 'sidecache_cache_hits_total'), 0);
    assert.is(sumOf(samples, 'sidecache_cache_bypass_total', { reason: 'bus-down' }), 2);
    assert.match(proxy.output(), /WRONGPASS|invalid username-password/i);
    await assertNoSecret(proxy);
    assert.not.ok(proxy.output().includes(`${SECRET}-wrong`));
  } finally {
    await proxy.stop();
  }
});

test('Redis unreachable at start: the proxy starts, relays, bypasses the cache; once Redis is there, caching starts', async () => {
  const later = await startRedis({ password: SECRET });
  const port = later.port;
  await later.kill();
  const proxy = await startProxy({ args: ['--redis', `redis://127.0.0.1:${port}`], env: { SIDECACHE_REDIS_PASSWORD: SECRET } });
  try {
    await readTwice(proxy);
    const stats = await cacheStats(proxy.adminPort) as { fleet: { state: string }; protocols: { postgres: { bypassReasons: Record<string, number> } } };
    assert.is(stats.fleet.state, 'starting');
    assert.is(stats.protocols.postgres.bypassReasons['bus-down'], 2);
    await later.restart();
    await waitForBus([proxy]);
    await readTwice(proxy);
    assert.ok(sumOf(await scrape(proxy.adminPort), 'sidecache_cache_hits_total') >= 1);
  } finally {
    await proxy.stop();
    await later.stop();
  }
});

test.run();
