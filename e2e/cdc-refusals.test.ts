// test-timeout: 400
// When a server cannot or will not stream, sidecache says what to change, keeps serving every read
// from the database (bypass reason cdc-down), stays healthy, and never prints a password: wal_level
// or the binlog off, binlog_format not ROW, a role without REPLICATION, a publication it may not
// create, tables a publication would break, an event trigger it may not install, the server's
// max_wal_senders reached, replication privileges missing; passwords from the environment, a file
// or the URL, right or wrong, never reach the logs, /api/config, /stats or /metrics.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { startCluster, type Cluster } from './support/cluster.js';
import { cdcDownBypasses, connectedMetric, startLogicalCluster, streamOf, waitFor, waitForStream, type StreamItem } from './support/cdc.js';
import { startMariadb, type MariadbServer } from './support/mariadb-server.js';
import { DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

const PG_PASSWORD = 'pg-Secret-4b1e';
const MY_PASSWORD = 'my-Secret-9c2d';
const WRONG_PASSWORD = 'wrong-Secret-77a0';

let replicaCluster: Cluster;
let logical: Cluster;
let mariadb: MariadbServer;
let dir: string;

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'sidecache-cdc-refusals-'));
  [replicaCluster, logical, mariadb] = await Promise.all([
    startCluster(),
    startLogicalCluster({
      settings: { max_wal_senders: 2 },
      hba: ['host all repl 127.0.0.1/32 scram-sha-256', 'host all all 127.0.0.1/32 trust'],
    }),
    startMariadb(),
  ]);
  await replicaCluster.query('CREATE DATABASE app');
  await pgQuery(replicaCluster, 'app', 'CREATE TABLE t (id int PRIMARY KEY)');
  for (const database of ['app', 'app2', 'app3', 'noident']) await logical.query(`CREATE DATABASE ${database}`);
  await logical.query(`CREATE ROLE repl LOGIN REPLICATION PASSWORD '${PG_PASSWORD}'; CREATE ROLE plain LOGIN`);
  await pgQuery(logical, 'noident', 'CREATE TABLE loose (a int)');
  for (const database of ['app', 'app2', 'app3']) await pgQuery(logical, database, 'CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)');
  await mariadb.query(`CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY); INSERT INTO app.t VALUES (1);
    CREATE USER repl@'%' IDENTIFIED BY '${MY_PASSWORD}'; GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO repl@'%';
    CREATE USER norepl@'%'; GRANT SELECT ON *.* TO norepl@'%'`);
});

test.after(async () => {
  await Promise.all([replicaCluster?.stop(), logical?.stop(), mariadb?.stop()]);
  await rm(dir, { recursive: true, force: true });
});

async function pgQuery(cluster: Cluster, database: string, sql: string): Promise<pg.QueryResult> {
  const c = new pg.Client({ host: cluster.socketDir, port: cluster.port, user: 'postgres', database });
  await c.connect();
  try {
    return await c.query(sql);
  } finally {
    await c.end();
  }
}

