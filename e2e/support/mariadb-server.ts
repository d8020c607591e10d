// Throwaway MariaDB servers for e2e tests that need what the shared one cannot give: the binary log
// (the shared server runs with log_bin=OFF), restarts. A server lives in a temp dir owned by the
// `mysql` OS user, listens on 127.0.0.1 at a free port with a passwordless root, and is stopped and
// removed when the test process ends, however it ends (a watchdog outlives a SIGKILL).
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { freePort } from './ports.js';

const run = promisify(execFile);
const OS_USER = 'mysql';
const START_ATTEMPTS = 3;

export interface MariadbServerOptions {
  /** Binary log on, ROW format (the default); false starts it without one. */
  binlog?: boolean;
  /** binlog_format when the binlog is on; ROW by default. */
  binlogFormat?: 'ROW' | 'MIXED' | 'STATEMENT';
  /** More mariadbd options, e.g. ['--max-connections=20']. */
  args?: string[];
  /** Where to listen (a failover to another server at the same address); a free port when unset. */
  port?: number;
  /** Bound on install + start together. */
  startTimeoutMs?: number;
  /** TLS with this certificate, key and CA, and require_secure_transport=ON: cleartext logins are refused. */
  tls?: { cert: string; key: string; ca: string };
  /**
   * Start the server inside this network namespace (`ip netns exec`, as root; the MySQL bench's
   * network hop): it then listens on that namespace's 127.0.0.1, `port` should be given (a free
   * port is probed in this process's namespace), and this helper's own connections go through the
   * unix socket, which is a file and reaches it from here.
   */
  netns?: string;
}

export interface MariadbServer {
  host: string;
  port: number;
  dataDir: string;
  /** mysql://root@127.0.0.1:PORT */
  url: string;
  /** The server's unix socket (the way in from this namespace when it runs in another). */
  socketPath: string;
  /** Runs statements as root on a fresh connection (multiple statements allowed); returns the last result's rows. */
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  /** Shuts the server down cleanly and starts it again on the same port and data. */
  restart(): Promise<void>;
  /** Kills the server and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

export class MariadbStartError extends Error {
  constructor(message: string, readonly log: string) {
    super(`${message}\n--- mariadbd error log ---\n${log}`);
    this.name = 'MariadbStartError';
  }
}

interface LiveServer {
  baseDir: string;
  child: ChildProcess | null;
  watchdogPid: number | undefined;
  /** A shutdown, restart or kill of the test's own: the server's exit is expected. */
  stopping: boolean;
}

const live = new Set<LiveServer>();
let exitHooksInstalled = false;

