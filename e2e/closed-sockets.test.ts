// test-timeout: 180
// A session the proxy ends gives its descriptors back, even when nobody on the other side
// cooperates. Ending a socket only half-closes it, so a client that neither reads nor closes, or an
// upstream that never closes, would keep the proxy's descriptor forever. Here such clients, behind
// an upstream that answers nothing and closes nothing, all hit --login-timeout: the proxy's open
// descriptors (/proc/<pid>/fd) return to what they were, and each client, reading at last, still
// finds its error.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { serialize } from './support/pg-raw.js';
import { scrape, sumOf } from './support/metrics.js';
import { descriptorsOf } from './support/process-stats.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

/** Clients of each kind. */
const CLIENTS = 100;
/** Descriptors the proxy may open on its own meanwhile (e.g. a scrape of /metrics). */
const SLACK = 10;

/** Accepts connections and never reads, writes or closes them. */
let deaf: net.Server;
const deafSockets: net.Socket[] = [];
let proxy: RunningProxy;

test.before(async () => {
  deaf = net.createServer({ pauseOnConnect: true }, (socket) => {
    socket.on('error', () => undefined);
    deafSockets.push(socket);
  });
  await new Promise<void>((resolve) => deaf.listen(0, '127.0.0.1', resolve));
  const { port } = deaf.address() as net.AddressInfo;
  proxy = await startProxy({
    pgUpstream: `postgres://127.0.0.1:${port}`,
    mysqlUpstream: `mysql://127.0.0.1:${port}`,
    args: ['--login-timeout', '500ms'],
  });
});

test.after(async () => {
  await proxy?.stop();
  for (const s of deafSockets) s.destroy();
  deaf?.close();
});

/** A client that sends `bytes` and then neither reads nor closes; resolves once connected. */
function unresponsiveClient(port: number, bytes: Buffer | null): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    // Paused before it connects: the socket never reads, so it never learns the proxy closed.
    socket.pause();
    socket.once('error', reject);
    socket.once('connect', () => {
      if (bytes !== null) socket.write(bytes);
      resolve(socket);
    });
  });
}

/** Everything that reached `socket` up to the proxy's close, read only now. */
function readLate(socket: net.Socket, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error(`no close within ${timeoutMs} ms; got ${Buffer.concat(chunks).toString('latin1')}`)), timeoutMs);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    socket.resume();
  });
}

async function waitForDescriptors(pid: number, atMost: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = descriptorsOf(pid);
    if (open <= atMost || Date.now() > deadline) return open;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function loginTimeouts(protocol: string): Promise<number> {
  return sumOf(await scrape(proxy.adminPort), 'sidecache_protocol_errors_total', { protocol, reason: 'login-timeout' });
}

test('sessions ended by the login timeout give back client and upstream descriptors though no peer reads or closes', async () => {
  const pid = proxy.child.pid!;
  const baseline = descriptorsOf(pid);
  const startup = serialize.startup({ user: 'postgres', database: 'test' });
  const clients = await Promise.all([
    // Three bytes of a StartupMessage: a client socket only.
    ...Array.from({ length: CLIENTS }, () => unresponsiveClient(proxy.pgPort, startup.subarray(0, 3))),
    // A whole StartupMessage: a client and an upstream socket (the upstream never answers).
    ...Array.from({ length: CLIENTS }, () => unresponsiveClient(proxy.pgPort, startup)),
    // MySQL opens its upstream at once; the upstream never sends its handshake.
    ...Array.from({ length: CLIENTS }, () => unresponsiveClient(proxy.mysqlPort, null)),
  ]);
  try {
    const deadline = Date.now() + 60_000;
    while ((await loginTimeouts('postgres')) < 2 * CLIENTS || (await loginTimeouts('mysql')) < CLIENTS) {
      if (Date.now() > deadline) assert.unreachable('not every session hit the login timeout');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.is(deafSockets.length, 2 * CLIENTS, 'upstream connections opened');

    const open = await waitForDescriptors(pid, baseline + SLACK, 30_000);
    assert.ok(open <= baseline + SLACK, `the proxy holds ${open} descriptors, ${baseline} before ${3 * CLIENTS} sessions that ended`);

    // What the proxy wrote before closing was not lost with the descriptor.
    const answers = await Promise.all(clients.map((c) => readLate(c)));
    answers.slice(0, 2 * CLIENTS).forEach((bytes, i) => {
      assert.is(String.fromCharCode(bytes[0]!), 'E', `PostgreSQL client ${i}: ${bytes.toString('latin1')}`);
      assert.ok(bytes.includes('C08P01\0') && bytes.includes('startup and authentication not completed within 500 ms'), bytes.toString('latin1'));
    });
    answers.slice(2 * CLIENTS).forEach((bytes, i) => {
      assert.is(bytes[4], 0xff, `MySQL client ${i}: an ERR packet: ${bytes.toString('latin1')}`);
      assert.is(bytes.readUInt16LE(5), 1043);
      assert.ok(bytes.includes('login not completed within 500 ms'), bytes.toString('latin1'));
    });
  } finally {
    for (const c of clients) c.destroy();
  }
});

test.run();
