// test-timeout: 120
//
// The `in-read-only-transactions: true` cache rule on PostgreSQL, through the real binary: a read
// cached outside a transaction is answered from the cache inside BEGIN READ ONLY (simple, unnamed
// and named extended protocol) with ReadyForQuery 'T'; without the rule, in a read-write block,
// after SET TRANSACTION READ WRITE or an error it goes to the server; a miss inside the block is
// stored only when it is the block's first statement the server sees (whose snapshot PostgreSQL
// takes at that statement, shown here on the server itself); a write committed through the proxy
// still invalidates and the block then reads fresh data. A Sync group of such reads is answered
// there as its statements alone would be.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { connectPg, direct, uniqueName } from './support/pg-direct.js';
import { cacheStats, measure } from './support/metrics.js';
import { RawClient, serialize } from './support/pg-raw.js';
import { DIRECT_PG, localServersConfig, spawnSidecache, type RunningProxy } from './support/sidecache.js';

const RO = uniqueName('sc_rotx');
const PLAIN = uniqueName('sc_rotx_plain');
const dir = mkdtempSync(path.join(tmpdir(), 'sidecache-rotx-pg-'));
const file = path.join(dir, 'sidecache.yaml');
let proxy: RunningProxy;
let c: pg.Client;

/** The row's value through `client`: simple protocol, unnamed extended, or a named statement. */
async function v(client: pg.Client, table: string, id: number, how: 'simple' | 'unnamed' | 'named' = 'simple'): Promise<number> {
  const r = how === 'simple' ? await client.query<{ v: number }>(`SELECT v FROM ${table} WHERE id = ${id}`)
    : how === 'unnamed' ? await client.query<{ v: number }>(`SELECT v FROM ${table} WHERE id = $1`, [id])
    : await client.query<{ v: number }>({ name: `rotx_${table}`, text: `SELECT v FROM ${table} WHERE id = $1`, values: [id] });
  return r.rows[0]!.v;
}

function txStatus(client: pg.Client): string {
  return (client as unknown as { getTransactionStatus(): string }).getTransactionStatus();
}

test.before(async () => {
  for (const t of [RO, PLAIN]) {
    await direct(`CREATE TABLE ${t} (id int PRIMARY KEY, v int NOT NULL)`);
    await direct(`INSERT INTO ${t} SELECT g, 1 FROM generate_series(1, 20) g`);
  }
  writeFileSync(file, [
    ...localServersConfig({ pg: true }),
    'cache-ttl: 0', // entries stay until invalidated: a write behind the proxy's back tells a hit
    'rules:',
    `  - match: {table: ${RO}}`,
    '    in-read-only-transactions: true',
  ].join('\n') + '\n');
  proxy = await spawnSidecache(['--config', file]);
  c = await connectPg(proxy.pgPort);
});

test.after(async () => {
  await c?.end().catch(() => {});
  await proxy?.stop();
  for (const t of [RO, PLAIN]) await direct(`DROP TABLE IF EXISTS ${t}`);
  rmSync(dir, { recursive: true, force: true });
});

test('a read cached outside is a hit inside BEGIN READ ONLY on every protocol path; status T, then COMMIT', async () => {
  for (const how of ['simple', 'unnamed', 'named'] as const) {
    await v(c, RO, 1, how);
    await v(c, RO, 1, how); // cached (the named statement is parsed upstream once)
  }
  // Behind the proxy's back: only an answer from the cache still says 1.
  await direct(`UPDATE ${RO} SET v = 2 WHERE id = 1`);
  const { delta } = await measure(proxy.adminPort, async () => {
    await c.query('BEGIN READ ONLY');
    assert.is(txStatus(c), 'T');
    for (const how of ['simple', 'unnamed', 'named'] as const) {
      assert.is(await v(c, RO, 1, how), 1, `${how}: answered from the cache`);
      assert.is(txStatus(c), 'T', `${how}: the answer's ReadyForQuery says "in a transaction block"`);
    }
    assert.equal((await c.query('SELECT 1 AS one')).rows, [{ one: 1 }], 'the server still answers in the block');
    assert.is(txStatus(c), 'T');
    await c.query('COMMIT');
    assert.is(txStatus(c), 'I');
  });
  assert.is(delta.hits, 3, JSON.stringify(delta));
  assert.is(await v(c, RO, 1), 1, 'still cached outside');
  const stats = await cacheStats(proxy.adminPort) as { topQueries: { byHits: { sample: string; rule: string | null }[] } };
  const q = stats.topQueries.byHits.find((s) => s.sample.includes(RO));
  assert.is(q?.rule, 'rules[0]', '/stats names the rule');
});

