// test-timeout: 120
//
// The fill race across proxies (issue 16, item 2), made deterministic with a relay that holds the
// reply of B's read: the read has run on PostgreSQL (old data) but its reply is held; a write
// through another proxy A is acknowledged and its invalidation reaches B over the bus; then B's
// reply is released. B's client may see the old data (its read began before the write), but B must
// not store it: B's next read sees the write. A control run without the write shows the held reply
// is stored as usual, so the test can fail.
import pg from 'pg';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { waitForBus } from './support/fleet.js';
import { startHoldRelay, type HoldRelay } from './support/hold-relay.js';
import { measure, scrape, sumOf } from './support/metrics.js';
import { DIRECT_PG, connectPg, direct, sleep, uniqueName } from './support/pg-direct.js';
import { startRedis, type RedisServer } from './support/redis-server.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

let redis: RedisServer;
let relay: HoldRelay;
let a: RunningProxy;
/** Its upstream is the hold relay. */
let b: RunningProxy;
const open: pg.Client[] = [];
const tables: string[] = [];

async function client(proxy: RunningProxy): Promise<pg.Client> {
  const c = await connectPg(proxy.pgPort);
  open.push(c);
  return c;
}

async function newTable(): Promise<string> {
  const name = uniqueName('sc_fleet_race');
  tables.push(name);
  await direct(`CREATE TABLE ${name} (id int PRIMARY KEY, v int NOT NULL)`);
  await direct(`INSERT INTO ${name} VALUES (1, 1)`);
  return name;
}

async function readV(c: pg.Client, text: string): Promise<number> {
  return (await c.query(text)).rows[0].v as number;
}

async function applied(proxy: RunningProxy): Promise<number> {
  return sumOf(await scrape(proxy.adminPort), 'sidecache_bus_applied_total');
}

/** B's read with its reply held until `meanwhile` is done. */
async function heldRead(reader: pg.Client, text: string, marker: string, meanwhile: () => Promise<void>): Promise<number> {
  const hold = relay.holdAfter(marker);
  const pending = readV(reader, text);
  try {
    await hold.waitHeld();
    await sleep(50);
    await meanwhile();
  } finally {
    hold.release();
  }
  return pending;
}

test.before(async () => {
  redis = await startRedis();
  relay = await startHoldRelay({ host: DIRECT_PG.host, port: DIRECT_PG.port });
  const fleet = ['--redis', redis.url];
  a = await startProxy({ args: fleet });
  b = await startProxy({ pgUpstream: relay.url, args: fleet });
  await waitForBus([a, b]);
});

test.after(async () => {
  await Promise.all(open.map((c) => c.end().catch(() => undefined)));
  await a?.stop();
  await b?.stop();
  await relay?.close();
  await redis?.stop();
  for (const t of tables) await direct(`DROP TABLE IF EXISTS ${t}`);
});

test('control: a held reply with no write in between is stored by B as usual', async () => {
  const table = await newTable();
  const text = `SELECT v FROM ${table} WHERE id = 1 /* hold-${table} */`;
  const reader = await client(b);
  assert.is(await heldRead(reader, text, `hold-${table}`, async () => undefined), 1);
  const { result, delta } = await measure(b.adminPort, () => readV(reader, text));
  assert.is(result, 1);
  assert.is(delta.hits, 1, `the released result was stored: ${JSON.stringify(delta)}`);
});

test('a fill on B in flight while a write through A is acknowledged and applied on B is not stored', async () => {
  const table = await newTable();
  const text = `SELECT v FROM ${table} WHERE id = 1 /* hold-${table} */`;
  const [reader, writer] = [await client(b), await client(a)];
  const seen = await heldRead(reader, text, `hold-${table}`, async () => {
    const before = await applied(b);
    assert.is((await writer.query(`UPDATE ${table} SET v = 2 WHERE id = 1`)).rowCount, 1);
    // The invalidation reaches B over the bus before the held reply is let go.
    const deadline = Date.now() + 10_000;
    while ((await applied(b)) <= before) {
      if (Date.now() > deadline) throw new Error('B never applied A\'s invalidation');
      await sleep(20);
    }
  });
  assert.is(seen, 1, 'the read ran on the server before the write (test setup)');
  assert.is(await readV(reader, text), 2, 'B\'s next read sees the write: the fill that raced it was not stored');
  assert.is(await readV(await client(b), text), 2);
});

test.run();
