// test-timeout: 180
// psycopg2 and psycopg 3 (Debian's python3-psycopg2 and python3-psycopg, for /usr/bin/python3)
// through the proxy: e2e/clients/psycopg_check.py, a small application (DDL, executemany, one
// parameterized SELECT run eight times, types: numeric, timestamptz, bytea, arrays, jsonb, dates,
// commit and rollback, autocommit, psycopg 3's pipeline mode, COPY FROM/TO, server-side cursors
// with and without hold, notices, errors, LISTEN/NOTIFY), prints the same lines through sidecache
// as directly against PostgreSQL: psycopg2 (parameters interpolated into simple Query messages),
// psycopg 3 (server-side binding, prepared after five executions) and psycopg 3 with prepare=True
// and binary results. The proxy's counters, read at the program's checkpoints, show the repeated
// SELECT answered from the cache and every read after a write going to the server.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { CLIENTS_DIR, SetupGuard, assertSameRun, directThenProxied, runClientProgram, type BothRuns, type ProgramRun } from './support/client-program.js';
import { cacheCounters, counterDelta, type CacheCounters } from './support/metrics.js';
import { DIRECT_PG, direct, uniqueName } from './support/pg-direct.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

/** Debian's python3-psycopg2 and python3-psycopg install for the system interpreter only. */
const PYTHON = process.env.SIDECACHE_PYTHON ?? '/usr/bin/python3';
const SCRIPT = path.join(CLIENTS_DIR, 'psycopg_check.py');
/** psycopg_check.REPEATS: executions of the same parameterized SELECT with the same parameter. */
const REPEATS = 8;

type Mode = 'psycopg2' | 'psycopg3' | 'psycopg3-prepared-binary';

let proxy: RunningProxy;
const dropAfter: string[] = [];

const setup = new SetupGuard();

test.before(() => setup.run(async () => {
  for (const [module, pkg] of [['psycopg2', 'python3-psycopg2'], ['psycopg', 'python3-psycopg']]) {
    await promisify(execFile)(PYTHON, ['-c', `import ${module}`], { timeout: 30_000 }).catch((err: Error) => {
      throw new Error(`${PYTHON} cannot import ${module} (${err.message.split('\n')[0]}): install it with ` +
        `\`apt-get install -y ${pkg}\` (Debian/Ubuntu; \`make test\` does so when run as root), or point ` +
        `SIDECACHE_PYTHON at a Python that has it`);
    });
  }
  proxy = await startProxy();
}));

test.after(async () => {
  await proxy?.stop();
  for (const table of dropAfter) await direct(`DROP TABLE IF EXISTS ${table}, ${table}_copy`);
  for (const table of dropAfter) await direct(`DROP FUNCTION IF EXISTS ${table}_shout(int)`);
});

function psycopgCheck(mode: Mode, port: number, table: string, onCheckpoint?: (name: string) => Promise<void>): Promise<ProgramRun> {
  const dsn = `host=${DIRECT_PG.host} port=${port} user=${DIRECT_PG.user} dbname=${DIRECT_PG.database} ` +
    'application_name=sc_e2e_psycopg connect_timeout=5 sslmode=prefer';
  // Only what the program needs: no PG* variables of the caller's shell reach libpq.
  const env = { PATH: process.env.PATH, LANG: 'C.UTF-8', PYTHONIOENCODING: 'utf-8', PYTHONDONTWRITEBYTECODE: '1' };
  return runClientProgram(PYTHON, [SCRIPT, mode, dsn, table], { env, timeoutMs: 60_000, onCheckpoint });
}

/** The program directly, then through the proxy on the same table name (it recreates the table). */
async function bothWays(mode: Mode): Promise<BothRuns<CacheCounters>> {
  setup.ensure();
  const table = uniqueName('sc_psycopg');
  dropAfter.push(table);
  const runs = await directThenProxied((port, onCheckpoint) => psycopgCheck(mode, port, table, onCheckpoint),
    { direct: DIRECT_PG.port, proxy: proxy.pgPort }, () => cacheCounters(proxy.adminPort), counterDelta);
  const viaServer = runs.direct;
  assert.match(viaServer.stdout, /after update row int:2 int:-1 Decimal:Decimal\('0\.999999'\) str:'updated by psycopg'/);
  assert.match(viaServer.stdout, /with hold cursor batches \[\[1, 2\], \[3, 4\], \[5, 6\], \[100\]\]/);
  assert.match(viaServer.stdout, /shout 1 \(42,\) notices \['NOTICE: {2}shout 21'\]/);
  assert.match(viaServer.stdout, /\ndone\n$/);
  return runs;
}

/**
 * Until the statement is warm the SELECT may miss once per request shape (psycopg 3 moves from
 * unnamed statements to a prepared one); then every execution is a hit. Reads after a write in
 * autocommit mode, and reads in or after a transaction that wrote, never hit.
 */
function assertCacheUse(steps: Record<string, CacheCounters>): void {
  const warm = steps.warm!;
  assert.ok(warm.misses >= 1 && warm.misses <= 2, `one miss per request shape: ${JSON.stringify(warm)}`);
  assert.is(warm.hits, REPEATS - 2 - warm.misses, `the other executions hit: ${JSON.stringify(warm)}`);
  const repeated = steps.repeated!;
  assert.equal([repeated.hits, repeated.misses], [2, 0], `the warm statement is answered from the cache: ${JSON.stringify(repeated)}`);
  const afterWrite = steps['read-after-write']!;
  // Read after the UPDATE: a miss; the same read again: a hit; read after executemany: a miss.
  assert.equal([afterWrite.hits, afterWrite.misses], [1, 2], `reads after writes reach the server: ${JSON.stringify(afterWrite)}`);
  const tx = steps.transactions!;
  assert.is(tx.hits, 0, `reads in or after a transaction that wrote must reach the server: ${JSON.stringify(tx)}`);
}

test('psycopg2: same output as direct, the repeated SELECT hits, writes are seen', async () => {
  const run = await bothWays('psycopg2');
  assertSameRun(run, ['setup', 'warm', 'repeated', 'read-after-write', 'transactions']);
  assertCacheUse(run.steps);
});

test('psycopg 3 (server-side binding, prepared after five executions, pipeline mode): same output, hits, writes are seen', async () => {
  const run = await bothWays('psycopg3');
  assert.match(run.direct.stdout, /pipeline read after the update \[\(4, 'changed in a pipeline'\)\]/);
  assertSameRun(run, ['setup', 'warm', 'repeated', 'read-after-write', 'transactions', 'pipeline']);
  assertCacheUse(run.steps);
  assert.ok(run.steps.pipeline!.hits >= 1, `the second read before the pipeline hits: ${JSON.stringify(run.steps.pipeline)}`);
});

test('psycopg 3 with prepare=True and binary=True: same output, hits, writes are seen', async () => {
  const run = await bothWays('psycopg3-prepared-binary');
  assertSameRun(run, ['setup', 'warm', 'repeated', 'read-after-write', 'transactions', 'pipeline']);
  assertCacheUse(run.steps);
  assert.ok(run.steps.pipeline!.hits >= 1, `the second read before the pipeline hits: ${JSON.stringify(run.steps.pipeline)}`);
});

test.run();
