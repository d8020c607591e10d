// test-timeout: 120
//
// The race between an in-flight miss and a write (issue 3, item 6), made deterministic with a relay
// between sidecache and PostgreSQL that holds the reply of a chosen read: A's read has run on the
// server (old data) but its reply is held; B writes through the proxy and gets its ack; A's reply is
// released. A may see the old data (its read began before the write), but the result must not be
// stored: A's next read and a third client's read must see the write. A control run without the write
// shows the held reply is cached normally, so the test can fail. Variants: each protocol, writes of
// several kinds (upsert, DDL, TRUNCATE, a COMMIT), an unrelated table, and a write whose own ack is held.
// Then the same promise under load: writers stamp increasing versions, readers check that every read
// that started after a write's ack sees at least that version.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { DIRECT_PG, connectPg, direct, sleep, uniqueName } from './support/pg-direct.js';
import { startHoldRelay, type HoldRelay } from './support/hold-relay.js';
import { loadUntil } from './support/until.js';
import { cacheCounters, measure } from './support/metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

let relay: HoldRelay;
/** Upstream = the hold relay. */
let heldProxy: RunningProxy;
/** Upstream = PostgreSQL, for the load test. */
let proxy: RunningProxy;
const open: pg.Client[] = [];
const tables: string[] = [];

async function client(port: number): Promise<pg.Client> {
  const c = await connectPg(port);
  open.push(c);
  // A first cacheable read sends the session's identity check (upstream-identity.ts): done now, the
  // first bytes held after a marker are those of the marked read's probe, right before the read.
  await c.query('SELECT 1');
  return c;
}

async function newTable(columns: string, rows: string): Promise<string> {
  const name = uniqueName('sc_race');
  tables.push(name);
  await direct(`CREATE TABLE ${name} (${columns})`);
  await direct(`INSERT INTO ${name} VALUES ${rows}`);
  return name;
}

test.before(async () => {
  relay = await startHoldRelay({ host: DIRECT_PG.host, port: DIRECT_PG.port });
  heldProxy = await startProxy({ pgUpstream: relay.url });
  proxy = await startProxy();
});

test.after(async () => {
  await Promise.all(open.map((c) => c.end().catch(() => undefined)));
  await heldProxy?.stop();
  await proxy?.stop();
  await relay?.close();
  for (const t of tables) await direct(`DROP TABLE IF EXISTS ${t}`);
});

/** How the reader sends its query: simple Query, unnamed extended (parameterised), named statement. */
type ReadForm = 'simple' | 'unnamed' | 'named';

function readQuery(form: ReadForm, table: string, marker: string): pg.QueryConfig {
  const text = `SELECT v FROM ${table} WHERE id = ${form === 'simple' ? '1' : '$1'} /* ${marker} */`;
  switch (form) {
    case 'simple': return { text };
    case 'unnamed': return { text, values: [1] };
    case 'named': return { name: `${table}_read`, text, values: [1] };
  }
}

async function readV(c: pg.Client, q: pg.QueryConfig): Promise<number> {
  const { rows } = await c.query(q);
  return rows[0].v as number;
}

/**
 * Sends A's read with its reply held at the relay; runs `meanwhile` once the server has answered
 * (so the read's snapshot predates it); releases the reply and returns what A got.
 */
async function heldRead(a: pg.Client, q: pg.QueryConfig, marker: string, meanwhile: () => Promise<void>): Promise<number> {
  const hold = relay.holdAfter(marker);
  const pending = readV(a, q);
  try {
    await hold.waitHeld();
    await sleep(50); // let the rest of the reply (rows, CommandComplete, ReadyForQuery) pile up too
    await meanwhile();
  } finally {
    hold.release();
  }
  return pending;
}

for (const form of ['simple', 'unnamed', 'named'] as const) {
  test(`control (${form}): a held reply with no write in between is cached as usual`, async () => {
    const table = await newTable('id int PRIMARY KEY, v int NOT NULL', '(1, 1)');
    const marker = `hold-${table}`;
    const a = await client(heldProxy.pgPort);
    const q = readQuery(form, table, marker);
    assert.is(await heldRead(a, q, marker, async () => undefined), 1);
    const { result, delta } = await measure(heldProxy.adminPort, () => readV(a, q));
    assert.is(result, 1);
    assert.is(delta.hits, 1, `the released result was stored: ${JSON.stringify(delta)}`);
  });

  test(`race (${form}): a miss in flight while another client's write is acked is not stored`, async () => {
    const table = await newTable('id int PRIMARY KEY, v int NOT NULL', '(1, 1)');
    const marker = `hold-${table}`;
    const [a, b, c] = [await client(heldProxy.pgPort), await client(heldProxy.pgPort), await client(heldProxy.pgPort)];
    const q = readQuery(form, table, marker);
    const seenByA = await heldRead(a, q, marker, async () => {
      const { rowCount } = await b.query(`UPDATE ${table} SET v = 2 WHERE id = 1`);
      assert.is(rowCount, 1);
    });
    assert.is(seenByA, 1, 'A read before the write (test setup: its reply was held after the server ran it)');
    assert.is(await readV(a, q), 2, 'A\'s next read must see the acked write');
    assert.is(await readV(c, q), 2, 'a third client must see the acked write');
    assert.is(await readV(a, q), 2);
  });
}

