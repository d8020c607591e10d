// test-timeout: 240
//
// Request coalescing (issue 17 item 2), both protocols, through the real bin/sidecache: a relay
// between sidecache and the database (support/hold-relay.ts) holds the reply of the first fill of a
// hot key and counts how many times the statement reached the database. While the fill is held,
// the other clients ask the same key; once sidecache reports them all waiting
// (sidecache_coalesce_waiting) the reply is released. Without coalescing each of them would have
// gone to the database: the count is 1 and every client has the right answer. With a write
// acknowledged while the fill is in flight, the clients that asked after it must not be answered
// from that fill: they get the written value (and go to the database).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import type mysql from 'mysql2/promise';
import { DIRECT_PG, connectPg, direct, sleep, uniqueName } from './support/pg-direct.js';
import { DIRECT_MYSQL, connectMySql, directMySql } from './support/mysql-direct.js';
import { startHoldRelay, type HoldRelay } from './support/hold-relay.js';
import { scrape, sumOf } from './support/metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const CLIENTS = 24;

type Protocol = 'postgres' | 'mysql';

/**
 * The marker in a read's comment. A prepared MySQL read sends it as a parameter too, so every
 * execution that reaches the database carries it: a COM_STMT_EXECUTE has no text (node-postgres
 * sends the text in the Parse of each unnamed batch).
 */
function markerOf(sql: string): string {
  return /\/\* (\S+) \*\//.exec(sql)![1]!;
}

/** How a read is sent: text (simple Query, COM_QUERY) or prepared (unnamed extended batch, COM_STMT_EXECUTE). */
type Form = 'text' | 'prepared';

interface Client {
  /** `sql` reads id = 1: prepared, its `1` is sent as a parameter. */
  read(sql: string, form?: Form): Promise<number>;
  run(sql: string): Promise<void>;
  end(): Promise<void>;
}

let pgRelay: HoldRelay;
let myRelay: HoldRelay;
let proxy: RunningProxy;
/** The same upstreams with a short wait bound. */
let shortWait: RunningProxy;
const open: Client[] = [];
const tables: { protocol: Protocol; name: string }[] = [];

function pgClient(c: pg.Client): Client {
  return {
    read: async (sql, form = 'text') => Number((await (form === 'text' ? c.query(sql) : c.query(sql.replace('= 1', '= $1'), [1]))).rows[0].v),
    run: async (sql) => void (await c.query(sql)),
    end: () => c.end(),
  };
}

function myClient(c: mysql.Connection): Client {
  return {
    read: async (sql, form = 'text') => Number(((await (form === 'text' ? c.query(sql) : c.execute(sql.replace('= 1', "= ? AND ? <> ''"), [1, markerOf(sql)])))[0] as { v: number }[])[0]!.v),
    run: async (sql) => void (await c.query(sql)),
    end: () => c.end(),
  };
}

async function connect(protocol: Protocol, via: RunningProxy = proxy): Promise<Client> {
  const c = protocol === 'postgres' ? pgClient(await connectPg(via.pgPort)) : myClient(await connectMySql(via.mysqlPort));
  open.push(c);
  return c;
}

async function newTable(protocol: Protocol): Promise<string> {
  const name = uniqueName('sc_coalesce');
  tables.push({ protocol, name });
  if (protocol === 'postgres') await direct(`CREATE TABLE ${name} (id int PRIMARY KEY, v int NOT NULL); INSERT INTO ${name} VALUES (1, 1)`);
  else await directMySql(`CREATE TABLE ${name} (id int PRIMARY KEY, v int NOT NULL) ENGINE=InnoDB`, `INSERT INTO ${name} VALUES (1, 1)`);
  return name;
}

async function metric(name: string, protocol: Protocol, labels: Record<string, string> = {}, via: RunningProxy = proxy): Promise<number> {
  return sumOf(await scrape(via.adminPort), name, { protocol, ...labels });
}

/** Until sidecache reports `n` requests waiting for a fill (or fails after a generous deadline). */
async function waiting(protocol: Protocol, n: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  let seen = await metric('sidecache_coalesce_waiting', protocol);
  while (seen !== n && Date.now() < deadline) {
    await sleep(20);
    seen = await metric('sidecache_coalesce_waiting', protocol);
  }
  assert.is(seen, n, `${protocol}: requests waiting for the fill in flight`);
}

/**
 * A table, a writer and CLIENTS readers whose sessions know the read (each has run it once:
 * context, decision and server identity are known), the entry dropped by a write.
 */
async function hotKey(protocol: Protocol, form: Form = 'text', clients = CLIENTS, via: RunningProxy = proxy) {
  const table = await newTable(protocol);
  const marker = `coalesce-${table}`;
  const sql = `SELECT v FROM ${table} WHERE id = 1 /* ${marker} */`;
  const writer = await connect(protocol, via);
  const readers: Client[] = [];
  for (let i = 0; i < clients; i++) readers.push(await connect(protocol, via));
  for (const r of readers) assert.is(await r.read(sql, form), 1);
  await writer.run(`UPDATE ${table} SET v = 2 WHERE id = 1`);
  return { table, marker, sql, writer, readers, relay: protocol === 'postgres' ? pgRelay : myRelay };
}

