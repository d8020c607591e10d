// test-timeout: 180
// The MySQL result cache through the real bin/sidecache in front of the local MariaDB: repeated
// reads (COM_QUERY and prepared statements) are answered without reaching the server, and results
// that depend on who asks or on session settings are never shared.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RowDataPacket } from 'mysql2/promise';
import { connectMySql, directMySql, uniqueName, type MySqlConnection } from './support/mysql-direct.js';
import { measureMySql, sessionCounter } from './support/mysql-metrics.js';
import { DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

let proxy: RunningProxy;
const db = uniqueName('sc_mcache');
const reader = `${db}_r`;
const outsider = `${db}_o`;
const open: MySqlConnection[] = [];

async function connect(extra: Parameters<typeof connectMySql>[1] = {}): Promise<MySqlConnection> {
  const c = await connectMySql(proxy.mysqlPort, { database: db, ...extra });
  open.push(c);
  return c;
}

test.before(async () => {
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: DIRECT_MYSQL_URL });
  await directMySql(
    `CREATE DATABASE ${db}`,
    `CREATE TABLE ${db}.items (id INT PRIMARY KEY, name VARCHAR(40), ts TIMESTAMP NULL)`,
    `INSERT INTO ${db}.items VALUES (1, 'one', '2024-01-01 12:00:00'), (2, 'twö', '2024-06-01 00:30:00'), (3, 'three', NULL)`,
    `CREATE TABLE ${db}.secret (id INT PRIMARY KEY, v VARCHAR(20))`,
    `INSERT INTO ${db}.secret VALUES (1, 'classified')`,
    `CREATE USER '${reader}'@'%' IDENTIFIED BY 'pw1'`,
    `CREATE USER '${outsider}'@'%' IDENTIFIED BY 'pw2'`,
    `GRANT SELECT ON ${db}.* TO '${reader}'@'%'`,
    `GRANT SELECT ON ${db}.items TO '${outsider}'@'%'`,
  );
});

test.after(async () => {
  for (const c of open) await c.end().catch(() => undefined);
  await directMySql(`DROP DATABASE IF EXISTS ${db}`, `DROP USER IF EXISTS '${reader}'@'%'`, `DROP USER IF EXISTS '${outsider}'@'%'`).catch(() => undefined);
  await proxy?.stop();
});

test('short-lived connections: a new connection with the same login hits from its first read', async () => {
  const sql = `SELECT id, name AS short_lived FROM items ORDER BY id`;
  const first = await connect();
  const [expected] = await first.query<RowDataPacket[]>(sql);
  await first.end();
  const { result, delta } = await measureMySql(proxy.adminPort, async () => {
    const rows: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await connectMySql(proxy.mysqlPort, { database: db });
      rows.push((await c.query<RowDataPacket[]>(sql))[0]);
      await c.end();
    }
    return rows;
  });
  for (const rows of result) assert.equal(rows, expected);
  assert.is(delta.hits, 3, JSON.stringify(delta));
  assert.is(delta.misses, 0);
});

test('a repeated COM_QUERY is a hit: same rows, and the server does not execute it', async () => {
  const c = await connect();
  const sql = 'SELECT id, name FROM items WHERE id <= 2 ORDER BY id';
  const { result: first, delta: missDelta } = await measureMySql(proxy.adminPort, () => c.query<RowDataPacket[]>(sql));
  assert.is(missDelta.misses, 1);
  const before = await sessionCounter(c, 'Com_select');
  const { result: repeats, delta } = await measureMySql(proxy.adminPort, async () => {
    const out = [];
    for (let i = 0; i < 5; i++) out.push((await c.query<RowDataPacket[]>(sql))[0]);
    return out;
  });
  assert.is(delta.hits, 5, 'five hits');
  assert.is(delta.misses, 0);
  assert.is(await sessionCounter(c, 'Com_select'), before, 'MariaDB executed no SELECT for the hits');
  for (const rows of repeats) assert.equal(rows, first[0]);
  assert.equal(first[0].map((r) => r.name), ['one', 'twö']);
});

/** A session reads its context with the proxy's probe before its first cacheable read; do that first. */
async function warm(c: MySqlConnection): Promise<void> {
  await c.query('SELECT 1 FROM items WHERE id = 0');
}

test('another connection of the same user and settings shares the entry', async () => {
  const sql = 'SELECT name FROM items WHERE id = 3';
  const a = await connect();
  await a.query(sql);
  const b = await connect();
  await warm(b);
  const { result, delta } = await measureMySql(proxy.adminPort, () => b.query<RowDataPacket[]>(sql));
  assert.is(delta.hits, 1);
  assert.equal(result[0], [{ name: 'three' }]);
});

