// test-timeout: 120
// Session state and the MySQL cache (issue 5 item 3): SET NAMES, USE, SET time_zone, SET sql_mode,
// COM_CHANGE_USER and COM_RESET_CONNECTION change what a session's results depend on. Each test
// first proves a read is served from the cache, then changes the session and checks the next read
// is the server's answer under the new state (compared with MariaDB itself), never the entry cached
// under the old one. A temporary table shadowing a real table is never answered from the real
// table's entry.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { FieldPacket, RowDataPacket } from 'mysql2/promise';
import { connectMySql, directMySql, uniqueName, type MySqlConnection } from './support/mysql-direct.js';
import { measureMySql } from './support/mysql-metrics.js';
import { DIRECT_MYSQL, DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

let proxy: RunningProxy;
const db = uniqueName('sc_msess');
const other = `${db}_b`;
const reader = `${db}_r`;
const outsider = `${db}_o`;
const open: MySqlConnection[] = [];

async function connect(extra: Parameters<typeof connectMySql>[1] = {}): Promise<MySqlConnection> {
  const c = await connectMySql(proxy.mysqlPort, { database: db, ...extra });
  open.push(c);
  return c;
}

/** Reads `sql` until it is a hit (the first read may probe and fill); returns the hit's rows and fields. */
async function cached(c: MySqlConnection, sql: string): Promise<[RowDataPacket[], FieldPacket[]]> {
  await c.query(sql);
  const { result, delta } = await measureMySql(proxy.adminPort, () => c.query<RowDataPacket[]>(sql));
  assert.is(delta.hits, 1, `"${sql}" is served from the cache before the change`);
  return result;
}

/** `sql` on a direct connection after `setup`, for what the server answers under that state. */
async function directly(setup: string[], sql: string, database = db): Promise<RowDataPacket[]> {
  const c = await connectMySql(DIRECT_MYSQL.port, { database });
  try {
    for (const s of setup) await c.query(s);
    return (await c.query<RowDataPacket[]>(sql))[0];
  } finally {
    await c.end();
  }
}

test.before(async () => {
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: DIRECT_MYSQL_URL });
  await directMySql(
    `CREATE DATABASE ${db}`,
    `CREATE DATABASE ${other}`,
    `CREATE TABLE ${db}.items (id INT PRIMARY KEY, name VARCHAR(40), ts TIMESTAMP NULL) DEFAULT CHARSET utf8mb4`,
    `INSERT INTO ${db}.items VALUES (1, 'one', '2024-01-01 12:00:00'), (2, 'twö', '2024-06-01 00:30:00')`,
    `CREATE TABLE ${other}.items (id INT PRIMARY KEY, name VARCHAR(40), ts TIMESTAMP NULL)`,
    `INSERT INTO ${other}.items VALUES (1, 'other one', NULL)`,
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
  await directMySql(
    `DROP DATABASE IF EXISTS ${db}`, `DROP DATABASE IF EXISTS ${other}`,
    `DROP USER IF EXISTS '${reader}'@'%'`, `DROP USER IF EXISTS '${outsider}'@'%'`,
  ).catch(() => undefined);
  await proxy?.stop();
});

test('SET NAMES: the result is read again in the new character set', async () => {
  const c = await connect({ charset: 'utf8mb4' });
  // CHARSET() of a literal is character_set_connection; the name's bytes follow character_set_results.
  const sql = "SELECT CHARSET('a') AS cs, name FROM items WHERE id = 2";
  const [before, beforeFields] = await cached(c, sql);
  assert.equal(before, [{ cs: 'utf8mb4', name: 'twö' }]);
  await c.query('SET NAMES latin1');
  const [after, afterFields] = await c.query<RowDataPacket[]>(sql);
  assert.equal(after, await directly(['SET NAMES latin1'], sql));
  assert.is(after[0]!.cs, 'latin1');
  assert.is.not(afterFields[1]!.characterSet, beforeFields[1]!.characterSet, 'the name column comes in latin1 now');
  // And a session that never changed keeps its entry.
  const [still] = await cached(await connect({ charset: 'utf8mb4' }), sql);
  assert.equal(still, before);
});

