// test-timeout: 120
//
// Request coalescing for a PostgreSQL Sync group of several reads (issue 17 item 3): a group whose
// statements another session is filling right now waits for those fills (docs/consistency.md,
// "Coalesced misses") and is then answered wholly from the cache; the database runs the filler's
// statements once. A relay between sidecache and the database (support/hold-relay.ts) holds the
// filler's reply until sidecache reports the group waiting, and counts the statements that reached
// the database by a marker in their text.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DIRECT_PG, connectPg, direct, sleep, uniqueName } from './support/pg-direct.js';
import { startHoldRelay, type HoldRelay } from './support/hold-relay.js';
import { scrape, sumOf } from './support/metrics.js';
import { RawClient, serialize, type Received } from './support/pg-raw.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const TABLE = uniqueName('sc_group_coalesce');
let relay: HoldRelay;
let proxy: RunningProxy;

async function metric(name: string): Promise<number> {
  return sumOf(await scrape(proxy.adminPort), name, { protocol: 'postgres' });
}

test.before(async () => {
  await direct(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v int NOT NULL); INSERT INTO ${TABLE} VALUES (1, 1)`);
  relay = await startHoldRelay({ host: DIRECT_PG.host, port: DIRECT_PG.port });
  // A wait bound far above how long the test holds the fill: the group must not time out on a loaded machine.
  proxy = await startProxy({ pgUpstream: relay.url, args: ['--coalesce-wait', '120s'] });
});

test.after(async () => {
  await proxy?.stop();
  await relay?.close();
  await direct(`DROP TABLE IF EXISTS ${TABLE}`);
});

test('a Sync group whose reads another session is filling waits for those fills and is answered whole', async () => {
  const marker = `group-coalesce-${TABLE}`;
  const texts = [`SELECT v FROM ${TABLE} WHERE id = 1 /* ${marker} */`, `SELECT v + 10 AS w FROM ${TABLE} WHERE id = 1 /* ${marker} */`];
  // Two statements, one Sync (psycopg 3's pipeline mode, pgJDBC's multi-statement query).
  const group = [...texts.flatMap((text) => [serialize.parse({ text }), serialize.bind({}), serialize.describe({ type: 'P' }), serialize.execute({})]), serialize.sync()];
  const values = (reply: Received[]): string[] => reply.filter((m) => m.code === 'D').map((m) => String((m.msg as unknown as { fields: unknown[] }).fields[0]));
  const filler = await RawClient.login(proxy.pgPort);
  const waiter = await RawClient.login(proxy.pgPort);
  const writer = await connectPg(proxy.pgPort);
  try {
    for (const c of [filler, waiter]) {
      for (let i = 0; i < 2; i++) {
        c.send(...group);
        assert.equal(values(await c.readUntilReadyForQuery()), ['1', '11'], 'stored, then answered: each session knows the group');
      }
    }
    await writer.query(`UPDATE ${TABLE} SET v = 2 WHERE id = 1`);
    const coalescedBefore = await metric('sidecache_coalesced_total');
    const hold = relay.holdAfter(marker);
    const sent = relay.countSent(marker);
    try {
      filler.send(...group);
      const filled = filler.readUntilReadyForQuery(60_000);
      await hold.waitHeld(1, 60_000);
      waiter.send(...group);
      const answered = waiter.readUntilReadyForQuery(60_000);
      const deadline = Date.now() + 60_000;
      while (await metric('sidecache_coalesce_waiting') !== 1 && Date.now() < deadline) await sleep(20);
      assert.is(await metric('sidecache_coalesce_waiting'), 1, 'the group waits for the fill in flight');
      hold.release();
      assert.equal(values(await filled), ['2', '12']);
      const reply = await answered;
      assert.equal([reply.map((m) => m.code).join(''), values(reply)], ['12TDC12TDCZ', ['2', '12']]);
    } finally {
      hold.release();
    }
    assert.is(sent.count, 2, 'the filler\'s two statements, once: the waiting group never reached the database');
    assert.is(await metric('sidecache_coalesced_total') - coalescedBefore, 1);
  } finally {
    filler.socket.destroy();
    waiter.socket.destroy();
    await writer.end();
  }
});

test.run();
