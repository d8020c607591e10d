// Runs pgbench as a child process and turns its report into numbers. A run whose clients aborted or
// whose transactions failed is an error, never a measurement: a lower tps from half the clients
// would look like a result.
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface PgbenchTarget {
  host: string;
  port: number;
  user: string;
  database: string;
  /** libpq's sslmode (PGSSLMODE); unset: libpq's default, prefer. */
  sslmode?: string;
}

export interface PgbenchSummary {
  tps: number;
  latencyAvgMs: number;
  /** Transactions pgbench counted as processed (the numerator of `X/Y` when run with -t). */
  transactions: number;
  failedTransactions: number;
  queryMode: string;
}

export interface PgbenchResult extends PgbenchSummary {
  /**
   * Median of the sampled per-transaction latencies; undefined when nothing was sampled. pgbench
   * reads its clock lazily, so a transaction whose reply is processed in the same loop turn as its
   * start is logged as 0 µs (seen here on a plain SELECT 1, for most transactions of some runs):
   * at these speeds the median is a lower bound.
   */
  latencyP50Ms: number | undefined;
  /** How many per-transaction latencies pgbench logged (the sampling rate of the transactions). */
  latencySamples: number;
  output: string;
}

export class PgbenchError extends Error {
  override name = 'PgbenchError';
  constructor(message: string, readonly output: string) {
    super(`${message}\n--- pgbench output ---\n${output.trimEnd()}`);
  }
}

/** Reads the summary pgbench prints at the end of a run; throws when the run aborted or failed. */
export function parsePgbenchOutput(output: string): PgbenchSummary {
  if (/\baborted\b/i.test(output)) throw new PgbenchError('pgbench clients aborted', output);
  const tps = matchNumber(output, /^tps = ([\d.]+)/m);
  const latencyAvgMs = matchNumber(output, /^latency average = ([\d.]+) ms/m);
  const transactions = matchNumber(output, /^number of transactions actually processed: (\d+)/m);
  if (tps === undefined || latencyAvgMs === undefined || transactions === undefined) {
    throw new PgbenchError('pgbench printed no tps/latency/transaction summary', output);
  }
  const failedTransactions = matchNumber(output, /^number of failed transactions: (\d+)/m) ?? 0;
  if (failedTransactions > 0) {
    throw new PgbenchError(`pgbench reported ${failedTransactions} failed transactions`, output);
  }
  const queryMode = /^query mode: (\S+)/m.exec(output)?.[1] ?? 'unknown';
  return { tps, latencyAvgMs, transactions, failedTransactions, queryMode };
}

function matchNumber(text: string, pattern: RegExp): number | undefined {
  const m = pattern.exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * Per-transaction latencies in microseconds from a pgbench `-l` log: each line is
 * `client_id transaction_no time_us script_no epoch_s epoch_us [...]`.
 */
export function parseLatencyLog(text: string): number[] {
  const latencies: number[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 6) continue;
    const us = Number(fields[2]);
    if (Number.isFinite(us)) latencies.push(us);
  }
  return latencies;
}

/** Median of the values (the lower middle for an even count); undefined for none. */
export function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

export interface RunOptions {
  target: PgbenchTarget;
  /** Arguments besides connection and logging, e.g. ['-n', '-S', '-M', 'prepared', '-c', '8', '-T', '10']. */
  args: string[];
  /** Fraction of transactions logged for the latency median; logging them all would slow pgbench down. */
  samplingRate?: number;
  /** pgbench is killed and the run is an error after this long. */
  timeoutMs: number;
}

export async function runPgbench(opts: RunOptions): Promise<PgbenchResult> {
  const logDir = await mkdtemp(path.join(tmpdir(), 'sidecache-pgbench-'));
  try {
    const args = [
      ...connectionArgs(opts.target),
      '-l', `--sampling-rate=${opts.samplingRate ?? 0.02}`, `--log-prefix=${path.join(logDir, 'latency')}`,
      ...opts.args,
      opts.target.database,
    ];
    const output = await runToCompletion('pgbench', args, opts.timeoutMs, sslEnv(opts.target));
    const summary = parsePgbenchOutput(output);
    const latencies = await readLatencyLogs(logDir);
    const p50Us = median(latencies);
    return { ...summary, latencyP50Ms: p50Us === undefined ? undefined : p50Us / 1000, latencySamples: latencies.length, output };
  } finally {
    await rm(logDir, { recursive: true, force: true });
  }
}

/** `pgbench -i` (initialise tables) at the given scale, quietly. */
export async function initPgbench(target: PgbenchTarget, scale: number, timeoutMs: number): Promise<void> {
  await runToCompletion('pgbench', [...connectionArgs(target), '-i', '-q', '-s', String(scale), target.database], timeoutMs, sslEnv(target));
}

function sslEnv(target: PgbenchTarget): NodeJS.ProcessEnv {
  return target.sslmode === undefined ? {} : { PGSSLMODE: target.sslmode };
}

function connectionArgs(target: PgbenchTarget): string[] {
  return ['-h', target.host, '-p', String(target.port), '-U', target.user];
}

async function readLatencyLogs(dir: string): Promise<number[]> {
  const latencies: number[] = [];
  for (const name of await readdir(dir)) {
    latencies.push(...parseLatencyLog(await readFile(path.join(dir, name), 'utf8')));
  }
  return latencies;
}

/** Runs a command and resolves with stdout+stderr; rejects with that output on a non-zero exit or timeout. */
function runToCompletion(command: string, args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    // A proxy that accepts but never answers must not hang the bench at connect time either.
    const child = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PGCONNECT_TIMEOUT: '10', ...env },
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { output += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { output += d; });
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new PgbenchError(`could not start ${command}: ${err.message}`, output));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const line = `${command} ${args.join(' ')}`;
      if (timedOut) reject(new PgbenchError(`${line} did not finish within ${timeoutMs} ms`, output));
      else if (code !== 0) reject(new PgbenchError(`${line} exited with ${code ?? signal}`, output));
      else resolve(output);
    });
  });
}
