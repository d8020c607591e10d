// Read-your-writes across connections of one proxy: a reader fills the cache (and proves it by a hit),
// another proxied connection writes, and the reader's next read must show the write. Every kind of
// write is covered (INSERT, UPDATE, DELETE, TRUNCATE, upsert, writable CTE, MERGE, COPY FROM, extended
// protocol writes, several statements in one Query, DDL, VACUUM FULL and CLUSTER, which move rows) plus
// writes that reach the table indirectly (a foreign-key cascade, a trigger on another table, a
// function called from a SELECT); each read in the simple and the extended protocol. Transactions: the write shows after COMMIT,
// a rolled-back write leaves the entry valid, reads inside a transaction block never touch the cache
// (and see the transaction's own writes).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { connectPg, direct, uniqueName } from './support/pg-direct.js';
import { RawClient, codes, serialize } from './support/pg-raw.js';
import { measure } from './support/metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const INITIAL_ROWS = 5;
/** A fresh table per test, so no entry filled by an earlier test can answer a later one. */
let TABLE = '';
let proxy: RunningProxy;
let reader: pg.Client;
let writer: pg.Client;
/** Connections a test opened for itself; closed after each test. */
const extraClients: pg.Client[] = [];

/** The two forms of the reader's query: simple Query text and a parameterised (extended) one. */
const READS = {
  simple: (): string => `SELECT id, v FROM ${TABLE} WHERE id > 0 ORDER BY id`,
  extended: (): pg.QueryConfig => ({ text: `SELECT id, v FROM ${TABLE} WHERE id > $1 ORDER BY id`, values: [0] }),
};

async function read(form: keyof typeof READS): Promise<unknown[]> {
  return (await reader.query(READS[form]())).rows;
}

/** What PostgreSQL itself holds now, read on a direct connection. */
async function truth(): Promise<unknown[]> {
  return (await direct(`SELECT id, v FROM ${TABLE} WHERE id > 0 ORDER BY id`)).rows;
}

/** Objects around TABLE through which writes reach it indirectly. */
const parentOf = (): string => `${TABLE}_parent`;
const triggerSource = (): string => `${TABLE}_events`;
const writerFunction = (): string => `${TABLE}_bump`;

async function createTable(): Promise<void> {
  TABLE = uniqueName('sc_writes');
  for (const sql of [
    `CREATE TABLE ${parentOf()} (id int PRIMARY KEY)`,
    `INSERT INTO ${parentOf()} SELECT generate_series(1, 20)`,
    `CREATE TABLE ${TABLE} (id int PRIMARY KEY REFERENCES ${parentOf()} ON DELETE CASCADE, v int NOT NULL)`,
    `INSERT INTO ${TABLE} SELECT g, g * 10 FROM generate_series(1, ${INITIAL_ROWS}) g`,
    `CREATE TABLE ${triggerSource()} (id int)`,
    `CREATE FUNCTION ${triggerSource()}_fn() RETURNS trigger LANGUAGE plpgsql AS
      $$BEGIN UPDATE ${TABLE} SET v = v + 1 WHERE id = NEW.id; RETURN NEW; END$$`,
    `CREATE TRIGGER bump AFTER INSERT ON ${triggerSource()} FOR EACH ROW EXECUTE FUNCTION ${triggerSource()}_fn()`,
    `CREATE FUNCTION ${writerFunction()}(target int) RETURNS int LANGUAGE plpgsql AS
      $$BEGIN UPDATE ${TABLE} SET v = v * 2 WHERE id = target; RETURN target; END$$`,
  ]) await direct(sql);
}

async function dropTable(): Promise<void> {
  await Promise.all(extraClients.splice(0).map((c) => c.end().catch(() => undefined)));
  // A test that failed half-way may have left a transaction open, which would block the DROP.
  await reader.query('ROLLBACK').catch(() => undefined);
  await writer.query('ROLLBACK').catch(() => undefined);
  await direct(`DROP TABLE IF EXISTS ${TABLE}, ${parentOf()}, ${triggerSource()} CASCADE`);
  await direct(`DROP FUNCTION IF EXISTS ${triggerSource()}_fn(), ${writerFunction()}(int)`);
}