test('raw bytes: the hit inside the block is the stored reply with ReadyForQuery T, simple and extended', async () => {
  const raw = await RawClient.login(proxy.pgPort);
  try {
    const sql = `SELECT v, id FROM ${RO} WHERE id = 2`;
    const outside = await raw.query(sql);
    await raw.query(sql); // cached now
    await raw.query('BEGIN READ ONLY');
    const inside = await raw.query(sql);
    assert.equal(inside.map((m) => m.code).join(''), outside.map((m) => m.code).join(''));
    assert.ok(inside.slice(0, -1).every((m, i) => m.raw.equals(outside[i]!.raw)), 'same rows and tags');
    assert.equal([...inside.at(-1)!.raw], [0x5a, 0, 0, 0, 5, 0x54]);
    raw.send(serialize.parse({ text: sql }), serialize.bind({}), serialize.describe({ type: 'P' }), serialize.execute({}), serialize.sync());
    const ext = await raw.readUntilReadyForQuery();
    assert.equal(ext.map((m) => m.code).join(''), '12TDCZ');
    assert.equal([...ext.at(-1)!.raw], [0x5a, 0, 0, 0, 5, 0x54]);
    const commit = await raw.query('COMMIT');
    assert.equal([...commit.at(-1)!.raw], [0x5a, 0, 0, 0, 5, 0x49]);
  } finally {
    raw.socket.destroy();
  }
});

test('BEGIN READ ONLY in one extended batch with a read (as JDBC sends it): hits after it, its misses not stored', async () => {
  const raw = await RawClient.login(proxy.pgPort);
  try {
    const sql = (id: number) => `SELECT v, id FROM ${RO} WHERE id = ${id}`;
    await raw.query(sql(2));
    await raw.query(sql(2)); // cached
    const { delta } = await measure(proxy.adminPort, async () => {
      raw.send(
        serialize.parse({ text: 'BEGIN READ ONLY' }), serialize.bind({}), serialize.execute({}),
        serialize.parse({ text: sql(10) }), serialize.bind({}), serialize.describe({ type: 'P' }), serialize.execute({}),
        serialize.sync());
      const batch = await raw.readUntilReadyForQuery();
      assert.is(batch.map((m) => m.code).join(''), '12C12TDCZ');
      assert.is(batch.at(-1)!.raw.at(-1), 0x54);
      const hit = await raw.query(sql(2));
      assert.is(hit.at(-1)!.raw.at(-1), 0x54);
      await raw.query(sql(11)); // a miss after the block's snapshot was taken: not stored
      await raw.query('COMMIT');
      await raw.query(sql(11));
    });
    assert.is(delta.hits, 1, JSON.stringify(delta));
    assert.is(delta.misses, 2, JSON.stringify(delta));
  } finally {
    raw.socket.destroy();
  }
});

test('a Sync group of reads the rule opts in, inside BEGIN READ ONLY: answered wholly from the cache, ReadyForQuery T', async () => {
  const raw = await RawClient.login(proxy.pgPort);
  try {
    const sql = (id: number) => `SELECT v, id FROM ${RO} WHERE id = ${id} /* group */`;
    const one = (id: number) => [serialize.parse({ text: sql(id) }), serialize.bind({}), serialize.describe({ type: 'P' }), serialize.execute({})];
    const rows: Buffer[] = [];
    for (const id of [17, 18]) {
      for (let i = 0; i < 2; i++) {
        raw.send(...one(id), serialize.sync());
        const reply = await raw.readUntilReadyForQuery();
        if (i === 1) rows.push(reply.find((m) => m.code === 'D')!.raw);
      }
    }
    // Behind the proxy's back: only answers from the cache still show the old rows.
    await direct(`UPDATE ${RO} SET v = v + 100 WHERE id IN (17, 18)`);
    await raw.query('BEGIN READ ONLY');
    const { delta } = await measure(proxy.adminPort, async () => {
      raw.send(...one(18), ...one(17), serialize.sync());
      const group = await raw.readUntilReadyForQuery();
      assert.is(group.map((m) => m.code).join(''), '12TDC12TDCZ');
      assert.equal(group.filter((m) => m.code === 'D').map((m) => m.raw), [rows[1], rows[0]], 'both from the cache, in order');
      assert.equal([...group.at(-1)!.raw], [0x5a, 0, 0, 0, 5, 0x54]);
    });
    assert.equal([delta.hits, delta.misses], [2, 0], JSON.stringify(delta));
    const commit = await raw.query('COMMIT');
    assert.equal([...commit.at(-1)!.raw], [0x5a, 0, 0, 0, 5, 0x49]);
  } finally {
    raw.socket.destroy();
  }
});