test('execute(): a repeated prepared statement with the same parameters is a hit; other parameters are not', async () => {
  const c = await connect();
  const sql = 'SELECT id, name FROM items WHERE id = ?';
  const { delta: first } = await measureMySql(proxy.adminPort, () => c.execute(sql, [1]));
  assert.is(first.misses, 1);
  const before = await sessionCounter(c, 'Com_stmt_execute');
  const { result, delta } = await measureMySql(proxy.adminPort, async () => {
    const out = [];
    for (let i = 0; i < 4; i++) out.push((await c.execute<RowDataPacket[]>(sql, [1]))[0]);
    return out;
  });
  assert.is(delta.hits, 4);
  assert.is(await sessionCounter(c, 'Com_stmt_execute'), before, 'MariaDB executed nothing for the hits');
  for (const rows of result) assert.equal(rows, [{ id: 1, name: 'one' }]);
  const { result: other, delta: otherDelta } = await measureMySql(proxy.adminPort, () => c.execute<RowDataPacket[]>(sql, [2]));
  assert.is(otherDelta.hits, 0, 'another parameter value is another entry');
  assert.equal(other[0], [{ id: 2, name: 'twö' }]);
  // A fresh connection prepares the statement itself, then hits.
  const d = await connect();
  await warm(d);
  const { result: fresh, delta: freshDelta } = await measureMySql(proxy.adminPort, () => d.execute<RowDataPacket[]>(sql, [1]));
  assert.is(freshDelta.hits, 1);
  assert.equal(fresh[0], [{ id: 1, name: 'one' }]);
});

test('after an execution answered from the cache, the server still gets the parameter types', async () => {
  // mysql2 sends types with each execution; this checks the rewrite path does not break a
  // statement whose first execution was a hit (the server never saw its types).
  const a = await connect();
  await a.execute('SELECT name FROM items WHERE id = ?', [3]);
  const b = await connect();
  await warm(b);
  const [hit] = await b.execute<RowDataPacket[]>('SELECT name FROM items WHERE id = ?', [3]);
  const [miss] = await b.execute<RowDataPacket[]>('SELECT name FROM items WHERE id = ?', [1]);
  assert.equal(hit, [{ name: 'three' }]);
  assert.equal(miss, [{ name: 'one' }]);
});

test('NOW(), RAND(), UUID() and CONNECTION_ID() are never cached', async () => {
  const c = await connect();
  for (const sql of ['SELECT NOW(6), id FROM items WHERE id = 1', 'SELECT RAND() AS r', 'SELECT UUID() AS u', 'SELECT CONNECTION_ID() AS c', 'SELECT LAST_INSERT_ID() AS l']) {
    const { result, delta } = await measureMySql(proxy.adminPort, async () => [await c.query<RowDataPacket[]>(sql), await c.query<RowDataPacket[]>(sql)]);
    assert.is(delta.hits, 0, sql);
    assert.is(delta.misses, 0, sql);
    assert.is(delta.bypass, 2, sql);
    if (sql.includes('RAND') || sql.includes('UUID')) assert.is.not(JSON.stringify(result[0]![0]), JSON.stringify(result[1]![0]), sql);
  }
});

test('different users never share: a user without the grant gets the server\'s error, not the cached rows', async () => {
  const sql = 'SELECT v FROM secret';
  const r = await connect({ user: reader, password: 'pw1' });
  await r.query(sql);
  const { delta } = await measureMySql(proxy.adminPort, () => r.query(sql));
  assert.is(delta.hits, 1, 'the reader hits its own entry');
  const o = await connect({ user: outsider, password: 'pw2' });
  const err = await o.query(sql).then(() => null, (e: Error & { errno?: number }) => e);
  assert.ok(err !== null, 'the outsider must not read the secret');
  assert.is(err.errno, 1142, 'SELECT command denied');
});