/** COPY ... FROM STDIN on a raw connection through the proxy (node-postgres has no COPY of its own). */
async function copyIn(rows: string): Promise<void> {
  const c = await RawClient.login(proxy.pgPort);
  try {
    c.send(serialize.query(`COPY ${TABLE} (id, v) FROM STDIN`));
    await c.expectMessages('G');
    c.send(serialize.copyData(Buffer.from(rows)), serialize.copyDone());
    const done = await c.readUntilReadyForQuery();
    assert.is(codes(done), 'CZ');
  } finally {
    c.destroy();
  }
}

/** Fills the cache with both read forms and proves with a second read of each that both are hits. */
async function primeCache(): Promise<unknown[]> {
  assert.equal(await read('simple'), await truth());
  assert.equal(await read('extended'), await truth());
  const { result, delta } = await measure(proxy.adminPort, async () => [await read('simple'), await read('extended')]);
  assert.is(delta.hits, 2, `the primed reads must be hits: ${JSON.stringify(delta)}`);
  assert.equal(result[0], result[1]);
  return result[0] as unknown[];
}

/** Both read forms, after a write, must equal what PostgreSQL holds; returns it. */
async function assertReaderSeesTruth(what: string): Promise<unknown[]> {
  const expected = await truth();
  assert.equal(await read('simple'), expected, `${what}: simple read is stale`);
  assert.equal(await read('extended'), expected, `${what}: extended read is stale`);
  return expected;
}

test.before(async () => {
  proxy = await startProxy();
  reader = await connectPg(proxy.pgPort);
  writer = await connectPg(proxy.pgPort);
});

test.after(async () => {
  await reader?.end().catch(() => undefined);
  await writer?.end().catch(() => undefined);
  await proxy?.stop();
});

test.before.each(createTable);
test.after.each(dropTable);

const WRITES: Array<[string, () => Promise<unknown>]> = [
  ['INSERT', () => writer.query(`INSERT INTO ${TABLE} VALUES (6, 60)`)],
  ['UPDATE', () => writer.query(`UPDATE ${TABLE} SET v = v + 1 WHERE id = 2`)],
  ['DELETE', () => writer.query(`DELETE FROM ${TABLE} WHERE id = 3`)],
  ['TRUNCATE', () => writer.query(`TRUNCATE ${TABLE}`)],
  ['INSERT .. ON CONFLICT DO UPDATE', () => writer.query(
    `INSERT INTO ${TABLE} VALUES (4, 0) ON CONFLICT (id) DO UPDATE SET v = ${TABLE}.v + 1000`)],
  ['writable CTE', () => writer.query(
    `WITH changed AS (UPDATE ${TABLE} SET v = -v WHERE id = 1 RETURNING id) SELECT count(*) FROM changed`)],
  ['parameterised UPDATE (extended protocol)', () => writer.query(`UPDATE ${TABLE} SET v = $1 WHERE id = $2`, [77, 5])],
  ['named prepared DELETE', () => writer.query({ name: `${TABLE}_delete`, text: `DELETE FROM ${TABLE} WHERE id = $1`, values: [1] })],
  ['MERGE', () => writer.query(`MERGE INTO ${TABLE} t USING (VALUES (2, 0), (7, 70)) AS s(id, v) ON t.id = s.id
    WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)`)],
  ['COPY FROM STDIN', () => copyIn('8\t80\n9\t90\n')],
  ['several statements in one simple Query', () => writer.query(`SELECT 1; UPDATE ${TABLE} SET v = 0 WHERE id = 5; SELECT 2`)],
  ['DDL: the table dropped and created again with other rows', async () => {
    await writer.query(`DROP TABLE ${TABLE}`);
    await writer.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v int NOT NULL)`);
    await writer.query(`INSERT INTO ${TABLE} VALUES (1, -1)`);
  }],
  ['DDL: ALTER TABLE changing a column\'s values', () => writer.query(`ALTER TABLE ${TABLE} ALTER COLUMN v TYPE int USING v + 5`)],
  ['a foreign-key ON DELETE CASCADE from the parent table', () => writer.query(`DELETE FROM ${parentOf()} WHERE id = 2`)],
  ['a trigger on another table that updates it', () => writer.query(`INSERT INTO ${triggerSource()} VALUES (3)`)],
  ['a function called from a SELECT that updates it', () => writer.query(`SELECT ${writerFunction()}(4)`)],
];

for (const [kind, write] of WRITES) {
  test(`${kind} from another connection: the reader's next read sees it`, async () => {
    const before = await primeCache();
    await write();
    const after = await assertReaderSeesTruth(kind);
    assert.not.equal(after, before, 'the write changed the table');
  });
}

