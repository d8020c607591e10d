// Starts the real bin/sidecache as a child process for end-to-end tests and reads the ports it
// reports, so tests exercise exactly what a user runs.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = path.join(REPO_ROOT, 'bin/sidecache');

export interface RunningProxy {
  child: ChildProcess;
  /** 0 when the PostgreSQL side is off. */
  pgPort: number;
  /** 0 when the MySQL side is off. */
  mysqlPort: number;
  adminPort: number;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves with the exit code. */
  stop(): Promise<number | null>;
}

export interface StartOptions {
  /** postgres://HOST:PORT of the real server; defaults to the local PostgreSQL; null turns the side off. */
  pgUpstream?: string | null;
  /** mysql://HOST:PORT of the real server (DIRECT_MYSQL_URL for the local MariaDB); unset leaves the side off. */
  mysqlUpstream?: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export const DIRECT_PG = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' };
export const DIRECT_MYSQL = { host: '127.0.0.1', port: 3306, user: 'root', password: '', database: 'test' };
export const DIRECT_MYSQL_URL = `mysql://${DIRECT_MYSQL.host}:${DIRECT_MYSQL.port}`;

/** Config-file lines that put sidecache in front of the local servers, every listener on a free port. */
export function localServersConfig(sides: { pg?: boolean; mysql?: boolean }): string[] {
  return [
    ...(sides.pg === true ? [`pg-upstream: postgres://${DIRECT_PG.host}:${DIRECT_PG.port}`, 'pg-listen: 127.0.0.1:0'] : []),
    ...(sides.mysql === true ? [`mysql-upstream: ${DIRECT_MYSQL_URL}`, 'mysql-listen: 127.0.0.1:0'] : []),
    'admin-listen: 127.0.0.1:0',
  ];
}

export function startProxy(opts: StartOptions = {}): Promise<RunningProxy> {
  const pg = opts.pgUpstream === null ? [] : [
    '--pg-upstream', opts.pgUpstream ?? `postgres://${DIRECT_PG.host}:${DIRECT_PG.port}`,
    '--pg-listen', '127.0.0.1:0',
  ];
  const mysql = opts.mysqlUpstream === undefined ? [] : ['--mysql-upstream', opts.mysqlUpstream, '--mysql-listen', '127.0.0.1:0'];
  const args = [...pg, ...mysql, '--admin-listen', '127.0.0.1:0', ...(opts.args ?? [])];
  return spawnSidecache(args, opts.env, opts.timeoutMs);
}

/**
 * One worker process unless the test asks for more (`--workers`, or SIDECACHE_WORKERS in `env`):
 * the e2e tests prove a hit by filling on one connection and reading on another, and read the
 * counters of the process that served them; with several workers (docs/workers.md) the second
 * connection may be served by another worker with its own cache, a miss that is no bug. The
 * tests of several workers (e2e/workers.test.ts) pass --workers.
 */
const TEST_WORKERS = '1';

/** Output tails printed when the test file fails (uvu sets process.exitCode): what CI has to go on. */
const FAILURE_TAIL_CHARS = 6000;
const spawned: { args: string[]; output: () => string }[] = [];
process.once('exit', () => {
  if (!process.exitCode) return;
  for (const p of spawned) {
    const out = p.output();
    process.stderr.write(`\n── sidecache ${p.args.join(' ')}: last ${Math.min(out.length, FAILURE_TAIL_CHARS)} of ${out.length} characters of its output ──\n${out.slice(-FAILURE_TAIL_CHARS)}\n`);
  }
});

export function spawnSidecache(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<RunningProxy> {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, SIDECACHE_WORKERS: TEST_WORKERS, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  spawned.push({ args, output: () => out });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // A test process killed by the runner's timeout must not leave its proxy running.
  const killOnExit = (): void => void child.kill('SIGKILL');
  process.once('exit', killOnExit);
  void exited.then(() => process.off('exit', killOnExit));
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    }
    return child.exitCode;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`sidecache did not report ready within ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const onData = (): void => {
      if (!out.includes('sidecache: ready')) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      const pg = /postgres listening on [^\s]*:(\d+)/.exec(out);
      const mysql = /mysql listening on [^\s]*:(\d+)/.exec(out);
      const admin = /admin listening on http:\/\/[^\s]*:(\d+)/.exec(out);
      resolve({
        child,
        pgPort: pg ? Number(pg[1]) : 0,
        mysqlPort: mysql ? Number(mysql[1]) : 0,
        adminPort: admin ? Number(admin[1]) : 0,
        output: () => out,
        stop,
      });
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`sidecache exited with code ${code} before ready:\n${out}`));
    });
  });
}
