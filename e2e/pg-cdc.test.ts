// test-timeout: 400
// PostgreSQL's change stream (--pg-cdc) against a private cluster with wal_level=logical: writes
// sent straight to the database, of every kind, are seen through sidecache within the stream's lag
// (polled until seen or a deadline: counts are asserted, never durations); rolled-back ones
// invalidate nothing; a lost stream (walsender terminated, server restarted) is never silent: no
// stale read during or after, and caching resumes; a second sidecache follows its own stream.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import type { Cluster } from './support/cluster.js';
import {
  cdcDownBypasses, connectedMetric, everyWriteSeen, readUntil, stableHit, startLogicalCluster, streamOf, waitFor, waitForStream, type WriteCase,
} from './support/cdc.js';
import { measure } from './support/metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const DB = 'cdc_app';
let cluster: Cluster;
let proxy: RunningProxy;
let db: pg.Client;
let app: pg.Client;

function client(port: number, database = DB): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database });
  c.on('error', () => undefined);
  return c.connect().then(() => c);
}

function startCdcProxy(extra: string[] = []): Promise<RunningProxy> {
  // A long TTL: an entry the stream failed to invalidate must not be rescued by its expiry.
  return startProxy({ pgUpstream: `postgres://127.0.0.1:${cluster.port}`, args: ['--pg-cdc', `postgres://postgres@127.0.0.1:${cluster.port}`, '--cache-ttl', '10m', ...extra] });
}

/** Reads `sql` through sidecache until it stays a hit. */
function cached(sql: string, via: pg.Client = app, adminPort = proxy.adminPort): Promise<unknown[]> {
  return stableHit(async () => {
    const { result, delta } = await measure(adminPort, () => via.query(sql));
    return { rows: result.rows, hit: delta.hits === 1 };
  }, sql);
}

/** Reads `sql` through sidecache until it returns `expected`; returns how many reads it took. */
function seen(sql: string, expected: unknown[], via: pg.Client = app): Promise<number> {
  return readUntil(async () => (await via.query(sql)).rows, expected, sql);
}

test.before(async () => {
  cluster = await startLogicalCluster({ settings: { max_prepared_transactions: 5 } });
  await cluster.query(`CREATE DATABASE ${DB}`);
  db = await client(cluster.port);
  await db.query(`
    CREATE TABLE kv (k int PRIMARY KEY, v int);
    INSERT INTO kv SELECT g, 0 FROM generate_series(1, 20) g;
    CREATE TABLE big (id int PRIMARY KEY, pad text);
    CREATE TABLE parted (k int PRIMARY KEY, v int) PARTITION BY RANGE (k);
    CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100);
    CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (100) TO (200);
    INSERT INTO parted VALUES (1, 0), (150, 0);
    CREATE TABLE audited (k int PRIMARY KEY, v int);
    CREATE TABLE audit_log (k int PRIMARY KEY, n int);
    INSERT INTO audited VALUES (1, 0); INSERT INTO audit_log VALUES (1, 0);
    CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE audit_log SET n = n + 1 WHERE k = 1; RETURN NEW; END $$;
    CREATE TRIGGER audited_count AFTER UPDATE ON audited FOR EACH ROW EXECUTE FUNCTION count_write();
    CREATE TABLE marker (k int PRIMARY KEY, v int); INSERT INTO marker VALUES (1, 0);
  `);
  proxy = await startCdcProxy();
  app = await client(proxy.pgPort);
});

test.after(async () => {
  await app?.end().catch(() => undefined);
  await db?.end().catch(() => undefined);
  await proxy?.stop();
  await cluster?.stop();
});

test('a database is followed from its first read: cdc-down bypasses until its stream is up, then hits', async () => {
  const sql = 'SELECT v FROM kv WHERE k = 1';
  const first = await measure(proxy.adminPort, () => app.query(sql));
  assert.is(first.delta.bypassByReason['cdc-down'], 1, 'the first read, before the stream is up, bypasses the cache');
  const stream = await waitForStream(proxy.adminPort, 'postgres', DB, 'up');
  assert.ok(stream.position !== null);
  assert.equal(await cached(sql), [{ v: 0 }]);
  assert.is(await connectedMetric(proxy.adminPort, 'postgres', DB), 1);
});