/** A cached read: the connection that reads, its text, and the same read spelled for a direct connection. */
interface WatchedRead {
  client: pg.Client;
  sql: string;
  truthSql: string;
}

/**
 * For each write: every read is filled and proved a hit, the write runs through the proxy, and
 * every read must then equal what PostgreSQL holds.
 */
async function assertWritesSeen(reads: WatchedRead[], writes: Array<[string, () => Promise<unknown>]>): Promise<void> {
  for (const [what, write] of writes) {
    for (const r of reads) {
      await r.client.query(r.sql);
      const { delta } = await measure(proxy.adminPort, () => r.client.query(r.sql));
      assert.is(delta.hits, 1, `before "${what}", "${r.sql}" must be a hit: ${JSON.stringify(delta)}`);
    }
    await write();
    for (const r of reads) {
      assert.equal((await r.client.query(r.sql)).rows, (await direct(r.truthSql)).rows, `after "${what}": "${r.sql}" is stale`);
    }
  }
}

/** Runs `body` with objects made by `setup` statements (direct), dropped afterwards by `teardown`. */
async function withObjects(setup: string[], teardown: string[], body: () => Promise<void>): Promise<void> {
  try {
    for (const sql of setup) await direct(sql);
    await body();
  } finally {
    for (const sql of teardown) await direct(sql).catch(() => undefined);
  }
}

async function proxied(setup: string[] = []): Promise<pg.Client> {
  const c = await connectPg(proxy.pgPort);
  extraClients.push(c);
  for (const sql of setup) await c.query(sql);
  return c;
}

test('VACUUM FULL and CLUSTER move every row: a cached read of ctid shows the new places', async () => {
  const sql = `SELECT ctid, id FROM ${TABLE} ORDER BY id`;
  const reads = [{ client: reader, sql, truthSql: sql }];
  for (const rewrite of [`VACUUM FULL ${TABLE}`, `CLUSTER ${TABLE} USING ${TABLE}_pkey`]) {
    // Every row gets a new version at the end of the table; the rewrite then packs them at its start.
    await writer.query(`UPDATE ${TABLE} SET v = v`);
    await assertWritesSeen(reads, [[rewrite, () => writer.query(rewrite)]]);
  }
});

test('a write that names the table another way than the read (schema-qualified, via search_path)', async () => {
  const schema = `${TABLE}_schema`;
  await withObjects([
    `CREATE SCHEMA ${schema}`,
    `CREATE TABLE ${schema}.items (id int PRIMARY KEY, v int NOT NULL)`,
    `INSERT INTO ${schema}.items VALUES (1, 1), (2, 2)`,
  ], [`DROP SCHEMA ${schema} CASCADE`], async () => {
    const onPath = await proxied([`SET search_path TO ${schema}`]);
    const qualified = await proxied();
    const writerOnPath = await proxied([`SET search_path TO ${schema}, public`]);
    const truthSql = `SELECT id, v FROM ${schema}.items ORDER BY id`;
    await assertWritesSeen([
      { client: onPath, sql: 'SELECT id, v FROM items ORDER BY id', truthSql },
      { client: qualified, sql: truthSql, truthSql },
    ], [
      ['UPDATE schema.items', () => writer.query(`UPDATE ${schema}.items SET v = v + 1`)],
      ['UPDATE items on the search_path', () => writerOnPath.query('UPDATE items SET v = v + 10 WHERE id = 1')],
      ['INSERT INTO items on the search_path', () => writerOnPath.query('INSERT INTO items VALUES (3, 3)')],
    ]);
  });
});

