// test-timeout: 180
//
// Leader leases against a private redis-server: one holder at a time; a leader that stops renewing
// aborts its task before another starts; a killed leader process is replaced within the lease; a
// stopped leader hands over at once; a task that ends gives the lease back.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseRedisUrl } from '../config/redis-target.js';
import { startHoldRelay } from '../e2e/support/hold-relay.js';
import { startRedis, type RedisServer } from '../e2e/support/redis-server.js';
import { Lease } from './lease.js';
import { openRedis, type RedisConnection } from './redis-connection.js';

const log = pino({ level: 'silent' });
let server: RedisServer;
const opened: RedisConnection[] = [];
const leases: Lease[] = [];
let keyCount = 0;

function connect(): RedisConnection {
  const c = openRedis({ target: parseRedisUrl(server.url), cluster: false, password: null, ca: null }, 'lease-test', 2000);
  opened.push(c);
  return c;
}

/** A contender on `key` whose task records when it ran, until aborted. */
function contender(key: string, name: string, ttlMs: number, redis = connect()) {
  const lease = new Lease(redis, { key, holder: name, ttlMs, log });
  leases.push(lease);
  const terms: { started: number; aborted: number | null }[] = [];
  lease.whileLeader(async (signal) => {
    const term = { started: performance.now(), aborted: null as number | null };
    terms.push(term);
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    term.aborted = performance.now();
  });
  return { lease, terms, redis };
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test.before(async () => {
  server = await startRedis();
});

test.after.each(async () => {
  await Promise.all(leases.splice(0).map((l) => l.stop()));
  for (const c of opened.splice(0)) c.disconnect();
});

test.after(async () => {
  await server.stop();
});

test('of several contenders exactly one leads, and keeps leading while it renews', async () => {
  const key = `lease-${++keyCount}`;
  const all = [contender(key, 'a', 600), contender(key, 'b', 600), contender(key, 'c', 600)];
  await until('a leader', () => all.some((c) => c.lease.isLeader), 10_000);
  // Several ttls pass: the leader renews, nobody else starts.
  await new Promise((resolve) => setTimeout(resolve, 2000));
  assert.is(all.filter((c) => c.lease.isLeader).length, 1);
  assert.equal(all.map((c) => c.terms.length).sort(), [0, 0, 1]);
});

test('a leader whose renewal gets no answer aborts its task when its lease runs out, before another starts', async () => {
  const key = `lease-${++keyCount}`;
  const ttl = 1000;
  // The leader talks to Redis through a relay that can hold back Redis's replies: its first
  // renewal (the script naming PEXPIRE) then never comes back, as on a dead network path.
  const relay = await startHoldRelay({ host: '127.0.0.1', port: server.port });
  try {
    const hold = relay.holdAfter('PEXPIRE');
    const viaRelay = openRedis({ target: parseRedisUrl(`redis://127.0.0.1:${relay.port}`), cluster: false, password: null, ca: null }, 'lease-test', 60_000);
    opened.push(viaRelay);
    const a = contender(key, 'a', ttl, viaRelay);
    await until('a leads', () => a.lease.isLeader, 10_000);
    const b = contender(key, 'b', ttl);
    await hold.waitHeld(1, 10_000);
    await until('b leads', () => b.lease.isLeader, 10 * ttl);
    const aTerm = a.terms[0]!;
    assert.ok(aTerm.aborted !== null, 'a\'s task was aborted although its renewal never failed');
    assert.ok(aTerm.aborted! <= b.terms[0]!.started, `a stopped (${aTerm.aborted!.toFixed(0)}) before b started (${b.terms[0]!.started.toFixed(0)})`);
    hold.release();
  } finally {
    await relay.close();
  }
});

test('a leader that lost its connection stops, and another takes over', async () => {
  const key = `lease-${++keyCount}`;
  const ttl = 1000;
  const a = contender(key, 'a', ttl);
  await until('a leads', () => a.lease.isLeader, 10_000);
  const b = contender(key, 'b', ttl);
  a.redis.disconnect();
  await until('b leads', () => b.lease.isLeader, 10 * ttl);
  assert.ok(a.terms[0]!.aborted !== null && a.terms[0]!.aborted! <= b.terms[0]!.started);
  assert.not.ok(a.lease.isLeader);
});

test('a killed leader process is replaced within the lease', async () => {
  const key = `lease-${++keyCount}`;
  const ttl = 1500;
  const leaseModule = fileURLToPath(new URL('./lease.js', import.meta.url));
  const connectionModule = fileURLToPath(new URL('./redis-connection.js', import.meta.url));
  const targetModule = fileURLToPath(new URL('../config/redis-target.js', import.meta.url));
  // Another process, so that SIGKILL leaves no chance to release the lease.
  const script = `
    import { Lease } from ${JSON.stringify(leaseModule)};
    import { openRedis } from ${JSON.stringify(connectionModule)};
    import { parseRedisUrl } from ${JSON.stringify(targetModule)};
    import { pino } from 'pino';
    const redis = openRedis({ target: parseRedisUrl(${JSON.stringify(server.url)}), cluster: false, password: null, ca: null }, 'holder', 2000);
    new Lease(redis, { key: ${JSON.stringify(key)}, holder: 'child', ttlMs: ${ttl}, log: pino({ level: 'silent' }) })
      .whileLeader(async () => { console.log('leading'); await new Promise(() => {}); });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: fileURLToPath(new URL('../..', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('leading')) resolve(); });
      child.once('exit', (code) => reject(new Error(`the holder exited with ${code}`)));
    });
    const b = contender(key, 'b', ttl);
    await new Promise((resolve) => setTimeout(resolve, ttl));
    assert.not.ok(b.lease.isLeader, 'b waits while the child renews');
    child.kill('SIGKILL');
    const killed = performance.now();
    await until('b leads', () => b.lease.isLeader, 10 * ttl);
    const took = b.terms[0]!.started - killed;
    // Within the ttl (the key's remaining life) plus one attempt interval and scheduling slack.
    assert.ok(took <= ttl + ttl / 10 + 3000, `took over ${took.toFixed(0)} ms after the kill`);
  } finally {
    child.kill('SIGKILL');
  }
});

test('stop() releases the lease: another takes over at once, not after the ttl', async () => {
  const key = `lease-${++keyCount}`;
  const ttl = 30_000;
  const a = contender(key, 'a', ttl);
  await until('a leads', () => a.lease.isLeader, 10_000);
  const b = contender(key, 'b', ttl);
  const stopped = performance.now();
  await a.lease.stop();
  assert.ok(a.terms[0]!.aborted !== null);
  await until('b leads', () => b.lease.isLeader, ttl / 2);
  assert.ok(b.terms[0]!.started - stopped < ttl / 2);
  assert.is(await server.cli('get', key).then((v) => v.trim()), 'b#1');
});

test('a task that ends by itself gives the lease back; its proxy competes again after a ttl', async () => {
  const key = `lease-${++keyCount}`;
  const ttl = 800;
  const lease = new Lease(connect(), { key, holder: 'a', ttlMs: ttl, log });
  leases.push(lease);
  let runs = 0;
  lease.whileLeader(async () => {
    runs++;
    if (runs === 1) throw new Error('the change stream broke');
  });
  await until('a second term', () => runs >= 2, 10 * ttl);
  assert.ok(lease.terms >= 2);
});

test.run();
