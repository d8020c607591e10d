// test-timeout: 300
// What clients can make the proxy hold in memory. Before login a client message may be at most what
// the server itself would read (PostgreSQL 64 KiB, MySQL 128 KiB), and a PostgreSQL client is not
// read while its upstream connection is being opened; after login, the incomplete messages of all
// clients share --max-buffered-message-bytes, and the client that would pass it gets the protocol's
// out-of-memory error. The bursts measure the proxy's peak resident memory (VmHWM) against a bound
// that depends on the number of clients, not on how fast anything runs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { RawClient, codes, describeAll, errorOf, frontendMessage, serialize, type Received } from './support/pg-raw.js';
import { RawMySql, command, decodeErr, isErr, type Packet } from './support/mysql-raw.js';
import { scrape, sumOf } from './support/metrics.js';
import { memoryOf, mib, resetPeakMemory } from './support/process-stats.js';
import { DIRECT_MYSQL_URL, DIRECT_PG, startProxy, type RunningProxy } from './support/sidecache.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const LOGIN = { user: DIRECT_PG.user, database: DIRECT_PG.database };
/** Clients in each burst. */
const CLIENTS = 32;
/** How much of the huge message it announces each client of a burst sends. */
const SENT = 8 * MiB;
/** What the proxy may hold per client of a burst: its read buffer, socket state, a refused message's first bytes. */
const PER_CLIENT = 512 * KiB;
/** Room for what the proxy allocates on its own meanwhile (heap growth, log lines, metrics). */
const SLACK = 64 * MiB;
/** Each client's wait for its error: generous, a loaded machine is slow; a proxy without the limits never answers. */
const ANSWER_MS = 30_000;

/** Default limits (64 MiB messages), both protocols. */
let main: RunningProxy;
/** A PostgreSQL upstream that never completes a TCP handshake, and a proxy in front of it. */
let unreachable: RunningProxy;
let blackhole: Blackhole;
/** --max-buffered-message-bytes 1MiB, both protocols. */
let budgeted: RunningProxy;
const BUDGET = 1 * MiB;

test.before(async () => {
  blackhole = await startBlackhole();
  [main, unreachable, budgeted] = await Promise.all([
    startProxy({ mysqlUpstream: DIRECT_MYSQL_URL }),
    startProxy({ pgUpstream: `postgres://127.0.0.1:${blackhole.port}`, args: ['--upstream-connect-timeout', '10s'] }),
    startProxy({ mysqlUpstream: DIRECT_MYSQL_URL, args: ['--max-buffered-message-bytes', '1MiB'] }),
  ]);
});

test.after(async () => {
  await Promise.all([main, unreachable, budgeted].map((p) => p?.stop()));
  blackhole?.close();
});

/**
 * Runs `burst` CLIENTS times at once (after `warmUp` clients, so code loaded on first use is not
 * counted) and returns how far the proxy's resident memory rose at its peak, with each result.
 */
async function measuredBurst<T>(proxy: RunningProxy, client: () => Promise<T>, warmUp = 2): Promise<{ rise: number; results: PromiseSettledResult<T>[] }> {
  await Promise.allSettled(Array.from({ length: warmUp }, client));
  const pid = proxy.child.pid!;
  resetPeakMemory(pid);
  const before = memoryOf(pid).rss;
  const results = await Promise.allSettled(Array.from({ length: CLIENTS }, client));
  return { rise: memoryOf(pid).peak - before, results };
}

function fulfilled<T>(results: PromiseSettledResult<T>[]): T[] {
  const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`client ${i}: ${(r.reason as Error).message.slice(0, 300)}`] : []));
  assert.equal(failed.slice(0, 5), [], `${failed.length} client(s) got no answer`);
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}

function logLines(proxy: RunningProxy, needle: string): number {
  return proxy.output().split('\n').filter((l) => l.includes(needle)).length;
}

async function protocolErrors(proxy: RunningProxy, protocol: string, reason: string): Promise<number> {
  return sumOf(await scrape(proxy.adminPort), 'sidecache_protocol_errors_total', { protocol, reason });
}

/** After its StartupMessage, a PostgreSQL client announces a 63 MiB password message and sends SENT bytes of it. */
async function hugePasswordMessage(port: number): Promise<Received[]> {
  const c = await RawClient.connect(port);
  try {
    c.send(serialize.startup(LOGIN), frontendMessage('p', Buffer.alloc(0), 63 * MiB), Buffer.alloc(SENT, 0x61));
    return await c.readUntilClosed(ANSWER_MS);
  } finally {
    c.destroy();
  }
}

