// The ceiling for any in-memory request/response server on this machine: `redis-benchmark -t get`
// at the bench's concurrency. A cache hit through sidecache is one request and one reply on a
// loopback socket, like a Redis GET, so Redis's rate is what a hit rate is measured against.
import { execFileSync, spawn } from 'node:child_process';
import { canConnect } from './relay-process.js';

export interface RedisCeiling {
  rps: number;
  p50Ms: number;
  /** The command line, for the report. */
  command: string;
}

export type RedisOutcome = { measured: RedisCeiling } | { skipped: string };

export class RedisBenchmarkError extends Error {
  override name = 'RedisBenchmarkError';
}

export interface RedisBenchmarkOptions {
  host: string;
  port: number;
  clients: number;
  requests: number;
  timeoutMs: number;
}

/**
 * `redis-benchmark --csv` prints a header and one row per test:
 * "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
 */
export function parseRedisCsv(text: string, testName = 'GET'): { rps: number; p50Ms: number } {
  const rows = text.split('\n').map((line) => line.trim()).filter(Boolean)
    .map((line) => line.split(',').map((field) => field.replace(/^"|"$/g, '')));
  const header = rows.find((r) => r[0] === 'test');
  const row = rows.find((r) => r[0] === testName);
  const rpsAt = header?.indexOf('rps') ?? -1;
  const p50At = header?.indexOf('p50_latency_ms') ?? -1;
  const rps = row && rpsAt >= 0 ? Number(row[rpsAt]) : NaN;
  const p50Ms = row && p50At >= 0 ? Number(row[p50At]) : NaN;
  if (!Number.isFinite(rps) || !Number.isFinite(p50Ms)) {
    throw new RedisBenchmarkError(`no ${testName} row with rps and p50 in redis-benchmark output:\n${text.trimEnd()}`);
  }
  return { rps, p50Ms };
}

/** Runs redis-benchmark GET, or says why it could not (not installed, Redis not reachable). */
export async function measureRedisCeiling(opts: RedisBenchmarkOptions): Promise<RedisOutcome> {
  try {
    execFileSync('which', ['redis-benchmark'], { stdio: 'ignore' });
  } catch {
    return { skipped: 'redis-benchmark is not installed' };
  }
  // redis-benchmark retries forever (spinning a core) when nothing listens, so look first.
  if (!(await canConnect(opts.port, opts.host))) return { skipped: `no Redis reachable on ${opts.host}:${opts.port}` };
  const args = ['-h', opts.host, '-p', String(opts.port), '-t', 'get', '-c', String(opts.clients), '-n', String(opts.requests), '--csv'];
  const output = await runWithTimeout('redis-benchmark', args, opts.timeoutMs);
  return { measured: { ...parseRedisCsv(output), command: `redis-benchmark ${args.join(' ')}` } };
}

function runWithTimeout(command: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { output += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { output += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => { clearTimeout(timer); reject(new RedisBenchmarkError(`could not start ${command}: ${err.message}`)); });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else reject(new RedisBenchmarkError(`${command} ${args.join(' ')} exited with ${code ?? signal}:\n${output.trimEnd()}`));
    });
  });
}