test('different time_zone, sql_mode or character set never share an entry', async () => {
  const tsSql = 'SELECT CAST(ts AS CHAR) AS t FROM items WHERE id = 2';
  const utc = await connect();
  await utc.query("SET time_zone = '+00:00'");
  const east = await connect();
  await east.query("SET time_zone = '+05:00'");
  const [u1] = await utc.query<RowDataPacket[]>(tsSql);
  const [u2] = await utc.query<RowDataPacket[]>(tsSql);
  const [e1] = await east.query<RowDataPacket[]>(tsSql);
  const direct = await directMySql("SET time_zone = '+05:00'", tsSql.replace('items', `${db}.items`)) as RowDataPacket[];
  assert.equal(u1, u2);
  assert.equal(e1, direct, 'the +05:00 session reads its own zone');
  assert.is.not(u1[0]!.t, e1[0]!.t);

  const concat = "SELECT name || 'x' AS v FROM items WHERE id = 1";
  const plain = await connect();
  const pipes = await connect();
  await pipes.query("SET sql_mode = CONCAT(@@sql_mode, ',PIPES_AS_CONCAT')");
  await plain.query(concat);
  const [p1] = await plain.query<RowDataPacket[]>(concat);
  const [p2] = await pipes.query<RowDataPacket[]>(concat);
  assert.is(Number(p1[0]!.v), 0, 'without PIPES_AS_CONCAT || is OR');
  assert.is(p2[0]!.v, 'onex', 'with PIPES_AS_CONCAT || concatenates');

  const nameSql = 'SELECT name FROM items WHERE id = 2';
  const utf8 = await connect({ charset: 'utf8mb4' });
  const latin = await connect({ charset: 'latin1' });
  await warm(latin);
  await utf8.query(nameSql);
  await utf8.query(nameSql);
  const { result: l1, delta } = await measureMySql(proxy.adminPort, () => latin.query<RowDataPacket[]>(nameSql));
  assert.is(delta.hits, 0, 'a latin1 connection does not get the utf8mb4 bytes');
  assert.equal(l1[0], [{ name: 'twö' }]);
});

/**
 * Counts the rows named 'twö' twice, then 'twé', through `count` on a latin1 connection: 'ö' and
 * 'é' are 0xF6 and 0xE9 there, and each alone decodes as UTF-8 to U+FFFD. Keyed by their UTF-8
 * decoding, the two statements shared one entry and the second got the first's rows.
 */
async function latin1NamesApart(count: (c: MySqlConnection, name: string) => Promise<number>): Promise<void> {
  const c = await connect({ charset: 'latin1' });
  assert.is(await count(c, 'twö'), 1);
  assert.is(await count(c, 'twö'), 1);
  const { result, delta } = await measureMySql(proxy.adminPort, () => count(c, 'twé'));
  assert.is(result, 0, 'no row is named twé');
  assert.is(delta.hits, 0, JSON.stringify(delta));
}

test('statements that differ only in bytes that are not UTF-8 are not confused (a latin1 client)', async () => {
  await latin1NamesApart(async (c, name) => Number((await c.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM items WHERE name = '${name}'`))[0][0]!.n));
});

test('prepared statements that differ only in bytes that are not UTF-8 are not confused either', async () => {
  await latin1NamesApart(async (c, name) => Number((await c.execute<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM items WHERE name = '${name}' AND id > ?`, [0]))[0][0]!.n));
});

test('a SET that changes a keyed setting is seen: the session re-reads its context', async () => {
  const c = await connect();
  const sql = 'SELECT CAST(ts AS CHAR) AS t FROM items WHERE id = 1';
  await c.query("SET time_zone = '+00:00'");
  const [before] = await c.query<RowDataPacket[]>(sql);
  await c.query(sql);
  await c.query("SET time_zone = '+01:00'");
  const [after] = await c.query<RowDataPacket[]>(sql);
  assert.is(before[0]!.t, '2024-01-01 12:00:00');
  assert.is(after[0]!.t, '2024-01-01 13:00:00');
});

test('views, temporary tables and reads with warnings are not cached', async () => {
  await directMySql(`CREATE VIEW ${db}.v_items AS SELECT id, name FROM ${db}.items`);
  const c = await connect();
  const { delta } = await measureMySql(proxy.adminPort, async () => {
    await c.query('SELECT * FROM v_items ORDER BY id');
    await c.query('SELECT * FROM v_items ORDER BY id');
  });
  assert.is(delta.hits, 0, 'a view');
  assert.is(delta.bypassByReason.view, 2);

  await c.query('CREATE TEMPORARY TABLE items (id INT)');
  await c.query('INSERT INTO items VALUES (42)');
  const [own] = await c.query<RowDataPacket[]>('SELECT id FROM items');
  assert.equal(own, [{ id: 42 }], 'the temporary table shadows the base table');
  const other = await connect();
  const [base] = await other.query<RowDataPacket[]>('SELECT id FROM items');
  assert.is(base.length, 3, 'other sessions see the base table');
  const [again] = await c.query<RowDataPacket[]>('SELECT id FROM items');
  assert.equal(again, [{ id: 42 }]);

  const w = await connect();
  const warnSql = "SELECT CAST('12abc' AS SIGNED) AS n FROM items WHERE id = 1";
  const { delta: warn } = await measureMySql(proxy.adminPort, async () => {
    await w.query(warnSql);
    await w.query(warnSql);
  });
  assert.is(warn.hits, 0, 'a result with warnings is not stored');
});

test.run();
