// test-timeout: 180
// MariaDB Connector/J (Debian's libmariadb-java) through the proxy: e2e/clients/JdbcCheck.java, a
// small JDBC application, prints the same lines through sidecache as directly against MariaDB. It
// covers DDL, PreparedStatement inserts and batches, one prepared SELECT run eight times, typed
// getters, commit and rollback, setReadOnly, DatabaseMetaData, errors, a fetch size, setMaxRows,
// several statements in one execute, isValid, isolation and catalog, a query timeout and
// generated keys, with the driver's default client-side prepare (text protocol), with
// useServerPrepStmts=true (COM_STMT_PREPARE/EXECUTE, binary rows) and with useBulkStmts=true
// (batches as COM_STMT_BULK_EXECUTE). The proxy's counters, read at the program's checkpoints,
// show the repeated SELECT answered from the cache and every read after a JDBC write going to the
// server.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { JDBC_CHECKPOINTS, SetupGuard, assertSameRun, compileJava, directThenProxied, requireFile, runClientProgram, type BothRuns, type ProgramRun } from './support/client-program.js';
import { DIRECT_MYSQL, directMySql, uniqueName } from './support/mysql-direct.js';
import { mysqlCacheCounters } from './support/mysql-metrics.js';
import { DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

const MARIADB_JDBC_JAR = '/usr/share/java/mariadb-java-client.jar';
/** JdbcCheck.REPEATS: executions of the same prepared SELECT with the same parameter. */
const REPEATS = 8;

let proxy: RunningProxy;
let classes: string;
const db = uniqueName('sc_jdbc');

const setup = new SetupGuard();

test.before(() => setup.run(async () => {
  requireFile(MARIADB_JDBC_JAR, 'MariaDB Connector/J', 'libmariadb-java');
  classes = await compileJava('JdbcCheck.java');
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: DIRECT_MYSQL_URL });
  await directMySql(`CREATE DATABASE ${db}`);
}));

test.after(async () => {
  await directMySql(`DROP DATABASE IF EXISTS ${db}`).catch(() => undefined);
  await proxy?.stop();
  if (classes) await rm(classes, { recursive: true, force: true });
});

/** What one step between two checkpoints did to the MySQL cache. */
interface HitsMisses {
  hits: number;
  misses: number;
}

type Steps = Record<string, HitsMisses>;

function jdbcCheck(port: number, table: string, query: string, onCheckpoint?: (name: string) => Promise<void>): Promise<ProgramRun> {
  // allowMultiQueries: JdbcCheck runs several statements in one execute().
  const url = `jdbc:mariadb://${DIRECT_MYSQL.host}:${port}/${db}?user=${DIRECT_MYSQL.user}&allowMultiQueries=true${query}`;
  return runClientProgram('java', [
    '-Duser.timezone=UTC', '-Dfile.encoding=UTF-8', '-Dsun.stdout.encoding=UTF-8', '-Dsun.stderr.encoding=UTF-8',
    '-cp', `${classes}${path.delimiter}${MARIADB_JDBC_JAR}`, 'JdbcCheck', 'mysql', url, table,
  ], { env: { ...process.env, LANG: 'C.UTF-8' }, timeoutMs: 60_000, onCheckpoint });
}

/** JdbcCheck directly, then through the proxy, on the same table name (the program recreates it). */
async function bothWays(query: string): Promise<BothRuns<HitsMisses>> {
  setup.ensure();
  const table = uniqueName('items');
  const runs = await directThenProxied((port, onCheckpoint) => jdbcCheck(port, table, query, onCheckpoint),
    { direct: DIRECT_MYSQL.port, proxy: proxy.mysqlPort }, () => mysqlCacheCounters(proxy.adminPort),
    (now, last) => ({ hits: now.hits - last.hits, misses: now.misses - last.misses }));
  const viaServer = runs.direct;
  assert.match(viaServer.stdout, /after update row id=2 big=-1 num=0\.999999 txt=updated by jdbc/);
  assert.match(viaServer.stdout, /after transactions row id=3 .* txt=changed in a committed transaction/);
  assert.match(viaServer.stdout, /\ndone\n$/);
  return runs;
}

/** The repeated SELECT misses once and then hits; reads after a write never hit. */
function assertCacheUse(steps: Steps): void {
  const warm = steps.warm!;
  assert.equal([warm.hits, warm.misses], [REPEATS - 3, 1], `one miss, then hits: ${JSON.stringify(warm)}`);
  const repeated = steps.repeated!;
  assert.equal([repeated.hits, repeated.misses], [2, 0], JSON.stringify(repeated));
  const afterWrite = steps['read-after-write']!;
  // Read after the UPDATE: a miss; the same read again: a hit; read after the batch UPDATE: a miss.
  assert.equal([afterWrite.hits, afterWrite.misses], [1, 2], `reads after writes reach the server: ${JSON.stringify(afterWrite)}`);
  const tx = steps.transactions!;
  assert.is(tx.hits, 0, `reads in or after a transaction that wrote must reach the server: ${JSON.stringify(tx)}`);
}

test('client-side prepare (the default, text protocol): same output as direct, hits, JDBC writes are seen', async () => {
  const run = await bothWays('');
  assertSameRun(run, JDBC_CHECKPOINTS);
  assertCacheUse(run.steps);
});

test('useServerPrepStmts=true (binary protocol): same output as direct, hits, JDBC writes are seen', async () => {
  const run = await bothWays('&useServerPrepStmts=true');
  assertSameRun(run, JDBC_CHECKPOINTS);
  assertCacheUse(run.steps);
});

// Batches as COM_STMT_BULK_EXECUTE (MariaDB's array binding), what Connector/J 3.x sends for
// batched INSERTs by default (useBulkStmtsForInserts) and for every batch with useBulkStmts.
test('useBulkStmts=true (batches as COM_STMT_BULK_EXECUTE): same output as direct, hits, JDBC writes are seen', async () => {
  const run = await bothWays('&useBulkStmts=true');
  assertSameRun(run, JDBC_CHECKPOINTS);
  assertCacheUse(run.steps);
});

test.run();
