// test-timeout: 180
// pgJDBC (Debian's libpostgresql-jdbc-java) through the proxy: e2e/clients/JdbcCheck.java, a small
// JDBC application, prints the same lines through sidecache as directly against PostgreSQL. It
// covers DDL, PreparedStatement inserts and batches, one prepared SELECT run past the driver's
// prepareThreshold (so it moves to a named server statement with binary results), typed getters,
// commit and rollback, setReadOnly, DatabaseMetaData, errors, a fetch size, setMaxRows, several
// statements in one execute, isValid, isolation and schema, a query timeout (a CancelRequest
// through the proxy) and generated keys, under four driver configurations. The proxy's counters,
// read at the program's checkpoints, show the repeated SELECT answered from the cache and every
// read after a JDBC write going to the server.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { JDBC_CHECKPOINTS, SetupGuard, assertSameRun, compileJava, directThenProxied, requireFile, runClientProgram, type BothRuns, type ProgramRun } from './support/client-program.js';
import { cacheCounters, counterDelta, type CacheCounters } from './support/metrics.js';
import { DIRECT_PG, direct, uniqueName } from './support/pg-direct.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const PG_JDBC_JAR = '/usr/share/java/postgresql.jar';
/** JdbcCheck.REPEATS: executions of the same prepared SELECT with the same parameter. */
const REPEATS = 8;

let proxy: RunningProxy;
let classes: string;
const dropAfter: string[] = [];

const setup = new SetupGuard();

test.before(() => setup.run(async () => {
  requireFile(PG_JDBC_JAR, 'pgJDBC', 'libpostgresql-jdbc-java');
  classes = await compileJava('JdbcCheck.java');
  proxy = await startProxy();
}));

test.after(async () => {
  await proxy?.stop();
  for (const table of dropAfter) await direct(`DROP TABLE IF EXISTS ${table}, ${table}_auto`);
  if (classes) await rm(classes, { recursive: true, force: true });
});

/** JdbcCheck against `port`; `query` is appended to the JDBC URL (driver options). */
function jdbcCheck(port: number, table: string, query: string, onCheckpoint?: (name: string) => Promise<void>): Promise<ProgramRun> {
  const url = `jdbc:postgresql://${DIRECT_PG.host}:${port}/${DIRECT_PG.database}?user=${DIRECT_PG.user}` +
    `&ApplicationName=sc_e2e_jdbc${query}`;
  return runClientProgram('java', [
    '-Duser.timezone=UTC', '-Dfile.encoding=UTF-8', '-Dsun.stdout.encoding=UTF-8', '-Dsun.stderr.encoding=UTF-8',
    '-cp', `${classes}${path.delimiter}${PG_JDBC_JAR}`, 'JdbcCheck', 'pg', url, table,
  ], { env: { ...process.env, LANG: 'C.UTF-8' }, timeoutMs: 60_000, onCheckpoint });
}

/** JdbcCheck directly, then through the proxy, on a table of its own. */
function bothWays(query: string): Promise<BothRuns<CacheCounters>> {
  setup.ensure();
  const table = uniqueName('sc_jdbc');
  dropAfter.push(table);
  return directThenProxied((port, onCheckpoint) => jdbcCheck(port, table, query, onCheckpoint),
    { direct: DIRECT_PG.port, proxy: proxy.pgPort }, () => cacheCounters(proxy.adminPort), counterDelta);
}

/**
 * What every configuration must show. Until the statement is warm the SELECT may miss once per
 * request shape it sends (pgJDBC moves from unnamed statements with Describe to a named one, then
 * to Bind/Execute only with binary results, each its own cache key); then every execution is a hit.
 * Reads after a write never hit.
 */
function assertCacheUse(steps: Record<string, CacheCounters>): void {
  const warm = steps.warm!;
  assert.ok(warm.misses >= 1 && warm.misses <= 2, `one miss per request shape: ${JSON.stringify(warm)}`);
  assert.is(warm.hits, REPEATS - 2 - warm.misses, `the other executions hit: ${JSON.stringify(warm)}`);
  const repeated = steps.repeated!;
  assert.equal([repeated.hits, repeated.misses], [2, 0], `the warm prepared statement is answered from the cache: ${JSON.stringify(repeated)}`);
  const afterWrite = steps['read-after-write']!;
  // Read after the UPDATE: a miss; the same read again: a hit; read after the batch UPDATE: a miss.
  assert.equal([afterWrite.hits, afterWrite.misses], [1, 2], `reads after writes reach the server: ${JSON.stringify(afterWrite)}`);
  const tx = steps.transactions!;
  assert.is(tx.hits, 0, `reads in or after a transaction that wrote must reach the server: ${JSON.stringify(tx)}`);
}

test('default settings: same output as direct, the repeated prepared SELECT hits, JDBC writes are seen', async () => {
  const run = await bothWays('');
  assert.match(run.direct.stdout, /after update row id=2 big=-1 num=0\.999999 txt=updated by jdbc/);
  assert.match(run.direct.stdout, /after transactions row id=3 .* txt=changed in a committed transaction/);
  assert.match(run.direct.stdout, /\ndone\n$/);
  assertSameRun(run, JDBC_CHECKPOINTS);
  assertCacheUse(run.steps);
});

test('prepareThreshold=1: a named server statement from the first execution', async () => {
  const run = await bothWays('&prepareThreshold=1');
  assert.match(run.direct.stdout, /\ndone\n$/);
  assertSameRun(run, JDBC_CHECKPOINTS);
  assertCacheUse(run.steps);
});

test('binaryTransfer=false: text results only', async () => {
  const run = await bothWays('&binaryTransfer=false');
  assert.match(run.direct.stdout, /\ndone\n$/);
  assertSameRun(run, JDBC_CHECKPOINTS);
  assertCacheUse(run.steps);
});

test('reWriteBatchedInserts=true and autosave=conservative (savepoints around statements in transactions)', async () => {
  const run = await bothWays('&reWriteBatchedInserts=true&autosave=conservative');
  assert.match(run.direct.stdout, /\ndone\n$/);
  assertSameRun(run, JDBC_CHECKPOINTS);
  assertCacheUse(run.steps);
});

test.run();
