// Throwaway PostgreSQL clusters for e2e tests that need what the shared server cannot give:
// their own pg_hba.conf (auth methods), more connections, other server settings.
// A cluster lives in a temp dir owned by the `postgres` OS user and listens on 127.0.0.1 at a free
// port; the helper itself talks to it as superuser over the unix socket in that dir.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, appendFile, writeFile, readFile, chown, chmod, copyFile, rm } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './ports.js';

const run = promisify(execFile);

/** PostgreSQL 15 binaries; initdb and postgres refuse to run as root, hence runuser. */
const PG_BIN = '/usr/lib/postgresql/15/bin';
const PG_OS_USER = 'postgres';
const SUPERUSER = 'postgres';
const START_ATTEMPTS = 3;

export interface ClusterOptions {
  /** pg_hba.conf lines for TCP clients; defaults to trust for everyone on 127.0.0.1. */
  hba?: string[];
  /** max_connections; PostgreSQL's default is 100. */
  maxConnections?: number;
  /** Other postgresql.conf settings, e.g. { password_encryption: 'md5' }. */
  settings?: Record<string, string | number>;
  /** Bound on initdb + start together. */
  startTimeoutMs?: number;
  /** Listen here instead of on a free port (another server where a stopped one was). */
  port?: number;
  /**
   * Start the server inside this network namespace (`ip netns`, as root; the bench's network
   * hop): it then listens on that namespace's 127.0.0.1, and `port` should be given, since a free
   * port is probed in this process's namespace. The unix socket still reaches it from here.
   */
  netns?: string;
  /** ssl=on with this certificate and key (PEM), copied into the data dir for the server's OS user. */
  tls?: { cert: string; key: string };
}

export interface Cluster {
  host: string;
  port: number;
  dataDir: string;
  /** Directory holding the unix socket the helper uses as superuser. */
  socketDir: string;
  /** Runs one statement as superuser in database `postgres` on a fresh connection; returns its rows. */
  query<R extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  /** A fast shutdown (every session is terminated), then the same data served again on the same port. */
  restart(): Promise<void>;
  /** Immediate shutdown, then the temp dir is removed. Safe to call twice. */
  stop(): Promise<void>;
}

export class ClusterStartError extends Error {
  constructor(message: string, readonly log: string) {
    super(`${message}\n--- postgres log ---\n${log}`);
    this.name = 'ClusterStartError';
  }
}

interface LiveCluster {
  baseDir: string;
  dataDir: string;
  watchdogPid: number | undefined;
}

/** Clusters not yet stopped, so a crashing or killed test process still shuts them down. */
const live = new Set<LiveCluster>();
let exitHooksInstalled = false;

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const deadline = Date.now() + (opts.startTimeoutMs ?? 60_000);
  const baseDir = await mkdtemp(path.join(os.tmpdir(), 'sidecache-pg-'));
  const dataDir = path.join(baseDir, 'data');
  const logFile = path.join(baseDir, 'postgres.log');
  const entry: LiveCluster = { baseDir, dataDir, watchdogPid: undefined };
  live.add(entry);
  installExitHooks();
  entry.watchdogPid = spawnWatchdog(baseDir, dataDir);

  try {
    const { uid, gid } = await postgresIds();
    await chown(baseDir, uid, gid);
    await asPostgres('initdb', ['-D', dataDir, '--auth=trust', '-U', SUPERUSER, '--no-sync', '-E', 'UTF8', '--locale=C'],
      baseDir, remaining(deadline));
    await writeFile(path.join(dataDir, 'pg_hba.conf'), hbaConf(opts.hba));
    if (opts.tls !== undefined) {
      // PostgreSQL refuses a key that others can read or that another user owns.
      for (const [from, name] of [[opts.tls.cert, 'server.crt'], [opts.tls.key, 'server.key']] as const) {
        await copyFile(from, path.join(dataDir, name));
        await chown(path.join(dataDir, name), uid, gid);
        await chmod(path.join(dataDir, name), 0o600);
      }
    }

    for (let attempt = 1; ; attempt++) {
      const port = opts.port ?? await freePort();
      await appendFile(path.join(dataDir, 'postgresql.conf'), serverConf(port, baseDir, opts));
      try {
        await asPostgres('pg_ctl', ['start', '-D', dataDir, '-l', logFile, '-w', '-t', String(Math.ceil(remaining(deadline) / 1000))],
          baseDir, remaining(deadline) + 2000, opts.netns);
        return cluster(entry, port, baseDir, logFile, opts.netns);
      } catch (err) {
        const log = await readFile(logFile, 'utf8').catch(() => '');
        // Another process may grab the port between our probe and the server's bind.
        if (opts.port === undefined && attempt < START_ATTEMPTS && /could not bind|already in use/i.test(log)) continue;
        throw new ClusterStartError(`PostgreSQL did not start: ${(err as Error).message}`, log);
      }
    }
  } catch (err) {
    stopNow(entry);
    throw err;
  }
}

