// Throwaway MariaDB servers for e2e tests that must restart the server or put another one at its
// address, which the shared server cannot give. Each lives in a temp dir owned by the `mysql` OS
// user, listens on 127.0.0.1 at a free port (or the one asked for) and lets root in without a
// password. The data directory is installed once per test process (mariadb-install-db takes
// seconds) and copied for every server.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, mkdir, readFile, chown, rm } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';
import { connectMySql, statementsOn } from './mysql-direct.js';

const run = promisify(execFile);

const OS_USER = 'mysql';
const START_ATTEMPTS = 3;

export interface MariadbOptions {
  /** Where to listen; a free port when unset. */
  port?: number;
  /** Bound on installing (the first time) and starting together. */
  startTimeoutMs?: number;
}

export interface MariadbServer {
  host: string;
  port: number;
  /** Runs statements as root on a fresh connection; returns the last one's rows. */
  query(...statements: string[]): Promise<unknown>;
  /** A clean shutdown, then the same data served again on the same port. */
  restart(): Promise<void>;
  /** A clean shutdown, then the data is removed. Safe to call twice. */
  stop(): Promise<void>;
}

export class MariadbStartError extends Error {
  constructor(message: string, readonly log: string) {
    super(`${message}\n--- mariadbd log ---\n${log}`);
    this.name = 'MariadbStartError';
  }
}

interface Live {
  dir: string;
  child: ChildProcess | null;
}

/** This process's temp dir (the installed template and every server), removed when it ends. */
let root: Promise<{ dir: string; template: string }> | null = null;
const live = new Set<Live>();
let serial = 0;

export async function startMariadb(opts: MariadbOptions = {}): Promise<MariadbServer> {
  const deadline = Date.now() + (opts.startTimeoutMs ?? 90_000);
  const { dir: rootDir, template } = await installOnce(deadline);
  const dir = path.join(rootDir, `server-${++serial}`);
  const entry: Live = { dir, child: null };
  live.add(entry);
  try {
    await run('cp', ['-a', template, dir], { timeout: remaining(deadline) });
    let port = opts.port ?? await freePort();
    for (let attempt = 1; ; attempt++) {
      try {
        await launch(entry, port, deadline);
        break;
      } catch (err) {
        // Another process may grab a free port between our probe and the server's bind.
        if (opts.port !== undefined || attempt >= START_ATTEMPTS || !(err instanceof MariadbStartError) || !/bind|in use/i.test(err.log)) throw err;
        port = await freePort();
      }
    }
    return server(entry, port);
  } catch (err) {
    stopNow(entry);
    throw err;
  }
}

function server(entry: Live, port: number): MariadbServer {
  return {
    host: '127.0.0.1',
    port,
    query(...statements: string[]): Promise<unknown> {
      // No database: the server has no `test` database.
      return statementsOn(port, statements, { database: undefined });
    },
    async restart(): Promise<void> {
      await shutdown(entry);
      await launch(entry, port, Date.now() + 60_000);
    },
    async stop(): Promise<void> {
      if (!live.has(entry)) return;
      live.delete(entry);
      await shutdown(entry);
      await rm(entry.dir, { recursive: true, force: true });
    },
  };
}

/** Starts mariadbd on `port` over the entry's data and waits until it answers. */
async function launch(entry: Live, port: number, deadline: number): Promise<void> {
  const logFile = path.join(entry.dir, 'error.log');
  await rm(logFile, { force: true });
  const child = spawn('mariadbd', [
    '--no-defaults', `--datadir=${path.join(entry.dir, 'data')}`, `--user=${OS_USER}`, `--port=${port}`, '--bind-address=127.0.0.1',
    `--socket=${path.join(entry.dir, 'mysqld.sock')}`, `--pid-file=${path.join(entry.dir, 'mysqld.pid')}`, `--log-error=${logFile}`,
    '--skip-log-bin', '--innodb-buffer-pool-size=16M', '--innodb-log-file-size=8M',
  ], { stdio: 'ignore', cwd: '/' });
  entry.child = child;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new MariadbStartError(`mariadbd exited (${child.exitCode ?? child.signalCode})`, await readFile(logFile, 'utf8').catch(() => ''));
    }
    try {
      const c = await connectMySql(port, { database: undefined, connectTimeout: 1000 });
      await c.end();
      return;
    } catch {
      // not listening yet
    }
    if (Date.now() >= deadline) {
      child.kill('SIGKILL');
      await exited;
      throw new MariadbStartError('mariadbd did not answer in time', await readFile(logFile, 'utf8').catch(() => ''));
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 200))]);
  }
}

/** SIGTERM is mariadbd's clean shutdown; SIGKILL after 30 s. */
async function shutdown(entry: Live): Promise<void> {
  const child = entry.child;
  entry.child = null;
  if (child === null || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

function installOnce(deadline: number): Promise<{ dir: string; template: string }> {
  root ??= (async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'sidecache-mariadb-'));
    installExitHooks(dir);
    const [u, g] = await Promise.all([run('id', ['-u', OS_USER]), run('id', ['-g', OS_USER])]);
    await chown(dir, Number(u.stdout.trim()), Number(g.stdout.trim()));
    const template = path.join(dir, 'template');
    await mkdir(template);
    await chown(template, Number(u.stdout.trim()), Number(g.stdout.trim()));
    await run('mariadb-install-db', ['--no-defaults', `--datadir=${path.join(template, 'data')}`, `--user=${OS_USER}`,
      '--auth-root-authentication-method=normal', '--skip-test-db'], { cwd: '/', timeout: remaining(deadline) });
    return { dir, template };
  })();
  return root;
}

function remaining(deadline: number): number {
  return Math.max(deadline - Date.now(), 1000);
}

/** Synchronous, for 'exit' handlers where nothing asynchronous runs any more. */
function stopNow(entry: Live): void {
  live.delete(entry);
  entry.child?.kill('SIGKILL');
  entry.child = null;
  rmSync(entry.dir, { recursive: true, force: true });
}

function installExitHooks(dir: string): void {
  process.on('exit', () => {
    for (const entry of [...live]) stopNow(entry);
    rmSync(dir, { recursive: true, force: true });
  });
  // A signal handler replaces the default "die"; exiting keeps that behaviour and runs the hook above.
  for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130], ['SIGHUP', 129]] as const) {
    process.once(signal, () => process.exit(code));
  }
  spawnWatchdog(dir);
}

/**
 * A detached shell that outlives this process only to kill its servers once it is gone — the one
 * cleanup that still runs when the test runner SIGKILLs a test on timeout.
 */
function spawnWatchdog(dir: string): void {
  const script = 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; '
    + 'for f in "$2"/server-*/mysqld.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done; rm -rf "$2"';
  const child = spawn('sh', ['-c', script, 'sidecache-mariadb-watchdog', String(process.pid), dir], { detached: true, stdio: 'ignore', cwd: '/' });
  child.unref();
}
