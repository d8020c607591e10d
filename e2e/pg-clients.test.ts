// node-postgres and pg-cursor through the proxy, each result compared with the same work done
// directly against PostgreSQL: queries, types, errors, transactions, cancels, cursors, LISTEN/NOTIFY,
// notices, and a client that vanishes in the middle of a query.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import Cursor from 'pg-cursor';
import { RawClient, sendCancelRequest, serialize } from './support/pg-raw.js';
import {
  DIRECT_PG, connectPg, direct, pgConfig, rejectionOf, sleep, uniqueName, waitForActiveQuery,
  waitForBackendGone,
} from './support/pg-direct.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';
import { waitFor } from './support/until.js';

const TABLE = uniqueName('sc_e2e_clients');
let proxy: RunningProxy;
const open: pg.Client[] = [];

/** node-postgres keeps the BackendKeyData it received on the client; its typings omit it. */
type KeyedClient = pg.Client & { processID: number; secretKey: number };

/** A node-postgres client on `port`, ended by the `after` hook. */
async function client(port: number): Promise<KeyedClient> {
  const c = await connectPg(port) as KeyedClient;
  c.on('error', () => undefined); // a test that kills a connection checks the outcome itself
  open.push(c);
  return c;
}

/** What a user of a query result relies on: command tag, row count, columns and rows. */
function shape(r: pg.QueryResult): unknown {
  return {
    command: r.command,
    rowCount: r.rowCount,
    fields: r.fields.map((f) => [f.name, f.dataTypeID]),
    rows: r.rows,
  };
}

/** The fields of a server error a user relies on. */
function errorShape(err: Error): Record<string, unknown> {
  const e = err as pg.DatabaseError;
  return {
    severity: e.severity, code: e.code, message: e.message, detail: e.detail, hint: e.hint,
    position: e.position, schema: e.schema, table: e.table, column: e.column, constraint: e.constraint,
    routine: e.routine,
  };
}