test('race: a write committed by COMMIT of an explicit transaction while the read is in flight', async () => {
  const table = await newTable('id int PRIMARY KEY, v int NOT NULL', '(1, 1)');
  const marker = `hold-${table}`;
  const [a, b] = [await client(heldProxy.pgPort), await client(heldProxy.pgPort)];
  const q = readQuery('unnamed', table, marker);
  await b.query('BEGIN');
  await b.query(`UPDATE ${table} SET v = 3 WHERE id = 1`);
  const seenByA = await heldRead(a, q, marker, async () => {
    await b.query('COMMIT');
  });
  assert.is(seenByA, 1);
  assert.is(await readV(a, q), 3);
  assert.is(await readV(await client(heldProxy.pgPort), q), 3);
});

const MEANWHILE_WRITES: Array<[string, (b: pg.Client, table: string) => Promise<unknown>]> = [
  ['an INSERT .. ON CONFLICT DO UPDATE', (b, t) => b.query(`INSERT INTO ${t} VALUES (1, 5) ON CONFLICT (id) DO UPDATE SET v = 5`)],
  ['a parameterised UPDATE', (b, t) => b.query(`UPDATE ${t} SET v = $1 WHERE id = $2`, [5, 1])],
  ['DDL that rewrites the values', (b, t) => b.query(`ALTER TABLE ${t} ALTER COLUMN v TYPE int USING v + 4`)],
  ['TRUNCATE and INSERT', async (b, t) => {
    await b.query(`TRUNCATE ${t}`);
    await b.query(`INSERT INTO ${t} VALUES (1, 5)`);
  }],
];

for (const [what, write] of MEANWHILE_WRITES) {
  test(`race: ${what} acked while the read is in flight`, async () => {
    const table = await newTable('id int PRIMARY KEY, v int NOT NULL', '(1, 1)');
    const marker = `hold-${table}`;
    const [a, b] = [await client(heldProxy.pgPort), await client(heldProxy.pgPort)];
    const q = readQuery('unnamed', table, marker);
    assert.is(await heldRead(a, q, marker, async () => {
      await write(b, table);
    }), 1);
    assert.is(await readV(a, q), 5);
    assert.is(await readV(await client(heldProxy.pgPort), q), 5);
  });
}

test('a write whose acknowledgement is held: reads may see the old entry until the ack, the writer\'s next read sees its write', async () => {
  const table = await newTable('id int PRIMARY KEY, v int NOT NULL', '(1, 1)');
  const marker = `hold-${table}`;
  const [a, b] = [await client(heldProxy.pgPort), await client(heldProxy.pgPort)];
  const q = readQuery('simple', table, 'not-held');
  assert.is(await readV(a, q), 1);
  assert.is(await readV(a, q), 1);
  const hold = relay.holdAfter(marker);
  const written = b.query(`UPDATE ${table} SET v = 2 WHERE id = 1 /* ${marker} */`);
  try {
    await hold.waitHeld(); // the server committed; sidecache has not seen the acknowledgement yet
    const during = await readV(a, q);
    assert.ok(during === 1 || during === 2, `read during the held ack: ${during}`);
  } finally {
    hold.release();
  }
  assert.is((await written).rowCount, 1);
  assert.is(await readV(b, q), 2, 'the writer reads its own acked write');
  assert.is(await readV(a, q), 2, 'and so does everyone else');
});

test('race: a write to another table while the read is in flight does not stop the fill', async () => {
  const table = await newTable('id int PRIMARY KEY, v int NOT NULL', '(1, 1)');
  const other = await newTable('id int PRIMARY KEY', '(1)');
  const marker = `hold-${table}`;
  const [a, b] = [await client(heldProxy.pgPort), await client(heldProxy.pgPort)];
  const q = readQuery('simple', table, marker);
  assert.is(await heldRead(a, q, marker, async () => {
    await b.query(`UPDATE ${other} SET id = 2`);
  }), 1);
  const { result, delta } = await measure(heldProxy.adminPort, () => readV(a, q));
  assert.is(result, 1);
  assert.is(delta.hits, 1, `an unrelated write leaves the fill alone: ${JSON.stringify(delta)}`);
});