test('PostgreSQL: a client that has not logged in cannot make the proxy hold a big message', async () => {
  const errorsBefore = await protocolErrors(main, 'postgres', 'too-long');
  const linesBefore = logLines(main, 'exceeds the limit of 65535 bytes before login');
  const { rise, results } = await measuredBurst(main, () => hugePasswordMessage(main.pgPort));
  assert.ok(rise < SLACK + CLIENTS * PER_CLIENT,
    `${CLIENTS} clients each sending ${mib(SENT)} of a 63 MiB password message raised the proxy's peak memory by ${mib(rise)}`);
  for (const messages of fulfilled(results)) {
    assert.is(codes(messages), 'E', describeAll(messages).join(' | '));
    const error = errorOf(messages);
    assert.is(error.severity, 'FATAL');
    assert.is(error.code, '08P01');
    assert.match(error.message!, /exceeds the limit of 65535 bytes before login/);
  }
  assert.is(await protocolErrors(main, 'postgres', 'too-long') - errorsBefore, CLIENTS + 2);
  assert.is(logLines(main, 'exceeds the limit of 65535 bytes before login') - linesBefore, CLIENTS + 2, 'one log line per connection');
});

/** After the handshake, a MySQL client announces a 16 MiB login packet and sends SENT bytes of it. */
async function hugeLoginPacket(port: number): Promise<Packet[]> {
  const c = await RawMySql.connect(port);
  try {
    await c.readHandshake();
    c.send(Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 1]), Buffer.alloc(SENT, 0x61)]));
    return await c.readUntilClosed(ANSWER_MS);
  } finally {
    c.destroy();
  }
}

test('MySQL: a client that has not logged in cannot make the proxy hold a big packet', async () => {
  const errorsBefore = await protocolErrors(main, 'mysql', 'too-long');
  const { rise, results } = await measuredBurst(main, () => hugeLoginPacket(main.mysqlPort));
  assert.ok(rise < SLACK + CLIENTS * PER_CLIENT,
    `${CLIENTS} clients each sending ${mib(SENT)} of a 16 MiB login packet raised the proxy's peak memory by ${mib(rise)}`);
  for (const packets of fulfilled(results)) {
    assert.is(packets.length, 1);
    const err = decodeErr(packets[0]!.payload);
    assert.is(err.code, 1153, err.message);
    assert.match(err.message, /for a login packet/);
  }
  assert.is(await protocolErrors(main, 'mysql', 'too-long') - errorsBefore, CLIENTS + 2);
});

/** A TCP port whose handshakes never complete: its one-slot accept queue is full and nobody accepts. */
interface Blackhole {
  port: number;
  close(): void;
}

async function startBlackhole(): Promise<Blackhole> {
  // The listener's process never returns to its event loop, so it never accepts. (Node takes a
  // backlog of 0 for its default of 511: 1 it is.)
  const child: ChildProcess = spawn(process.execPath, ['-e', `
    const server = require('node:net').createServer();
    server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      console.log(server.address().port);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    });`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`the blackhole listener exited with ${code}`)));
  });
  // Connections fill the accept queue until the kernel drops a handshake: from then on it drops every one.
  const fillers: net.Socket[] = [];
  for (;;) {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.on('error', () => undefined);
    fillers.push(socket);
    const connected = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 1000);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!connected) break;
    if (fillers.length > 8) throw new Error(`the blackhole on port ${port} accepted ${fillers.length} connections`);
  }
  return {
    port,
    close: () => {
      for (const s of fillers) s.destroy();
      child.kill('SIGKILL');
    },
  };
}

/** A StartupMessage, then SENT bytes of 60 KiB CopyData messages while the upstream cannot be reached. */
async function floodWhileConnecting(port: number): Promise<Received[]> {
  const c = await RawClient.connect(port);
  try {
    const message = frontendMessage('d', Buffer.alloc(60 * KiB, 0x62));
    c.send(serialize.startup(LOGIN), ...Array.from({ length: Math.ceil(SENT / message.length) }, () => message));
    return await c.readUntilClosed(ANSWER_MS);
  } finally {
    c.destroy();
  }
}

test('PostgreSQL: while the upstream connection is being opened, the client is not read', async () => {
  const { rise, results } = await measuredBurst(unreachable, () => floodWhileConnecting(unreachable.pgPort), 1);
  assert.ok(rise < SLACK + CLIENTS * PER_CLIENT,
    `${CLIENTS} clients each sending ${mib(SENT)} of messages before the upstream answered raised the proxy's peak memory by ${mib(rise)}`);
  for (const messages of fulfilled(results)) {
    assert.is(codes(messages), 'E', describeAll(messages).join(' | '));
    assert.is(errorOf(messages).code, '08006');
    assert.match(errorOf(messages).message!, /cannot reach upstream .*no answer within 10000 ms/);
  }
});

// ---- the shared budget, with logged-in clients ----

