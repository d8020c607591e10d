// Private redis-server processes for the fleet's tests: one node (with a password, TLS with a CA
// and certificate made here by openssl), or a Redis Cluster of masters with replicas made by
// `redis-cli --cluster create`. Never the machine's shared Redis on 6379. Each lives in a temp dir
// on a free port, keeps nothing on disk, and is stopped when the test process exits, even when a
// test fails or the runner kills the process (a detached watchdog shell outlives it for that).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';

const run = promisify(execFile);
const START_ATTEMPTS = 3;
const START_TIMEOUT_MS = 15_000;

export interface RedisOptions {
  /** requirepass; clients must AUTH with it. */
  password?: string;
  /** Serve TLS only (no plain port), with a certificate for 127.0.0.1 signed by a CA made here. */
  tls?: boolean;
  /** More redis-server options, e.g. ['--cluster-enabled', 'yes']. */
  args?: string[];
}

export interface RedisServer {
  readonly host: string;
  readonly port: number;
  /** redis:// or rediss://, with ?ca= for TLS; no password. */
  readonly url: string;
  /** PEM of the CA that signed the TLS certificate; null without TLS. */
  readonly caFile: string | null;
  readonly dir: string;
  /** Runs redis-cli against this server (AUTH and TLS included) and returns its output. */
  cli(...args: string[]): Promise<string>;
  /** SIGKILL: gone at once, as a crash. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: the server stops answering without closing a connection (a network black hole). */
  freeze(): void;
  thaw(): void;
  /** Starts it again on the same port with the same options (its data is gone, as after a crash). */
  restart(): Promise<void>;
  /** Kills it and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

interface Live {
  child: ChildProcess | null;
  watchdog: number | undefined;
  dir: string;
}

const live = new Set<Live>();
let hooked = false;

export async function startRedis(opts: RedisOptions = {}): Promise<RedisServer> {
  installExitHook();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sidecache-redis-'));
  const entry: Live = { child: null, watchdog: undefined, dir };
  live.add(entry);
  try {
    const caFile = opts.tls === true ? await makeCertificates(dir) : null;
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      try {
        await launch(entry, port, opts);
        break;
      } catch (err) {
        if (attempt >= START_ATTEMPTS || !/already in use/i.test((err as Error).message)) throw err;
      }
    }
    const scheme = opts.tls === true ? 'rediss' : 'redis';
    const tlsCli = caFile === null ? [] : ['--tls', '--cacert', caFile];
    const authCli = opts.password === undefined ? [] : ['--no-auth-warning', '-a', opts.password];
    const server: RedisServer = {
      host: '127.0.0.1',
      port,
      url: `${scheme}://127.0.0.1:${port}${caFile === null ? '' : `?ca=${caFile}`}`,
      caFile,
      dir,
      async cli(...args) {
        const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...tlsCli, ...authCli, ...args], { timeout: 10_000 });
        return stdout;
      },
      async kill() {
        await killChild(entry);
      },
      freeze() {
        entry.child?.kill('SIGSTOP');
      },
      thaw() {
        entry.child?.kill('SIGCONT');
      },
      async restart() {
        await killChild(entry);
        await launch(entry, port, opts);
      },
      async stop() {
        if (!live.has(entry)) return;
        live.delete(entry);
        await killChild(entry);
        rmSync(dir, { recursive: true, force: true });
      },
    };
    return server;
  } catch (err) {
    stopNow(entry);
    throw err;
  }
}

export interface RedisCluster {
  readonly nodes: readonly RedisServer[];
  /** `host:port,host:port,...` of every node, for --redis-cluster. */
  readonly seeds: string;
  /** The node serving `key`'s slot as master now. */
  masterOf(key: string): Promise<RedisServer>;
  /** Kills the master of `key`'s slot and waits until one of its replicas serves the slot. */
  failOver(key: string, timeoutMs?: number): Promise<{ killed: RedisServer; promoted: RedisServer }>;
  stop(): Promise<void>;
}

/** `masters` masters with `replicas` replicas each, created by redis-cli --cluster create. */
export async function startRedisCluster(masters = 3, replicas = 1): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      // A short node timeout makes failover take a second or two; validity 0 lets any replica take over.
      nodes.push(await startRedis({ args: ['--cluster-enabled', 'yes', '--cluster-node-timeout', '1000', '--cluster-replica-validity-factor', '0'] }));
    }
    const addresses = nodes.map((n) => `127.0.0.1:${n.port}`);
    await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', String(replicas), '--cluster-yes'], { timeout: 60_000 });
    await waitFor(async () => {
      const states = await Promise.all(nodes.map((n) => n.cli('cluster', 'info')));
      return states.every((s) => s.includes('cluster_state:ok'));
    }, 30_000, 'the cluster to report cluster_state:ok on every node');
  } catch (err) {
    await stopAll();
    throw err;
  }
  const byPort = new Map(nodes.map((n) => [n.port, n]));
  const masterOf = async (key: string, ask: readonly RedisServer[] = nodes): Promise<RedisServer> => {
    const slot = Number((await ask[0]!.cli('cluster', 'keyslot', key)).trim());
    for (const node of ask) {
      const port = await node.cli('cluster', 'nodes').then((text) => slotMaster(text, slot), () => null);
      if (port !== null) return byPort.get(port)!;
    }
    throw new Error(`no master serves slot ${slot}`);
  };
  return {
    nodes,
    seeds: nodes.map((n) => `127.0.0.1:${n.port}`).join(','),
    masterOf: (key) => masterOf(key),
    async failOver(key, timeoutMs = 30_000) {
      const killed = await masterOf(key);
      await killed.kill();
      const survivors = nodes.filter((n) => n !== killed);
      let promoted: RedisServer | null = null;
      await waitFor(async () => {
        const master = await masterOf(key, survivors).catch(() => null);
        const ok = master !== null && master !== killed && (await master.cli('cluster', 'info')).includes('cluster_state:ok');
        if (ok) promoted = master;
        return ok;
      }, timeoutMs, `a replica to take over slot of ${key}`);
      return { killed, promoted: promoted! };
    },
    stop: stopAll,
  };
}