const WRITERS = 3;
const READERS = 4;
/** The load runs at least LOAD_MS, then until it has MIN_READS reads, MIN_WRITES writes and a hit. */
const LOAD_MS = 4000;
const MAX_LOAD_MS = 40_000;
const MIN_READS = 200;
const MIN_WRITES = 50;

test(`under load: ${WRITERS} writers, ${READERS} readers, ${MIN_READS}+ reads; no read started after an ack sees an older version`, async () => {
  const stamps = await newTable('w int PRIMARY KEY, version int NOT NULL',
    Array.from({ length: WRITERS }, (_, w) => `(${w}, 0)`).join(', '));
  const labels = await newTable('w int PRIMARY KEY, label text NOT NULL',
    Array.from({ length: WRITERS }, (_, w) => `(${w}, 'writer ${w}')`).join(', '));
  /** Highest version of each writer whose write was acknowledged. */
  const acked = new Array<number>(WRITERS).fill(0);
  const violations: string[] = [];
  let reads = 0;
  let writes = 0;

  const writeStyles: Array<(c: pg.Client, w: number, version: number) => Promise<unknown>> = [
    (c, w, version) => c.query(`UPDATE ${stamps} SET version = ${version} WHERE w = ${w}`),
    (c, w, version) => c.query(`UPDATE ${stamps} SET version = $1 WHERE w = $2`, [version, w]),
    (c, w, version) => c.query(`INSERT INTO ${stamps} VALUES ($1, $2) ON CONFLICT (w) DO UPDATE SET version = EXCLUDED.version`,
      [w, version]),
    async (c, w, version) => {
      await c.query('BEGIN');
      await c.query(`UPDATE ${stamps} SET version = $1 WHERE w = $2`, [version, w]);
      await c.query('COMMIT');
    },
  ];
  const writer = async (w: number, running: () => boolean): Promise<void> => {
    const c = await client(proxy.pgPort);
    for (let version = 1; running(); version++) {
      await writeStyles[version % writeStyles.length]!(c, w, version);
      acked[w] = version;
      writes++;
      await sleep(Math.random() * 8); // leave gaps in which entries live long enough to be hit
    }
  };

  const readForms: Array<(c: pg.Client, w: number) => Promise<Array<{ w: number; version: number }>>> = [
    async (c) => (await c.query(`SELECT w, version FROM ${stamps} ORDER BY w`)).rows,
    async (c) => (await c.query(`SELECT w, version FROM ${stamps} WHERE w >= $1 ORDER BY w`, [0])).rows,
    async (c, w) => (await c.query(`SELECT w, version FROM ${stamps} WHERE w = $1`, [w])).rows,
    async (c, w) => (await c.query({ name: 'by_writer', text: `SELECT w, version FROM ${stamps} WHERE w = $1`, values: [w] })).rows,
    async (c) => (await c.query(`SELECT s.w, s.version FROM ${labels} l JOIN ${stamps} s USING (w) ORDER BY s.w`)).rows,
  ];
  const reader = async (r: number, running: () => boolean): Promise<void> => {
    const c = await client(proxy.pgPort);
    for (let i = r; running(); i++) {
      const w = i % WRITERS;
      const floor = acked.slice(); // taken before the read is sent: every write acked so far
      const rows = await readForms[i % readForms.length]!(c, w);
      reads++;
      for (const row of rows) {
        if (row.version < floor[row.w]!) {
          violations.push(`read form ${i % readForms.length}: writer ${row.w} version ${row.version} < acked ${floor[row.w]}`);
        }
      }
    }
  };

  const hitsBefore = (await cacheCounters(proxy.adminPort)).hits;
  const { delta } = await measure(proxy.adminPort, () => loadUntil([
    ...Array.from({ length: WRITERS }, (_, w) => (running: () => boolean) => writer(w, running)),
    ...Array.from({ length: READERS }, (_, r) => (running: () => boolean) => reader(r, running)),
  ], {
    minMs: LOAD_MS,
    maxMs: MAX_LOAD_MS,
    enough: async () => reads >= MIN_READS && writes >= MIN_WRITES && (await cacheCounters(proxy.adminPort)).hits > hitsBefore,
  }));
  const summary = `${reads} reads, ${writes} writes, ${violations.length} violations; counters ${JSON.stringify(delta)}`;
  assert.equal(violations.slice(0, 10), [], summary);
  assert.ok(reads >= MIN_READS && writes >= MIN_WRITES, summary);
  assert.ok(delta.hits > 0, `the load must exercise hits: ${summary}`);
  assert.ok(delta.misses > 0, summary);
  const final = (await direct<{ version: number }>(`SELECT version FROM ${stamps} ORDER BY w`)).rows.map((r) => r.version);
  assert.equal(final, acked, 'PostgreSQL holds the last acked version of each writer');
});

test.run();