const CASES: WriteCase[] = [
  { name: 'INSERT', read: 'SELECT count(*)::int AS n FROM kv', write: () => db.query('INSERT INTO kv VALUES (100, 1)'), after: [{ n: 21 }] },
  { name: 'UPDATE', read: 'SELECT v FROM kv WHERE k = 2', write: () => db.query('UPDATE kv SET v = 2 WHERE k = 2'), after: [{ v: 2 }] },
  { name: 'DELETE', read: 'SELECT count(*)::int AS n FROM kv WHERE k = 100', write: () => db.query('DELETE FROM kv WHERE k = 100'), after: [{ n: 0 }] },
  { name: 'upsert (ON CONFLICT DO UPDATE)', read: 'SELECT v FROM kv WHERE k = 3', write: () => db.query('INSERT INTO kv VALUES (3, 33) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v'), after: [{ v: 33 }] },
  { name: 'MERGE', read: 'SELECT v FROM kv WHERE k = 4', write: () => db.query('MERGE INTO kv USING (SELECT 4 AS k) s ON kv.k = s.k WHEN MATCHED THEN UPDATE SET v = 44'), after: [{ v: 44 }] },
  { name: 'COPY FROM', read: 'SELECT count(*)::int AS n FROM big', write: () => db.query("COPY big FROM PROGRAM 'seq 1 5 | sed s/$/,x/' WITH (FORMAT csv)"), after: [{ n: 5 }] },
  { name: 'a write to a partition, read through its parent', read: 'SELECT v FROM parted WHERE k = 150', write: () => db.query('UPDATE parted_2 SET v = 7 WHERE k = 150'), after: [{ v: 7 }] },
  { name: 'a write through the parent, read from the partition', read: 'SELECT v FROM parted_1 WHERE k = 1', write: () => db.query('UPDATE parted SET v = 8 WHERE k = 1'), after: [{ v: 8 }] },
  { name: 'a table written by a trigger', read: 'SELECT n FROM audit_log WHERE k = 1', write: () => db.query('UPDATE audited SET v = v + 1'), after: [{ n: 1 }] },
  {
    name: 'writes in a long transaction, seen at its commit',
    read: 'SELECT v FROM kv WHERE k = 5',
    write: async () => {
      await db.query('BEGIN');
      await db.query('UPDATE kv SET v = 50 WHERE k = 5');
      await new Promise((r) => setTimeout(r, 300));
      await db.query('UPDATE kv SET v = 55 WHERE k = 5');
      await db.query('COMMIT');
    },
    after: [{ v: 55 }],
  },
  {
    name: 'a transaction large enough to be streamed while in progress',
    read: 'SELECT count(*)::int AS n FROM big',
    write: () => db.query("INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(10, 3009) g"),
    after: [{ n: 3005 }],
  },
  {
    name: 'a prepared transaction, seen at COMMIT PREPARED',
    read: 'SELECT v FROM kv WHERE k = 6',
    write: async () => {
      await db.query('BEGIN');
      await db.query('UPDATE kv SET v = 66 WHERE k = 6');
      await db.query("PREPARE TRANSACTION 'sc_cdc_2pc'");
      await db.query("COMMIT PREPARED 'sc_cdc_2pc'");
    },
    after: [{ v: 66 }],
  },
  { name: 'TRUNCATE', read: 'SELECT count(*)::int AS n FROM big', write: () => db.query('TRUNCATE big'), after: [{ n: 0 }] },
];

test('every kind of write sent straight to the database is seen through sidecache', async () => {
  await waitForStream(proxy.adminPort, 'postgres', DB, 'up');
  await everyWriteSeen(CASES, { cached: (sql) => cached(sql), seen: (sql, expected) => seen(sql, expected), invalidations: async () => (await streamOf(proxy.adminPort, 'postgres', DB))!.invalidations });
});

/** Writes the marker directly and waits until sidecache has seen it: everything committed before is through the stream. */
async function streamPassed(): Promise<void> {
  const sql = 'SELECT v FROM marker WHERE k = 1';
  await cached(sql);
  const v = (await db.query('UPDATE marker SET v = v + 1 WHERE k = 1 RETURNING v')).rows[0].v as number;
  await seen(sql, [{ v }]);
}

