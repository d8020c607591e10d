// test-timeout: 120
//
// The second tier against a private redis-server, with two proxies' buses: a fill one proxy keeps
// is served to the other; an invalidation published after the fill's position voids it (and one of
// another table does not); a fill sent before an invalidation it did not see is never served (the
// fill race across proxies); a new era after trouble voids everything older; Redis gone is a miss.
// On one node a lookup is one script call (L2_GET), which refuses what L2_CHECK refuses; an entry
// an older sidecache wrote is a miss.
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Protocol } from '../telemetry/metrics.js';
import { parseRedisUrl } from '../config/redis-target.js';
import { startRedis, type RedisServer } from '../e2e/support/redis-server.js';
import type { Invalidation } from '../proxy/result-cache.js';
import { InvalidationBus, type BusCache } from './bus.js';
import { fleetKeys } from './keys.js';
import { dependencyFields, encodeL2Entry, type L2Entry } from './l2-entry.js';
import { SecondTier } from './l2.js';
import { openRedis, type RedisConnection } from './redis-connection.js';
import { L2_CHECK, L2_ERA, L2_GET, runScript, runScriptForBytes } from './scripts.js';

const keys = fleetKeys('l2test');
const log = pino({ level: 'silent' });
let server: RedisServer;

const noCache: BusCache = { applyInvalidation: () => 0, suspend: () => undefined, resume: () => undefined };

interface Proxy {
  bus: InvalidationBus;
  tier: SecondTier;
  connections: RedisConnection[];
}
const proxies: Proxy[] = [];

function proxy(instance: string): Proxy {
  const access = { target: parseRedisUrl(`redis://127.0.0.1:${server.port}`), cluster: false, password: null, ca: null };
  const connections = [openRedis(access, `${instance}-commands`, 2000), openRedis(access, `${instance}-reader`, 5000)];
  const caches = new Map<Protocol, BusCache>([['postgres', noCache]]);
  let tier: SecondTier | null = null;
  const bus = new InvalidationBus(connections[0]!, connections[1]!, caches, {
    keys, instance, maxLength: 10_000, blockMs: 200, graceMs: 300, log, onCaughtUp: () => tier!.readEra(),
  });
  tier = new SecondTier(connections[0]!, keys, bus, log, 1 << 20);
  bus.start();
  const p = { bus, tier, connections };
  proxies.push(p);
  return p;
}

async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const ORDERS = 'app\u0000\u0000orders';
const orders: Invalidation = { scope: 'tags', tags: [ORDERS], tables: ['orders'], catalog: null };
const other: Invalidation = { scope: 'tags', tags: ['app\u0000\u0000other'], tables: ['other'], catalog: null };
const fill = (text: string) => ({ bytes: Buffer.from(text), tags: [ORDERS, 'app\u0000'], fingerprint: 'fp', ttlMs: 60_000 });

/** Two live proxies. */
async function pair(): Promise<[Proxy, Proxy]> {
  const a = proxy('a');
  const b = proxy('b');
  await until('both live', () => a.bus.isLive && b.bus.isLive);
  return [a, b];
}

/** Waits until `p` applied everything published so far (its own entries included). */
async function caughtUp(p: Proxy): Promise<void> {
  const seq = Number(await server.cli('get', keys.seq));
  await until('caught up', () => p.bus.position() >= seq);
}

test.before(async () => {
  server = await startRedis();
});

test.after.each(async () => {
  for (const p of proxies.splice(0)) {
    await p.bus.close();
    for (const c of p.connections) c.disconnect();
  }
  await server.cli('flushall');
});

test.after(async () => {
  await server.stop();
});

test('a result one proxy kept is served to another; an invalidation of another table leaves it', async () => {
  const [a, b] = await pair();
  const token = b.tier.fillToken();
  assert.ok(token !== null, 'a live bus gives fills a token');
  b.tier.put('postgres', 'K1', token, fill('rows-1'));
  await until('written', () => b.tier.counts.writes === 1);
  await new Promise((r) => setTimeout(r, 50));
  a.bus.publish('postgres', other);
  await caughtUp(a);
  const entry = await a.tier.get('postgres', 'K1');
  assert.ok(entry !== null, 'served from the second tier');
  assert.is(entry.bytes.toString(), 'rows-1');
  assert.is(a.tier.counts.hits, 1);
  assert.is(await a.tier.get('postgres', 'K2'), null, 'another key misses');
  assert.is(await a.tier.get('mysql', 'K1'), null, 'another protocol misses');
});

