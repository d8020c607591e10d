// test-timeout: 400
// The MariaDB binlog stream (--mysql-cdc) against a private mariadbd with --log-bin and ROW format
// (the shared server has no binlog): writes sent straight to the server, of every kind, are seen
// through sidecache within the stream's lag (polled until seen or a deadline); rolled-back ones
// invalidate nothing; a lost stream (its dump thread killed, the server restarted) is never silent:
// no stale read during or after, caching resumes from the kept GTID position; a second sidecache
// follows with its own server id.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { cdcDownBypasses, connectedMetric, everyWriteSeen, readUntil, stableHit, streamOf, waitFor, waitForStream, type WriteCase } from './support/cdc.js';
import { startMariadb, type MariadbServer } from './support/mariadb-server.js';
import { measureMySql } from './support/mysql-metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const DB = 'cdc_app';
let server: MariadbServer;
let proxy: RunningProxy;
let db: Connection;
let app: Connection;

async function connect(port: number): Promise<Connection> {
  const c = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root', database: DB, multipleStatements: true });
  c.on('error', () => undefined);
  return c;
}

function startCdcProxy(extra: string[] = []): Promise<RunningProxy> {
  return startProxy({ pgUpstream: null, mysqlUpstream: server.url, args: ['--mysql-cdc', server.url, '--cache-ttl', '10m', ...extra] });
}

async function read(c: Connection, sql: string): Promise<unknown[]> {
  const [rows] = await c.query<RowDataPacket[]>(sql);
  return rows.map((r) => ({ ...r }));
}

/** Reads `sql` through sidecache until it stays a hit. */
function cached(sql: string, via: Connection = app, adminPort = proxy.adminPort): Promise<unknown[]> {
  return stableHit(async () => {
    const { result, delta } = await measureMySql(adminPort, () => read(via, sql));
    return { rows: result, hit: delta.hits === 1 };
  }, sql);
}

function seen(sql: string, expected: unknown[], via: Connection = app): Promise<number> {
  return readUntil(() => read(via, sql), expected, sql);
}

const LOAD_FILE = path.join(os.tmpdir(), `sidecache-cdc-load-${process.pid}.csv`);

test.before(async () => {
  server = await startMariadb();
  await server.query(`CREATE DATABASE ${DB}; CREATE DATABASE ${DB}_other;
    USE ${DB};
    CREATE TABLE kv (k INT PRIMARY KEY, v INT) ENGINE=InnoDB;
    INSERT INTO kv SELECT seq, 0 FROM seq_1_to_20;
    CREATE TABLE loaded (k INT PRIMARY KEY, note TEXT) ENGINE=InnoDB;
    CREATE TABLE plain (k INT PRIMARY KEY, v INT) ENGINE=MyISAM;
    INSERT INTO plain VALUES (1, 0);
    CREATE TABLE parted (k INT PRIMARY KEY, v INT) ENGINE=InnoDB PARTITION BY RANGE (k) (PARTITION p0 VALUES LESS THAN (100), PARTITION p1 VALUES LESS THAN (200));
    INSERT INTO parted VALUES (1, 0), (150, 0);
    CREATE TABLE audited (k INT PRIMARY KEY, v INT) ENGINE=InnoDB;
    CREATE TABLE audit_log (k INT PRIMARY KEY, n INT) ENGINE=InnoDB;
    INSERT INTO audited VALUES (1, 0); INSERT INTO audit_log VALUES (1, 0);
    CREATE TRIGGER audited_count AFTER UPDATE ON audited FOR EACH ROW UPDATE audit_log SET n = n + 1 WHERE k = 1;
    CREATE TABLE marker (k INT PRIMARY KEY, v INT) ENGINE=InnoDB; INSERT INTO marker VALUES (1, 0);
    CREATE TABLE parent (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO parent VALUES (1), (2);
    CREATE TABLE ${DB}_other.child (id INT PRIMARY KEY, pid INT, FOREIGN KEY (pid) REFERENCES ${DB}.parent (id) ON DELETE CASCADE) ENGINE=InnoDB;
    INSERT INTO ${DB}_other.child VALUES (1, 1), (2, 2);
    CREATE TABLE ${DB}_other.remote (k INT PRIMARY KEY, v INT) ENGINE=InnoDB; INSERT INTO ${DB}_other.remote VALUES (1, 0);`);
  await writeFile(LOAD_FILE, '1,one\n2,two\n3,three\n');
  db = await connect(server.port);
  proxy = await startCdcProxy();
  app = await connect(proxy.mysqlPort);
});