test('rolled-back transactions, small or streamed, invalidate nothing', async () => {
  const sql = 'SELECT v FROM kv WHERE k = 7';
  const countSql = 'SELECT count(*)::int AS n FROM big';
  await cached(sql);
  await cached(countSql);
  await db.query('BEGIN');
  await db.query('UPDATE kv SET v = 77 WHERE k = 7');
  await db.query("INSERT INTO big SELECT g, repeat('y', 200) FROM generate_series(1, 3000) g");
  await db.query('ROLLBACK');
  await streamPassed();
  for (const s of [sql, countSql]) {
    const { delta } = await measure(proxy.adminPort, () => app.query(s));
    assert.is(delta.hits, 1, `${s} is still cached after the rollback went by`);
  }
});

test('the walsender terminated: the database is fenced and dropped, no stale read, then caching resumes', async () => {
  const sql = 'SELECT v FROM kv WHERE k = 8';
  assert.equal(await cached(sql), [{ v: 0 }]);
  const failures = (await streamOf(proxy.adminPort, 'postgres', DB))!.failures;
  const bypasses = await cdcDownBypasses(proxy.adminPort, 'postgres');
  await db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = 'sidecache-cdc'");
  await waitFor('the stream to be seen lost', async () => ((await streamOf(proxy.adminPort, 'postgres', DB))!.failures > failures ? true : undefined));
  // Written while no stream follows: the next stream starts after it and will never deliver it.
  await db.query('UPDATE kv SET v = 88 WHERE k = 8');
  const during = await app.query(sql);
  const state = (await streamOf(proxy.adminPort, 'postgres', DB))!.state;
  if (state !== 'up') {
    assert.equal(during.rows, [{ v: 88 }], 'a read while the stream is down goes to the database');
    assert.ok(await cdcDownBypasses(proxy.adminPort, 'postgres') > bypasses, 'as a cdc-down bypass');
  }
  await waitForStream(proxy.adminPort, 'postgres', DB, 'up');
  assert.equal((await app.query(sql)).rows, [{ v: 88 }], 'the entry cached before the loss is gone');
  assert.equal(await cached(sql), [{ v: 88 }], 'caching resumes');
  await db.query('UPDATE kv SET v = 89 WHERE k = 8');
  await seen(sql, [{ v: 89 }]);
});

test('a restart of the server: no stale read during or after, caching resumes', async () => {
  const sql = 'SELECT v FROM kv WHERE k = 9';
  assert.equal(await cached(sql), [{ v: 0 }]);
  const failures = (await streamOf(proxy.adminPort, 'postgres', DB))!.failures;
  await db.end();
  await cluster.restart();
  db = await client(cluster.port);
  await db.query('UPDATE kv SET v = 99 WHERE k = 9');
  await waitFor('the stream to be seen lost', async () => ((await streamOf(proxy.adminPort, 'postgres', DB))!.failures > failures ? true : undefined));
  // The proxy's client sessions died with the server; a new one reads.
  await app.end().catch(() => undefined);
  app = await client(proxy.pgPort);
  assert.equal((await app.query(sql)).rows, [{ v: 99 }], 'never the value cached before the restart');
  await waitForStream(proxy.adminPort, 'postgres', DB, 'up');
  assert.equal((await app.query(sql)).rows, [{ v: 99 }]);
  assert.equal(await cached(sql), [{ v: 99 }], 'caching resumes');
  await db.query('UPDATE kv SET v = 98 WHERE k = 9');
  await seen(sql, [{ v: 98 }]);
});

test('a second sidecache in front of the same database follows its own stream; both see each other\'s writes', async () => {
  const second = await startCdcProxy();
  try {
    const other = await client(second.pgPort);
    const sql = 'SELECT v FROM kv WHERE k = 10';
    await other.query(sql);
    await waitForStream(second.adminPort, 'postgres', DB, 'up');
    await cached(sql);
    await cached(sql, other, second.adminPort);
    const senders = await db.query("SELECT count(*)::int AS n FROM pg_stat_replication WHERE application_name = 'sidecache-cdc'");
    assert.is(senders.rows[0].n, 2, 'one replication connection each');
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