/** The port of the connected master serving `slot` in CLUSTER NODES output, or null. */
export function slotMaster(clusterNodes: string, slot: number): number | null {
  for (const line of clusterNodes.split('\n')) {
    const parts = line.trim().split(' ');
    if (parts.length < 9 || !parts[2]!.split(',').includes('master') || parts[2]!.includes('fail') || parts[7] !== 'connected') continue;
    for (const range of parts.slice(8)) {
      const [from, to] = range.split('-').map(Number);
      if (slot >= from! && slot <= (to ?? from)!) return Number(parts[1]!.split(/[:@]/)[1]);
    }
  }
  return null;
}

async function launch(entry: Live, port: number, opts: RedisOptions): Promise<void> {
  const args = [
    '--bind', '127.0.0.1', '--dir', entry.dir, '--save', '', '--appendonly', 'no', '--logfile', '',
    '--daemonize', 'no', '--protected-mode', 'no',
    ...(opts.tls === true
      ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', path.join(entry.dir, 'server.crt'), '--tls-key-file', path.join(entry.dir, 'server.key'),
        '--tls-ca-cert-file', path.join(entry.dir, 'ca.crt'), '--tls-auth-clients', 'no']
      : ['--port', String(port)]),
    ...(opts.password === undefined ? [] : ['--requirepass', opts.password]),
    ...(opts.args ?? []),
  ];
  const child = spawn('redis-server', args, { cwd: entry.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  entry.child = child;
  entry.watchdog = spawnWatchdog(child.pid!, entry.dir);
  let out = '';
  const collect = (d: Buffer): void => {
    out += d.toString();
  };
  child.stderr!.on('data', collect);
  child.stdout!.on('data', collect);
  await new Promise<void>((resolve, reject) => {
    const done = (err: Error | null): void => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      if (err === null) resolve();
      else void killChild(entry).finally(() => reject(err));
    };
    const timer = setTimeout(() => done(new Error(`redis-server on ${port} was not ready within ${START_TIMEOUT_MS} ms:\n${out}`)), START_TIMEOUT_MS);
    const onData = (): void => {
      if (out.includes('Ready to accept connections')) done(null);
    };
    const onExit = (code: number | null): void => done(new Error(`redis-server on ${port} exited with ${code}:\n${out}`));
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
  // Only the start is of interest; later output is read and dropped.
  child.stdout!.off('data', collect);
  child.stderr!.off('data', collect);
  child.stdout!.resume();
  child.stderr!.resume();
}

async function killChild(entry: Live): Promise<void> {
  const child = entry.child;
  entry.child = null;
  killWatchdog(entry);
  if (child === null || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** A CA and a certificate for 127.0.0.1 / localhost signed by it, in `dir`; returns the CA's file. */
async function makeCertificates(dir: string): Promise<string> {
  const at = (f: string): string => path.join(dir, f);
  const openssl = (...args: string[]): Promise<unknown> => run('openssl', args, { cwd: dir, timeout: 30_000 });
  await openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', at('ca.key'), '-out', at('ca.crt'), '-days', '2', '-subj', '/CN=sidecache test CA');
  await openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', at('server.key'), '-out', at('server.csr'), '-subj', '/CN=127.0.0.1');
  writeFileSync(at('san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await openssl('x509', '-req', '-in', at('server.csr'), '-CA', at('ca.crt'), '-CAkey', at('ca.key'), '-CAcreateserial', '-out', at('server.crt'), '-days', '2', '-extfile', at('san.cnf'));
  return at('ca.crt');
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Kills the server and removes its dir once this process is gone, however it ended. */
function spawnWatchdog(pid: number, dir: string): number | undefined {
  const script = 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill -9 "$2" 2>/dev/null; rm -rf "$3"';
  const child = spawn('sh', ['-c', script, 'sidecache-redis-watchdog', String(process.pid), String(pid), dir], { detached: true, stdio: 'ignore', cwd: '/' });
  child.unref();
  return child.pid;
}

function killWatchdog(entry: Live): void {
  if (entry.watchdog === undefined) return;
  try {
    process.kill(-entry.watchdog, 'SIGKILL');
  } catch {
    // already gone
  }
  entry.watchdog = undefined;
}

function stopNow(entry: Live): void {
  live.delete(entry);
  killWatchdog(entry);
  entry.child?.kill('SIGKILL');
  rmSync(entry.dir, { recursive: true, force: true });
}

function installExitHook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const entry of [...live]) stopNow(entry);
  });
}
