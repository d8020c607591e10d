// bench/delay-relay.c, the network hop's delay element, on loopback (no namespace needed): it
// never delivers early, keeps order and bytes under pipelining and backpressure, and passes the
// end of a stream on. Asserted are lower bounds (a delay element must never be early) and counts,
// never how late it is: that depends on the machine's load.
// test-timeout: 120
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { relayBinary } from './netns.js';
import { captureOutput, freePort, stopChild } from './relay-process.js';

const ONE_WAY_US = 3000;

interface Relay {
  child: ChildProcess;
  port: number;
  echoPort: number;
  output(): string;
}

async function startRelay(upstreamPort: number): Promise<Relay> {
  const [port, echoPort] = [await freePort(), await freePort()];
  const child = spawn(await relayBinary(), ['127.0.0.1', String(port), '127.0.0.1', String(upstreamPort), String(echoPort), String(ONE_WAY_US)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = captureOutput(child);
  const deadline = Date.now() + 10_000;
  while (!output().includes('delay-relay listening')) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`relay did not start: ${output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { child, port, echoPort, output };
}

/** Connects and collects everything received until the peer ends the stream (or 20 s pass). */
async function exchange(port: number, send: (socket: net.Socket) => void): Promise<{ received: Buffer; ended: boolean }> {
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { socket.destroy(); resolve({ received: Buffer.concat(chunks), ended: false }); }, 20_000);
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', reject);
    socket.on('end', () => { clearTimeout(timer); socket.end(); resolve({ received: Buffer.concat(chunks), ended: true }); });
    socket.once('connect', () => send(socket));
  });
}

test('an echo through the relay never comes back before the round trip (two one-way delays)', async () => {
  const relay = await startRelay(1); // the echo port needs no upstream
  try {
    const socket = net.connect({ host: '127.0.0.1', port: relay.echoPort, noDelay: true });
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
    for (let i = 0; i < 50; i++) {
      const start = process.hrtime.bigint();
      const echoed = new Promise<Buffer>((resolve) => socket.once('data', resolve));
      socket.write(Buffer.from([i]));
      const reply = await echoed;
      const us = Number(process.hrtime.bigint() - start) / 1000;
      assert.equal([...reply], [i]);
      assert.ok(us >= 2 * ONE_WAY_US, `round trip ${us} µs < ${2 * ONE_WAY_US} µs`);
    }
    socket.destroy();
    relay.child.kill('SIGUSR1');
    const deadline = Date.now() + 5000;
    while (!/stats chunks=(\d+)/.test(relay.output()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    // 50 messages out and 50 back, each one chunk.
    assert.ok(Number(/stats chunks=(\d+)/.exec(relay.output())?.[1]) >= 100, relay.output());
  } finally {
    await stopChild(relay.child);
  }
});

test('relayed bytes arrive whole and in order both ways, far beyond the relay\'s queue bound; ends pass on', async () => {
  // Upstream: an echo server that ends its side once the client's side ended.
  const upstream = net.createServer((s) => {
    s.pipe(s);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const relay = await startRelay((upstream.address() as net.AddressInfo).port);
  try {
    // 12 MiB, three times the relay's per-direction high-water mark, written at once.
    const payload = randomBytes(12 << 20);
    const { received, ended } = await exchange(relay.port, (socket) => {
      socket.write(payload.subarray(0, 5 << 20));
      socket.write(payload.subarray(5 << 20));
      socket.end();
    });
    assert.ok(ended, 'the upstream\'s end reached the client');
    assert.is(received.length, payload.length);
    assert.ok(received.equals(payload), 'bytes changed or reordered');
  } finally {
    await stopChild(relay.child);
    upstream.close();
  }
});

test('a client whose upstream refuses is closed, and the relay keeps serving', async () => {
  const relay = await startRelay(await freePort()); // nothing listens there
  try {
    // Closed at once (the write may make it a reset): the client sees no data and a close.
    const client = net.connect({ host: '127.0.0.1', port: relay.port });
    client.on('error', () => undefined);
    client.write('x');
    let received = 0;
    client.on('data', (d) => { received += d.length; });
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 10_000);
      client.once('close', () => { clearTimeout(timer); resolve(true); });
    });
    client.destroy();
    assert.ok(closed, 'the client was left open');
    assert.is(received, 0);
    const socket = net.connect({ host: '127.0.0.1', port: relay.echoPort });
    const reply = await new Promise<Buffer>((resolve, reject) => { socket.once('data', resolve); socket.once('error', reject); socket.write('y'); });
    assert.is(reply.toString(), 'y');
    socket.destroy();
  } finally {
    await stopChild(relay.child);
  }
});

test.run();
