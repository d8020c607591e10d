// test-timeout: 240
// A burst of clients over --max-client-connections: every refused client gets the protocol's own
// refusal (PostgreSQL FATAL 53300, MySQL ERR 1040), none a bare reset, a close without a word or
// silence. The burst arrives while the proxy cannot accept (it is stopped with SIGSTOP, as when its
// event loop is busy with many logins): the kernel must queue every handshake meanwhile. With a
// short listen backlog (Node's default is 511) it drops the rest, which then connect seconds
// later, hang, or are reset.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { RawClient, serialize } from './support/pg-raw.js';
import { RawMySql } from './support/mysql-raw.js';
import { scrape, sumOf } from './support/metrics.js';
import { DIRECT_MYSQL_URL, DIRECT_PG, startProxy, type RunningProxy } from './support/sidecache.js';

const LIMIT = 20;
/** More than Node's default backlog; no more than the kernel queues (net.core.somaxconn). */
const BURST = Math.min(600, Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8')));
const STARTUP = serialize.startup({ user: DIRECT_PG.user, database: DIRECT_PG.database });

let proxy: RunningProxy;

test.before(async () => {
  proxy = await startProxy({ mysqlUpstream: DIRECT_MYSQL_URL, args: ['--max-client-connections', String(LIMIT)] });
});

test.after(async () => {
  proxy?.child.kill('SIGCONT');
  await proxy?.stop();
});

/** How one client of the burst fared. */
type Outcome = 'refused' | 'reset' | 'closed without a refusal' | 'no answer';

interface BurstClient {
  connected: Promise<void>;
  outcome: Promise<Outcome>;
  socket: net.Socket;
}

/** A client that connects (sending `first` once connected) and reads until the proxy closes. */
function burstClient(port: number, first: Buffer | null, isRefusal: (bytes: Buffer) => boolean): BurstClient {
  const socket = net.connect({ port, host: '127.0.0.1' });
  const connected = new Promise<void>((resolve) => socket.once('connect', () => {
    if (first !== null) socket.write(first);
    resolve();
  }));
  const outcome = new Promise<Outcome>((resolve) => {
    const chunks: Buffer[] = [];
    let reset = false;
    const timer = setTimeout(() => {
      resolve('no answer');
      socket.destroy();
    }, 60_000);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      reset = err.code === 'ECONNRESET';
    });
    socket.once('close', () => {
      clearTimeout(timer);
      const bytes = Buffer.concat(chunks);
      resolve(isRefusal(bytes) ? 'refused' : reset ? 'reset' : 'closed without a refusal');
    });
  });
  return { connected, outcome, socket };
}

function tally(outcomes: Outcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1;
  return counts;
}

/**
 * With LIMIT clients logged in, stops the proxy, lets BURST clients connect, and resumes it:
 * returns how many handshakes completed while it was stopped and how each client fared.
 */
async function burstWhileStopped(port: number, first: Buffer | null, isRefusal: (bytes: Buffer) => boolean): Promise<{ connectedWhileStopped: number; outcomes: Record<string, number> }> {
  const pid = proxy.child.pid!;
  process.kill(pid, 'SIGSTOP');
  let clients: BurstClient[] = [];
  let connectedWhileStopped = 0;
  try {
    clients = Array.from({ length: BURST }, () => burstClient(port, first, isRefusal));
    for (const c of clients) void c.connected.then(() => connectedWhileStopped++);
    // The kernel completes the handshakes on its own; waiting longer changes nothing once it has.
    const deadline = Date.now() + 15_000;
    while (connectedWhileStopped < BURST && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  const stopped = connectedWhileStopped;
  try {
    return { connectedWhileStopped: stopped, outcomes: tally(await Promise.all(clients.map((c) => c.outcome))) };
  } finally {
    for (const c of clients) c.socket.destroy();
  }
}

async function refusals(protocol: string): Promise<number> {
  return sumOf(await scrape(proxy.adminPort), 'sidecache_rejected_connections_total', { protocol, reason: 'max-client-connections' });
}

test(`PostgreSQL: ${BURST} clients at once over a limit of ${LIMIT}: each gets FATAL 53300`, async () => {
  const held = await Promise.all(Array.from({ length: LIMIT }, () => RawClient.login(proxy.pgPort)));
  try {
    const before = await refusals('postgres');
    const isRefusal = (bytes: Buffer): boolean => bytes[0] === 0x45 && bytes.includes('C53300\0');
    const { connectedWhileStopped, outcomes } = await burstWhileStopped(proxy.pgPort, STARTUP, isRefusal);
    assert.is(connectedWhileStopped, BURST, `handshakes the kernel queued while the proxy could not accept (listen backlog)`);
    assert.equal(outcomes, { refused: BURST });
    assert.is(await refusals('postgres') - before, BURST);
    // The clients logged in before are still served.
    for (const c of held) assert.is((await c.query('SELECT 1')).at(-1)!.code, 'Z');
  } finally {
    for (const c of held) c.destroy();
  }
});

test(`MySQL: ${BURST} clients at once over a limit of ${LIMIT}: each gets ERR 1040`, async () => {
  const held = await Promise.all(Array.from({ length: LIMIT }, () => RawMySql.login(proxy.mysqlPort)));
  try {
    const before = await refusals('mysql');
    const isRefusal = (bytes: Buffer): boolean => bytes.length > 6 && bytes[4] === 0xff && bytes.readUInt16LE(5) === 1040;
    const { connectedWhileStopped, outcomes } = await burstWhileStopped(proxy.mysqlPort, null, isRefusal);
    assert.is(connectedWhileStopped, BURST, `handshakes the kernel queued while the proxy could not accept (listen backlog)`);
    assert.equal(outcomes, { refused: BURST });
    assert.is(await refusals('mysql') - before, BURST);
  } finally {
    for (const c of held) c.destroy();
  }
});

test.run();
