// test-timeout: 180
// Read-your-writes through the MySQL cache: every write form committed through the proxy, from
// another connection, is seen by the next read; nothing is cached inside a transaction (explicit or
// autocommit=0); a transaction's writes are seen once it commits; entries survive a rollback.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RowDataPacket } from 'mysql2/promise';
import { connectMySql, directMySql, uniqueName, type MySqlConnection } from './support/mysql-direct.js';
import { measureMySql } from './support/mysql-metrics.js';
import { BASE_CAPABILITIES, CLIENT, MARIADB_CLIENT_STMT_BULK_OPERATIONS, RawMySql, command, isErr } from './support/mysql-raw.js';
import { DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

let proxy: RunningProxy;
const db = uniqueName('sc_mwrite');
const open: MySqlConnection[] = [];
let reader: MySqlConnection;
let writer: MySqlConnection;

async function connect(): Promise<MySqlConnection> {
  const c = await connectMySql(proxy.mysqlPort, { database: db, multipleStatements: true });
  open.push(c);
  return c;
}

test.before(async () => {
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: DIRECT_MYSQL_URL });
  await directMySql(
    `CREATE DATABASE ${db}`,
    `CREATE TABLE ${db}.acct (id INT PRIMARY KEY, bal INT NOT NULL) ENGINE=InnoDB`,
    `CREATE TABLE ${db}.other (id INT PRIMARY KEY, acct_id INT, note VARCHAR(20)) ENGINE=InnoDB`,
  );
  reader = await connect();
  writer = await connect();
});

test.after(async () => {
  for (const c of open) await c.end().catch(() => undefined);
  await directMySql(`DROP DATABASE IF EXISTS ${db}`).catch(() => undefined);
  await proxy?.stop();
});

async function reset(): Promise<void> {
  await directMySql(`DELETE FROM ${db}.acct`, `INSERT INTO ${db}.acct VALUES (1, 100), (2, 200)`,
    `DELETE FROM ${db}.other`, `INSERT INTO ${db}.other VALUES (1, 1, 'a')`);
  // Writes made directly are not seen by the proxy: drop what it cached with a write of its own.
  await writer.query('DELETE FROM acct WHERE id = -1');
  await writer.query('DELETE FROM other WHERE id = -1');
}

const READ = 'SELECT id, bal FROM acct ORDER BY id';
const READ_PREPARED = 'SELECT bal FROM acct WHERE id = ?';

/** Reads twice (so the entry is filled and hit), returns the rows. */
async function cachedRead(): Promise<unknown[]> {
  await reader.query(READ);
  const [rows] = await reader.query<RowDataPacket[]>(READ);
  await reader.execute(READ_PREPARED, [1]);
  return rows;
}

async function direct(): Promise<unknown> {
  return directMySql(`SELECT id, bal FROM ${db}.acct ORDER BY id`);
}

const WRITES: [string, string][] = [
  ['INSERT', 'INSERT INTO acct VALUES (3, 300)'],
  ['UPDATE', 'UPDATE acct SET bal = bal + 1 WHERE id = 1'],
  ['DELETE', 'DELETE FROM acct WHERE id = 2'],
  ['REPLACE', 'REPLACE INTO acct VALUES (1, 111)'],
  ['INSERT ... ON DUPLICATE KEY UPDATE', 'INSERT INTO acct VALUES (1, 0) ON DUPLICATE KEY UPDATE bal = bal * 2'],
  ['TRUNCATE', 'TRUNCATE TABLE acct'],
  ['multi-table UPDATE', "UPDATE acct a JOIN other o ON o.acct_id = a.id SET a.bal = 7, o.note = 'b'"],
  ['multi-table DELETE', 'DELETE a FROM acct a JOIN other o ON o.acct_id = a.id'],
  ['a prepared UPDATE', 'prepared:UPDATE acct SET bal = ? WHERE id = ?'],
];

