// test-timeout: 180
//
// The invalidation bus against a private redis-server (requirepass): delivery in order to the other
// proxies, and every way of losing the bus fencing the caches (suspended: empty, no fills, reads
// bypass) until it is followed again from the stream's end: a gap in the numbering, entries
// trimmed before they were read, Redis killed and restarted, Redis frozen (no reply in time).
import { spawnSync } from 'node:child_process';
import { pino } from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Protocol } from '../telemetry/metrics.js';
import { parseRedisUrl } from '../config/redis-target.js';
import { startRedis, type RedisServer } from '../e2e/support/redis-server.js';
import type { Invalidation } from '../proxy/result-cache.js';
import { InvalidationBus, type BusCache } from './bus.js';
import { fleetKeys } from './keys.js';
import { encodeMessage } from './message.js';
import { openRedis, type RedisConnection } from './redis-connection.js';
import { PUBLISH } from './scripts.js';

const PASSWORD = 'bus-test-secret';
const keys = fleetKeys('bustest');
const log = pino({ level: 'silent' });
let server: RedisServer;

class RecordingCache implements BusCache {
  readonly applied: Invalidation[] = [];
  suspensions = 0;
  resumptions = 0;
  serving = false;
  applyInvalidation(invalidation: Invalidation): number {
    this.applied.push(invalidation);
    return 0;
  }
  suspend(reason: string): void {
    assert.is(reason, 'bus-down');
    this.suspensions++;
    this.serving = false;
  }
  resume(): void {
    this.resumptions++;
    this.serving = true;
  }
}

interface Member {
  bus: InvalidationBus;
  pg: RecordingCache;
  mysql: RecordingCache;
  connections: RedisConnection[];
}

const members: Member[] = [];

function member(instance: string, options: { maxLength?: number; blockMs?: number; graceMs?: number; port?: number } = {}): Member {
  const target = parseRedisUrl(`redis://127.0.0.1:${options.port ?? server.port}`);
  const access = { target, cluster: false, password: PASSWORD, ca: null };
  const connections = [openRedis(access, `${instance}-commands`, 2000), openRedis(access, `${instance}-reader`, 5000)];
  const pg = new RecordingCache();
  const mysql = new RecordingCache();
  const caches = new Map<Protocol, BusCache>([['postgres', pg], ['mysql', mysql]]);
  const bus = new InvalidationBus(connections[0]!, connections[1]!, caches, {
    keys, instance, maxLength: options.maxLength ?? 10_000, blockMs: options.blockMs ?? 200, graceMs: options.graceMs ?? 300, log,
  });
  bus.start();
  const m = { bus, pg, mysql, connections };
  members.push(m);
  return m;
}

async function closeAll(): Promise<void> {
  for (const m of members.splice(0)) {
    await m.bus.close();
    for (const c of m.connections) c.disconnect();
  }
}

async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const orders: Invalidation = { scope: 'tags', tags: ['app\u0000\u0000orders'], tables: ['orders'], catalog: null };
const ddl: Invalidation = { scope: 'tags', tags: ['app\u0000'], tables: 'database', catalog: 'app' };

test.before(async () => {
  server = await startRedis({ password: PASSWORD });
});

test.after.each(async () => {
  await closeAll();
  await server.cli('flushall');
});

test.after(async () => {
  await server.stop();
});

test('the caches start fenced, serve once the bus is followed, and get every other proxy\'s invalidations in order', async () => {
  const a = member('a');
  const b = member('b');
  const c = member('c');
  assert.ok(!a.pg.serving && a.pg.suspensions === 1, 'suspended before the bus is connected');
  await until('all live', () => members.every((m) => m.bus.isLive && m.pg.serving && m.mysql.serving));
  a.bus.publish('postgres', orders);
  a.bus.publish('mysql', { scope: 'all', catalog: true });
  b.bus.publish('postgres', ddl);
  await until('delivery', () => c.pg.applied.length === 2 && c.mysql.applied.length === 1 && a.pg.applied.length === 1 && b.mysql.applied.length === 1);
  assert.equal(c.pg.applied, [orders, ddl], 'in the order published');
  assert.equal(c.mysql.applied, [{ scope: 'all', catalog: true }]);
  assert.equal(a.pg.applied, [ddl], 'a proxy does not apply its own entries again');
  assert.equal(b.pg.applied, [orders]);
  assert.is(c.bus.status().applied, 3);
  assert.is(c.bus.status().lag.count, 3, 'a lag reading per entry of another proxy');
  assert.is(c.bus.status().position, 3);
  assert.equal(c.bus.status().fences, { connection: 0, gap: 0, timeout: 0, 'publish-failed': 0 });
});

test('a gap in the numbering (or an entry without a number) fences the caches; the bus then resumes at the end', async () => {
  const a = member('a');
  const b = member('b');
  await until('live', () => a.bus.isLive && b.bus.isLive);
  await server.cli('incr', keys.seq); // an entry numbered 1 that b never reads
  a.bus.publish('postgres', orders); // numbered 2
  await until('the gap fenced b', () => b.bus.status().fences.gap === 1);
  await until('b live again', () => b.bus.isLive && b.pg.serving);
  assert.is(b.pg.resumptions, 2);
  assert.equal(b.pg.applied, [], 'the entry after the gap is not applied: everything was dropped instead');
  await server.cli('xadd', keys.stream, '*', 'v', '1');
  await until('the unnumbered entry fenced b', () => b.bus.status().fences.gap === 2);
  await until('b live again', () => b.bus.isLive);
  a.bus.publish('postgres', orders);
  await until('delivery after the gaps', () => b.pg.applied.length === 1);
});

