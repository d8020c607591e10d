// test-timeout: 120
// The probe must be cheap (issue 12 item 5): what sidecache's probe learns about a table does not
// depend on literal values, so statements with literals never seen before and new statement shapes
// over known tables are judged without one. (A statement calling a stored function still makes
// sidecache forget what it knows: the function may have changed anything.) Counted, not timed: the
// server's own Com_select of the client's session grows by one per probe (the probe is a SELECT of
// sidecache's own on that connection).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RowDataPacket } from 'mysql2/promise';
import { connectMySql, directMySql, uniqueName, type MySqlConnection } from './support/mysql-direct.js';
import { measureMySql, sessionCounter } from './support/mysql-metrics.js';
import { DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

let proxy: RunningProxy;
const db = uniqueName('sc_mprobe');
const open: MySqlConnection[] = [];
const N = 40;

async function connect(): Promise<MySqlConnection> {
  const c = await connectMySql(proxy.mysqlPort, { database: db });
  open.push(c);
  return c;
}

/** What `work` cost the server on `c`'s session in SELECTs (statements plus probes), and the cache's counters. */
async function selectsFor(c: MySqlConnection, work: () => Promise<unknown>): Promise<{ selects: number; misses: number; hits: number; bypassByReason: Record<string, number> }> {
  const before = await sessionCounter(c, 'Com_select');
  const { delta } = await measureMySql(proxy.adminPort, work);
  return { selects: (await sessionCounter(c, 'Com_select')) - before, misses: delta.misses, hits: delta.hits, bypassByReason: delta.bypassByReason };
}

test.before(async () => {
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: DIRECT_MYSQL_URL });
  await directMySql(
    `CREATE DATABASE ${db}`,
    `CREATE TABLE ${db}.items (id INT PRIMARY KEY, name VARCHAR(40))`,
    `INSERT INTO ${db}.items VALUES (1, 'one'), (2, 'two'), (3, 'n3')`,
    `CREATE TABLE ${db}.later (id INT PRIMARY KEY, v VARCHAR(20))`,
    `INSERT INTO ${db}.later VALUES (1, 'base')`,
    `CREATE TABLE ${db}.audit (id INT PRIMARY KEY, what VARCHAR(40))`,
  );
});

test.after(async () => {
  for (const c of open) await c.end().catch(() => undefined);
  await directMySql(`DROP DATABASE IF EXISTS ${db}`).catch(() => undefined);
  await proxy?.stop();
});

test('statements with new literals and new shapes over known tables send no probe', async () => {
  const c = await connect();
  // The first read of the session probes its context and the table once.
  await c.query("SELECT id FROM items WHERE name = 'warm-up'");
  const strings = await selectsFor(c, async () => {
    for (let i = 0; i < N; i++) await c.query(`SELECT id, name FROM items WHERE name = 'never seen ${i}'`);
  });
  assert.equal(strings, { selects: N, misses: N, hits: 0, bypassByReason: {} }, 'new strings: one SELECT each, no probe');
  const shapes = await selectsFor(c, async () => {
    for (let i = 0; i < N; i++) await c.query(`SELECT id AS a${i}, name AS b${'x'.repeat(i)} FROM items WHERE id IN (${Array.from({ length: i + 1 }, (_, k) => k).join(', ')})`);
  });
  assert.equal(shapes, { selects: N, misses: N, hits: 0, bypassByReason: {} }, 'new shapes over a known table: no probe');
  const noTable = await selectsFor(c, async () => {
    for (let i = 0; i < N; i++) await c.query(`SELECT 'c${i}' AS a, _utf8mb4'x${i}' AS b, N'y${i}' AS c, X'0${i % 10}' AS d, DATE '2024-01-${10 + (i % 20)}' AS e`);
  });
  assert.equal(noTable, { selects: N, misses: N, hits: 0, bypassByReason: {} }, 'the issue\'s case: SELECT \'c<N>\' AS a');
  // Another connection with the same login starts from the first one's context: no probe at all.
  const b = await connect();
  const fresh = await selectsFor(b, async () => {
    for (let i = 0; i < N; i++) await b.query(`SELECT name FROM items WHERE name = 'from b ${i}'`);
  });
  assert.equal(fresh, { selects: N, misses: N, hits: 0, bypassByReason: {} });
});

