// The network hop of `make bench --rtt` and `make bench-mysql --rtt`: a private database server
// (PostgreSQL or MariaDB) inside a network namespace of the bench's own, reached over a veth pair
// through bench/delay-relay.c, which holds every chunk for half the round trip in each direction.
// Every target (direct, sidecache, PgBouncer, the forwarder, ...) runs in this process's namespace
// and reaches the database at the same address, so all cross the same delay; traffic stays on this
// machine (loopback, the veth pair, the namespace's loopback).
//
// Needs root (ip netns, veth) and a C compiler (the relay is compiled on first use). Everything is
// undone by stop(), also when starting fails half-way; a detached watchdog deletes the namespace
// should this process be SIGKILLed, the relay dies with it (PR_SET_PDEATHSIG) and the server's
// helper (cluster.ts, mariadb-server.ts) stops the server.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, stat } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startCluster } from '../e2e/support/cluster.js';
import { processCpuSeconds } from './process-cpu.js';
import { captureOutput, stopChild } from './relay-process.js';
import type { HopReading } from './report.js';
import { hopPlan, summarizeRtt, type HopPlan, type RttSummary } from './rtt.js';

const run = promisify(execFile);

/** Where the relay listens inside the namespace (any port is free in a namespace of our own). */
const RELAY_PORT = 6432;
const ECHO_PORT = 6433;

/** The database server behind the hop: started inside the namespace, on its 127.0.0.1. */
export interface HopDatabase {
  /** Its port inside the namespace (any is free there). */
  port: number;
  /** The user every target logs in as. */
  user: string;
  start(namespace: string): Promise<{ stop(): Promise<void> }>;
}

/** The private PostgreSQL of `make bench --rtt`. */
export const POSTGRES_BEHIND_HOP: HopDatabase = {
  port: 5432,
  user: 'postgres',
  start: (namespace) => startCluster({
    netns: namespace,
    port: 5432,
    maxConnections: 200,
    // The bench's scale-10 tables (~160 MB) stay in memory, as on the shared server.
    settings: { shared_buffers: '256MB' },
  }),
};

export interface NetworkHop {
  readonly plan: HopPlan;
  /** The delay relay's process (inside the namespace). */
  readonly relayPid: number;
  /** Where the database is reached from this namespace: through the veth pair and the delay. */
  readonly server: { host: string; port: number; user: string };
  /** CPU seconds the delay element has used so far (undefined once it is gone). */
  relayCpuSeconds(): Promise<number | undefined>;
  /** `samples` sequential 1-byte round trips through the delay element's echo port. */
  measureRtt(samples: number, timeoutMs: number): Promise<RttSummary | undefined>;
  /** Round trips every `intervalMs` until the returned function is called: the RTT under load. */
  sampleRtt(intervalMs: number): () => Promise<number[]>;
  /** The relay's own count of how late it sent chunks (timer and scheduling lateness). */
  lateness(): Promise<string | undefined>;
  stop(): Promise<void>;
}

/** delay-relay.c compiled into a cache dir, rebuilt when the source is newer. */
export async function relayBinary(): Promise<string> {
  // dist/bench/netns.js -> bench/delay-relay.c in the source tree.
  const source = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bench/delay-relay.c');
  const dir = path.join(tmpdir(), 'sidecache-bench-bin');
  const binary = path.join(dir, 'delay-relay');
  await mkdir(dir, { recursive: true });
  const [src, bin] = await Promise.all([stat(source), stat(binary).catch(() => undefined)]);
  if (!bin || bin.mtimeMs < src.mtimeMs) {
    await run('cc', ['-O2', '-Wall', '-o', binary, source], { timeout: 60_000 });
  }
  return binary;
}

async function ip(...args: string[]): Promise<void> {
  await run('ip', args, { timeout: 10_000 });
}

/** A detached shell that deletes the namespace once this process is gone, however it ended. */
function spawnWatchdog(namespace: string): number | undefined {
  const script = 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; ip netns del "$2" >/dev/null 2>&1';
  const child = spawn('sh', ['-c', script, 'sidecache-netns-watchdog', String(process.pid), namespace], { detached: true, stdio: 'ignore', cwd: '/' });
  child.unref();
  return child.pid;
}