test.before(async () => {
  pgRelay = await startHoldRelay({ host: DIRECT_PG.host, port: DIRECT_PG.port });
  myRelay = await startHoldRelay({ host: DIRECT_MYSQL.host, port: DIRECT_MYSQL.port });
  // A wait bound far above how long the test holds the fill: the waiters must not time out on a loaded machine.
  proxy = await startProxy({ pgUpstream: pgRelay.url, mysqlUpstream: `mysql://127.0.0.1:${myRelay.port}`, args: ['--coalesce-wait', '120s'] });
  // Long enough for two reads sent at once to meet in sidecache on a loaded machine.
  shortWait = await startProxy({ pgUpstream: pgRelay.url, mysqlUpstream: `mysql://127.0.0.1:${myRelay.port}`, args: ['--coalesce-wait', '2s'] });
});

test.after(async () => {
  await Promise.all(open.map((c) => c.end().catch(() => undefined)));
  await proxy?.stop();
  await shortWait?.stop();
  await pgRelay?.close();
  await myRelay?.close();
  for (const { protocol, name } of tables) {
    if (protocol === 'postgres') await direct(`DROP TABLE IF EXISTS ${name}`);
    else await directMySql(`DROP TABLE IF EXISTS ${name}`);
  }
});

for (const [protocol, form] of [['postgres', 'text'], ['postgres', 'prepared'], ['mysql', 'text'], ['mysql', 'prepared']] as const) {
  test(`${protocol} ${form}: identical misses in flight at once go to the database once, every client gets the answer`, async () => {
    const { marker, sql, readers, relay } = await hotKey(protocol, form);
    const coalescedBefore = await metric('sidecache_coalesced_total', protocol);
    const missesBefore = await metric('sidecache_cache_misses_total', protocol);
    const hold = relay.holdAfter(marker);
    const sent = relay.countSent(marker);
    let answers: number[];
    try {
      const reads = readers.map((r) => r.read(sql, form));
      await hold.waitHeld(1, 60_000);
      await waiting(protocol, CLIENTS - 1);
      hold.release();
      answers = await Promise.all(reads);
    } finally {
      hold.release();
    }
    assert.equal(answers, readers.map(() => 2));
    assert.is(await metric('sidecache_cache_misses_total', protocol) - missesBefore, 1, 'one fill');
    assert.is(sent.count, 1, 'the database ran the read once');
    assert.is(await metric('sidecache_coalesced_total', protocol) - coalescedBefore, CLIENTS - 1);
    assert.is(await metric('sidecache_coalesce_waiting', protocol), 0);
  });
}

for (const protocol of ['postgres', 'mysql'] as const) {

  test(`${protocol}: clients that ask after a write acked while the fill is in flight get the written value`, async () => {
    const { table, marker, sql, writer, readers, relay } = await hotKey(protocol);
    const notStoredBefore = await metric('sidecache_coalesce_relayed_total', protocol, { reason: 'not-stored' });
    const [first, ...later] = readers;
    const hold = relay.holdAfter(marker);
    const sent = relay.countSent(marker);
    let firstAnswer: number;
    let laterAnswers: number[];
    try {
      const firstRead = first!.read(sql);
      await hold.waitHeld(1, 60_000); // the server ran the first read: its snapshot predates the write
      await writer.run(`UPDATE ${table} SET v = 3 WHERE id = 1`);
      const reads = later.map((r) => r.read(sql));
      await waiting(protocol, later.length);
      hold.release();
      [firstAnswer, laterAnswers] = await Promise.all([firstRead, Promise.all(reads)]);
    } finally {
      hold.release();
    }
    assert.is(firstAnswer, 2, 'the first read began before the write');
    assert.equal(laterAnswers, later.map(() => 3), 'a read that began after the write\'s acknowledgement sees it');
    // The fill was refused: the first waiter taken up went to the database, the others waited for it.
    assert.is(sent.count, 2, 'the database ran the read twice');
    assert.is(await metric('sidecache_coalesce_relayed_total', protocol, { reason: 'not-stored' }) - notStoredBefore, 1);
    assert.is(await readers[0]!.read(sql), 3);
  });

  test(`${protocol}: a fill that does not end within --coalesce-wait sends its waiter to the database`, async () => {
    const { marker, sql, readers, relay } = await hotKey(protocol, 'text', 2, shortWait);
    const timeoutsBefore = await metric('sidecache_coalesce_relayed_total', protocol, { reason: 'timeout' }, shortWait);
    const hold = relay.holdAfter(marker);
    const sent = relay.countSent(marker);
    try {
      // Both at once: whichever sidecache takes first fills and is held, the other waits for it.
      const reads = readers.map((r) => r.read(sql));
      // The held fill cannot end: the first answer is the waiter's, from the database after the bound.
      assert.is(await Promise.race(reads), 2);
      assert.is(sent.count, 2);
      hold.release();
      assert.equal(await Promise.all(reads), [2, 2]);
    } finally {
      hold.release();
    }
    assert.is(await metric('sidecache_coalesce_relayed_total', protocol, { reason: 'timeout' }, shortWait) - timeoutsBefore, 1);
  });
}

test.run();