test.before(async () => {
  await direct(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, name text NOT NULL UNIQUE)`);
  await direct(`INSERT INTO ${TABLE} SELECT g, 'name ' || g FROM generate_series(1, 100) g`);
  proxy = await startProxy();
});

test.after(async () => {
  await Promise.all(open.map((c) => c.end().catch(() => undefined)));
  await proxy?.stop();
  await direct(`DROP TABLE IF EXISTS ${TABLE}`);
});

test('simple and parameterized queries return what the server returns', async () => {
  const viaServer = await client(DIRECT_PG.port);
  const viaProxy = await client(proxy.pgPort);
  const queries: Array<[string, unknown[]?]> = [
    ['SELECT 1 AS one, \'two\' AS two'],
    [`SELECT id, name FROM ${TABLE} WHERE id < 5 ORDER BY id`],
    [`SELECT id, name FROM ${TABLE} WHERE id = $1 OR name = $2 ORDER BY id`, [7, 'name 9']],
    [`SELECT count(*) FROM ${TABLE} WHERE name LIKE $1`, ['name 1%']],
    ['SELECT $1::text AS echo', ['ünïcødé ✓ 🐘']],
    [`SELECT id FROM ${TABLE} WHERE false`],
  ];
  for (const [sql, params] of queries) {
    const expected = shape(await viaServer.query(sql, params));
    assert.equal(shape(await viaProxy.query(sql, params)), expected, sql);
  }
  const rows = (await viaProxy.query(`SELECT id, name FROM ${TABLE} WHERE id = $1 OR name = $2 ORDER BY id`,
    [7, 'name 9'])).rows;
  assert.equal(rows, [{ id: 7, name: 'name 7' }, { id: 9, name: 'name 9' }]);
});

test('types round-trip through parameters and results', async () => {
  const sql = `SELECT $1::int2 AS i2, $2::int4 AS i4, $3::int8 AS i8, $4::numeric AS num, $5::float8 AS f8,
    $6::text AS txt, $7::bytea AS bin, $8::bool AS flag, $9::date AS day, $10::timestamptz AS ts,
    $11::interval AS span, $12::json AS js, $13::jsonb AS jsb, $14::uuid AS id, $15::int4[] AS ints,
    $16::text[] AS texts, $17::text AS nothing, $18::inet AS addr, $19::time AS clock, $20::varchar(10) AS short`;
  const ts = new Date('2024-02-29T13:45:56.789Z');
  const params = [
    -32768, 2147483647, '9223372036854775807', '12345678901234567890.000000000123', 1.5e-300,
    'quote \' backslash \\ tab \t nul-free ünïcødé 🐘', Buffer.from([0, 1, 2, 254, 255]), true, '2024-02-29', ts,
    '1 year 2 mons 3 days 04:05:06.789', { a: [1, 'b', null] }, { z: 1, a: { nested: true } },
    '123e4567-e89b-12d3-a456-426614174000', [1, null, -3], ['a', 'b c', '"q"', null], null, '192.168.0.1/24',
    '23:59:59.999999', 'short',
  ];
  const viaServer = await (await client(DIRECT_PG.port)).query(sql, params);
  const viaProxy = await (await client(proxy.pgPort)).query(sql, params);
  assert.equal(shape(viaProxy), shape(viaServer));
  const row = viaProxy.rows[0] as Record<string, unknown>;
  assert.is(row.i2, -32768);
  assert.is(row.i4, 2147483647);
  assert.is(row.i8, '9223372036854775807');
  assert.is(row.num, '12345678901234567890.000000000123');
  assert.is(row.f8, 1.5e-300);
  assert.is(row.txt, params[5]);
  assert.equal(row.bin, Buffer.from([0, 1, 2, 254, 255]));
  assert.is(row.flag, true);
  assert.is((row.ts as Date).toISOString(), ts.toISOString());
  assert.equal(row.js, { a: [1, 'b', null] });
  assert.equal(row.jsb, { z: 1, a: { nested: true } });
  assert.is(row.id, '123e4567-e89b-12d3-a456-426614174000');
  assert.equal(row.ints, [1, null, -3]);
  assert.equal(row.texts, ['a', 'b c', '"q"', null]);
  assert.is(row.nothing, null);
  assert.is(row.addr, '192.168.0.1/24');
  assert.is(row.clock, '23:59:59.999999');
});

test('errors carry the server\'s SQLSTATE and fields, and the connection stays usable', async () => {
  const viaServer = await client(DIRECT_PG.port);
  const viaProxy = await client(proxy.pgPort);
  const failing: Array<[string, unknown[], string]> = [
    ['SELEC 1', [], '42601'],
    [`INSERT INTO ${TABLE} (id, name) VALUES ($1, $2)`, [1, 'fresh name'], '23505'],
    [`INSERT INTO ${TABLE} (id, name) VALUES ($1, $2)`, [1000, 'name 5'], '23505'],
    [`INSERT INTO ${TABLE} (id, name) VALUES ($1, NULL)`, [1001], '23502'],
    ['SELECT $1::int', ['forty-two'], '22P02'],
    ['SELECT * FROM sc_e2e_no_such_table', [], '42P01'],
  ];
  for (const [sql, params, code] of failing) {
    const expected = errorShape(await rejectionOf(viaServer.query(sql, params)));
    assert.is(expected.code, code, `direct: ${sql}`);
    assert.equal(errorShape(await rejectionOf(viaProxy.query(sql, params))), expected, sql);
    assert.equal((await viaProxy.query('SELECT 1 AS ok')).rows, [{ ok: 1 }]);
  }
});

test('transactions: ROLLBACK discards, COMMIT is visible to others, an error aborts the block', async () => {
  const c = await client(proxy.pgPort);
  await c.query('BEGIN');
  await c.query(`INSERT INTO ${TABLE} VALUES (2001, 'rolled back')`);
  assert.is((await c.query(`SELECT count(*)::int AS n FROM ${TABLE} WHERE id = 2001`)).rows[0].n, 1);
  await c.query('ROLLBACK');
  assert.is((await direct(`SELECT count(*)::int AS n FROM ${TABLE} WHERE id = 2001`)).rows[0]!.n, 0);

  await c.query('BEGIN');
  await c.query(`INSERT INTO ${TABLE} VALUES (2002, 'committed')`);
  assert.is((await direct(`SELECT count(*)::int AS n FROM ${TABLE} WHERE id = 2002`)).rows[0]!.n, 0,
    'not visible before COMMIT');
  await c.query('COMMIT');
  assert.is((await direct(`SELECT count(*)::int AS n FROM ${TABLE} WHERE id = 2002`)).rows[0]!.n, 1);

  await c.query('BEGIN');
  assert.is((await rejectionOf(c.query('SELECT 1/0'))).code, '22012');
  assert.is((await rejectionOf(c.query('SELECT 1'))).code, '25P02');
  await c.query('ROLLBACK');
  assert.equal((await c.query('SELECT 1 AS ok')).rows, [{ ok: 1 }]);
});

/**
 * Starts `SELECT pg_sleep(10)` on a proxied client, waits until the server runs it, calls `cancel`,
 * and asserts the query ends with 57014 well before the 10 s are up.
 */
async function assertCancelled(cancel: (victim: KeyedClient, query: pg.Query) => Promise<void>): Promise<void> {
  const victim = await client(proxy.pgPort);
  const query = new pg.Query('SELECT pg_sleep(10) AS slept');
  const outcome = new Promise<Error | null>((resolve) => {
    query.on('error', resolve);
    query.on('end', () => resolve(null));
  });
  void victim.query(query);
  await waitForActiveQuery(victim.processID, 'pg_sleep(10)');
  await cancel(victim, query);
  const err = await outcome;
  // 57014 is the server's answer to a cancel only: a pg_sleep that ran its 10 s would end without
  // an error. (No bound on the time taken: that would measure the machine.)
  assert.ok(err, 'the query should have been cancelled');
  assert.is((err as pg.DatabaseError).code, '57014');
  assert.equal((await victim.query('SELECT 1 AS ok')).rows, [{ ok: 1 }], 'the cancelled session goes on');
}

test('cancel: pg_cancel_backend from a second proxied client', async () => {
  const other = await client(proxy.pgPort);
  await assertCancelled(async (victim) => {
    const r = await other.query('SELECT pg_cancel_backend($1) AS sent', [victim.processID]);
    assert.is(r.rows[0].sent, true);
  });
});

test('cancel: node-postgres Client#cancel sends a CancelRequest through the proxy', async () => {
  await assertCancelled(async (victim, query) => {
    const canceller = new pg.Client(pgConfig(proxy.pgPort)) as pg.Client & {
      cancel(target: pg.Client, q: pg.Query): void;
    };
    canceller.cancel(victim, query);
  });
});

test('cancel: a raw 16-byte CancelRequest with the BackendKeyData the client received', async () => {
  await assertCancelled(async (victim) => {
    await sendCancelRequest(proxy.pgPort, victim.processID, victim.secretKey);
  });
});

test('cancel: a CancelRequest with a wrong secret cancels nothing', async () => {
  const victim = await client(proxy.pgPort);
  const running = victim.query('SELECT pg_sleep(1) AS slept, 7 AS seven');
  await waitForActiveQuery(victim.processID, 'pg_sleep(1)');
  await sendCancelRequest(proxy.pgPort, victim.processID, (victim.secretKey ^ 0x5a5a5a5a) | 0);
  assert.equal((await running).rows, [{ slept: '', seven: 7 }]);
});

test('pg-cursor reads in batches exactly what a direct cursor reads', async () => {
  const read = async (port: number, sql: string, batch: number): Promise<unknown[][]> => {
    const cursor = (await client(port)).query(new Cursor(sql));
    const batches: unknown[][] = [];
    for (;;) {
      const rows = await cursor.read(batch);
      if (rows.length === 0) break;
      batches.push(rows);
    }
    await cursor.close();
    return batches;
  };
  const sql = `SELECT id, name FROM ${TABLE} ORDER BY id`;
  const viaServer = await read(DIRECT_PG.port, sql, 30);
  assert.is(viaServer.length, 4);
  assert.equal(await read(proxy.pgPort, sql, 30), viaServer);
});

test('pg-cursor: 100k rows in batches of 10k, checksummed against the server', async () => {
  const sql = `SELECT g AS n, md5(g::text) AS h FROM generate_series(1, 100000) g`;
  const checksum = async (port: number): Promise<{ batches: number; rows: number; sum: number; hashes: string }> => {
    const cursor = (await client(port)).query(new Cursor<{ n: number; h: string }>(sql));
    let batches = 0, rows = 0, sum = 0, hashes = '';
    for (;;) {
      const batch = await cursor.read(10_000);
      if (batch.length === 0) break;
      batches++;
      rows += batch.length;
      for (const r of batch) {
        sum += r.n;
        if (r.n % 9973 === 0) hashes += r.h;
      }
    }
    await cursor.close();
    return { batches, rows, sum, hashes };
  };
  const viaServer = await checksum(DIRECT_PG.port);
  assert.is(viaServer.rows, 100_000);
  assert.is(viaServer.batches, 10);
  assert.equal(await checksum(proxy.pgPort), viaServer);
});

test('DECLARE / FETCH / MOVE / CLOSE inside a transaction', async () => {
  const run = async (port: number): Promise<unknown[]> => {
    const c = await client(port);
    const out: unknown[] = [];
    for (const sql of ['BEGIN', `DECLARE cur SCROLL CURSOR FOR SELECT id, name FROM ${TABLE} WHERE id <= 20 ORDER BY id`,
      'FETCH 3 FROM cur', 'FETCH NEXT FROM cur', 'MOVE FORWARD 10 IN cur', 'FETCH BACKWARD 2 FROM cur',
      'FETCH ALL FROM cur', 'FETCH NEXT FROM cur', 'CLOSE cur', 'COMMIT']) {
      out.push(shape(await c.query(sql)));
    }
    return out;
  };
  const viaServer = await run(DIRECT_PG.port);
  assert.is((viaServer[6] as { rowCount: number }).rowCount, 8);
  assert.equal(await run(proxy.pgPort), viaServer);
});

test('LISTEN / NOTIFY between two proxied clients, with and without payload, on commit only', async () => {
  const channel = uniqueName('sc_e2e_chan');
  const listener = await client(proxy.pgPort);
  const notifier = await client(proxy.pgPort);
  const received: pg.Notification[] = [];
  listener.on('notification', (n) => received.push(n));
  await listener.query(`LISTEN ${channel}`);
  await notifier.query(`NOTIFY ${channel}`);
  await notifier.query('SELECT pg_notify($1, $2)', [channel, 'payload ünïcødé']);
  await notifier.query('BEGIN');
  await notifier.query(`NOTIFY ${channel}, 'in transaction'`);
  // The first two arrive whenever the listener's socket is read, which a loaded machine delays.
  await waitFor(() => received.length >= 2, 10_000);
  await sleep(300);
  assert.is(received.length, 2, 'a notification inside an open transaction waits for COMMIT');
  await notifier.query('COMMIT');
  await waitFor(() => received.length >= 3, 10_000);
  assert.equal(received.map((n) => [n.channel, n.payload, n.processId]), [
    [channel, '', notifier.processID],
    [channel, 'payload ünïcødé', notifier.processID],
    [channel, 'in transaction', notifier.processID],
  ]);
  await listener.query(`UNLISTEN ${channel}`);
});

test('NoticeResponse from RAISE NOTICE in a DO block reaches the client as on the server', async () => {
  const notices = async (port: number): Promise<unknown[]> => {
    const c = await client(port);
    const seen: unknown[] = [];
    c.on('notice', (n) => seen.push({ severity: n.severity, code: n.code, message: n.message, where: n.where }));
    await c.query(`DO $$ BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful' USING ERRCODE = '01000'; END $$`);
    return seen;
  };
  const viaServer = await notices(DIRECT_PG.port);
  assert.is(viaServer.length, 2);
  assert.equal(await notices(proxy.pgPort), viaServer);
});

test('a client that disappears mid-query: its backend goes away, other clients are served', async () => {
  const bystander = await client(proxy.pgPort);
  const bystanderQuery = bystander.query('SELECT pg_sleep(1) AS slept, 42 AS answer');
  const leaver = await RawClient.login(proxy.pgPort);
  const pid = leaver.backendKey!.processID;
  leaver.send(serialize.query('SELECT pg_sleep(30)'));
  await waitForActiveQuery(pid, 'pg_sleep(30)');
  leaver.destroy();
  await waitForBackendGone(pid, 5000);
  assert.equal((await bystanderQuery).rows, [{ slept: '', answer: 42 }]);
  const fresh = await client(proxy.pgPort);
  assert.equal((await fresh.query('SELECT 2 AS two')).rows, [{ two: 2 }]);
});

test.run();