export async function startNetworkHop(rttUs: number, database: HopDatabase = POSTGRES_BEHIND_HOP): Promise<NetworkHop> {
  const plan = hopPlan(process.pid, rttUs);
  let server: { stop(): Promise<void> } | undefined;
  let relay: ChildProcess | undefined;
  let watchdog: number | undefined;
  let stopped = false;
  // Deleting the namespace also deletes both ends of the veth pair.
  const deleteNamespace = (): void => { spawnSync('ip', ['netns', 'del', plan.namespace], { stdio: 'ignore', timeout: 10_000 }); };
  const onExit = (): void => deleteNamespace();
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (relay) await stopChild(relay);
    await server?.stop();
    deleteNamespace();
    process.off('exit', onExit);
    if (watchdog !== undefined) {
      try {
        process.kill(-watchdog, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  try {
    const binary = await relayBinary();
    // A leftover of an earlier bench with the same pid would make `ip netns add` fail.
    deleteNamespace();
    await ip('netns', 'add', plan.namespace);
    process.on('exit', onExit);
    watchdog = spawnWatchdog(plan.namespace);
    await ip('link', 'add', plan.hostInterface, 'type', 'veth', 'peer', 'name', plan.namespaceInterface);
    await ip('link', 'set', plan.namespaceInterface, 'netns', plan.namespace);
    await ip('addr', 'add', `${plan.hostAddress}/30`, 'dev', plan.hostInterface);
    await ip('link', 'set', plan.hostInterface, 'up');
    await ip('-n', plan.namespace, 'addr', 'add', `${plan.namespaceAddress}/30`, 'dev', plan.namespaceInterface);
    await ip('-n', plan.namespace, 'link', 'set', plan.namespaceInterface, 'up');
    await ip('-n', plan.namespace, 'link', 'set', 'lo', 'up');
    server = await database.start(plan.namespace);
    // SCHED_FIFO: the hop stands for a network, which does not wait for a CPU behind pgbench and
    // the other helpers' tests. Measured here under load 10: 60 µs late on average against 310 µs
    // at nice -10. It blocks in epoll between chunks, and the kernel's RT throttling (95%) bounds it.
    relay = spawn('ip', ['netns', 'exec', plan.namespace, 'chrt', '-f', '10', binary,
      plan.namespaceAddress, String(RELAY_PORT), '127.0.0.1', String(database.port), String(ECHO_PORT), String(plan.oneWayUs)],
    { stdio: ['ignore', 'pipe', 'pipe'] });
    const output = captureOutput(relay);
    await waitForLine(relay, output, /delay-relay listening/, 10_000);
  } catch (err) {
    await stop();
    throw err;
  }
  const relayChild = relay;
  const echo = { host: plan.namespaceAddress, port: ECHO_PORT };
  return {
    plan,
    relayPid: relayChild.pid!,
    server: { host: plan.namespaceAddress, port: RELAY_PORT, user: database.user },
    relayCpuSeconds: () => processCpuSeconds(relayChild.pid!),
    measureRtt: async (samples, timeoutMs) => summarizeRtt(await pingSeries(echo, samples, 0, Date.now() + timeoutMs, () => false)),
    sampleRtt(intervalMs) {
      let done = false;
      // Bounded even if nobody stops it: no run lasts an hour.
      const series = pingSeries(echo, Number.MAX_SAFE_INTEGER, intervalMs, Date.now() + 3_600_000, () => done);
      return async () => {
        done = true;
        return series;
      };
    },
    lateness: async () => {
      const before = captureOutput(relayChild);
      relayChild.kill('SIGUSR1');
      const line = await waitForLine(relayChild, before, /^stats .*$/m, 2000).catch(() => undefined);
      return line?.replace(/^stats /, '');
    },
    stop,
  };
}

/**
 * The server helpers (cluster.ts, mariadb-server.ts) exit at once on SIGINT (their exit hooks then
 * stop the server); a bench whose own cleanup stops its relays, proxies and then the hop keeps only
 * its handler. Called after the hop has started, since the helpers install theirs on first use.
 */
export function keepOnlySigintListener(keep: (...args: unknown[]) => void): void {
  for (const listener of process.listeners('SIGINT')) if (listener !== keep) process.off('SIGINT', listener);
}

/**
 * Runs `work` (one measured run) and reads the hop meanwhile: the delay relay's CPU and round trips
 * sampled every `intervalMs`, so a delay element that falls behind under the run's load shows.
 * Without a hop, just the work.
 */
export async function observeHop<T>(hop: NetworkHop | undefined, intervalMs: number, work: () => Promise<T>): Promise<{ result: T; hop: HopReading | undefined }> {
  if (!hop) return { result: await work(), hop: undefined };
  const cpuBefore = await hop.relayCpuSeconds();
  const stopSampling = hop.sampleRtt(intervalMs);
  const running = work();
  // Sampling stops when the work ends, whether it succeeded or not.
  const rttSamplesUs = await running.then(stopSampling, stopSampling);
  const result = await running;
  const cpuAfter = await hop.relayCpuSeconds();
  return { result, hop: { cpuSeconds: cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore, rttSamplesUs } };
}

/** Waits until the child's output matches `pattern`; returns the match. */
async function waitForLine(child: ChildProcess, output: () => string, pattern: RegExp, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const m = pattern.exec(output());
    if (m) return m[0];
    if (child.exitCode !== null || child.signalCode !== null) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`delay relay: no "${pattern.source}" within ${timeoutMs} ms\n${output()}`);
}

/** Round-trip times in µs of 1-byte messages on one connection, until `count`, the deadline or `stop()`. */
async function pingSeries(to: { host: string; port: number }, count: number, intervalMs: number, deadline: number, stop: () => boolean): Promise<number[]> {
  const socket = net.connect({ ...to, noDelay: true });
  // Every wait below ends: an echo that does not come within 5 s fails the series.
  socket.setTimeout(5000, () => socket.destroy(new Error('no echo from the delay relay within 5 s')));
  const rtts: number[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const one = Buffer.from('p');
    while (rtts.length < count && Date.now() < deadline && !stop()) {
      const start = process.hrtime.bigint();
      const echoed = new Promise<void>((resolve, reject) => {
        socket.once('data', () => resolve());
        socket.once('error', reject);
        socket.once('close', () => reject(new Error('echo connection closed')));
      });
      socket.write(one);
      await echoed;
      rtts.push(Number(process.hrtime.bigint() - start) / 1000);
      socket.removeAllListeners('error').removeAllListeners('close');
      if (intervalMs > 0) await new Promise((r) => setTimeout(r, intervalMs));
    }
  } finally {
    socket.destroy();
  }
  return rtts;
}
