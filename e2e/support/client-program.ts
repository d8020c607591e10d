// Runs a client program written in another language (e2e/clients/: Java with JDBC, Python with
// psycopg) as a child process, so the client-compatibility tests drive the real drivers. A program
// prints its results to stdout; at a line `## checkpoint NAME` it waits for a line on stdin, which
// lets a test read the proxy's counters between two steps of one connection's work.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as assert from 'uvu/assert';
import { REPO_ROOT } from './sidecache.js';

const exec = promisify(execFile);

/** Where the client programs live in the source tree (tsc copies nothing but .ts to dist/). */
export const CLIENTS_DIR = path.join(REPO_ROOT, 'e2e/clients');

const CHECKPOINT = /^## checkpoint (\S+)$/;

export interface ProgramRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The checkpoint names in the order the program reached them. */
  checkpoints: string[];
}

export interface ProgramOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  /** Called at each checkpoint; the program goes on once it resolves. */
  onCheckpoint?: (name: string) => Promise<void>;
}

export function runClientProgram(command: string, args: string[], opts: ProgramOptions = {}): Promise<ProgramRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let pending = '';
    const checkpoints: string[] = [];
    // Checkpoints are answered one at a time, in order, even if lines arrive in one chunk.
    let chain: Promise<void> = Promise.resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.stdin.on('error', () => undefined); // a program that exits early closes its stdin
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      pending += d;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        const m = CHECKPOINT.exec(line);
        if (!m) continue;
        const name = m[1]!;
        checkpoints.push(name);
        chain = chain.then(async () => {
          await opts.onCheckpoint?.(name);
          child.stdin.write('\n');
        }).catch((err: unknown) => {
          child.kill('SIGKILL');
          reject(err);
        });
      }
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      void chain.then(() => resolve({ code, signal, stdout, stderr, checkpoints }));
    });
  });
}

/**
 * Asserts the proxied run printed exactly what the direct run printed; on a difference the
 * message names the first line that differs, with the lines before it, instead of both outputs.
 */
export interface BothRuns<C> {
  direct: ProgramRun;
  proxied: ProgramRun;
  /** The proxy's counter changes between checkpoints, keyed by the checkpoint that ends each step. */
  steps: Record<string, C>;
}

/**
 * A client program straight at the server (which must run clean: no stderr, exit 0), then through
 * the proxy with the proxy's counters read at each checkpoint.
 */
export async function directThenProxied<R, C>(
  run: (port: number, onCheckpoint?: (name: string) => Promise<void>) => Promise<ProgramRun>,
  ports: { direct: number; proxy: number },
  counters: () => Promise<R>,
  delta: (now: R, last: R) => C,
): Promise<BothRuns<C>> {
  const direct = await run(ports.direct);
  assert.is(direct.stderr, '', 'the direct run writes nothing to stderr');
  assert.is(direct.code, 0, 'the direct run exits 0');
  const steps: Record<string, C> = {};
  let last = await counters();
  const proxied = await run(ports.proxy, async (name) => {
    const now = await counters();
    steps[name] = delta(now, last);
    last = now;
  });
  return { direct, proxied, steps };
}

/** Where JdbcCheck stops so a test can read the proxy's counters between its steps. */
export const JDBC_CHECKPOINTS = ['setup', 'warm', 'repeated', 'read-after-write', 'transactions'];

/** The run through the proxy printed, exited and stopped at its checkpoints as the direct run did. */
export function assertSameRun(run: { direct: ProgramRun; proxied: ProgramRun }, checkpoints: string[]): void {
  assert.is(run.proxied.stderr, run.direct.stderr, 'stderr');
  assertSameOutput(run.proxied.stdout, run.direct.stdout);
  assert.is(run.proxied.code, 0, 'exit code');
  assert.equal(run.proxied.checkpoints, checkpoints);
}

export function assertSameOutput(proxied: string, direct: string): void {
  if (proxied === direct) return;
  const got = proxied.split('\n');
  const want = direct.split('\n');
  let i = 0;
  while (i < got.length && i < want.length && got[i] === want[i]) i++;
  const context = want.slice(Math.max(0, i - 3), i).map((l) => `    ${l}`).join('\n');
  assert.is(got[i] ?? '<end of output>', want[i] ?? '<end of output>',
    `stdout through the proxy differs from the direct run at line ${i + 1}, after:\n${context}\n`);
}

/**
 * uvu drops an error thrown by a `before` hook (the file then just shows 0 passed), so the setup
 * of a client test runs through here and each test rethrows its error with the message intact.
 */
export class SetupGuard {
  private error: unknown = null;

  async run(setup: () => Promise<void>): Promise<void> {
    try {
      await setup();
    } catch (err) {
      this.error = err;
    }
  }

  /** Throws what the setup threw, if anything. */
  ensure(): void {
    if (this.error !== null) throw this.error;
  }
}

/**
 * Fails (never skips) when a tool a test drives is missing; `make test` installs them as root
 * (scripts/ensure-servers.sh), so the message says what that would have installed.
 */
export function requireFile(file: string, what: string, debianPackage: string): void {
  if (!existsSync(file)) {
    throw new Error(`${what} not found at ${file}: install it with \`apt-get install -y ${debianPackage}\` ` +
      '(Debian/Ubuntu; `make test` does so when run as root, through scripts/ensure-servers.sh)');
  }
}

export async function requireCommand(command: string, versionArgs: string[], debianPackage: string): Promise<void> {
  try {
    await exec(command, versionArgs, { timeout: 30_000 });
  } catch (err) {
    throw new Error(`\`${command} ${versionArgs.join(' ')}\` failed (${(err as Error).message.split('\n')[0]}): install ` +
      `it with \`apt-get install -y ${debianPackage}\` (Debian/Ubuntu; \`make test\` does so when run as root)`);
  }
}

/** Compiles e2e/clients/SOURCE.java into a fresh temporary directory and returns that directory. */
export async function compileJava(source: string): Promise<string> {
  await requireCommand('javac', ['-version'], 'default-jdk-headless');
  await requireCommand('java', ['-version'], 'default-jdk-headless');
  const out = await mkdtemp(path.join(tmpdir(), 'sc-e2e-java-'));
  try {
    await exec('javac', ['-encoding', 'UTF-8', '-d', out, path.join(CLIENTS_DIR, source)], { timeout: 120_000 });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`javac ${source} failed: ${e.stderr ?? e.message}`);
  }
  return out;
}