function pgProxy(cluster: Cluster, cdc: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<RunningProxy> {
  return startProxy({ pgUpstream: `postgres://127.0.0.1:${cluster.port}`, args: ['--pg-cdc', cdc, ...extra], env });
}

async function readPg(proxy: RunningProxy, database: string, user = 'postgres'): Promise<void> {
  const c = new pg.Client({ host: '127.0.0.1', port: proxy.pgPort, user, database });
  await c.connect();
  try {
    await c.query('SELECT id FROM t');
  } finally {
    await c.end();
  }
}

/**
 * Triggers the stream of `database` and waits until its last error matches `pattern` (a failing
 * stream retries: an unrelated, passing error first does not fail the test).
 */
async function pgFailsWith(proxy: RunningProxy, database: string, pattern: RegExp): Promise<void> {
  await readPg(proxy, database).catch(() => undefined);
  await failsWith(() => streamOf(proxy.adminPort, 'postgres', database), pattern);
}

async function myFailsWith(proxy: RunningProxy, pattern: RegExp): Promise<void> {
  await failsWith(() => streamOf(proxy.adminPort, 'mysql', '*'), pattern);
}

async function failsWith(stream: () => Promise<StreamItem | undefined>, pattern: RegExp): Promise<void> {
  let last: StreamItem | undefined;
  try {
    await waitFor(`a stream error matching ${pattern}`, async () => {
      last = await stream();
      return last !== undefined && last.state !== 'up' && last.lastError !== null && pattern.test(last.lastError) ? true : undefined;
    }, 45_000, 100);
  } catch {
    assert.unreachable(`the stream's last error was: ${last?.lastError ?? '(none)'}`);
  }
}

async function healthz(proxy: RunningProxy): Promise<number> {
  return (await fetch(`http://127.0.0.1:${proxy.adminPort}/healthz`)).status;
}

async function everything(proxy: RunningProxy): Promise<string> {
  const get = async (p: string): Promise<string> => (await fetch(`http://127.0.0.1:${proxy.adminPort}${p}`)).text();
  return [proxy.output(), await get('/api/config'), await get('/stats'), await get('/metrics')].join('\n');
}

test('wal_level=replica: the error says how to turn logical replication on; reads keep working as cdc-down bypasses; healthy', async () => {
  const proxy = await pgProxy(replicaCluster, `postgres://postgres@127.0.0.1:${replicaCluster.port}`);
  try {
    await pgFailsWith(proxy, 'app', /wal_level is replica: logical replication needs wal_level = logical.*rds\.logical_replication = 1/);
    const before = await cdcDownBypasses(proxy.adminPort, 'postgres');
    for (let i = 0; i < 3; i++) await readPg(proxy, 'app');
    assert.is(await cdcDownBypasses(proxy.adminPort, 'postgres') - before, 3, 'every read bypasses the cache');
    assert.is(await connectedMetric(proxy.adminPort, 'postgres', 'app'), 0);
    assert.is(await healthz(proxy), 200);
    assert.match(proxy.output(), /cdc: change stream could not start/);
  } finally {
    await proxy.stop();
  }
});

test('PostgreSQL refusals name what to change: REPLICATION, the publication\'s SQL, tables without replica identity, the event trigger', async () => {
  const url = (user: string): string => `postgres://${user}:${PG_PASSWORD}@127.0.0.1:${logical.port}`;
  let proxy = await pgProxy(logical, `postgres://plain@127.0.0.1:${logical.port}`);
  try {
    await pgFailsWith(proxy, 'app', /needs REPLICATION \(ALTER ROLE "plain" WITH REPLICATION\)/);
  } finally {
    await proxy.stop();
  }
  proxy = await pgProxy(logical, url('repl'));
  try {
    await pgFailsWith(proxy, 'app', /publication "sidecache" does not exist in database "app" and role "repl" may not create it .*a superuser must run in database "app": CREATE PUBLICATION "sidecache" FOR ALL TABLES;/);
  } finally {
    await proxy.stop();
  }
  proxy = await pgProxy(logical, `postgres://postgres@127.0.0.1:${logical.port}`);
  try {
    await pgFailsWith(proxy, 'noident', /would make UPDATE and DELETE fail on tables without a primary key or replica identity: public\.loose;.*REPLICA IDENTITY FULL/);
  } finally {
    await proxy.stop();
  }
  await pgQuery(logical, 'app', 'CREATE PUBLICATION sidecache FOR ALL TABLES');
  proxy = await pgProxy(logical, url('repl'), ['--pg-cdc-ddl', 'on']);
  try {
    await pgFailsWith(proxy, 'app', /may not install the event trigger in database "app" \(event triggers need a superuser\); a superuser can install it once: CREATE SCHEMA IF NOT EXISTS sidecache; CREATE OR REPLACE FUNCTION/);
    assert.not.match(await everything(proxy), new RegExp(PG_PASSWORD));
  } finally {
    await proxy.stop();
  }
});

test('max_wal_senders reached: the database beyond it says so, the others stream', async () => {
  const proxy = await pgProxy(logical, `postgres://postgres@127.0.0.1:${logical.port}`);
  try {
    for (const database of ['app', 'app2']) {
      await readPg(proxy, database);
      await waitForStream(proxy.adminPort, 'postgres', database, 'up');
    }
    await pgFailsWith(proxy, 'app3', /max_wal_senders.*each sidecache opens one replication connection per database it follows; raise max_wal_senders/);
    assert.is((await streamOf(proxy.adminPort, 'postgres', 'app'))!.state, 'up');
  } finally {
    await proxy.stop();
  }
});

test('the PostgreSQL password, from the environment, a file or the URL, right or wrong, is never shown', async () => {
  const file = path.join(dir, 'pg-password');
  await writeFile(file, `${PG_PASSWORD}\n`);
  for (const [args, env] of [
    [['--pg-cdc', `postgres://repl@127.0.0.1:${logical.port}`], { SIDECACHE_PG_CDC_PASSWORD: PG_PASSWORD }],
    [['--pg-cdc', `postgres://repl@127.0.0.1:${logical.port}`, '--pg-cdc-password-file', file], {}],
  ] as const) {
    const proxy = await startProxy({ pgUpstream: `postgres://127.0.0.1:${logical.port}`, args: [...args, '--log-level', 'debug'], env });
    try {
      await readPg(proxy, 'app');
      await waitForStream(proxy.adminPort, 'postgres', 'app', 'up');
      assert.not.match(await everything(proxy), new RegExp(PG_PASSWORD));
    } finally {
      await proxy.stop();
    }
  }
  const wrong = await pgProxy(logical, `postgres://repl:${WRONG_PASSWORD}@127.0.0.1:${logical.port}`, ['--log-level', 'debug']);
  try {
    await pgFailsWith(wrong, 'app', /password authentication failed for user "repl"/);
    assert.not.match(await everything(wrong), new RegExp(WRONG_PASSWORD));
  } finally {
    await wrong.stop();
  }
});

async function readMy(proxy: RunningProxy): Promise<void> {
  const c = await mysql.createConnection({ host: '127.0.0.1', port: proxy.mysqlPort, user: 'root', database: 'app' });
  try {
    await c.query('SELECT id FROM t');
  } finally {
    await c.end();
  }
}

test('the binary log off (the shared server): the error says how to turn it on; reads bypass; healthy', async () => {
  const proxy = await startProxy({ pgUpstream: null, mysqlUpstream: DIRECT_MYSQL_URL, args: ['--mysql-cdc', DIRECT_MYSQL_URL.replace('mysql://', 'mysql://root@')] });
  try {
    await myFailsWith(proxy, /the binary log is off \(log_bin=OFF\): start the server with --log-bin.*binlog retention hours/);
    const c = await mysql.createConnection({ host: '127.0.0.1', port: proxy.mysqlPort, user: 'root', database: 'test' });
    const before = await cdcDownBypasses(proxy.adminPort, 'mysql');
    for (let i = 0; i < 3; i++) await c.query('SELECT 1 FROM DUAL WHERE 1 = 0');
    await c.end();
    assert.ok(await cdcDownBypasses(proxy.adminPort, 'mysql') >= before);
    assert.is(await healthz(proxy), 200);
  } finally {
    await proxy.stop();
  }
});

test('MariaDB refusals: binlog_format not ROW, a user without REPLICATION SLAVE', async () => {
  await mariadb.query("SET GLOBAL binlog_format = 'MIXED'");
  let proxy = await startProxy({ pgUpstream: null, mysqlUpstream: mariadb.url, args: ['--mysql-cdc', mariadb.url] });
  try {
    await myFailsWith(proxy, /binlog_format is MIXED: the stream needs ROW \(SET GLOBAL binlog_format = 'ROW'/);
    const before = await cdcDownBypasses(proxy.adminPort, 'mysql');
    await readMy(proxy);
    await readMy(proxy);
    assert.is(await cdcDownBypasses(proxy.adminPort, 'mysql') - before, 2, 'reads bypass the cache');
  } finally {
    await proxy.stop();
    await mariadb.query("SET GLOBAL binlog_format = 'ROW'");
  }
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: mariadb.url, args: ['--mysql-cdc', `mysql://norepl@127.0.0.1:${mariadb.port}`] });
  try {
    await myFailsWith(proxy, /needs REPLICATION SLAVE and REPLICATION CLIENT/);
  } finally {
    await proxy.stop();
  }
});

test('the MariaDB password, from a file or the URL, right or wrong, is never shown', async () => {
  const file = path.join(dir, 'my-password');
  await writeFile(file, MY_PASSWORD);
  const proxy = await startProxy({ pgUpstream: null, mysqlUpstream: mariadb.url,
    args: ['--mysql-cdc', `mysql://repl@127.0.0.1:${mariadb.port}`, '--mysql-cdc-password-file', file, '--log-level', 'debug'] });
  try {
    await waitForStream(proxy.adminPort, 'mysql', '*', 'up');
    await readMy(proxy);
    assert.not.match(await everything(proxy), new RegExp(MY_PASSWORD));
  } finally {
    await proxy.stop();
  }
  const wrong = await startProxy({ pgUpstream: null, mysqlUpstream: mariadb.url, args: ['--mysql-cdc', `mysql://repl:${WRONG_PASSWORD}@127.0.0.1:${mariadb.port}`] });
  try {
    await myFailsWith(wrong, /Access denied for user 'repl'/);
    assert.not.match(await everything(wrong), new RegExp(WRONG_PASSWORD));
  } finally {
    await wrong.stop();
  }
});

test.run();
