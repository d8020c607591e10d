// The project's test runner: `node dist/scripts/run-tests.js [--only unit|e2e] [filter...]`.
//
// Every compiled test file (dist/**/*.test.js) runs as its own `node` process, so one file that
// hangs, leaks a socket or crashes cannot take the others with it. Unit tests (everything outside
// e2e/) run first, then the e2e tests; at most SIDECACHE_TEST_JOBS files (default 2, one per core
// here) run at a time. A filter keeps the files whose path (relative to dist/) contains it.
//
// Timeouts: a file gets DEFAULT_TIMEOUT_S seconds. A file that needs longer says so in a comment
// in the leading comment block of its .ts source, e.g. `// test-timeout: 300` (seconds). A file
// that runs out of time is killed with its whole process group (so a sidecache it started dies
// too) and counts as failed.
//
// Counting: uvu prints `Total:`, `Passed:`, `Skipped:` at the end of a file; failed = total -
// passed (a failing `before` hook leaves uvu's exit code 0 but its Passed short). A file with no
// summary, or one that exits non-zero or is killed, counts at least one failure. The very last
// line printed is `N passed, N failed` (what CI reads); the exit code is non-zero when anything
// failed or when no test ran at all.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const DEFAULT_TIMEOUT_S = 120;
const DEFAULT_JOBS = 2;
/** Output kept per file; a runaway test must not eat the runner's memory. The tail is kept. */
const MAX_OUTPUT_BYTES = 4 * 1024 * 1024;

export type Phase = 'unit' | 'e2e';

export interface UvuSummary {
  total: number;
  passed: number;
  skipped: number;
}

export interface FileOutcome {
  summary: UvuSummary | null;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOutAfterS: number | null;
}

export interface FileVerdict {
  passed: number;
  failed: number;
  skipped: number;
  /** Why the file failed beyond its failing tests, e.g. a timeout or a crash; '' when none. */
  problem: string;
}

export interface Options {
  only: Phase | null;
  filters: string[];
}

export class UsageError extends Error {
  override name = 'UsageError';
}

const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

/** uvu's closing block, or null when the file never got that far. The last block wins. */
export function parseUvuSummary(output: string): UvuSummary | null {
  const text = stripAnsi(output);
  const block = /^\s*Total:\s+(\d+)\s*\n\s*Passed:\s+(\d+)\s*\n\s*Skipped:\s+(\d+)\s*$/gm;
  let last: UvuSummary | null = null;
  for (const m of text.matchAll(block)) {
    last = { total: Number(m[1]), passed: Number(m[2]), skipped: Number(m[3]) };
  }
  return last;
}

/** `// test-timeout: N` (seconds) from the leading comment block of a test's source. */
export function timeoutFromSource(source: string): number | undefined {
  for (const line of source.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '') continue;
    if (!trimmed.startsWith('//')) return undefined;
    const m = /^\/\/\s*test-timeout:\s*(\d+)\s*$/.exec(trimmed);
    if (m) return Number(m[1]);
  }
  return undefined;
}

export function phaseOf(relPath: string): Phase {
  return relPath.split('/')[0] === 'e2e' ? 'e2e' : 'unit';
}

export function parseArgs(argv: string[]): Options {
  const opts: Options = { only: null, filters: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--only') {
      const phase = argv[++i];
      if (phase !== 'unit' && phase !== 'e2e') throw new UsageError(`--only takes unit or e2e, got ${phase ?? 'nothing'}`);
      opts.only = phase;
    } else if (arg.startsWith('-')) {
      throw new UsageError(`unknown option ${arg}; usage: run-tests [--only unit|e2e] [filter...]`);
    } else {
      opts.filters.push(arg);
    }
  }
  return opts;
}

export function selectFiles(relPaths: string[], opts: Options): string[] {
  return relPaths.filter((p) =>
    (opts.only === null || phaseOf(p) === opts.only) &&
    (opts.filters.length === 0 || opts.filters.some((f) => p.includes(f))));
}