test.after(async () => {
  await app?.end().catch(() => undefined);
  await db?.end().catch(() => undefined);
  await proxy?.stop();
  await server?.stop();
  await rm(LOAD_FILE, { force: true });
});

test('the binlog stream starts with sidecache; reads are cached once it is up', async () => {
  const stream = await waitForStream(proxy.adminPort, 'mysql', '*', 'up');
  assert.match(stream.position ?? '', /^binlog\.\d+:\d+, gtid 0-1-\d+$/);
  assert.equal(await cached('SELECT v FROM kv WHERE k = 1'), [{ v: 0 }]);
  assert.is(await connectedMetric(proxy.adminPort, 'mysql', '*'), 1);
  assert.match(proxy.output(), /cdc: following the binary log as replica server id derived .* serverId=\d+|"serverId":\d+/);
});

const CASES: WriteCase[] = [
  { name: 'INSERT', read: 'SELECT COUNT(*) AS n FROM kv', write: () => db.query('INSERT INTO kv VALUES (100, 1)'), after: [{ n: 21 }] },
  { name: 'UPDATE', read: 'SELECT v FROM kv WHERE k = 2', write: () => db.query('UPDATE kv SET v = 2 WHERE k = 2'), after: [{ v: 2 }] },
  { name: 'DELETE', read: 'SELECT COUNT(*) AS n FROM kv WHERE k = 100', write: () => db.query('DELETE FROM kv WHERE k = 100'), after: [{ n: 0 }] },
  { name: 'REPLACE', read: 'SELECT v FROM kv WHERE k = 3', write: () => db.query('REPLACE INTO kv VALUES (3, 33)'), after: [{ v: 33 }] },
  { name: 'upsert (ON DUPLICATE KEY UPDATE)', read: 'SELECT v FROM kv WHERE k = 4', write: () => db.query('INSERT INTO kv VALUES (4, 44) ON DUPLICATE KEY UPDATE v = VALUES(v)'), after: [{ v: 44 }] },
  { name: 'multi-table UPDATE', read: 'SELECT v FROM kv WHERE k = 5', write: () => db.query('UPDATE kv a JOIN marker b ON b.k = 1 SET a.v = 55 WHERE a.k = 5'), after: [{ v: 55 }] },
  { name: 'LOAD DATA', read: 'SELECT COUNT(*) AS n FROM loaded', write: () => db.query(`LOAD DATA INFILE '${LOAD_FILE}' INTO TABLE loaded FIELDS TERMINATED BY ','`), after: [{ n: 3 }] },
  { name: 'a non-transactional (MyISAM) table', read: 'SELECT v FROM plain WHERE k = 1', write: () => db.query('UPDATE plain SET v = 1'), after: [{ v: 1 }] },
  { name: 'a partitioned table', read: 'SELECT v FROM parted WHERE k = 150', write: () => db.query('UPDATE parted SET v = 7 WHERE k = 150'), after: [{ v: 7 }] },
  { name: 'a table written by a trigger', read: 'SELECT n FROM audit_log WHERE k = 1', write: () => db.query('UPDATE audited SET v = v + 1'), after: [{ n: 1 }] },
  {
    name: 'a foreign-key cascade into another database (its rows are not in the binlog)',
    read: `SELECT COUNT(*) AS n FROM ${DB}_other.child`,
    write: () => db.query('DELETE FROM parent WHERE id = 2'),
    after: [{ n: 1 }],
  },
  { name: 'another database', read: `SELECT v FROM ${DB}_other.remote WHERE k = 1`, write: () => db.query(`UPDATE ${DB}_other.remote SET v = 9`), after: [{ v: 9 }] },
  {
    name: 'writes in a long transaction, seen at its commit',
    read: 'SELECT v FROM kv WHERE k = 6',
    write: async () => {
      await db.query('START TRANSACTION');
      await db.query('UPDATE kv SET v = 60 WHERE k = 6');
      await new Promise((r) => setTimeout(r, 300));
      await db.query('UPDATE kv SET v = 66 WHERE k = 6');
      await db.query('COMMIT');
    },
    after: [{ v: 66 }],
  },
  { name: 'TRUNCATE', read: 'SELECT COUNT(*) AS n FROM loaded', write: () => db.query('TRUNCATE loaded'), after: [{ n: 0 }] },
  { name: 'DDL (ALTER TABLE)', read: 'SELECT * FROM kv WHERE k = 1', write: () => db.query('ALTER TABLE kv ADD COLUMN w INT NOT NULL DEFAULT 5'), after: [{ k: 1, v: 0, w: 5 }] },
];

