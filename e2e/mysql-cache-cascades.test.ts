// test-timeout: 120
// Writes whose effects reach tables the statement does not name, and DDL, through the MySQL side of
// the proxy from another connection: InnoDB foreign-key cascades (ON DELETE CASCADE, ON UPDATE SET
// NULL), a CALL of a procedure that writes, REVOKE/GRANT, RENAME TABLE, DROP + CREATE with the same
// name and ALTER TABLE ADD COLUMN. Each test first proves the read was a hit, so without the
// invalidation the next read would be answered from the stale entry.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RowDataPacket } from 'mysql2/promise';
import { connectMySql, directMySql, uniqueName, type MySqlConnection } from './support/mysql-direct.js';
import { measureMySql } from './support/mysql-metrics.js';
import { DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

const db = uniqueName('sc_mcasc');
const USER = `${db}_u`;
const PASSWORD = 'pw-casc';
/** May delete from `orders` but not see the cascade into `order_lines` (information_schema shows a
 * foreign key only to users with a privilege on its child table). */
const CLERK = `${db}_c`;
let proxy: RunningProxy;
const open: MySqlConnection[] = [];
/** root, through the proxy: reads. */
let reader: MySqlConnection;
/** root, through the proxy: writes and DDL. */
let writer: MySqlConnection;

async function connect(extra: Parameters<typeof connectMySql>[1] = {}): Promise<MySqlConnection> {
  const c = await connectMySql(proxy.mysqlPort, { database: db, ...extra });
  open.push(c);
  return c;
}

async function rows(c: MySqlConnection, sql: string): Promise<RowDataPacket[]> {
  const [r] = await c.query<RowDataPacket[]>(sql);
  return r;
}

/** Reads `sql` until it is a hit; returns the rows. */
async function primed(c: MySqlConnection, sql: string): Promise<RowDataPacket[]> {
  await c.query(sql);
  const { result, delta } = await measureMySql(proxy.adminPort, () => rows(c, sql));
  assert.is(delta.hits, 1, `the second read must be a hit: ${sql} ${JSON.stringify(delta)}`);
  return result;
}

/** What MariaDB itself answers, on a direct connection in the test database. */
async function truth(sql: string): Promise<unknown> {
  return directMySql(`USE ${db}`, sql);
}

async function errnoOf(c: MySqlConnection, sql: string): Promise<number> {
  const err = await c.query(sql).then(() => null, (e: Error & { errno?: number }) => e);
  assert.ok(err !== null, `${sql} succeeded`);
  return err.errno ?? -1;
}

test.before(async () => {
  // Created before the proxy starts: the proxy learns about the foreign keys from the catalog.
  await directMySql(
    `CREATE DATABASE ${db}`,
    `CREATE TABLE ${db}.parent (id INT PRIMARY KEY, code INT UNIQUE) ENGINE=InnoDB`,
    `CREATE TABLE ${db}.child_del (id INT PRIMARY KEY, parent_id INT,
       FOREIGN KEY (parent_id) REFERENCES ${db}.parent (id) ON DELETE CASCADE) ENGINE=InnoDB`,
    `CREATE TABLE ${db}.child_upd (id INT PRIMARY KEY, parent_code INT NULL,
       FOREIGN KEY (parent_code) REFERENCES ${db}.parent (code) ON UPDATE SET NULL) ENGINE=InnoDB`,
    `CREATE TABLE ${db}.grandchild (id INT PRIMARY KEY, child_id INT,
       FOREIGN KEY (child_id) REFERENCES ${db}.child_del (id) ON DELETE CASCADE) ENGINE=InnoDB`,
    `INSERT INTO ${db}.parent VALUES (1, 10), (2, 20), (4, 40)`,
    `INSERT INTO ${db}.child_del VALUES (100, 1), (101, 2)`,
    `INSERT INTO ${db}.child_upd VALUES (200, 20), (201, 40)`,
    `INSERT INTO ${db}.grandchild VALUES (300, 100), (301, 101)`,
    `CREATE TABLE ${db}.counter (id INT PRIMARY KEY, n INT) ENGINE=InnoDB`,
    `INSERT INTO ${db}.counter VALUES (1, 0)`,
    `CREATE PROCEDURE ${db}.bump(IN by_n INT) MODIFIES SQL DATA UPDATE ${db}.counter SET n = n + by_n WHERE id = 1`,
    `CREATE TABLE ${db}.secret (id INT PRIMARY KEY, v VARCHAR(20))`,
    `INSERT INTO ${db}.secret VALUES (1, 'classified')`,
    `CREATE USER '${USER}'@'%' IDENTIFIED BY '${PASSWORD}'`,
    `GRANT SELECT ON ${db}.secret TO '${USER}'@'%'`,
    `CREATE TABLE ${db}.orders (id INT PRIMARY KEY) ENGINE=InnoDB`,
    `CREATE TABLE ${db}.order_lines (id INT PRIMARY KEY, order_id INT,
       FOREIGN KEY (order_id) REFERENCES ${db}.orders (id) ON DELETE CASCADE) ENGINE=InnoDB`,
    `INSERT INTO ${db}.orders VALUES (7), (8)`,
    `INSERT INTO ${db}.order_lines VALUES (70, 7), (80, 8)`,
    `CREATE USER '${CLERK}'@'%' IDENTIFIED BY '${PASSWORD}'`,
    `GRANT SELECT, DELETE ON ${db}.orders TO '${CLERK}'@'%'`,
  );
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: DIRECT_MYSQL_URL });
  reader = await connect();
  writer = await connect();
});