export function parseJobs(value: string | undefined): number {
  if (value === undefined || value === '') return DEFAULT_JOBS;
  const jobs = Number(value);
  if (!Number.isInteger(jobs) || jobs < 1) throw new UsageError(`SIDECACHE_TEST_JOBS must be a positive integer, got ${value}`);
  return jobs;
}

export function judge(outcome: FileOutcome): FileVerdict {
  const { summary, exitCode, signal, timedOutAfterS } = outcome;
  const passed = summary?.passed ?? 0;
  const skipped = summary?.skipped ?? 0;
  let failed = summary ? summary.total - summary.passed : 0;
  let problem = '';
  if (timedOutAfterS !== null) problem = `timed out after ${timedOutAfterS} s, killed`;
  else if (signal !== null) problem = `killed by ${signal}`;
  // uvu itself exits 1 when a test fails; only an exit its own counts do not explain is news.
  else if (exitCode !== 0 && failed === 0) problem = `exited with code ${exitCode}`;
  // uvu exits 1 when a test fails, but 0 when a before/after hook threw, and prints nothing of it.
  else if (exitCode === 0 && failed > 0) problem = 'a before or after hook threw (uvu does not print its error)';
  if (summary === null) problem = problem ? `${problem}, no uvu summary` : 'exited without a uvu summary (no test.run()?)';
  if (problem && failed === 0) failed = 1;
  return { passed, failed, skipped, problem };
}

/** Test files under dist/, relative to it, whose .ts source still exists: tsc never deletes the
 * output of a removed or renamed test, and running such a leftover would only confuse. */
async function findTestFiles(repoRoot: string): Promise<{ files: string[]; stale: string[] }> {
  const dist = path.join(repoRoot, 'dist');
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (entry.name === 'node_modules') continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.name.endsWith('.test.js')) found.push(path.relative(dist, full).split(path.sep).join('/'));
    }
  };
  if (existsSync(dist)) await walk(dist);
  found.sort();
  const files: string[] = [];
  const stale: string[] = [];
  for (const rel of found) (existsSync(sourceOf(repoRoot, rel)) ? files : stale).push(rel);
  return { files, stale };
}

function sourceOf(repoRoot: string, rel: string): string {
  return path.join(repoRoot, rel.replace(/\.js$/, '.ts'));
}

interface FileRun {
  rel: string;
  verdict: FileVerdict;
  seconds: number;
}

/** Process groups of the files running now, so an interrupted runner can take them down. */
const running = new Set<number>();

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // The group is already gone.
  }
}

async function runFile(repoRoot: string, rel: string): Promise<FileRun> {
  const timeoutS = timeoutFromSource(await readFile(sourceOf(repoRoot, rel), 'utf8')) ?? DEFAULT_TIMEOUT_S;
  const started = performance.now();
  // detached: its own process group, so a timeout kills whatever the test spawned as well.
  const child = spawn(process.execPath, ['--enable-source-maps', path.join('dist', rel)], {
    cwd: repoRoot,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid!;
  running.add(pid);
  const chunks: Buffer[] = [];
  let kept = 0;
  let dropped = false;
  const keep = (chunk: Buffer): void => {
    chunks.push(chunk);
    kept += chunk.length;
    while (kept > MAX_OUTPUT_BYTES && chunks.length > 1) {
      kept -= chunks.shift()!.length;
      dropped = true;
    }
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);

  let timedOutAfterS: number | null = null;
  const timer = setTimeout(() => {
    timedOutAfterS = timeoutS;
    killGroup(pid);
  }, timeoutS * 1000);

  const [exitCode, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.once('exit', (code, sig) => {
      // Whatever the file left behind in its group (a proxy it forgot to stop) would keep the
      // output pipes open; the file is done, so its group goes too.
      if (timedOutAfterS === null && groupAlive(pid)) {
        keep(Buffer.from(`run-tests: ${rel} left processes running after it exited; killed them\n`));
      }
      killGroup(pid);
      child.once('close', () => resolve([code, sig]));
    });
    child.once('error', (err) => {
      keep(Buffer.from(`run-tests: could not start node: ${err.message}\n`));
      resolve([null, null]);
    });
  });
  clearTimeout(timer);
  running.delete(pid);

  const output = (dropped ? '[run-tests: earlier output dropped]\n' : '') + Buffer.concat(chunks).toString('utf8');
  const verdict = judge({ summary: parseUvuSummary(output), exitCode, signal, timedOutAfterS });
  const seconds = (performance.now() - started) / 1000;
  printFileReport(rel, output, verdict, seconds);
  return { rel, verdict, seconds };
}

function printFileReport(rel: string, output: string, verdict: FileVerdict, seconds: number): void {
  const bar = '─'.repeat(Math.max(4, 76 - rel.length));
  const body = output.trimEnd();
  const status = verdict.failed > 0 ? 'FAIL' : 'ok';
  const lines = [`── ${rel} ${bar}`];
  if (body) lines.push(body);
  if (verdict.problem) lines.push(`run-tests: ${rel} ${verdict.problem}`);
  lines.push(`── ${status} ${rel}: ${verdict.passed} passed, ${verdict.failed} failed (${seconds.toFixed(1)} s)`, '');
  process.stdout.write(lines.join('\n') + '\n');
}

/** Runs `work` over `items` with at most `jobs` at a time, keeping the input order in the result. */
async function pool<T, R>(items: T[], jobs: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, items.length) }, worker));
  return results;
}