/** A query of about `bytes` bytes whose answer is its text's length. */
function bigQueryText(bytes: number): { sql: string; length: number } {
  const length = bytes - 40;
  return { sql: `SELECT length('${'x'.repeat(length)}') AS n`, length };
}

async function bufferedBytes(proxy: RunningProxy): Promise<number> {
  return sumOf(await scrape(proxy.adminPort), 'sidecache_buffered_message_bytes');
}

/** Waits until the proxy holds at least `bytes` (at most if `atMost`) of incomplete messages. */
async function waitBuffered(proxy: RunningProxy, bytes: number, atMost = false): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const held = await bufferedBytes(proxy);
    if (atMost ? held <= bytes : held >= bytes) return;
    if (Date.now() > deadline) assert.unreachable(`the proxy holds ${held} bytes of incomplete messages, waited for ${atMost ? 'at most' : 'at least'} ${bytes}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const QUERY_BYTES = 700 * KiB;
const FIRST_PART = 600 * KiB;

test('--max-buffered-message-bytes: the client whose message would pass the budget gets out-of-memory; the others go on', async () => {
  const { sql, length } = bigQueryText(QUERY_BYTES);
  const pgQuery = serialize.query(sql);
  const mysqlQuery = command(0x03, sql);
  const linesBefore = logLines(budgeted, '"reason":"over-budget"');
  assert.is(sumOf(await scrape(budgeted.adminPort), 'sidecache_buffered_message_max_bytes'), BUDGET);

  // A PostgreSQL client sends most of a 700 KiB query slowly; a MySQL client's big packet then
  // does not fit beside it.
  const slowPg = await RawClient.login(budgeted.pgPort);
  const refusedMySql = await RawMySql.login(budgeted.mysqlPort);
  try {
    slowPg.send(pgQuery.subarray(0, FIRST_PART));
    await waitBuffered(budgeted, FIRST_PART);
    refusedMySql.send(mysqlQuery.subarray(0, FIRST_PART));
    const packets = await refusedMySql.readUntilClosed(ANSWER_MS);
    assert.is(packets.length, 1);
    const err = decodeErr(packets[0]!.payload);
    assert.is(err.code, 1037, err.message);
    assert.is(err.sqlState, 'HY001');
    assert.match(err.message, /Out of memory \(needed \d+ bytes\).*--max-buffered-message-bytes/);

    slowPg.send(pgQuery.subarray(FIRST_PART));
    assert.equal(describeAll(await slowPg.readUntilReadyForQuery(10_000)).slice(1), [`D ["${length}"]`, 'C SELECT 1', 'Z I']);
  } finally {
    slowPg.destroy();
    refusedMySql.destroy();
  }
  await waitBuffered(budgeted, 0, true);

  // And the other way round: a slow MySQL client, a refused PostgreSQL one.
  const slowMySql = await RawMySql.login(budgeted.mysqlPort);
  const refusedPg = await RawClient.login(budgeted.pgPort);
  try {
    slowMySql.send(mysqlQuery.subarray(0, FIRST_PART));
    await waitBuffered(budgeted, FIRST_PART);
    refusedPg.send(pgQuery.subarray(0, FIRST_PART));
    const messages = await refusedPg.readUntilClosed(ANSWER_MS);
    assert.is(codes(messages), 'E', describeAll(messages).join(' | '));
    assert.is(errorOf(messages).severity, 'FATAL');
    assert.is(errorOf(messages).code, '53200');
    assert.match(errorOf(messages).message!, /out of memory.*--max-buffered-message-bytes/);

    slowMySql.send(mysqlQuery.subarray(FIRST_PART));
    const result = await slowMySql.readResultSet(10_000);
    assert.not.ok(isErr(result.at(-1)!), decodeErr(result.at(-1)!.payload).message);
    assert.ok(result.some((p) => p.payload.toString('latin1').includes(String(length))), 'the slow client\'s answer');
  } finally {
    slowMySql.destroy();
    refusedPg.destroy();
  }
  await waitBuffered(budgeted, 0, true);

  const samples = await scrape(budgeted.adminPort);
  assert.is(sumOf(samples, 'sidecache_protocol_errors_total', { protocol: 'postgres', reason: 'over-budget' }), 1);
  assert.is(sumOf(samples, 'sidecache_protocol_errors_total', { protocol: 'mysql', reason: 'over-budget' }), 1);
  assert.is(logLines(budgeted, '"reason":"over-budget"') - linesBefore, 2, 'one log line per refused connection');

  // The budget serves the next big message whole.
  const next = await RawClient.login(budgeted.pgPort);
  try {
    next.send(pgQuery);
    assert.equal(describeAll(await next.readUntilReadyForQuery(10_000)).slice(1), [`D ["${length}"]`, 'C SELECT 1', 'Z I']);
  } finally {
    next.destroy();
  }
});

test.run();
