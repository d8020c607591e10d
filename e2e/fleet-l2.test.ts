// test-timeout: 180
//
// The fleet's second tier (--l2 on, issue 16 item 4) in front of PostgreSQL, on a private
// redis-server: a proxy started after another filled a result answers its first read of it from
// Redis (counted: an L2 hit, no miss), for the simple and the extended protocol; a write through
// one proxy voids the tier's entry, so a proxy started after the write reads the new row from the
// database; without --l2 a new proxy's first read is a miss. The same for MySQL, text and prepared.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitForBus } from './support/fleet.js';
import { cacheCounters, scrape, sumOf } from './support/metrics.js';
import { connectMySql, directMySql } from './support/mysql-direct.js';
import { connectPg, direct, uniqueName } from './support/pg-direct.js';
import { startRedis, type RedisServer } from './support/redis-server.js';
import { DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

const table = uniqueName('l2_items');
const SIMPLE = `SELECT v FROM ${table} WHERE id = 1`;
const EXTENDED = `SELECT v FROM ${table} WHERE id = $1`;
let redis: RedisServer;
const proxies: RunningProxy[] = [];

async function proxy(l2: boolean): Promise<RunningProxy> {
  const p = await startProxy({ mysqlUpstream: DIRECT_MYSQL_URL, args: ['--fleet-lease', '1s', '--redis', `redis://127.0.0.1:${redis.port}`, ...(l2 ? ['--l2', 'on'] : [])] });
  proxies.push(p);
  await waitForBus([p]);
  return p;
}

/** Reads through `p` on a new connection: the simple query, then the extended one for id 1. */
async function read(p: RunningProxy): Promise<[string, string]> {
  const c = await connectPg(p.pgPort);
  try {
    const simple = await c.query<{ v: string }>(SIMPLE);
    const extended = await c.query<{ v: string }>({ text: EXTENDED, values: [1] });
    return [simple.rows[0]!.v, extended.rows[0]!.v];
  } finally {
    await c.end();
  }
}

/** Waits until Redis holds `count` second-tier entries of `protocol` (written after the client's reply). */
async function keptInRedis(protocol: string, count: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const keys = (await redis.cli('--scan', '--pattern', `sidecache:l2:${protocol}:*`)).split('\n').filter((k) => k !== '');
    if (keys.length >= count) return;
    if (Date.now() > deadline) assert.unreachable(`${keys.length} of ${count} ${protocol} entries in Redis`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function l2(p: RunningProxy, what: string): Promise<number> {
  return sumOf(await scrape(p.adminPort), `sidecache_l2_${what}_total`);
}

/** Reads through `p`'s MySQL side on a new connection: text, then prepared, for id 1. */
async function readMySql(p: RunningProxy): Promise<[unknown, unknown]> {
  const c = await connectMySql(p.mysqlPort);
  try {
    const [text] = await c.query(SIMPLE);
    const [prepared] = await c.execute(SIMPLE.replace('= 1', '= ?'), [1]);
    return [text, prepared];
  } finally {
    await c.end();
  }
}

test.before(async () => {
  redis = await startRedis();
  await direct(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
  await direct(`INSERT INTO ${table} VALUES (1, 'one')`);
  await directMySql(`CREATE TABLE test.${table} (id INT PRIMARY KEY, v TEXT)`, `INSERT INTO test.${table} VALUES (1, 'one')`);
});

test.after(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
  await redis?.stop();
  await direct(`DROP TABLE IF EXISTS ${table}`);
  await directMySql(`DROP TABLE IF EXISTS test.${table}`);
});

test('a proxy started after another filled a result answers its first read from the second tier', async () => {
  const a = await proxy(true);
  assert.equal(await read(a), ['one', 'one']);
  await keptInRedis('postgres', 2); // A's writes to Redis are not awaited by its client
  assert.is(await l2(a, 'writes'), 2, 'both fills kept in Redis');
  const b = await proxy(true);
  assert.equal(await read(b), ['one', 'one']);
  const counters = await cacheCounters(b.adminPort);
  assert.is(counters.misses, 0, `nothing went to the database as a miss: l2 ${JSON.stringify(await Promise.all(['hits', 'misses', 'stale', 'errors', 'writes'].map((w) => l2(b, w))))} a: ${JSON.stringify(await Promise.all(['hits', 'misses', 'stale', 'errors', 'writes'].map((w) => l2(a, w))))}`);
  assert.is(counters.hits, 2);
  assert.is(await l2(b, 'hits'), 2);
});

test('a write through one proxy voids the entry: a proxy started after it reads the new row', async () => {
  const [a, b] = proxies;
  const w = await connectPg(a!.pgPort);
  try {
    await w.query(`UPDATE ${table} SET v = 'two' WHERE id = 1`);
  } finally {
    await w.end();
  }
  const c = await proxy(true);
  assert.equal(await read(c), ['two', 'two']);
  assert.ok(await l2(c, 'stale') >= 1, 'the tier held the old entry, void');
  assert.is((await cacheCounters(c.adminPort)).hits, 0);
  assert.equal(await read(b!), ['two', 'two'], 'B\'s own copy was dropped by the bus');
});

test('without --l2 a new proxy\'s first read goes to the database', async () => {
  const d = await proxy(false);
  assert.equal(await read(d), ['two', 'two']);
  const counters = await cacheCounters(d.adminPort);
  assert.is(counters.hits, 0);
  assert.is(counters.misses, 2);
});

test('MySQL: a new proxy answers its first text and prepared reads from the second tier; a write voids them', async () => {
  const [a, b] = proxies;
  const before = await l2(b!, 'hits');
  assert.equal(await readMySql(a!), [[{ v: 'one' }], [{ v: 'one' }]]);
  await keptInRedis('mysql', 2);
  const fresh = await proxy(true);
  assert.equal(await readMySql(fresh), [[{ v: 'one' }], [{ v: 'one' }]]);
  assert.is(await l2(fresh, 'hits'), 2, 'both from Redis');
  assert.is(sumOf(await scrape(fresh.adminPort), 'sidecache_cache_misses_total', { protocol: 'mysql' }), 0);
  const w = await connectMySql(a!.mysqlPort);
  try {
    await w.query(`UPDATE ${table} SET v = 'two' WHERE id = 1`);
  } finally {
    await w.end();
  }
  const after = await proxy(true);
  assert.equal(await readMySql(after), [[{ v: 'two' }], [{ v: 'two' }]]);
  assert.is(await l2(after, 'hits'), 0);
  assert.ok(await l2(b!, 'hits') >= before);
});

test.run();