function summaryTable(runs: FileRun[]): string {
  const width = Math.max(0, ...runs.map((r) => r.rel.length));
  return runs.map(({ rel, verdict: v, seconds }) => {
    const status = v.failed > 0 ? 'FAIL' : 'ok  ';
    const counts = `${String(v.passed).padStart(4)} passed ${String(v.failed).padStart(3)} failed ${String(v.skipped).padStart(3)} skipped`;
    const note = v.problem ? `  ${v.problem}` : '';
    return `  ${status} ${rel.padEnd(width)}  ${counts} ${seconds.toFixed(1).padStart(6)} s${note}`;
  }).join('\n');
}

async function main(): Promise<number> {
  const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  let opts: Options;
  let jobs: number;
  try {
    opts = parseArgs(process.argv.slice(2));
    jobs = parseJobs(process.env.SIDECACHE_TEST_JOBS);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stdout.write(`run-tests: ${err.message}\n0 passed, 1 failed\n`);
    return 2;
  }

  const { files, stale } = await findTestFiles(repoRoot);
  for (const rel of stale) process.stdout.write(`run-tests: skipping dist/${rel}: its .ts source is gone\n`);
  const selected = selectFiles(files, opts);
  const runs: FileRun[] = [];
  for (const phase of ['unit', 'e2e'] as const) {
    const phaseFiles = selected.filter((f) => phaseOf(f) === phase);
    if (phaseFiles.length === 0) continue;
    process.stdout.write(`run-tests: ${phase}: ${phaseFiles.length} file(s), ${jobs} at a time\n\n`);
    runs.push(...await pool(phaseFiles, jobs, (rel) => runFile(repoRoot, rel)));
  }

  const passed = runs.reduce((n, r) => n + r.verdict.passed, 0);
  const failed = runs.reduce((n, r) => n + r.verdict.failed, 0);
  if (runs.length > 0) process.stdout.write(`Summary (${runs.length} file(s)):\n${summaryTable(runs)}\n`);
  if (passed + failed === 0) process.stdout.write('run-tests: no tests ran — that counts as a failure\n');
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  return failed > 0 || passed === 0 ? 1 : 0;
}

function interrupted(signal: NodeJS.Signals): void {
  for (const pid of running) killGroup(pid);
  process.stdout.write(`\nrun-tests: interrupted by ${signal}\n`);
  process.exit(128 + os.constants.signals[signal]);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  main().then((code) => { process.exitCode = code; }, (err: unknown) => {
    process.stdout.write(`run-tests: ${err instanceof Error ? err.stack : String(err)}\n0 passed, 1 failed\n`);
    process.exitCode = 1;
  });
}