function cluster(entry: LiveCluster, port: number, socketDir: string, logFile: string, netns: string | undefined): Cluster {
  return {
    host: '127.0.0.1',
    port,
    dataDir: entry.dataDir,
    socketDir,
    async query<R extends Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]> {
      const client = new pg.Client({ host: socketDir, port, user: SUPERUSER, database: 'postgres' });
      await client.connect();
      try {
        return (await client.query<R>(sql, params)).rows;
      } finally {
        await client.end();
      }
    },
    async restart(): Promise<void> {
      await asPostgres('pg_ctl', ['restart', '-D', entry.dataDir, '-m', 'fast', '-l', logFile, '-w', '-t', '60'], entry.baseDir, 70_000, netns);
    },
    async stop(): Promise<void> {
      if (!live.has(entry)) return;
      live.delete(entry);
      killWatchdog(entry);
      await asPostgres('pg_ctl', ['stop', '-D', entry.dataDir, '-m', 'immediate', '-w'], entry.baseDir, 30_000)
        .catch(() => undefined);
      await rm(entry.baseDir, { recursive: true, force: true });
    },
  };
}

function hbaConf(lines: string[] = ['host all all 127.0.0.1/32 trust']): string {
  // The helper's own superuser line comes first so no test line can shadow it.
  return [`local all ${SUPERUSER} trust`, ...lines, ''].join('\n');
}

function serverConf(port: number, socketDir: string, opts: ClusterOptions): string {
  const settings: Record<string, string | number> = {
    listen_addresses: '127.0.0.1',
    port,
    unix_socket_directories: socketDir,
    // Durability is worthless for a cluster that is deleted after the test; speed is not.
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    shared_buffers: '32MB',
    ...(opts.maxConnections === undefined ? {} : { max_connections: opts.maxConnections }),
    ...(opts.tls === undefined ? {} : { ssl: 'on', ssl_cert_file: 'server.crt', ssl_key_file: 'server.key' }),
    ...opts.settings,
  };
  const quote = (v: string | number): string => `'${String(v).replace(/'/g, "''")}'`;
  return '\n' + Object.entries(settings).map(([k, v]) => `${k} = ${quote(v)}`).join('\n') + '\n';
}

async function asPostgres(tool: string, args: string[], cwd: string, timeout: number, netns?: string): Promise<void> {
  // cwd: the postgres user cannot enter the test's working directory.
  const command = ['runuser', '-u', PG_OS_USER, '--', path.join(PG_BIN, tool), ...args];
  const [file, ...rest] = netns === undefined ? command : ['ip', 'netns', 'exec', netns, ...command];
  await run(file!, rest, { cwd, timeout: Math.max(timeout, 1000) });
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const [u, g] = await Promise.all([run('id', ['-u', PG_OS_USER]), run('id', ['-g', PG_OS_USER])]);
  return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
}

function remaining(deadline: number): number {
  return Math.max(deadline - Date.now(), 1000);
}

/**
 * A detached shell that outlives this process only to shut the cluster down once this process is
 * gone — the one cleanup that still runs when the test runner SIGKILLs a test on timeout.
 */
function spawnWatchdog(baseDir: string, dataDir: string): number | undefined {
  const script = 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; '
    + 'runuser -u "$2" -- "$3/pg_ctl" stop -D "$4" -m immediate -w >/dev/null 2>&1; rm -rf "$5"';
  const child = spawn('sh', ['-c', script, 'sidecache-pg-watchdog', String(process.pid), PG_OS_USER, PG_BIN, dataDir, baseDir],
    { detached: true, stdio: 'ignore', cwd: '/' });
  child.unref();
  return child.pid;
}

function killWatchdog(entry: LiveCluster): void {
  if (entry.watchdogPid === undefined) return;
  try {
    process.kill(-entry.watchdogPid, 'SIGKILL'); // its own process group: the shell and its sleep
  } catch {
    // already gone
  }
}

/** Synchronous, for 'exit' handlers where nothing asynchronous runs any more. */
function stopNow(entry: LiveCluster): void {
  live.delete(entry);
  killWatchdog(entry);
  spawnSync('runuser', ['-u', PG_OS_USER, '--', path.join(PG_BIN, 'pg_ctl'), 'stop', '-D', entry.dataDir, '-m', 'immediate', '-w'],
    { cwd: '/', stdio: 'ignore', timeout: 30_000 });
  rmSync(entry.baseDir, { recursive: true, force: true });
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', () => {
    for (const entry of [...live]) stopNow(entry);
  });
  // A signal handler replaces the default "die"; exiting keeps that behaviour and runs the hook above.
  for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130], ['SIGHUP', 129]] as const) {
    process.once(signal, () => process.exit(code));
  }
}