test('entries trimmed before they were read are a gap, not a silent skip', async () => {
  const b = member('b');
  await until('live', () => b.bus.isLive);
  // While this process is blocked (spawnSync), another client appends far more than MAXLEN keeps.
  const fields = encodeMessage({ origin: 'elsewhere', sentAt: Date.now(), body: { kind: 'invalidation', protocol: 'postgres', invalidation: orders } });
  const line = `EVAL "${PUBLISH.replace(/\n/g, ' ').replace(/"/g, '\\"')}" 3 ${keys.stream} ${keys.seq} ${keys.l2Tags} 5 0 ${fields.map((f) => `'${f}'`).join(' ')}\n`;
  const cli = spawnSync('redis-cli', ['-p', String(server.port), '-a', PASSWORD, '--no-auth-warning'], { input: line.repeat(400), encoding: 'utf8' });
  assert.is(cli.status, 0, cli.stderr);
  assert.ok(Number(await server.cli('xlen', keys.stream)) < 400, 'the stream was trimmed');
  await until('the gap fenced b', () => b.bus.status().fences.gap === 1);
  assert.ok(b.pg.applied.length < 400, `applied ${b.pg.applied.length} of 400, the rest were trimmed unread`);
  await until('b live again', () => b.bus.isLive);
});

test('Redis killed: every proxy fences at once; what is published meanwhile is queued and sent when Redis is back', async () => {
  const a = member('a');
  const b = member('b');
  await until('live', () => a.bus.isLive && b.bus.isLive);
  await server.kill();
  await until('both fenced', () => !a.pg.serving && !b.pg.serving && !a.bus.isLive && !b.bus.isLive);
  assert.ok(b.bus.status().fences.connection >= 1, JSON.stringify(b.bus.status().fences));
  a.bus.publish('postgres', orders);
  assert.is(a.bus.status().queued, 1);
  await server.restart();
  await until('both live again', () => a.bus.isLive && b.bus.isLive && a.pg.serving && b.pg.serving);
  assert.is(a.bus.status().queued, 0);
  const entries = await server.cli('xrange', keys.stream, '-', '+');
  assert.match(entries, /orders/, 'the queued invalidation was published once Redis was back');
  a.bus.publish('mysql', { scope: 'all', catalog: false });
  await until('delivery after the restart', () => b.mysql.applied.length === 1);
});

test('Redis frozen (no reply, no closed connection): the read that does not come back in time fences', async () => {
  const b = member('b', { blockMs: 200, graceMs: 300 });
  await until('live', () => b.bus.isLive);
  server.freeze();
  try {
    await until('fenced by the deadline', () => b.bus.status().fences.timeout === 1 && !b.pg.serving);
  } finally {
    server.thaw();
  }
  await until('live again', () => b.bus.isLive && b.pg.serving);
});

test('an entry that cannot be read drops every cache', async () => {
  const b = member('b');
  await until('live', () => b.bus.isLive);
  const next = Number(await server.cli('incr', keys.seq));
  await server.cli('xadd', keys.stream, '*', 's', String(next), 'v', '99', 'o', 'newer-sidecache', 't', '1');
  await until('applied as everything', () => b.pg.applied.length === 1 && b.mysql.applied.length === 1);
  assert.equal(b.pg.applied, [{ scope: 'all', catalog: true }]);
  assert.is(b.bus.status().unreadable, 1);
  assert.ok(b.bus.isLive, 'still following');
});

test('a change-stream leader\'s reports reach the others in order with the invalidations; never queued while away; going live voids what was known', async () => {
  const a = member('a');
  const b = member('b');
  const seen: string[] = [];
  b.bus.watchStreams({
    streams: (protocol, up, origin) => seen.push(`${origin} ${protocol} [${up.join(',')}]`),
    caughtUp: () => seen.push('caught up'),
  });
  await until('live', () => a.bus.isLive && b.bus.isLive);
  assert.equal(seen, ['caught up'], 'going live the first time voids nothing known, but says so');
  seen.length = 0;
  assert.ok(a.bus.publishStreams('postgres', ['app']));
  a.bus.publish('postgres', orders);
  a.bus.publishStreams('mysql', ['*']);
  await until('delivery', () => seen.length === 2 && b.pg.applied.length === 1);
  assert.equal(seen, ['a postgres [app]', 'a mysql [*]']);
  await server.kill();
  await until('a fenced', () => !a.bus.isLive && !b.bus.isLive);
  assert.not.ok(a.bus.publishStreams('postgres', ['app']), 'a report is not sent while the bus is down');
  assert.is(a.bus.status().queued, 0, 'nor queued: it could arrive after the leader\'s term');
  await server.restart();
  await until('live again', () => a.bus.isLive && b.bus.isLive);
  assert.equal(seen.slice(2), ['caught up'], 'b\'s view of the reports was voided when it resumed from the stream\'s end');
  a.bus.publishStreams('postgres', []);
  await until('delivery after the restart', () => seen.length === 4);
  assert.is(seen[3], 'a postgres []');
});

test('without Redis at all: publishes are queued, the caches stay fenced, close() does not hang', async () => {
  const port = server.port;
  const a = member('a', { port: port === 65535 ? port - 1 : port + 1 });
  a.bus.publish('postgres', orders);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.is(a.bus.status().state, 'starting');
  assert.is(a.bus.status().queued, 1);
  assert.not.ok(a.pg.serving);
});

test.run();
