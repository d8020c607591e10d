// The floor for any proxy in the path: a process that copies bytes between each client and its own
// upstream connection and does nothing else, read the way sidecache reads (one reused buffer per
// socket, proxy/read-buffer.ts) and written the way it writes (proxy/direct-write.ts). On a machine
// where the client, the proxy and the database share the CPUs, the extra hop itself (two more
// reads, two more writes and two more wake-ups per round trip) costs throughput before any
// protocol work; the bench measures this target beside sidecache so its ratio to direct can be
// read against what no proxy process could beat here.
//
// Run as a program: `node dist/bench/forwarder.js HOST:PORT` listens on 127.0.0.1 (a free port) and
// prints "forwarder listening on PORT". startForwarder() does that in a child process.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { DirectWrite, writeDirect } from '../proxy/direct-write.js';
import { ReadBuffer, adoptAccepted } from '../proxy/read-buffer.js';
import { stopChild } from './relay-process.js';

export interface RunningForwarder {
  readonly port: number;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

/** Starts the forwarder in a process of its own (its CPU is measured like sidecache's). */
export function startForwarder(upstream: { host: string; port: number }): Promise<RunningForwarder> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), `${upstream.host}:${upstream.port}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`forwarder exited with ${code} before listening`)));
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /forwarder listening on (\d+)/.exec(out);
      if (m) resolve({ port: Number(m[1]), child, stop: () => stopChild(child) });
    });
  });
}

/** One client and its upstream connection, bytes copied both ways with backpressure. */
function pump(accepted: net.Socket, host: string, port: number): void {
  let upstream: net.Socket;
  // What a direct write the kernel did not take at once does when it went out (or failed).
  const upstreamWritten = (status: number): void => void (status < 0 ? upstream.destroy() : client.resume());
  const clientWritten = (status: number): void => void (status < 0 ? client.destroy() : upstream.resume());
  const clientReads = new ReadBuffer((chunk) => {
    if (!copy(chunk, upstream, client, upstreamWritten)) clientReads.retain();
  });
  const upstreamReads = new ReadBuffer((chunk) => {
    if (!copy(chunk, client, upstream, clientWritten)) upstreamReads.retain();
  });
  const client = adoptAccepted(accepted, clientReads);
  client.setNoDelay(true);
  upstream = net.connect({ host, port, noDelay: true, onread: upstreamReads.onread });
  client.on('drain', () => upstream.resume());
  upstream.on('drain', () => client.resume());
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.resume();
}

/**
 * Writes `chunk` to `to` as sidecache writes (proxy/direct-write.ts), so this stays the floor for
 * its I/O, pausing `from` until it went out; false while `to` still holds (a view of) it.
 */
function copy(chunk: Buffer, to: net.Socket, from: net.Socket, written: (status: number) => void): boolean {
  const direct = writeDirect(to, chunk, written);
  const flowing = direct === DirectWrite.Stream ? to.write(chunk) : direct === DirectWrite.Sent;
  if (!flowing) from.pause();
  return flowing && to.writableLength === 0;
}

function main(target: string | undefined): void {
  const m = /^(.+):(\d+)$/.exec(target ?? '');
  if (!m) {
    console.error('usage: node dist/bench/forwarder.js HOST:PORT');
    process.exit(2);
  }
  const [, host, port] = m;
  const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (socket) => pump(socket, host!, Number(port)));
  server.listen(0, '127.0.0.1', () => console.log(`forwarder listening on ${(server.address() as net.AddressInfo).port}`));
  process.on('SIGTERM', () => process.exit(0));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main(process.argv[2]);