for (const [name, sql] of WRITES) {
  test(`read-your-writes from another connection: ${name}`, async () => {
    await reset();
    const before = await cachedRead();
    const { delta } = await measureMySql(proxy.adminPort, () => reader.query(READ));
    assert.is(delta.hits, 1, 'the read was cached before the write');
    if (sql.startsWith('prepared:')) await writer.execute(sql.slice('prepared:'.length), [55, 1]);
    else await writer.query(sql);
    const [after] = await reader.query<RowDataPacket[]>(READ);
    assert.equal(after, await direct(), 'the read after the write sees it');
    assert.is.not(JSON.stringify(after), JSON.stringify(before));
    const [prepared] = await reader.execute<RowDataPacket[]>(READ_PREPARED, [1]);
    assert.equal(prepared, ((await direct()) as RowDataPacket[]).filter((r) => r.id === 1).map((r) => ({ bal: r.bal })));
  });
}

test('nothing is cached inside a transaction; its writes are seen once it commits', async () => {
  await reset();
  await cachedRead();
  const { delta } = await measureMySql(proxy.adminPort, async () => {
    await reader.query('START TRANSACTION');
    await reader.query(READ);
    await reader.query(READ);
    await reader.query('COMMIT');
  });
  assert.is(delta.hits, 0);
  assert.is(delta.misses, 0);
  assert.ok((delta.bypassByReason['in-transaction'] ?? 0) >= 2);

  await writer.query('START TRANSACTION');
  await writer.query('UPDATE acct SET bal = 1 WHERE id = 1');
  // Another session reads the committed state meanwhile (and may cache it).
  const [during] = await reader.query<RowDataPacket[]>(READ);
  assert.equal(during.map((r) => r.bal), [100, 200]);
  await reader.query(READ);
  await writer.query('COMMIT');
  const [after] = await reader.query<RowDataPacket[]>(READ);
  assert.equal(after.map((r) => r.bal), [1, 200], 'the commit invalidated what was read during the transaction');
});

test('autocommit=0 counts as a transaction: no hits, writes seen at COMMIT', async () => {
  await reset();
  await cachedRead();
  const c = await connect();
  await c.query('SET autocommit = 0');
  const { delta } = await measureMySql(proxy.adminPort, async () => {
    await c.query(READ);
    await c.query(READ);
  });
  assert.is(delta.hits, 0, 'no hits with autocommit off');
  await c.query('UPDATE acct SET bal = 5 WHERE id = 2');
  await reader.query(READ);
  await c.query('COMMIT');
  const [after] = await reader.query<RowDataPacket[]>(READ);
  assert.equal(after.map((r) => r.bal), [100, 5]);
  await c.query('SET autocommit = 1');
});

test('entries filled during a transaction that rolls back survive it', async () => {
  await reset();
  await writer.query('START TRANSACTION');
  await writer.query('UPDATE acct SET bal = 0');
  await reader.query(READ); // fills from the committed state
  await writer.query('ROLLBACK');
  const { result, delta } = await measureMySql(proxy.adminPort, () => reader.query<RowDataPacket[]>(READ));
  assert.is(delta.hits, 1, 'the rollback invalidated nothing');
  assert.equal(result[0].map((r) => r.bal), [100, 200]);
});

test('a batch sent as COM_STMT_BULK_EXECUTE (MariaDB array binding, Connector/J batches) invalidates what its statement writes', async () => {
  await reset();
  assert.equal(await cachedRead(), [{ id: 1, bal: 100 }, { id: 2, bal: 200 }]);
  const raw = await RawMySql.login(proxy.mysqlPort, {
    database: db,
    capabilities: BASE_CAPABILITIES & ~CLIENT.LONG_PASSWORD, // LONG_PASSWORD clear: a MariaDB client
    mariaDbCapabilities: MARIADB_CLIENT_STMT_BULK_OPERATIONS,
  });
  try {
    raw.send(command(0x16, 'INSERT INTO acct (id, bal) VALUES (?, ?)')); // COM_STMT_PREPARE
    const ok = await raw.readPacket();
    assert.is(ok.payload[0], 0x00, 'prepared');
    const id = ok.payload.readUInt32LE(1);
    for (let i = 0; i < 2 + 1; i++) await raw.readPacket(); // two parameter definitions, EOF
    // COM_STMT_BULK_EXECUTE: statement id, flags SEND_TYPES_TO_SERVER, a type (LONGLONG, signed)
    // per parameter, then per row an indicator (0: a value follows) and the value per parameter.
    const longlong = (n: number): Buffer => {
      const b = Buffer.alloc(9);
      b.writeBigInt64LE(BigInt(n), 1);
      return b;
    };
    const bulk = Buffer.alloc(7);
    bulk.writeUInt32LE(id, 0);
    bulk.writeUInt16LE(128, 4);
    raw.send(command(0xfa, Buffer.concat([bulk.subarray(0, 6), Buffer.from([0x08, 0, 0x08, 0]), longlong(3), longlong(300), longlong(4), longlong(400)])));
    const reply = await raw.readPacket();
    assert.not.ok(isErr(reply), reply.payload.toString());
    assert.is(reply.payload[0], 0x00, 'OK');
  } finally {
    raw.destroy();
  }
  const { result: [rows], delta } = await measureMySql(proxy.adminPort, () => reader.query<RowDataPacket[]>(READ));
  assert.equal(rows, [{ id: 1, bal: 100 }, { id: 2, bal: 200 }, { id: 3, bal: 300 }, { id: 4, bal: 400 }]);
  assert.is(delta.hits, 0, 'the entry filled before the batch was dropped');
});

