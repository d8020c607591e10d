import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { median, parseLatencyLog, parsePgbenchOutput, PgbenchError, runPgbench } from './pgbench.js';

const DIRECT = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' };

const SELECT_ONLY_RUN = `pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 10
query mode: prepared
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 3 s
number of transactions actually processed: 171271
number of failed transactions: 0 (0.000%)
latency average = 0.140 ms
initial connection time = 12.848 ms
tps = 57086.851035 (without initial connection time)
`;

const ABORTED_RUN = `pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: /tmp/bad.sql
query mode: simple
number of clients: 2
number of transactions actually processed: 0/2
number of failed transactions: 0 (NaN%)
pgbench: error: client 0 script 0 aborted in command 0 query 0: ERROR:  division by zero
pgbench: error: Run was aborted; the above results are incomplete.
`;

test('reads tps, average latency, transactions and query mode from a finished run', () => {
  assert.equal(parsePgbenchOutput(SELECT_ONLY_RUN), {
    tps: 57086.851035,
    latencyAvgMs: 0.14,
    transactions: 171271,
    failedTransactions: 0,
    queryMode: 'prepared',
  });
});

test('reads the processed count of a -t run ("X/Y")', () => {
  const out = SELECT_ONLY_RUN.replace('processed: 171271', 'processed: 800/800');
  assert.is(parsePgbenchOutput(out).transactions, 800);
});

test('a run with aborted clients is an error carrying the output', () => {
  try {
    parsePgbenchOutput(ABORTED_RUN);
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.instance(err, PgbenchError);
    assert.ok((err as PgbenchError).message.startsWith('pgbench clients aborted'));
    assert.match((err as PgbenchError).output, 'division by zero');
  }
});

test('failed transactions and a missing summary are errors', () => {
  const failed = SELECT_ONLY_RUN.replace('failed transactions: 0 (0.000%)', 'failed transactions: 3 (0.002%)');
  assert.throws(() => parsePgbenchOutput(failed), /3 failed transactions/);
  assert.throws(() => parsePgbenchOutput('pgbench (15.20)\n'), /no tps/);
});

test('latency log: third field in microseconds; short or blank lines skipped', () => {
  const log = '3 87 407 0 1795695984 675702\n4 17 253 0 1795695984 654378\n\n5 1\n';
  assert.equal(parseLatencyLog(log), [407, 253]);
});

test('median takes the lower middle and is undefined for no samples', () => {
  assert.is(median([5, 1, 3]), 3);
  assert.is(median([4, 1, 3, 2]), 2);
  assert.is(median([]), undefined);
});

test('runPgbench rejects with the output when clients abort', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgbench-test-'));
  try {
    const script = path.join(dir, 'fail.sql');
    await writeFile(script, 'SELECT 1/0;\n');
    const err = await runPgbench({ target: DIRECT, args: ['-n', '-f', script, '-t', '1', '-c', '2'], timeoutMs: 30_000 })
      .then(() => undefined, (e: unknown) => e);
    assert.instance(err, PgbenchError);
    assert.match((err as PgbenchError).message, /exited with 2/);
    assert.match((err as PgbenchError).output, 'division by zero');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('runPgbench measures a real run and samples latencies', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'pgbench-test-'));
  try {
    const script = path.join(dir, 'one.sql');
    await writeFile(script, 'SELECT 1;\n');
    const run = await runPgbench({ target: DIRECT, args: ['-n', '-f', script, '-t', '200', '-c', '2'], samplingRate: 1, timeoutMs: 30_000 });
    assert.is(run.transactions, 400);
    assert.ok(run.tps > 0);
    // Sampling rate 1: every transaction logged. (Its latency may be logged as 0 µs: see latencyP50Ms.)
    assert.is(run.latencySamples, 400);
    assert.ok(run.latencyP50Ms !== undefined && run.latencyP50Ms >= 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