test('entries judged from known facts are hits and are invalidated by writes to their tables', async () => {
  const c = await connect();
  await c.query("SELECT name FROM items WHERE id = 3 AND name LIKE 'warm%'");
  const sql = "SELECT name FROM items WHERE id = 3 AND name <> 'a literal never seen'";
  const first = await selectsFor(c, () => c.query(sql));
  assert.is(first.selects, 1, 'no probe');
  const { result: [[hit]], delta } = await measureMySql(proxy.adminPort, () => c.query<RowDataPacket[]>(sql));
  assert.is(delta.hits, 1);
  assert.equal(hit, { name: 'n3' });
  await c.query("UPDATE items SET name = 'changed' WHERE id = 3");
  assert.equal((await c.query<RowDataPacket[]>(sql))[0], [{ name: 'changed' }]);
});

test('a table never read before costs one probe; DDL through sidecache makes its facts be learned again', async () => {
  const c = await connect();
  await c.query("SELECT name FROM items WHERE name = 'context known'");
  const first = await selectsFor(c, () => c.query("SELECT v FROM later WHERE v = 'a'"));
  assert.is(first.selects, 2, 'the statement and one probe for the new table');
  const again = await selectsFor(c, () => c.query("SELECT v FROM later WHERE v = 'b'"));
  assert.is(again.selects, 1, 'known now');
  await c.query('DROP TABLE later');
  await c.query("CREATE VIEW later AS SELECT 1 AS id, 'view' AS v");
  const view = await selectsFor(c, () => c.query("SELECT v FROM later WHERE v = 'c'"));
  assert.is(view.selects, 2, 'the DDL made sidecache forget what it knew: probed again');
  assert.equal(view.bypassByReason, { view: 1 }, 'and it found a view, which is not cached');
  const [rows] = await c.query<RowDataPacket[]>("SELECT v FROM later WHERE v = 'view'");
  assert.equal(rows, [{ v: 'view' }]);
});

test('writes: one probe before the first write to a table, none for new literals after', async () => {
  const c = await connect();
  await c.query("SELECT name FROM items WHERE name = 'context known'");
  const first = await selectsFor(c, () => c.query("INSERT INTO audit VALUES (1, 'first')"));
  assert.is(first.selects, 1, 'the probe before the first write to audit');
  const more = await selectsFor(c, async () => {
    for (let i = 2; i < N; i++) await c.query(`INSERT INTO audit VALUES (${i}, 'never seen ${i}')`);
    for (let i = 0; i < N; i++) await c.query(`UPDATE items SET name = 'n3' WHERE id = 3 AND name <> 'w${i}'`);
  });
  assert.is(more.selects, 0, 'no probe for writes to known tables');
});

test('a view made behind sidecache\'s back is seen at the first write through it', async () => {
  const reader = await connect();
  const writer = await connect();
  const sql = "SELECT name FROM items WHERE id = 1 AND name <> 'x'";
  await reader.query(sql);
  await directMySql(`CREATE VIEW ${db}.items_view AS SELECT id, name FROM ${db}.items WHERE id > 0`);
  await reader.query(sql);
  const { delta } = await measureMySql(proxy.adminPort, () => reader.query(sql));
  assert.is(delta.hits, 1, 'cached');
  // items_view was never looked up: the write through it is probed first, which finds the view
  // among the database's tables whose writes reach others, so the write drops every entry.
  await writer.query("UPDATE items_view SET name = 'through the view' WHERE id = 1");
  assert.equal((await reader.query<RowDataPacket[]>(sql))[0], [{ name: 'through the view' }]);
});

test.run();