test('quoted and unquoted spellings of table names', async () => {
  const mixed = `${TABLE}_Mixed`;
  const lower = `${TABLE}_lower`;
  await withObjects([
    `CREATE TABLE "${mixed}" (v int)`, `INSERT INTO "${mixed}" VALUES (1)`,
    `CREATE TABLE ${lower} (v int)`, `INSERT INTO ${lower} VALUES (1)`,
  ], [`DROP TABLE IF EXISTS "${mixed}", ${lower}`], async () => {
    await assertWritesSeen([
      { client: reader, sql: `SELECT v FROM "${mixed}"`, truthSql: `SELECT v FROM "${mixed}"` },
      { client: reader, sql: `SELECT v FROM "${lower}"`, truthSql: `SELECT v FROM ${lower}` },
    ], [
      ['UPDATE "Mixed"', () => writer.query(`UPDATE "${mixed}" SET v = v + 1`)],
      ['UPDATE LOWER in capitals', () => writer.query(`UPDATE ${lower.toUpperCase()} SET v = v + 1`)],
      ['UPDATE public."lower"', () => writer.query(`UPDATE public."${lower}" SET v = v + 1`)],
    ]);
  });
});

test('partitioned table: a write to a partition shows in reads of the parent, and the other way round', async () => {
  const parent = `${TABLE}_part`;
  await withObjects([
    `CREATE TABLE ${parent} (k text, v int) PARTITION BY LIST (k)`,
    `CREATE TABLE ${parent}_a PARTITION OF ${parent} FOR VALUES IN ('a')`,
    `CREATE TABLE ${parent}_b PARTITION OF ${parent} FOR VALUES IN ('b')`,
    `INSERT INTO ${parent} VALUES ('a', 1), ('b', 2)`,
  ], [`DROP TABLE IF EXISTS ${parent}`], async () => {
    const parentRead = `SELECT k, v FROM ${parent} ORDER BY k, v`;
    const partitionRead = `SELECT k, v FROM ${parent}_a ORDER BY v`;
    await assertWritesSeen([
      { client: reader, sql: parentRead, truthSql: parentRead },
      { client: reader, sql: partitionRead, truthSql: partitionRead },
    ], [
      ['UPDATE the partition', () => writer.query(`UPDATE ${parent}_a SET v = v + 1`)],
      ['UPDATE the parent', () => writer.query(`UPDATE ${parent} SET v = v + 10 WHERE k = 'a'`)],
      ['INSERT into the parent', () => writer.query(`INSERT INTO ${parent} VALUES ('a', 100), ('b', 200)`)],
      ['DELETE from the other partition', () => writer.query(`DELETE FROM ${parent}_b`)],
    ]);
  });
});

test('a write through an updatable view shows in reads of its table', async () => {
  const view = `${TABLE}_view`;
  await withObjects([`CREATE VIEW ${view} AS SELECT id, v FROM ${TABLE} WHERE id <= 3`], [`DROP VIEW IF EXISTS ${view}`], async () => {
    const tableRead = `SELECT id, v FROM ${TABLE} ORDER BY id`;
    await assertWritesSeen([{ client: reader, sql: tableRead, truthSql: tableRead }], [
      ['UPDATE the view', () => writer.query(`UPDATE ${view} SET v = v + 1`)],
      ['DELETE through the view', () => writer.query(`DELETE FROM ${view} WHERE id = 1`)],
    ]);
  });
});