test('an invalidation of a table the entry read, published after its fill, voids it everywhere', async () => {
  const [a, b] = await pair();
  b.tier.put('postgres', 'K1', b.tier.fillToken()!, fill('rows-1'));
  await new Promise((r) => setTimeout(r, 50));
  a.bus.publish('postgres', orders);
  // Served by neither, whether or not its bus applied the entry yet: the tag table was bumped in
  // the publish itself, before the writer's acknowledgement would have left.
  assert.is(await a.tier.get('postgres', 'K1'), null);
  assert.is(await b.tier.get('postgres', 'K1'), null);
  assert.is(a.tier.counts.stale + b.tier.counts.stale, 2);
});

test('a fill sent before an invalidation its proxy had not applied yet is never served (the fill race)', async () => {
  const [a, b] = await pair();
  const token = b.tier.fillToken()!; // b sends its fill here...
  a.bus.publish('postgres', orders); // ...a's write commits and is published meanwhile...
  await caughtUp(a);
  b.tier.put('postgres', 'K1', token, fill('maybe-before-the-write')); // ...and b's reply comes
  await new Promise((r) => setTimeout(r, 50));
  assert.is(await a.tier.get('postgres', 'K1'), null);
  // A fill sent after b applied the write is served.
  await caughtUp(b);
  b.tier.put('postgres', 'K2', b.tier.fillToken()!, fill('after-the-write'));
  await new Promise((r) => setTimeout(r, 50));
  assert.is((await a.tier.get('postgres', 'K2'))?.bytes.toString(), 'after-the-write');
});

test('"everything" and a statement flush void entries too', async () => {
  const [a, b] = await pair();
  b.tier.put('postgres', 'K1', b.tier.fillToken()!, fill('x'));
  b.tier.put('postgres', 'K2', b.tier.fillToken()!, fill('y'));
  await new Promise((r) => setTimeout(r, 50));
  a.bus.publish('postgres', { scope: 'fingerprint', fingerprint: 'fp' });
  assert.is(await a.tier.get('postgres', 'K1'), null);
  await caughtUp(b);
  b.tier.put('postgres', 'K3', b.tier.fillToken()!, fill('z'));
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(await a.tier.get('postgres', 'K3') !== null);
  a.bus.publish('postgres', { scope: 'all', catalog: false });
  assert.is(await a.tier.get('postgres', 'K3'), null);
});

test('a proxy that reconnects keeps the era: what the fleet filled stays served', async () => {
  const [a, b] = await pair();
  b.tier.put('postgres', 'K1', b.tier.fillToken()!, fill('kept'));
  await new Promise((r) => setTimeout(r, 50));
  await server.cli('client', 'kill', 'type', 'normal');
  await until('both fenced', () => !a.bus.isLive || !b.bus.isLive);
  await until('both live again', () => a.bus.isLive && b.bus.isLive);
  assert.is((await a.tier.get('postgres', 'K1'))?.bytes.toString(), 'kept');
});

test('a failover that lost an invalidation (another server now): nothing filled before is served', async () => {
  const [a, b] = await pair();
  b.tier.put('postgres', 'K1', b.tier.fillToken()!, fill('before'));
  await new Promise((r) => setTimeout(r, 50));
  const entryKey = (await a.connections[0]!.call('KEYS', 'l2test:l2:postgres:*') as string[])[0]!;
  const saved = await a.connections[0]!.callBuffer('GET', entryKey) as Buffer;
  a.bus.publish('postgres', orders);
  await caughtUp(a);
  // A replica promoted without the last bump, while the entry lived on another node of a Cluster:
  // here the server restarts empty (another run id) and the entry is put back as it was.
  await server.restart();
  await until('both live again', () => a.bus.isLive && b.bus.isLive);
  await a.connections[0]!.call('SET', entryKey, saved);
  assert.is(await a.tier.get('postgres', 'K1'), null, 'an entry of an earlier era is void');
  b.tier.put('postgres', 'K2', b.tier.fillToken()!, fill('new'));
  await new Promise((r) => setTimeout(r, 50));
  assert.is((await a.tier.get('postgres', 'K2'))?.bytes.toString(), 'new', 'fills of the new era are served');
});

/** The commands `conn` sends while `act` runs, as MONITOR on another connection sees them. */
async function commandsSent(conn: RedisConnection, act: () => Promise<unknown>): Promise<string[][]> {
  const addr = /addr=(\S+)/.exec(await conn.call('CLIENT', 'INFO') as string)![1]!;
  // Once MONITOR has replied, every later command is echoed.
  const base = new Redis({ host: '127.0.0.1', port: server.port, lazyConnect: true });
  const monitor = await base.monitor();
  const seen: string[][] = [];
  try {
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source.endsWith(addr)) seen.push(args);
    });
    const marker = async (): Promise<void> => {
      const before = seen.length;
      await conn.call('ECHO', 'marker');
      await until('marker seen', () => seen.slice(before).some((a) => a[0]!.toLowerCase() === 'echo'));
    };
    await marker();
    const start = seen.length;
    await act();
    await marker();
    return seen.slice(start, seen.length - 1);
  } finally {
    monitor.disconnect();
    base.disconnect();
  }
}