test.after(async () => {
  for (const c of open) await c.end().catch(() => undefined);
  await directMySql(`DROP DATABASE IF EXISTS ${db}`, `DROP USER IF EXISTS '${USER}'@'%'`, `DROP USER IF EXISTS '${CLERK}'@'%'`).catch(() => undefined);
  await proxy?.stop();
});

test('ON DELETE CASCADE: deleting a parent row shows in cached reads of the child and grandchild tables', async () => {
  const CHILD = 'SELECT id, parent_id FROM child_del ORDER BY id';
  const GRANDCHILD = 'SELECT id, child_id FROM grandchild ORDER BY id';
  await primed(reader, CHILD);
  await primed(reader, GRANDCHILD);
  await writer.query('DELETE FROM parent WHERE id = 1');
  assert.equal(await rows(reader, CHILD), await truth(CHILD));
  assert.equal(await rows(reader, CHILD), [{ id: 101, parent_id: 2 }]);
  assert.equal(await rows(reader, GRANDCHILD), [{ id: 301, child_id: 101 }], 'the cascade two levels down');
});

test('ON UPDATE SET NULL: changing a parent key shows in cached reads of the child table', async () => {
  const CHILD = 'SELECT id, parent_code FROM child_upd ORDER BY id';
  await primed(reader, CHILD);
  await writer.query('UPDATE parent SET code = 21 WHERE id = 2');
  assert.equal(await rows(reader, CHILD), await truth(CHILD));
  assert.equal((await rows(reader, CHILD)).map((r) => r.parent_code), [null, 40]);
});

test('a prepared DELETE of a parent row cascades into a cached read of the child table', async () => {
  await writer.query('INSERT INTO parent VALUES (3, 30)');
  await writer.query('INSERT INTO child_del VALUES (102, 3)');
  const CHILD = 'SELECT id FROM child_del ORDER BY id';
  assert.equal((await primed(reader, CHILD)).map((r) => r.id), [101, 102]);
  await writer.execute('DELETE FROM parent WHERE id = ?', [3]);
  assert.equal((await rows(reader, CHILD)).map((r) => r.id), [101]);
});

test('CALL of a procedure that writes a table: cached reads of it are fresh after the CALL', async () => {
  const READ = 'SELECT n FROM counter WHERE id = 1';
  const PREPARED = 'SELECT n FROM counter WHERE id = ?';
  assert.equal(await primed(reader, READ), [{ n: 0 }]);
  await reader.execute(PREPARED, [1]);
  await reader.execute(PREPARED, [1]);
  await writer.query('CALL bump(5)');
  assert.equal(await rows(reader, READ), [{ n: 5 }]);
  const [prepared] = await reader.execute<RowDataPacket[]>(PREPARED, [1]);
  assert.equal(prepared, [{ n: 5 }]);
  await primed(reader, READ);
  await writer.execute('CALL bump(?)', [2]);
  assert.equal(await rows(reader, READ), [{ n: 7 }], 'a CALL sent as a prepared statement');
});

test('REVOKE through the proxy: the user\'s next read fails with 1142, not the cached rows; GRANT restores it', async () => {
  const user = await connect({ user: USER, password: PASSWORD });
  const READ = 'SELECT v FROM secret';
  assert.equal(await primed(user, READ), [{ v: 'classified' }]);
  await writer.query(`REVOKE SELECT ON ${db}.secret FROM '${USER}'@'%'`);
  assert.is(await errnoOf(user, READ), 1142, 'SELECT command denied');
  await writer.query(`GRANT SELECT ON ${db}.secret TO '${USER}'@'%'`);
  assert.equal(await rows(user, READ), [{ v: 'classified' }]);
});