test('every kind of write sent straight to the server is seen through sidecache', async () => {
  await waitForStream(proxy.adminPort, 'mysql', '*', 'up');
  await everyWriteSeen(CASES, { cached: (sql) => cached(sql), seen: (sql, expected) => seen(sql, expected), invalidations: async () => (await streamOf(proxy.adminPort, 'mysql', '*'))!.invalidations });
});

async function streamPassed(): Promise<void> {
  const sql = 'SELECT v FROM marker WHERE k = 1';
  await cached(sql);
  await db.query('UPDATE marker SET v = v + 1 WHERE k = 1');
  const [[{ v }]] = await db.query<RowDataPacket[]>('SELECT v FROM marker WHERE k = 1') as unknown as [[{ v: number }]];
  await seen(sql, [{ v }]);
}

test('a rolled-back transaction invalidates nothing', async () => {
  const sql = 'SELECT v FROM kv WHERE k = 7';
  await cached(sql);
  await db.query('START TRANSACTION');
  await db.query('UPDATE kv SET v = 77 WHERE k = 7');
  await db.query('ROLLBACK');
  await streamPassed();
  const { delta } = await measureMySql(proxy.adminPort, () => read(app, sql));
  assert.is(delta.hits, 1, 'still cached after the rollback went by');
});

async function dumpThreads(): Promise<number[]> {
  const [rows] = await db.query<RowDataPacket[]>("SELECT ID AS id FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'");
  return rows.map((r) => r.id as number);
}

test('the dump thread killed: the cache is fenced and dropped, no stale read, then caching resumes where the stream stopped', async () => {
  const sql = 'SELECT v FROM kv WHERE k = 8';
  assert.equal(await cached(sql), [{ v: 0 }]);
  const failures = (await streamOf(proxy.adminPort, 'mysql', '*'))!.failures;
  const bypasses = await cdcDownBypasses(proxy.adminPort, 'mysql');
  for (const id of await dumpThreads()) await db.query(`KILL ${id}`);
  await waitFor('the stream to be seen lost', async () => ((await streamOf(proxy.adminPort, 'mysql', '*'))!.failures > failures ? true : undefined));
  await db.query('UPDATE kv SET v = 88 WHERE k = 8');
  const during = await read(app, sql);
  if ((await streamOf(proxy.adminPort, 'mysql', '*'))!.state !== 'up') {
    assert.equal(during, [{ v: 88 }], 'a read while the stream is down goes to the server');
    assert.ok(await cdcDownBypasses(proxy.adminPort, 'mysql') > bypasses, 'as a cdc-down bypass');
  }
  await waitForStream(proxy.adminPort, 'mysql', '*', 'up');
  assert.equal(await read(app, sql), [{ v: 88 }], 'the entry cached before the loss is gone');
  assert.equal(await cached(sql), [{ v: 88 }], 'caching resumes');
  await db.query('UPDATE kv SET v = 89 WHERE k = 8');
  await seen(sql, [{ v: 89 }]);
});

test('a restart of the server: no stale read during or after, caching resumes', async () => {
  const sql = 'SELECT v FROM kv WHERE k = 9';
  assert.equal(await cached(sql), [{ v: 0 }]);
  const failures = (await streamOf(proxy.adminPort, 'mysql', '*'))!.failures;
  await db.end();
  await server.restart();
  db = await connect(server.port);
  await db.query('UPDATE kv SET v = 99 WHERE k = 9');
  await waitFor('the stream to be seen lost', async () => ((await streamOf(proxy.adminPort, 'mysql', '*'))!.failures > failures ? true : undefined));
  await app.end().catch(() => undefined);
  app = await connect(proxy.mysqlPort);
  assert.equal(await read(app, sql), [{ v: 99 }], 'never the value cached before the restart');
  await waitForStream(proxy.adminPort, 'mysql', '*', 'up');
  assert.equal(await cached(sql), [{ v: 99 }], 'caching resumes');
  await db.query('UPDATE kv SET v = 98 WHERE k = 9');
  await seen(sql, [{ v: 98 }]);
});