test('on one node a second-tier hit is one script call: no GET, no second trip', async () => {
  const [a, b] = await pair();
  b.tier.put('postgres', 'K1', b.tier.fillToken()!, fill('rows-1'));
  await new Promise((r) => setTimeout(r, 50));
  let entry: L2Entry | null = null;
  const sent = await commandsSent(a.connections[0]!, async () => {
    entry = await a.tier.get('postgres', 'K1');
  });
  assert.is((entry as L2Entry | null)?.bytes.toString(), 'rows-1', 'a hit');
  assert.equal(sent.map((args) => args[0]!.toLowerCase()), ['eval'], 'one script call');
  assert.ok(sent[0]!.some((arg) => arg.includes("redis.call('GET', KEYS[1])")), 'the combined lookup');
});

for (const path of ['one trip (L2_GET)', 'a Cluster\'s check after the read (L2_CHECK)'] as const) {
  test(`${path} refuses an entry a field it depends on was bumped after, or of another era`, async () => {
    const [a] = await pair();
    const conn = a.connections[0]!;
    const era = await runScript(conn, L2_ERA, [keys.l2Tags], []) as string;
    const entry: L2Entry = { key: 'K1', era, asOf: 7, expiresAt: Date.now() + 60_000, tags: [ORDERS], fingerprint: 'fp', bytes: Buffer.from([0, 255, 1]) };
    /** 1 when served, 0 when refused. */
    const fresh = async (e: L2Entry): Promise<number> => {
      if (path === 'one trip (L2_GET)') {
        await conn.call('SET', 'l2test:l2:postgres:probe', encodeL2Entry('postgres', e));
        const [status, current, data] = await runScriptForBytes(conn, L2_GET, ['l2test:l2:postgres:probe', keys.l2Tags], []) as [number, Buffer?, Buffer?];
        assert.is(current?.toString(), era, 'the current era comes back');
        if (status === 1) assert.equal(data, encodeL2Entry('postgres', e), 'the entry, byte for byte');
        else assert.is(status, 2, 'void, not a miss');
        return status === 1 ? 1 : 0;
      }
      const [verdict, current] = await runScript(conn, L2_CHECK, [keys.l2Tags], [e.era, e.asOf, ...dependencyFields('postgres', e)]) as [number, string];
      assert.is(current, era, 'the current era comes back');
      return verdict;
    };
    const orderField = dependencyFields('postgres', entry)[2]!;
    await conn.call('HSET', keys.l2Tags, orderField, 7);
    assert.is(await fresh(entry), 1, 'bumped at its asOf, not after: fresh');
    await conn.call('HSET', keys.l2Tags, orderField, 8);
    assert.is(await fresh(entry), 0, 'a tag bumped after its asOf: void');
    assert.is(await fresh({ ...entry, asOf: 8 }), 1, 'filled after that bump: fresh');
    assert.is(await fresh({ ...entry, asOf: 8, era: 'another' }), 0, 'another era: void');
    await conn.call('HSET', keys.l2Tags, dependencyFields('postgres', entry)[0]!, 9);
    assert.is(await fresh({ ...entry, asOf: 8 }), 0, '"everything" bumped after: void');
  });
}

test('an entry an older sidecache wrote (format 1) is a miss, not a hit and not an error', async () => {
  const [a, b] = await pair();
  b.tier.put('postgres', 'K1', b.tier.fillToken()!, fill('rows-1'));
  await new Promise((r) => setTimeout(r, 50));
  const entryKey = (await a.connections[0]!.call('KEYS', 'l2test:l2:postgres:*') as string[])[0]!;
  const token = b.tier.fillToken()!;
  const header = Buffer.from(JSON.stringify({ k: 'K1', e: token.era, a: token.asOf, x: Date.now() + 60_000, t: [ORDERS], f: 'fp' }));
  const head = Buffer.alloc(5);
  head.writeUInt8(1, 0);
  head.writeUInt32BE(header.length, 1);
  await a.connections[0]!.call('SET', entryKey, Buffer.concat([head, header, Buffer.from('old')]));
  assert.is(await a.tier.get('postgres', 'K1'), null);
  assert.equal([a.tier.counts.misses, a.tier.counts.stale, a.tier.counts.errors, a.tier.counts.hits], [1, 0, 0, 0]);
});

test('Redis frozen: a lookup fails as a miss within the command timeout, never an exception', async () => {
  const [a] = await pair();
  server.freeze();
  try {
    assert.is(await a.tier.get('postgres', 'K1'), null);
  } finally {
    server.thaw();
  }
});

test.run();
