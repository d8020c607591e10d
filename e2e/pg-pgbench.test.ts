// test-timeout: 240
//
// pgbench through the proxy in a database of its own: initialisation, TPC-B in the simple, extended
// and prepared protocols with 4 clients, and select-only. After every write run the TPC-B invariants
// are checked directly against PostgreSQL: each transaction added its delta to one account, teller
// and branch and wrote one history row, so the balances must equal the history's sums and the history
// must hold exactly as many rows as pgbench reports transactions.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { DIRECT_PG, direct, uniqueName } from './support/pg-direct.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const DATABASE = uniqueName('sidecache_e2e_pgbench');
let proxy: RunningProxy;
/** Transactions pgbench reported so far; each wrote one pgbench_history row. */
let historyRows = 0;

interface BenchRun {
  code: number;
  output: string;
}

function pgbench(args: string[], timeoutMs = 60_000): Promise<BenchRun> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH, LANG: 'C.UTF-8', PGHOST: DIRECT_PG.host, PGPORT: String(proxy.pgPort),
    PGUSER: DIRECT_PG.user, PGCONNECT_TIMEOUT: '5',
  };
  return new Promise((resolve, reject) => {
    execFile('pgbench', [...args, DATABASE], { env, timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(err);
        return;
      }
      resolve({ code: err ? (err.code as number) : 0, output: stdout + stderr });
    });
  });
}

/** Runs a benchmark; asserts no client aborted and no transaction failed; returns transactions done. */
async function bench(args: string[]): Promise<number> {
  const run = await pgbench(args);
  assert.is(run.code, 0, run.output);
  assert.not.match(run.output, /aborted/i, run.output);
  assert.match(run.output, /number of failed transactions: 0 \(/, run.output);
  const processed = /number of transactions actually processed: (\d+)/.exec(run.output);
  assert.ok(processed, run.output);
  const done = Number(processed[1]);
  assert.ok(done > 0, run.output);
  return done;
}

async function assertTpcbConsistent(): Promise<void> {
  const { rows } = await direct<Record<string, string>>(`SELECT
      (SELECT sum(abalance) FROM pgbench_accounts)::text AS accounts,
      (SELECT sum(tbalance) FROM pgbench_tellers)::text AS tellers,
      (SELECT sum(bbalance) FROM pgbench_branches)::text AS branches,
      (SELECT coalesce(sum(delta), 0) FROM pgbench_history)::text AS history,
      (SELECT count(*) FROM pgbench_history)::text AS history_rows`, [], DATABASE);
  const sums = rows[0]!;
  assert.equal(
    { accounts: sums.accounts, tellers: sums.tellers, branches: sums.branches, rows: sums.history_rows },
    { accounts: sums.history, tellers: sums.history, branches: sums.history, rows: String(historyRows) });
}

test.before(async () => {
  await direct(`CREATE DATABASE ${DATABASE}`);
  proxy = await startProxy();
});

test.after(async () => {
  await proxy?.stop();
  await direct(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
});

test('pgbench -i -s 1 through the proxy creates the TPC-B tables', async () => {
  const run = await pgbench(['-i', '-s', '1']);
  assert.is(run.code, 0, run.output);
  assert.match(run.output, /done in/);
  const { rows } = await direct<Record<string, string>>(`SELECT
      (SELECT count(*) FROM pgbench_accounts)::text AS accounts,
      (SELECT count(*) FROM pgbench_tellers)::text AS tellers,
      (SELECT count(*) FROM pgbench_branches)::text AS branches`, [], DATABASE);
  assert.equal(rows[0], { accounts: '100000', tellers: '10', branches: '1' });
  await assertTpcbConsistent();
});

for (const mode of ['simple', 'extended', 'prepared']) {
  test(`pgbench TPC-B -M ${mode}, 4 clients, 3 s: no failures, balances match the history`, async () => {
    // -n: without it pgbench truncates pgbench_history before each run, and the sums must add up
    // over all runs.
    historyRows += await bench(['-n', '-M', mode, '-c', '4', '-j', '2', '-T', '3']);
    await assertTpcbConsistent();
  });
}

test('pgbench -S -M prepared (select only), 4 clients, 2 s', async () => {
  await bench(['-n', '-S', '-M', 'prepared', '-c', '4', '-j', '2', '-T', '2']);
  await assertTpcbConsistent();
});

test.run();
