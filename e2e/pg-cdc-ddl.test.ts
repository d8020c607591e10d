// test-timeout: 300
// DDL made straight on the database, with and without --pg-cdc-ddl. pgoutput carries no DDL: with
// the option on, sidecache's event trigger reports each command into the stream and the affected
// entries (or the database's) are dropped at its commit; with it off, a changed table is noticed
// when it is next written (its Relation message changed) and otherwise bounded by the TTL.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import type { Cluster } from './support/cluster.js';
import { stableHit, startLogicalCluster, waitFor, waitForStream } from './support/cdc.js';
import { measure } from './support/metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const DB = 'cdc_ddl';
let cluster: Cluster;
let withDdl: RunningProxy;
let withoutDdl: RunningProxy;
let db: pg.Client;

async function client(port: number, user = 'postgres'): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port, user, database: DB });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

function start(extra: string[]): Promise<RunningProxy> {
  return startProxy({ pgUpstream: `postgres://127.0.0.1:${cluster.port}`, args: ['--pg-cdc', `postgres://postgres@127.0.0.1:${cluster.port}`, '--cache-ttl', '10m', ...extra] });
}

function cached(c: pg.Client, sql: string, proxy: RunningProxy): Promise<unknown[]> {
  return stableHit(async () => {
    const { result, delta } = await measure(proxy.adminPort, () => c.query(sql));
    return { rows: result.rows, hit: delta.hits === 1 };
  }, sql);
}

/** Polls `sql` through `c` until `accept` says yes (a result or an error message). */
async function until(c: pg.Client, sql: string, accept: (rows: unknown[] | null, error: string | null) => boolean): Promise<void> {
  await waitFor(`${sql} to change`, async () => {
    try {
      return accept((await c.query(sql)).rows, null) ? true : undefined;
    } catch (err) {
      return accept(null, (err as Error).message) ? true : undefined;
    }
  }, 20_000);
}

/** A direct write to the marker, seen through `c`: the stream has passed everything committed before. */
async function streamPassed(c: pg.Client, proxy: RunningProxy): Promise<void> {
  await cached(c, 'SELECT v FROM marker', proxy);
  const v = (await db.query('UPDATE marker SET v = v + 1 RETURNING v')).rows[0].v as number;
  await until(c, 'SELECT v FROM marker', (rows) => JSON.stringify(rows) === JSON.stringify([{ v }]));
}

test.before(async () => {
  cluster = await startLogicalCluster();
  await cluster.query(`CREATE DATABASE ${DB}`);
  db = await client(cluster.port);
  await db.query(`
    CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a');
    CREATE TABLE other (id int PRIMARY KEY); INSERT INTO other VALUES (1);
    CREATE TABLE marker (v int PRIMARY KEY); INSERT INTO marker VALUES (0);
    CREATE TABLE shown (id int PRIMARY KEY); INSERT INTO shown VALUES (1);
    CREATE MATERIALIZED VIEW shown_count AS SELECT count(*)::int AS n FROM shown;
    CREATE ROLE reader LOGIN; GRANT SELECT ON items, marker TO reader;
    CREATE TABLE doomed (id int PRIMARY KEY); INSERT INTO doomed VALUES (1);
  `);
  withDdl = await start(['--pg-cdc-ddl', 'on']);
  withoutDdl = await start([]);
});

test.after(async () => {
  await db?.end().catch(() => undefined);
  await withDdl?.stop();
  await withoutDdl?.stop();
  await cluster?.stop();
});

test('--pg-cdc-ddl on installs its event trigger in the followed database', async () => {
  const c = await client(withDdl.pgPort);
  await c.query('SELECT 1 FROM items');
  await waitForStream(withDdl.adminPort, 'postgres', DB, 'up');
  const triggers = (await db.query("SELECT evtname FROM pg_event_trigger WHERE evtname LIKE 'sidecache%' ORDER BY 1")).rows.map((r) => r.evtname);
  assert.equal(triggers, ['sidecache_ddl_drop', 'sidecache_ddl_end']);
  await c.end();
});

test('without --pg-cdc-ddl, an ALTER TABLE made outside is seen when the table is next written (until then bounded by the TTL)', async () => {
  const c = await client(withoutDdl.pgPort);
  await c.query('SELECT 1');
  await waitForStream(withoutDdl.adminPort, 'postgres', DB, 'up');
  const sql = 'SELECT * FROM other ORDER BY id';
  assert.equal(await cached(c, sql, withoutDdl), [{ id: 1 }]);
  await db.query('ALTER TABLE other ADD COLUMN extra int DEFAULT 7');
  await streamPassed(c, withoutDdl);
  assert.equal((await c.query(sql)).rows, [{ id: 1 }], 'the stream carries no DDL: the old shape is still served');
  await db.query('INSERT INTO other VALUES (2)');
  await until(c, sql, (rows) => JSON.stringify(rows) === JSON.stringify([{ id: 1, extra: 7 }, { id: 2, extra: 7 }]));
  await c.end();
});

test('with --pg-cdc-ddl on, an ALTER TABLE made outside drops the entries without any write', async () => {
  const c = await client(withDdl.pgPort);
  const sql = 'SELECT * FROM items ORDER BY id';
  assert.equal(await cached(c, sql, withDdl), [{ id: 1, name: 'a' }]);
  await db.query('ALTER TABLE items ADD COLUMN price int DEFAULT 3');
  await until(c, sql, (rows) => JSON.stringify(rows) === JSON.stringify([{ id: 1, name: 'a', price: 3 }]));
  await c.end();
});

test('a bounded command (CREATE INDEX) drops only what it names; REFRESH MATERIALIZED VIEW drops the view\'s entries', async () => {
  const c = await client(withDdl.pgPort);
  const otherSql = 'SELECT count(*)::int AS n FROM marker';
  await cached(c, otherSql, withDdl);
  const countSql = 'SELECT n FROM shown_count';
  assert.equal(await cached(c, countSql, withDdl), [{ n: 1 }]);
  await db.query('CREATE INDEX items_name ON items (name)');
  await db.query('INSERT INTO shown VALUES (2); REFRESH MATERIALIZED VIEW shown_count');
  await until(c, countSql, (rows) => JSON.stringify(rows) === JSON.stringify([{ n: 2 }]));
  const { delta } = await measure(withDdl.adminPort, () => c.query(otherSql));
  assert.is(delta.hits, 1, 'entries of tables the DDL did not touch stay');
  await c.end();
});

test('REVOKE made outside: the role\'s cached result stops being served', async () => {
  const c = await client(withDdl.pgPort, 'reader');
  const sql = 'SELECT id FROM items ORDER BY id';
  assert.equal(await cached(c, sql, withDdl), [{ id: 1 }]);
  await db.query('REVOKE SELECT ON items FROM reader');
  await until(c, sql, (_rows, error) => error !== null && /permission denied/.test(error));
  await c.end();
});

test('DROP TABLE made outside: its cached reads stop being served', async () => {
  const c = await client(withDdl.pgPort);
  const sql = 'SELECT id FROM doomed';
  assert.equal(await cached(c, sql, withDdl), [{ id: 1 }]);
  await db.query('DROP TABLE doomed');
  await until(c, sql, (_rows, error) => error !== null && /does not exist/.test(error));
  await c.end();
});

test.run();