test('a named portal bound inside BEGIN READ ONLY stays usable later in the block, as directly', async () => {
  // The portal of a Bind answered from the cache would exist on the client's side only: a later
  // Execute or Describe of it in the block must get what the server gives directly.
  const sql = `SELECT v, id FROM ${RO} WHERE id = 19 /* named portal */`;
  const session = async (port: number): Promise<string[]> => {
    const raw = await RawClient.login(port);
    try {
      const codes: string[] = [];
      // Cached outside the block first (twice: a miss, then a hit).
      for (let i = 0; i < 2; i++) {
        raw.send(serialize.parse({ text: sql }), serialize.bind({}), serialize.execute({}), serialize.sync());
        await raw.readUntilReadyForQuery();
      }
      await raw.query('BEGIN READ ONLY');
      raw.send(serialize.parse({ text: sql }), serialize.bind({ portal: 'p1' }), serialize.execute({ portal: 'p1' }), serialize.sync());
      codes.push((await raw.readUntilReadyForQuery()).map((m) => m.code).join(''));
      raw.send(serialize.execute({ portal: 'p1' }), serialize.sync());
      codes.push((await raw.readUntilReadyForQuery()).map((m) => m.code).join(''));
      raw.send(serialize.describe({ type: 'P', name: 'p1' }), serialize.sync());
      codes.push((await raw.readUntilReadyForQuery()).map((m) => m.code).join(''));
      codes.push((await raw.query('COMMIT')).map((m) => m.code).join(''));
      return codes;
    } finally {
      raw.socket.destroy();
    }
  };
  const direct = await session(DIRECT_PG.port);
  assert.equal(await session(proxy.pgPort), direct);
  assert.ok(!direct.join().includes('E'), `no error directly: ${direct.join(' ')}`);
});

test('psql: a hit inside the block leaves it in the block (with AUTOCOMMIT off psql sends no extra BEGIN)', async () => {
  const script = path.join(dir, 'ro.sql');
  writeFileSync(script, [
    `SELECT v FROM ${RO} WHERE id = 12;`,
    `SELECT v FROM ${RO} WHERE id = 12;`,
    'BEGIN READ ONLY;',
    `SELECT v FROM ${RO} WHERE id = 12;`,
    // psql sends BEGIN before the next statement if the last ReadyForQuery said idle; the server
    // would warn "there is already a transaction in progress".
    '\\set AUTOCOMMIT off',
    `SELECT v FROM ${RO} WHERE id = 12;`,
    'COMMIT;',
  ].join('\n') + '\n');
  const run = (port: number): { stdout: string; stderr: string; status: number | null } => {
    const r = spawnSync('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-f', script], {
      env: { PATH: process.env.PATH, LANG: 'C.UTF-8', PGHOST: DIRECT_PG.host, PGPORT: String(port), PGUSER: DIRECT_PG.user, PGDATABASE: DIRECT_PG.database },
      encoding: 'utf8', timeout: 30_000,
    });
    return { stdout: r.stdout, stderr: r.stderr, status: r.status };
  };
  const expected = run(DIRECT_PG.port);
  const { result, delta } = await measure(proxy.adminPort, async () => run(proxy.pgPort));
  assert.equal(result, expected, 'what psql prints against PostgreSQL');
  assert.is(result.stderr, '', 'no warning');
  assert.is(result.status, 0);
  assert.is(delta.hits, 3, JSON.stringify(delta));
});

test('without the rule, and inside a read-write block even with it, reads are bypasses', async () => {
  await v(c, PLAIN, 1);
  await v(c, PLAIN, 1);
  await v(c, RO, 3);
  await v(c, RO, 3);
  const { delta } = await measure(proxy.adminPort, async () => {
    await c.query('BEGIN READ ONLY');
    assert.is(await v(c, PLAIN, 1), 1);
    await c.query('COMMIT');
    for (const begin of ['BEGIN', 'BEGIN READ WRITE', 'START TRANSACTION ISOLATION LEVEL REPEATABLE READ']) {
      await c.query(begin);
      assert.is(await v(c, RO, 3), 1);
      await c.query('COMMIT');
    }
  });
  assert.is(delta.hits, 0, JSON.stringify(delta));
  assert.is(delta.bypassByReason['in-transaction'], 4 + 4, 'the reads and the COMMITs: ' + JSON.stringify(delta.bypassByReason));
});

