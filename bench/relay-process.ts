// Shared plumbing for the third-party servers the bench starts (PgBouncer, pgpool-II): a free port
// to give them, waiting until they accept connections, and stopping them.
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';

export { freePort } from '../e2e/support/ports.js';

/** True when something accepts a TCP connection on 127.0.0.1:port. */
export function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    socket.setTimeout(2000, () => { socket.destroy(); resolve(false); });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/** Resolves once `child` accepts connections on `port`; rejects when it exits first or takes too long. */
export async function waitForListener(child: ChildProcess, name: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${name} exited with ${child.exitCode ?? child.signalCode} before listening`);
    }
    if (await canConnect(port)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

/** Sends `signal`, then SIGKILL after 5 s; resolves when the process has exited. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** Everything the child writes to stdout and stderr, the last `maxChars` of it. */
export function captureOutput(child: ChildProcess, maxChars = 64 * 1024): () => string {
  let output = '';
  const append = (d: string): void => {
    output += d;
    if (output.length > maxChars * 2) output = output.slice(-maxChars);
  };
  child.stdout?.setEncoding('utf8').on('data', append);
  child.stderr?.setEncoding('utf8').on('data', append);
  return () => output.slice(-maxChars);
}
