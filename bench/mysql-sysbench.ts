// Runs sysbench against a MySQL-protocol server as a child process and turns its report into
// numbers. A run with errors is an error, never a measurement: sysbench runs with
// `--mysql-ignore-errors=none`, so a failed statement stops it instead of being counted and skipped.
import { spawn } from 'node:child_process';

export interface SysbenchTarget {
  host: string;
  port: number;
  user: string;
  database: string;
}

export interface SysbenchSummary {
  transactions: number;
  tps: number;
  queries: number;
  qps: number;
  ignoredErrors: number;
  reconnects: number;
  latencyAvgMs: number;
  latencyP95Ms: number;
}

export interface SysbenchResult extends SysbenchSummary {
  output: string;
}

export class SysbenchError extends Error {
  override name = 'SysbenchError';
  constructor(message: string, readonly output: string) {
    super(`${message}\n--- sysbench output ---\n${output.trimEnd()}`);
  }
}

/** `transactions:   181856 (60531.67 per sec.)`: the count and the rate. */
function countAndRate(output: string, label: string): [number, number] | undefined {
  const m = new RegExp(`^\\s*${label}:\\s+(\\d+)\\s+\\(([\\d.]+) per sec\\.\\)`, 'm').exec(output);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

function latency(output: string, label: string): number | undefined {
  const m = new RegExp(`^\\s*${label}:\\s+([\\d.]+)\\s*$`, 'm').exec(output);
  return m ? Number(m[1]) : undefined;
}

/** Reads the report sysbench 1.0 prints after `run`; throws when it failed, ignored errors or reconnected. */
export function parseSysbenchOutput(output: string): SysbenchSummary {
  if (/^FATAL:/m.test(output)) throw new SysbenchError('sysbench failed', output);
  const transactions = countAndRate(output, 'transactions');
  const queries = countAndRate(output, 'queries');
  const ignored = countAndRate(output, 'ignored errors');
  const reconnects = countAndRate(output, 'reconnects');
  const latencyAvgMs = latency(output, 'avg');
  const latencyP95Ms = latency(output, '95th percentile');
  if (!transactions || !queries || !ignored || !reconnects || latencyAvgMs === undefined || latencyP95Ms === undefined) {
    throw new SysbenchError('sysbench printed no transactions/queries/latency summary', output);
  }
  if (ignored[0] > 0) throw new SysbenchError(`sysbench ignored ${ignored[0]} errors`, output);
  if (reconnects[0] > 0) throw new SysbenchError(`sysbench reconnected ${reconnects[0]} times`, output);
  return {
    transactions: transactions[0],
    tps: transactions[1],
    queries: queries[0],
    qps: queries[1],
    ignoredErrors: ignored[0],
    reconnects: reconnects[0],
    latencyAvgMs,
    latencyP95Ms,
  };
}

export interface SysbenchRun {
  target: SysbenchTarget;
  /** sysbench test name, e.g. oltp_point_select, oltp_read_write. */
  test: string;
  tableSize: number;
  /** Extra options, e.g. --db-ps-mode=disable. */
  args: string[];
  threads: number;
  seconds: number;
}

function connectionArgs(t: SysbenchTarget): string[] {
  return [`--mysql-host=${t.host}`, `--mysql-port=${t.port}`, `--mysql-user=${t.user}`, `--mysql-db=${t.database}`];
}

export async function runSysbench(run: SysbenchRun): Promise<SysbenchResult> {
  const args = [run.test, ...connectionArgs(run.target), '--tables=1', `--table-size=${run.tableSize}`,
    `--threads=${run.threads}`, `--time=${run.seconds}`, '--mysql-ignore-errors=none', ...run.args, 'run'];
  const output = await execute(args, (run.seconds + 60) * 1000);
  return { ...parseSysbenchOutput(output), output };
}

/**
 * A run that stopped on a deadlock (ER_LOCK_DEADLOCK 1213): oltp_read_write's concurrent
 * transactions deadlock now and then on their own, directly as through any proxy.
 */
export function stoppedOnDeadlock(err: unknown): boolean {
  return err instanceof SysbenchError && /error 1213 \(Deadlock found/.test(err.output);
}

/** `sysbench oltp_common prepare`: creates and fills sbtest1 with `tableSize` rows. */
export async function prepareSysbench(target: SysbenchTarget, tableSize: number): Promise<void> {
  await execute(['oltp_common', ...connectionArgs(target), '--tables=1', `--table-size=${tableSize}`, 'prepare'], 300_000);
}

function execute(args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('sysbench', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { output += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { output += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new SysbenchError(`sysbench could not be started: ${err.message}`, output));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(output);
      else reject(new SysbenchError(`sysbench ${args[0]} exited with ${signal ?? `code ${code}`}`, output));
    });
  });
}