test('SET TRANSACTION READ WRITE (accepted before the first query), SET LOCAL, or an error end the hits', async () => {
  await v(c, RO, 4);
  await v(c, RO, 4);
  await direct(`UPDATE ${RO} SET v = 2 WHERE id = 4`);
  await c.query('BEGIN READ ONLY');
  assert.is(await v(c, RO, 4), 1, 'a hit: the server has not taken a snapshot');
  await c.query('SET TRANSACTION READ WRITE');
  assert.is(await v(c, RO, 4), 2, 'no longer known read-only: from the server');
  await c.query(`UPDATE ${RO} SET v = 3 WHERE id = 4`);
  await c.query('ROLLBACK');

  await c.query('BEGIN READ ONLY');
  assert.is(await v(c, RO, 4), 1);
  const err = await c.query('SELECT 1 / 0').catch((e: Error) => e);
  assert.instance(err, Error);
  const aborted = await c.query(`SELECT v FROM ${RO} WHERE id = 4`).catch((e: Error & { code?: string }) => e);
  assert.is((aborted as { code?: string }).code, '25P02', 'a failed block gets the server\'s error, not a cached row');
  // Read after a whole round trip: node-postgres rejects a query at its ErrorResponse, before the
  // ReadyForQuery that carries the status may have been read.
  assert.is(txStatus(c), 'E');
  await c.query('ROLLBACK');
  assert.is(txStatus(c), 'I');

  // SAVEPOINT, SHOW, SET LOCAL: anything but a plain read ends the hits (SET LOCAL also makes
  // the session's context unknown until a read outside a block probes it again).
  for (const other of ['SAVEPOINT s', 'SHOW search_path', 'SET LOCAL statement_timeout = 0']) {
    await c.query('BEGIN READ ONLY');
    assert.is(await v(c, RO, 4), 1, `before ${other}`);
    await c.query(other);
    assert.is(await v(c, RO, 4), 2, `after ${other}`);
    await c.query('ROLLBACK');
  }
  await v(c, PLAIN, 1); // outside a block the probe reads the context again, for the next tests
});

test('the server takes a block\'s snapshot at its first statement, not at BEGIN (what first-statement fills rest on)', async () => {
  const a = await connectPg(DIRECT_PG.port);
  try {
    await a.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await direct(`UPDATE ${RO} SET v = 7 WHERE id = 5`);
    assert.is(await v(a, RO, 5), 7, 'a write committed after BEGIN is seen by the first statement');
    await direct(`UPDATE ${RO} SET v = 8 WHERE id = 5`);
    assert.is(await v(a, RO, 5), 7, 'but not by the second');
    await a.query('COMMIT');
  } finally {
    await a.end();
  }
});

test('a miss inside the block is stored only when it is the first statement the server sees', async () => {
  // Not first: the read of PLAIN took the snapshot.
  const notFirst = await measure(proxy.adminPort, async () => {
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await v(c, PLAIN, 2);
    assert.is(await v(c, RO, 6), 1);
    await c.query('COMMIT');
    assert.is(await v(c, RO, 6), 1);
  });
  assert.is(notFirst.delta.hits, 0, 'the miss in the block was not stored');
  assert.is(notFirst.delta.misses, 2, JSON.stringify(notFirst.delta));
  // First: stored, and hit outside (with ReadyForQuery I) and in the next block.
  const first = await measure(proxy.adminPort, async () => {
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    assert.is(await v(c, RO, 7, 'unnamed'), 1);
    await c.query('COMMIT');
    assert.is(await v(c, RO, 7, 'unnamed'), 1);
    assert.is(txStatus(c), 'I');
    await c.query('BEGIN READ ONLY');
    assert.is(await v(c, RO, 7, 'unnamed'), 1);
    assert.is(txStatus(c), 'T');
    await c.query('COMMIT');
  });
  assert.is(first.delta.misses, 1, JSON.stringify(first.delta));
  assert.is(first.delta.hits, 2, JSON.stringify(first.delta));
  const raw = await RawClient.login(proxy.pgPort);
  try {
    await raw.query(`BEGIN READ ONLY`);
    await raw.query(`SELECT v FROM ${RO} WHERE id = 8`); // first statement: stored
    await raw.query('COMMIT');
    const hit = await raw.query(`SELECT v FROM ${RO} WHERE id = 8`);
    assert.equal([...hit.at(-1)!.raw], [0x5a, 0, 0, 0, 5, 0x49], 'stored with ReadyForQuery I');
  } finally {
    raw.socket.destroy();
  }
});

test('a write committed through the proxy by another connection invalidates; the block then reads fresh data', async () => {
  await v(c, RO, 9);
  await v(c, RO, 9);
  const writer = await connectPg(proxy.pgPort);
  try {
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    assert.is(await v(c, RO, 9), 1, 'a hit');
    await writer.query(`UPDATE ${RO} SET v = 5 WHERE id = 9`);
    const { delta } = await measure(proxy.adminPort, async () => {
      assert.is(await v(c, RO, 9), 5, 'fresh from the server');
    });
    assert.is(delta.misses, 1);
    await c.query('COMMIT');
    // That read was the block's first on the server: stored.
    const after = await measure(proxy.adminPort, async () => assert.is(await v(writer, RO, 9), 5));
    assert.is(after.delta.hits, 1);
  } finally {
    await writer.end();
  }
});

test.run();
