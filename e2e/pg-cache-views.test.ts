// Reads of views through the proxy: a view is cached under the tags of the relations behind it, so a
// write to any base table (through another proxied connection) makes the next read fresh, however
// deep the view; a view computing something that may not be cached (now(), a function that writes)
// is never answered from the cache; a materialized view changes only on REFRESH.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type pg from 'pg';
import { connectPg, direct, uniqueName } from './support/pg-direct.js';
import { measure } from './support/metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const S = uniqueName('sc_views');
let proxy: RunningProxy;
let reader: pg.Client;
let writer: pg.Client;

/** The simple and the extended (parameterised) form of a read of `relation`. */
function reads(relation: string): Array<string | pg.QueryConfig> {
  return [
    `SELECT * FROM ${S}.${relation} ORDER BY 1`,
    { text: `SELECT * FROM ${S}.${relation} WHERE id > $1 ORDER BY 1`, values: [0] },
  ];
}

async function readThrough(client: pg.Client, query: string | pg.QueryConfig): Promise<unknown[]> {
  return (await client.query(query)).rows;
}

/** What PostgreSQL itself answers, on a direct connection. */
async function truth(query: string | pg.QueryConfig): Promise<unknown[]> {
  return typeof query === 'string' ? (await direct(query)).rows : (await direct(query.text, query.values)).rows;
}

/** Reads `relation` in both forms until each is a hit; returns what they showed. */
async function primed(relation: string): Promise<unknown[][]> {
  const forms = reads(relation);
  for (const q of forms) assert.equal(await readThrough(reader, q), await truth(q));
  const { result, delta } = await measure(proxy.adminPort, () => Promise.all(forms.map((q) => readThrough(reader, q))));
  assert.is(delta.hits, forms.length, `the second read of ${relation} must be a hit: ${JSON.stringify(delta)}`);
  return result;
}

/** After a write, both forms must show what PostgreSQL holds, then be cached again. */
async function assertFresh(relation: string, what: string): Promise<void> {
  for (const q of reads(relation)) assert.equal(await readThrough(reader, q), await truth(q), `${what}: ${relation} is stale`);
  await primed(relation);
}

test.before(async () => {
  await direct(`CREATE SCHEMA ${S};
    CREATE TABLE ${S}.customers (id int PRIMARY KEY, name text);
    CREATE TABLE ${S}.orders (id int PRIMARY KEY, customer_id int REFERENCES ${S}.customers, total int);
    INSERT INTO ${S}.customers VALUES (1, 'ann'), (2, 'bob');
    INSERT INTO ${S}.orders VALUES (10, 1, 100), (11, 2, 200), (12, 1, 300);
    CREATE VIEW ${S}.big_orders AS SELECT id, total FROM ${S}.orders WHERE total >= 200;
    CREATE VIEW ${S}.order_names AS SELECT o.id, c.name, o.total FROM ${S}.orders o JOIN ${S}.customers c ON c.id = o.customer_id;
    CREATE VIEW ${S}.ann_orders AS SELECT id, total FROM ${S}.order_names WHERE name = 'ann';
    CREATE VIEW ${S}.orders_now AS SELECT id, total, now() AS seen FROM ${S}.orders;
    CREATE TABLE ${S}.readings (id int NOT NULL, v int) PARTITION BY RANGE (id);
    CREATE TABLE ${S}.readings_low PARTITION OF ${S}.readings FOR VALUES FROM (0) TO (100);
    INSERT INTO ${S}.readings VALUES (1, 1), (2, 2);
    CREATE VIEW ${S}.readings_view AS SELECT id, v FROM ${S}.readings;
    CREATE MATERIALIZED VIEW ${S}.order_totals AS SELECT 1 AS id, sum(total) AS total FROM ${S}.orders;
    CREATE TABLE ${S}.visits (id int PRIMARY KEY, n int);
    INSERT INTO ${S}.visits VALUES (1, 0);
    CREATE FUNCTION ${S}.count_visit() RETURNS int LANGUAGE sql VOLATILE
      AS 'UPDATE ${S}.visits SET n = n + 1 WHERE id = 1 RETURNING n';
    CREATE VIEW ${S}.visit AS SELECT 1 AS id, ${S}.count_visit() AS n;`);
  proxy = await startProxy();
  reader = await connectPg(proxy.pgPort);
  writer = await connectPg(proxy.pgPort);
});

test.after(async () => {
  await reader?.end().catch(() => undefined);
  await writer?.end().catch(() => undefined);
  await proxy?.stop();
  await direct(`DROP SCHEMA IF EXISTS ${S} CASCADE`);
});

test('a view is cached, and an UPDATE of its table from another connection shows in the next read', async () => {
  const [before] = await primed('big_orders');
  await writer.query(`UPDATE ${S}.orders SET total = 250 WHERE id = 10`);
  await assertFresh('big_orders', 'UPDATE of the base table');
  const [after] = await primed('big_orders');
  assert.is(after!.length, before!.length + 1, 'the updated order now qualifies');
});

test('a view over a view over a join: a write to either table shows', async () => {
  await primed('ann_orders');
  await writer.query(`UPDATE ${S}.orders SET total = total + 1 WHERE customer_id = 1`);
  await assertFresh('ann_orders', 'UPDATE of the table two views down');
  await writer.query(`UPDATE ${S}.customers SET name = 'ann' WHERE id = 2`);
  await assertFresh('ann_orders', 'UPDATE of the joined table');
  assert.is((await readThrough(reader, reads('ann_orders')[0]!)).length, 3, 'bob\'s order is ann\'s now');
});

test('a view over a partitioned table: a write to a partition shows', async () => {
  await primed('readings_view');
  await writer.query(`INSERT INTO ${S}.readings_low VALUES (3, 3)`);
  await assertFresh('readings_view', 'INSERT into a partition');
});

test('a view computing now() is never answered from the cache', async () => {
  const { delta } = await measure(proxy.adminPort, async () => {
    for (let i = 0; i < 3; i++) for (const q of reads('orders_now')) await readThrough(reader, q);
  });
  assert.is(delta.hits, 0, JSON.stringify(delta));
  assert.is(delta.bypassByReason['view-time-dependent'], 6, JSON.stringify(delta.bypassByReason));
});

test('a read of a view whose function writes a table invalidates that table\'s entries', async () => {
  const counter = `SELECT n FROM ${S}.visits WHERE id = 1`;
  await readThrough(reader, counter);
  const { delta } = await measure(proxy.adminPort, () => readThrough(reader, counter));
  assert.is(delta.hits, 1);
  const { delta: viewRead } = await measure(proxy.adminPort, () => readThrough(writer, `SELECT * FROM ${S}.visit`));
  assert.is(viewRead.hits, 0, 'a view calling a VOLATILE function is not cached');
  assert.equal(await readThrough(reader, counter), await truth(counter), 'the write done by the view\'s function is seen');
});

test('a materialized view keeps its result until REFRESH, then shows the new one', async () => {
  const [stored] = await primed('order_totals');
  await writer.query(`UPDATE ${S}.orders SET total = total + 1000 WHERE id = 11`);
  const { result, delta } = await measure(proxy.adminPort, () => readThrough(reader, reads('order_totals')[0]!));
  assert.is(delta.hits, 1, 'a write to the base table does not change a materialized view');
  assert.equal(result, stored);
  await writer.query(`REFRESH MATERIALIZED VIEW ${S}.order_totals`);
  await assertFresh('order_totals', 'REFRESH');
  assert.is.not(JSON.stringify(await readThrough(reader, reads('order_totals')[0]!)), JSON.stringify(stored));
});

test.run();