test('a write inside BEGIN..COMMIT shows after COMMIT (and not before)', async () => {
  const before = await primeCache();
  await writer.query('BEGIN');
  await writer.query(`UPDATE ${TABLE} SET v = 0 WHERE id = 1`);
  await writer.query(`INSERT INTO ${TABLE} VALUES (9, 90)`);
  assert.equal(await read('simple'), before, 'uncommitted write is invisible');
  assert.equal(await read('extended'), before, 'uncommitted write is invisible');
  await writer.query('COMMIT');
  const after = await assertReaderSeesTruth('after COMMIT');
  assert.not.equal(after, before);
});

test('a rolled-back write leaves the cached entry valid: the next read is still a hit', async () => {
  const before = await primeCache();
  await writer.query('BEGIN');
  await writer.query(`UPDATE ${TABLE} SET v = 0`);
  await writer.query('ROLLBACK');
  const { result, delta } = await measure(proxy.adminPort, async () => [await read('simple'), await read('extended')]);
  assert.equal(result, [before, before]);
  assert.is(delta.hits, 2, `entries must survive a ROLLBACK: ${JSON.stringify(delta)}`);
});

test('a transaction that failed and was rolled back leaves the entry valid', async () => {
  const before = await primeCache();
  await writer.query('BEGIN');
  await writer.query(`UPDATE ${TABLE} SET v = 0`);
  await writer.query('SELECT 1 / 0').catch(() => undefined);
  await writer.query('COMMIT'); // PostgreSQL answers ROLLBACK to a COMMIT of a failed transaction
  const { result, delta } = await measure(proxy.adminPort, () => read('simple'));
  assert.equal(result, before);
  assert.equal(await truth(), before);
  assert.is(delta.hits, 1);
});

test('reads inside a transaction block bypass the cache and see the transaction\'s own writes', async () => {
  const before = await primeCache();
  const { result, delta } = await measure(proxy.adminPort, async () => {
    await reader.query('BEGIN');
    const inside = [await read('simple'), await read('extended'), await read('simple')];
    await reader.query(`UPDATE ${TABLE} SET v = 1 WHERE id = 1`);
    const ownWrite = [await read('simple'), await read('extended')];
    await reader.query('ROLLBACK');
    return { inside, ownWrite };
  });
  for (const rows of result.inside) assert.equal(rows, before);
  const withOwnWrite = (before as Array<{ id: number; v: number }>).map((r) => (r.id === 1 ? { id: 1, v: 1 } : r));
  for (const rows of result.ownWrite) assert.equal(rows, withOwnWrite, 'a read after its own write in the transaction');
  assert.is(delta.hits, 0, `no hits inside a transaction block: ${JSON.stringify(delta)}`);
  assert.ok(delta.bypass >= 5, `every read in the block is a bypass: ${JSON.stringify(delta)}`);
  assert.ok(Object.keys(delta.bypassByReason).some((r) => /trans/i.test(r)),
    `a bypass reason names the transaction: ${JSON.stringify(delta.bypassByReason)}`);
  // Outside the block again, the entry filled before is still served.
  const outside = await measure(proxy.adminPort, () => read('simple'));
  assert.equal(outside.result, before);
  assert.is(outside.delta.hits, 1);
});

test('the reader\'s own committed write (explicit transaction) is visible to its next read', async () => {
  await primeCache();
  await reader.query('BEGIN');
  await reader.query(`DELETE FROM ${TABLE} WHERE id IN (1, 2)`);
  await reader.query('COMMIT');
  const after = await assertReaderSeesTruth('own commit');
  assert.is(after.length, INITIAL_ROWS - 2);
});

test('a write on a third, freshly opened connection invalidates for everyone', async () => {
  await primeCache();
  const third = await connectPg(proxy.pgPort);
  try {
    await third.query(`UPDATE ${TABLE} SET v = 123 WHERE id = 3`);
  } finally {
    await third.end();
  }
  await assertReaderSeesTruth('write from a closed connection');
});

test.run();