export async function startMariadb(opts: MariadbServerOptions = {}): Promise<MariadbServer> {
  const deadline = Date.now() + (opts.startTimeoutMs ?? 90_000);
  const baseDir = await mkdtemp(path.join(os.tmpdir(), 'sidecache-mariadb-'));
  const dataDir = path.join(baseDir, 'data');
  const entry: LiveServer = { baseDir, child: null, watchdogPid: undefined, stopping: false };
  live.add(entry);
  installExitHooks();
  try {
    const { uid, gid } = await mysqlIds();
    await chown(baseDir, uid, gid);
    await run('mariadb-install-db', ['--no-defaults', `--user=${OS_USER}`, `--datadir=${dataDir}`, '--auth-root-authentication-method=normal',
      '--skip-test-db', '--skip-name-resolve'], { cwd: baseDir, timeout: remaining(deadline) });
    for (let attempt = 1; ; attempt++) {
      const port = opts.port ?? await freePort();
      const args = serverArgs(baseDir, dataDir, port, opts);
      try {
        const ssl = opts.tls === undefined ? undefined : { ca: readFileSync(opts.tls.ca) };
        const helper: HelperAccess = { ssl, via: opts.netns === undefined ? { host: '127.0.0.1', port } : { socketPath: socketPath(baseDir) }, netns: opts.netns };
        await launch(entry, args, deadline, helper);
        return server(entry, dataDir, port, args, deadline, helper);
      } catch (err) {
        const log = await readFile(path.join(baseDir, 'error.log'), 'utf8').catch(() => '');
        if (attempt < START_ATTEMPTS && opts.port === undefined && /already in use|Can't start server: Bind/i.test(log)) continue;
        throw new MariadbStartError(`mariadbd did not start: ${(err as Error).message}`, log.slice(-4000));
      }
    }
  } catch (err) {
    stopNow(entry);
    throw err;
  }
}

function serverArgs(baseDir: string, dataDir: string, port: number, opts: MariadbServerOptions): string[] {
  const binlog = opts.binlog === false ? [] : [`--log-bin=${path.join(dataDir, 'binlog')}`, `--binlog-format=${opts.binlogFormat ?? 'ROW'}`];
  return [
    '--no-defaults', `--user=${OS_USER}`, `--datadir=${dataDir}`, `--port=${port}`, '--bind-address=127.0.0.1',
    `--socket=${socketPath(baseDir)}`, `--pid-file=${path.join(baseDir, 'mysqld.pid')}`, `--log-error=${path.join(baseDir, 'error.log')}`,
    '--server-id=1', '--skip-name-resolve', '--innodb-buffer-pool-size=32M', '--innodb-log-file-size=16M', '--performance-schema=OFF',
    ...binlog, ...(opts.args ?? []),
    ...(opts.tls === undefined ? [] : [`--ssl-cert=${opts.tls.cert}`, `--ssl-key=${opts.tls.key}`, `--ssl-ca=${opts.tls.ca}`, '--require-secure-transport=ON']),
  ];
}

function socketPath(baseDir: string): string {
  return path.join(baseDir, 'mysqld.sock');
}

/**
 * How the helper's own connections reach the server: TCP, or its unix socket when it runs in
 * another network namespace; with the test's CA when it requires TLS.
 */
interface HelperAccess {
  ssl: { ca: Buffer } | undefined;
  via: { host: string; port: number } | { socketPath: string };
  netns: string | undefined;
}

/** Starts mariadbd and waits until it answers a query. */
async function launch(entry: LiveServer, args: string[], deadline: number, helper: HelperAccess): Promise<void> {
  // `ip netns exec` execs mariadbd itself: the child's pid is the server's, signals reach it.
  const [file, ...rest] = helper.netns === undefined ? ['mariadbd', ...args] : ['ip', 'netns', 'exec', helper.netns, 'mariadbd', ...args];
  const child = spawn(file!, rest, { cwd: entry.baseDir, stdio: 'ignore' });
  entry.child = child;
  // A server that dies under a test is reported with its log: a test sees only closed connections.
  child.once('exit', (code, signal) => {
    if (entry.child !== child || entry.stopping) return;
    const log = (() => {
      try {
        return readFileSync(path.join(entry.baseDir, 'error.log'), 'utf8').slice(-3000);
      } catch {
        return '(no error.log)';
      }
    })();
    process.stderr.write(`\n── private mariadbd (pid ${child.pid}) exited unexpectedly: ${signal ?? `code ${code}`}; its error.log ends:\n${log}\n`);
  });
  killWatchdog(entry);
  entry.watchdogPid = spawnWatchdog(entry.baseDir, child.pid!);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`mariadbd exited with ${child.exitCode ?? child.signalCode}`);
    try {
      const c = await mysql.createConnection({ ...helper.via, user: 'root', connectTimeout: 2000, ssl: helper.ssl });
      await c.query('SELECT 1');
      await c.end();
      return;
    } catch {
      if (Date.now() > deadline) {
        entry.stopping = true;
        child.kill('SIGKILL');
        throw new Error('mariadbd did not accept connections in time');
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

function server(entry: LiveServer, dataDir: string, port: number, args: string[], deadline: number, helper: HelperAccess): MariadbServer {
  return {
    host: '127.0.0.1',
    port,
    dataDir,
    url: `mysql://root@127.0.0.1:${port}`,
    socketPath: socketPath(entry.baseDir),
    async query<R>(sql: string, params?: unknown[]): Promise<R[]> {
      const c = await mysql.createConnection({ ...helper.via, user: 'root', multipleStatements: true, ssl: helper.ssl });
      try {
        const [rows] = await c.query(sql, params);
        const last = Array.isArray(rows) && Array.isArray(rows[rows.length - 1]) ? rows[rows.length - 1] : rows;
        return (Array.isArray(last) ? last : []) as R[];
      } finally {
        await c.end();
      }
    },
    async restart(): Promise<void> {
      await shutdown(entry);
      entry.stopping = false;
      await launch(entry, args, Math.max(deadline, Date.now() + 60_000), helper);
    },
    async stop(): Promise<void> {
      if (!live.has(entry)) return;
      live.delete(entry);
      killWatchdog(entry);
      entry.stopping = true;
      entry.child?.kill('SIGKILL');
      if (entry.child !== null && entry.child.exitCode === null && entry.child.signalCode === null) {
        await new Promise((resolve) => entry.child!.once('exit', resolve));
      }
      await rm(entry.baseDir, { recursive: true, force: true });
    },
  };
}

/** SIGTERM (a clean shutdown: the binlog is closed properly), SIGKILL after 30 s. */
async function shutdown(entry: LiveServer): Promise<void> {
  const child = entry.child;
  if (child === null || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  entry.stopping = true;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

async function mysqlIds(): Promise<{ uid: number; gid: number }> {
  const [u, g] = await Promise.all([run('id', ['-u', OS_USER]), run('id', ['-g', OS_USER])]);
  return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
}

function remaining(deadline: number): number {
  return Math.max(deadline - Date.now(), 1000);
}

/** A detached shell that kills the server and removes its directory once this process is gone. */
function spawnWatchdog(baseDir: string, serverPid: number): number | undefined {
  const script = 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; kill -9 "$2" 2>/dev/null; sleep 1; rm -rf "$3"';
  const child = spawn('sh', ['-c', script, 'sidecache-mariadb-watchdog', String(process.pid), String(serverPid), baseDir],
    { detached: true, stdio: 'ignore', cwd: '/' });
  child.unref();
  return child.pid;
}

function killWatchdog(entry: LiveServer): void {
  if (entry.watchdogPid === undefined) return;
  try {
    process.kill(-entry.watchdogPid, 'SIGKILL');
  } catch {
    // already gone
  }
  entry.watchdogPid = undefined;
}

/** Synchronous, for 'exit' handlers. */
function stopNow(entry: LiveServer): void {
  live.delete(entry);
  killWatchdog(entry);
  entry.stopping = true;
  // Only a server still running: the pid of one that exited may already be another process's.
  const child = entry.child;
  if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) spawnSync('kill', ['-9', String(child.pid)], { stdio: 'ignore' });
  rmSync(entry.baseDir, { recursive: true, force: true });
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', () => {
    for (const entry of [...live]) stopNow(entry);
  });
  for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130], ['SIGHUP', 129]] as const) {
    process.once(signal, () => process.exit(code));
  }
}