test('the kept position lost (its binlogs purged while the stream was down): the stream starts from the current one, no stale read', async () => {
  await db.query("CREATE USER IF NOT EXISTS repl@'%'; GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO repl@'%'");
  const own = await startCdcProxy(['--mysql-cdc', `mysql://repl@127.0.0.1:${server.port}`, '--mysql-cdc-server-id', '777']);
  try {
    await waitForStream(own.adminPort, 'mysql', '*', 'up');
    const c = await connect(own.mysqlPort);
    const sql = 'SELECT v FROM kv WHERE k = 11';
    assert.equal(await cached(sql, c, own.adminPort), [{ v: 0 }]);
    const failures = (await streamOf(own.adminPort, 'mysql', '*'))!.failures;
    // Down and kept down: the user may no longer dump, and its dump is killed.
    await db.query("REVOKE REPLICATION SLAVE ON *.* FROM repl@'%'");
    const [dumps] = await db.query<RowDataPacket[]>("SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = 'repl' AND COMMAND LIKE 'Binlog Dump%'");
    for (const d of dumps) await db.query(`KILL ${d.id as number}`);
    await waitFor('the stream to fail', async () => ((await streamOf(own.adminPort, 'mysql', '*'))!.failures > failures ? true : undefined));
    // A write the stream never saw, then the binlog that holds it is purged.
    await db.query('UPDATE kv SET v = 111 WHERE k = 11');
    const [[{ File: holding }]] = await db.query<RowDataPacket[]>('SHOW MASTER STATUS') as unknown as [[{ File: string }]];
    // MariaDB keeps a binlog until its binlog checkpoint has moved on: rotate and purge until it is gone.
    await waitFor(`${holding} to be purged`, async () => {
      await db.query('FLUSH BINARY LOGS');
      const [[{ File: current }]] = await db.query<RowDataPacket[]>('SHOW MASTER STATUS') as unknown as [[{ File: string }]];
      await db.query(`PURGE BINARY LOGS TO '${current}'`);
      const [logs] = await db.query<RowDataPacket[]>('SHOW BINARY LOGS');
      return logs.every((l) => l.Log_name !== holding) ? true : undefined;
    }, 20_000, 300);
    await db.query("GRANT REPLICATION SLAVE ON *.* TO repl@'%'");
    await waitFor('the server to refuse the kept position', async () =>
      (/the position is gone/.test((await streamOf(own.adminPort, 'mysql', '*'))!.lastError ?? '') ? true : undefined));
    await waitForStream(own.adminPort, 'mysql', '*', 'up');
    assert.equal(await read(c, sql), [{ v: 111 }], 'never the value cached before the loss');
    assert.equal(await cached(sql, c, own.adminPort), [{ v: 111 }], 'caching resumes');
    await c.end();
  } finally {
    await own.stop();
  }
});

test('a second sidecache follows with its own server id; each sees the other\'s writes', async () => {
  const second = await startCdcProxy(['--mysql-cdc-server-id', '4242']);
  try {
    await waitForStream(second.adminPort, 'mysql', '*', 'up');
    const other = await connect(second.mysqlPort);
    const sql = 'SELECT v FROM kv WHERE k = 10';
    await cached(sql);
    await cached(sql, other, second.adminPort);
    // The earlier tests' proxies are stopped, but the server ends a dump thread only once it notices
    // its connection gone: wait for theirs to go. Two proxies keeping more than one dump each never get there.
    let dumps = 0;
    await waitFor('one dump thread per running proxy', async () => ((dumps = (await dumpThreads()).length) === 2 ? true : undefined), 15_000, 100)
      .catch(() => undefined);
    assert.is(dumps, 2, 'one dump each');
    await other.query('UPDATE kv SET v = 1010 WHERE k = 10');
    await seen(sql, [{ v: 1010 }], app);
    await app.query('UPDATE kv SET v = 1011 WHERE k = 10');
    await seen(sql, [{ v: 1011 }], other);
    await other.end();
  } finally {
    await second.stop();
  }
});

test.run();