test('USE: the same text reads the table of the new current database', async () => {
  const c = await connect();
  const sql = 'SELECT name FROM items WHERE id = 1';
  const [mine] = await cached(c, sql);
  assert.equal(mine, [{ name: 'one' }]);
  await c.query(`USE ${other}`);
  assert.equal((await c.query<RowDataPacket[]>(sql))[0], [{ name: 'other one' }]);
  assert.equal((await c.query<RowDataPacket[]>(sql))[0], [{ name: 'other one' }], 'and its own entry from then on');
  await c.query(`USE ${db}`);
  assert.equal((await c.query<RowDataPacket[]>(sql))[0], [{ name: 'one' }]);
  // A connection that names the other database at login does not share the first one's entry.
  const b = await connect({ database: other });
  assert.equal((await b.query<RowDataPacket[]>(sql))[0], [{ name: 'other one' }]);
});

test('SET time_zone: TIMESTAMP values come in the new zone, as text and from prepared statements', async () => {
  const c = await connect();
  await c.query("SET time_zone = '+00:00'");
  const sql = 'SELECT ts FROM items WHERE id = 1';
  const [utc] = await cached(c, sql);
  await c.execute(sql);
  const { result: [utcBinary], delta } = await measureMySql(proxy.adminPort, () => c.execute<RowDataPacket[]>(sql));
  assert.is(delta.hits, 1, 'the prepared read is cached too');
  assert.equal(utc, [{ ts: '2024-01-01 12:00:00' }]);
  assert.equal(utcBinary, utc);
  await c.query("SET time_zone = '+05:30'");
  const [text] = await c.query<RowDataPacket[]>(sql);
  const [binary] = await c.execute<RowDataPacket[]>(sql);
  assert.equal(text, await directly(["SET time_zone = '+05:30'"], sql));
  assert.equal(text, [{ ts: '2024-01-01 17:30:00' }]);
  assert.equal(binary, text);
});

test('SET sql_mode: PIPES_AS_CONCAT turns || from OR into concatenation', async () => {
  const c = await connect();
  const sql = 'SELECT id || 0 AS v FROM items WHERE id = 1';
  const [or] = await cached(c, sql);
  assert.is(String(or[0]!.v), '1', 'without PIPES_AS_CONCAT || is OR');
  await c.query("SET sql_mode = CONCAT(@@sql_mode, ',PIPES_AS_CONCAT')");
  const [concat] = await c.query<RowDataPacket[]>(sql);
  assert.equal(concat, await directly(["SET sql_mode = CONCAT(@@sql_mode, ',PIPES_AS_CONCAT')"], sql));
  assert.is(String(concat[0]!.v), '10', 'with PIPES_AS_CONCAT || concatenates');
  await c.query("SET sql_mode = REPLACE(@@sql_mode, 'PIPES_AS_CONCAT', '')");
  assert.is(String((await c.query<RowDataPacket[]>(sql))[0][0]!.v), '1', 'and back');
});

test('SET sql_mode: a read right after NO_BACKSLASH_ESCAPES is stored only as the server reads it', async () => {
  const c = await connect();
  // With backslash escapes the string runs to the last quote and the text reads the other
  // database's items; under NO_BACKSLASH_ESCAPES the string is 'a\' and it reads this one's.
  const sql = `SELECT 'a\\', name FROM items WHERE id = 1 -- ', name FROM ${other}.items WHERE id = 1`;
  await c.query("SET sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')");
  const [first] = await c.query<RowDataPacket[]>(sql);
  assert.equal(first, await directly(["SET sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')"], sql));
  await c.query<RowDataPacket[]>(sql);
  const writer = await connect();
  await writer.query("UPDATE items SET name = 'renamed' WHERE id = 1");
  try {
    const [after] = await c.query<RowDataPacket[]>(sql);
    assert.is(after[0]!.name, 'renamed', 'the write to items reached the entry of the text that reads items');
  } finally {
    await writer.query("UPDATE items SET name = 'one' WHERE id = 1");
  }
});