test('RENAME TABLE: the old name fails, a table renamed into the name is read afresh', async () => {
  await writer.query('CREATE TABLE cur (id INT, v VARCHAR(10))');
  await writer.query("INSERT INTO cur VALUES (1, 'old')");
  await writer.query('CREATE TABLE nxt (id INT, v VARCHAR(10))');
  await writer.query("INSERT INTO nxt VALUES (1, 'new'), (2, 'new')");
  const READ = 'SELECT id, v FROM cur ORDER BY id';
  assert.equal(await primed(reader, READ), [{ id: 1, v: 'old' }]);
  await writer.query('RENAME TABLE cur TO was_cur');
  assert.is(await errnoOf(reader, READ), 1146, 'table does not exist');
  await primed(reader, 'SELECT id, v FROM nxt ORDER BY id');
  await writer.query('RENAME TABLE nxt TO cur');
  assert.equal(await rows(reader, READ), [{ id: 1, v: 'new' }, { id: 2, v: 'new' }]);
  assert.is(await errnoOf(reader, 'SELECT id, v FROM nxt ORDER BY id'), 1146);
  await primed(reader, READ);
  await writer.query('ALTER TABLE cur RENAME TO cur2');
  assert.is(await errnoOf(reader, READ), 1146, 'ALTER TABLE ... RENAME');
});

test('DROP TABLE, then CREATE TABLE with the same name: the next read sees the new table', async () => {
  await writer.query('CREATE TABLE again (id INT, v VARCHAR(10))');
  await writer.query("INSERT INTO again VALUES (1, 'first')");
  const READ = 'SELECT * FROM again ORDER BY id';
  assert.equal(await primed(reader, READ), [{ id: 1, v: 'first' }]);
  await writer.query('DROP TABLE again');
  assert.is(await errnoOf(reader, READ), 1146);
  await writer.query('CREATE TABLE again (id INT, v VARCHAR(10), extra INT DEFAULT 7)');
  await writer.query("INSERT INTO again (id, v) VALUES (1, 'second')");
  assert.equal(await rows(reader, READ), [{ id: 1, v: 'second', extra: 7 }]);
});

test('ALTER TABLE ADD COLUMN: SELECT * returns the new shape, text and prepared', async () => {
  await writer.query('CREATE TABLE shape (id INT PRIMARY KEY)');
  await writer.query('INSERT INTO shape VALUES (1)');
  const READ = 'SELECT * FROM shape';
  const PREPARED = 'SELECT * FROM shape WHERE id = ?';
  await primed(reader, READ);
  await reader.execute(PREPARED, [1]);
  await reader.execute(PREPARED, [1]);
  await writer.query("ALTER TABLE shape ADD COLUMN label VARCHAR(10) NOT NULL DEFAULT 'x'");
  assert.equal(await rows(reader, READ), [{ id: 1, label: 'x' }]);
  // A statement prepared before the ALTER: the server re-prepares it; the cache must not answer with
  // the old shape either.
  const [prepared] = await reader.execute<RowDataPacket[]>(PREPARED, [1]);
  assert.equal(prepared, [{ id: 1, label: 'x' }]);
});


test('a probe leaves out the fan-out search once the database\'s fan-out is known for this catalog generation', async () => {
  // The search scans every database's foreign keys (about ten temporary tables on MariaDB); it ran
  // again at every new statement's probe in every session. SHOW STATUS goes upstream on the
  // client's own server session, which is the one the proxy probes in.
  const session = await connect();
  await primed(session, 'SELECT id FROM parent ORDER BY id');
  const tmpTables = async (): Promise<number> => Number((await rows(session, "SHOW SESSION STATUS LIKE 'Created_tmp_tables'"))[0]!.Value);
  const before = await tmpTables();
  await primed(session, 'SELECT id, n FROM counter ORDER BY id');
  const made = (await tmpTables()) - before;
  // SHOW STATUS makes one of its own, the probe's table check at most one more.
  assert.ok(made <= 2, `a new statement's probe made ${made} temporary tables: the fan-out search ran again`);
  // The fan-out it kept still widens a write to a parent table into its children.
  const CHILD = 'SELECT id FROM child_del ORDER BY id';
  const cached = await primed(session, CHILD);
  await writer.query('INSERT INTO parent VALUES (5, 50)');
  await writer.query('INSERT INTO child_del VALUES (105, 5)');
  assert.equal((await rows(session, CHILD)).length, cached.length + 1);
  await writer.query('DELETE FROM parent WHERE id = 5');
  assert.equal(await rows(session, CHILD), await truth(CHILD));
});

test('a cascade the writing user cannot see: its delete still shows in cached reads of the child table', async () => {
  const LINES = 'SELECT id, order_id FROM order_lines ORDER BY id';
  await primed(reader, LINES);
  const clerk = await connect({ user: CLERK, password: PASSWORD });
  // The clerk's own read is probed under the clerk's privileges, which hide the foreign key.
  assert.equal(await rows(clerk, 'SELECT id FROM orders ORDER BY id'), [{ id: 7 }, { id: 8 }]);
  await clerk.query('DELETE FROM orders WHERE id = 7');
  assert.equal(await rows(reader, LINES), [{ id: 80, order_id: 8 }]);
});

test.run();