test('a write in a multi-statement text and DDL invalidate', async () => {
  await reset();
  await cachedRead();
  await writer.query('SELECT 1; UPDATE acct SET bal = 9 WHERE id = 1');
  const [a] = await reader.query<RowDataPacket[]>(READ);
  assert.equal(a.map((r) => r.bal), [9, 200]);
  await cachedRead();
  await writer.query('ALTER TABLE acct ADD COLUMN extra INT DEFAULT 3');
  const [b] = await reader.query<RowDataPacket[]>('SELECT * FROM acct ORDER BY id');
  assert.equal(b.map((r) => r.extra), [3, 3]);
  await writer.query('ALTER TABLE acct DROP COLUMN extra');
});

test('a write that fires a trigger invalidates the table the trigger writes', async () => {
  await reset();
  // Through sidecache: what it knows of the catalog is learned again after DDL it sees (DDL made
  // behind its back is not followed: docs/consistency.md).
  await writer.query(`CREATE TRIGGER acct_audit AFTER UPDATE ON acct FOR EACH ROW UPDATE other SET note = 'trig' WHERE acct_id = NEW.id`);
  const sql = 'SELECT note FROM other WHERE id = 1';
  await writer.query('DELETE FROM acct WHERE id = -1');
  await reader.query(sql);
  await reader.query(sql);
  await writer.query('UPDATE acct SET bal = 1 WHERE id = 1');
  const [rows] = await reader.query<RowDataPacket[]>(sql);
  assert.equal(rows, [{ note: 'trig' }]);
  await directMySql(`DROP TRIGGER ${db}.acct_audit`);
});

test('LOAD DATA LOCAL INFILE from another connection invalidates the table it loads', async () => {
  await reset();
  const { Readable } = await import('node:stream');
  const loader = await connectMySql(proxy.mysqlPort, {
    database: db, infileStreamFactory: () => Readable.from([Buffer.from('3\t300\n4\t400\n')]),
  });
  open.push(loader);
  const before = await cachedRead();
  assert.equal(before, [{ id: 1, bal: 100 }, { id: 2, bal: 200 }]);
  await loader.query({ sql: "LOAD DATA LOCAL INFILE 'acct.tsv' INTO TABLE acct" });
  const [rows] = await reader.query<RowDataPacket[]>(READ);
  assert.equal(rows, [{ id: 1, bal: 100 }, { id: 2, bal: 200 }, { id: 3, bal: 300 }, { id: 4, bal: 400 }]);
});

test('a write through an updatable view invalidates reads of its base table', async () => {
  await reset();
  await writer.query('CREATE VIEW acct_view AS SELECT id, bal FROM acct WHERE id > 0'); // through sidecache, as above
  try {
    const sql = 'SELECT bal AS through_view FROM acct WHERE id = 1';
    await writer.query('DELETE FROM acct WHERE id = -1');
    await reader.query(sql);
    await reader.query(sql);
    await writer.query('UPDATE acct_view SET bal = 77 WHERE id = 1');
    const [rows] = await reader.query<RowDataPacket[]>(sql);
    assert.equal(rows, [{ through_view: 77 }]);
  } finally {
    await directMySql(`DROP VIEW ${db}.acct_view`);
  }
});

test.run();