test('COM_CHANGE_USER: the new user never gets the old user\'s cached rows', async () => {
  const c = await connect({ user: reader, password: 'pw1' });
  const sql = 'SELECT v FROM secret WHERE id = 1';
  assert.equal((await cached(c, sql))[0], [{ v: 'classified' }]);
  await c.changeUser({ user: outsider, password: 'pw2', database: db });
  const err = await c.query(sql).then(() => null, (e: Error & { errno?: number }) => e);
  assert.ok(err !== null, 'the outsider must not read the secret');
  assert.is(err.errno, 1142, 'SELECT command denied');
  // Back to the reader, in another database: the database is part of the key as well.
  await c.changeUser({ user: reader, password: 'pw1', database: db });
  assert.equal((await c.query<RowDataPacket[]>(sql))[0], [{ v: 'classified' }]);
});

test('COM_CHANGE_USER resets session settings: the zone set before it no longer applies', async () => {
  const c = await connect();
  await c.query("SET time_zone = '+09:00'");
  const sql = 'SELECT ts FROM items WHERE id = 2';
  const [tokyo] = await cached(c, sql);
  assert.equal(tokyo, [{ ts: '2024-06-01 09:30:00' }]);
  await c.changeUser({ user: DIRECT_MYSQL.user, password: DIRECT_MYSQL.password, database: db });
  const [after] = await c.query<RowDataPacket[]>(sql);
  assert.equal(after, await directly([], sql));
  assert.is.not(after[0]!.ts, tokyo[0]!.ts);
});

test('COM_RESET_CONNECTION: settings and temporary tables are gone, and the cache follows', async () => {
  const c = await connect();
  await c.query("SET time_zone = '+09:00'");
  const sql = 'SELECT ts FROM items WHERE id = 2';
  const [tokyo] = await cached(c, sql);
  await c.reset();
  const [after] = await c.query<RowDataPacket[]>(sql);
  assert.equal(after, await directly([], sql));
  assert.is.not(after[0]!.ts, tokyo[0]!.ts);

  await c.query('CREATE TEMPORARY TABLE items (id INT, name VARCHAR(40))');
  await c.query("INSERT INTO items VALUES (1, 'temporary')");
  const names = 'SELECT name FROM items WHERE id = 1';
  assert.equal((await c.query<RowDataPacket[]>(names))[0], [{ name: 'temporary' }]);
  await c.reset();
  assert.equal((await c.query<RowDataPacket[]>(names))[0], [{ name: 'one' }], 'the reset dropped the temporary table');
});

test('a temporary table shadowing a real table is never answered from the real table\'s entry, nor shared', async () => {
  const c = await connect();
  const sql = 'SELECT id, name FROM items ORDER BY id';
  const [real] = await cached(c, sql);
  assert.is(real.length, 2);
  await c.query('CREATE TEMPORARY TABLE items (id INT, name VARCHAR(40))');
  await c.query("INSERT INTO items VALUES (42, 'shadow')");
  const { result: [shadowed], delta } = await measureMySql(proxy.adminPort, async () => {
    const first = await c.query<RowDataPacket[]>(sql);
    await c.query<RowDataPacket[]>(sql);
    await c.execute<RowDataPacket[]>(sql);
    return first;
  });
  assert.equal(shadowed, [{ id: 42, name: 'shadow' }]);
  assert.is(delta.hits, 0, 'nothing is served while the temporary table exists');
  assert.equal((await c.execute<RowDataPacket[]>(sql))[0], shadowed, 'the prepared path reads the temporary table too');
  // Another session sees the real table, and the shadowing session's rows never reach it.
  const b = await connect();
  assert.equal((await b.query<RowDataPacket[]>(sql))[0], real);
  assert.equal((await b.query<RowDataPacket[]>(sql))[0], real);
  await c.query('DROP TEMPORARY TABLE items');
  assert.equal((await c.query<RowDataPacket[]>(sql))[0], real, 'after the drop the real table again');
});

test.run();
