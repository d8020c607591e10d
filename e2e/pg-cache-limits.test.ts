// The cache's bounds, each on a proxy started with the setting under test: a small byte budget
// evicts (W-TinyLFU: results read once before results read often) and never exceeds itself; the TTL is the only thing that
// refreshes an entry after a write the proxy could not see; a result larger than the per-entry limit
// is relayed whole but not kept; a result of several MB (many TCP chunks) is kept and replayed
// exactly under the default limits; a budget of 0 turns caching off.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { connectPg, direct, sleep, uniqueName } from './support/pg-direct.js';
import { cacheCounters, measure } from './support/metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';
import { withinWindow } from './support/until.js';

const TABLE = uniqueName('sc_limits');
const ROWS = 2000;
const PAD_BYTES = 1000;
const BUDGET_BYTES = 64 * 1024;
const MAX_ENTRY_BYTES = 16 * 1024;

const proxies: RunningProxy[] = [];
const open: pg.Client[] = [];

async function proxyWith(args: string[]): Promise<{ proxy: RunningProxy; client: pg.Client }> {
  const proxy = await startProxy({ args });
  proxies.push(proxy);
  const client = await connectPg(proxy.pgPort);
  open.push(client);
  return { proxy, client };
}

const ONE_ROW = `SELECT id, v, pad FROM ${TABLE} WHERE id = $1`;

async function oneRow(c: pg.Client, id: number): Promise<{ id: number; v: number; pad: string }> {
  const { rows } = await c.query(ONE_ROW, [id]);
  assert.is(rows.length, 1, `row ${id}`);
  return rows[0];
}

test.before(async () => {
  await direct(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v int NOT NULL, pad text NOT NULL)`);
  await direct(`INSERT INTO ${TABLE} SELECT g, g, repeat(chr(65 + g % 26), ${PAD_BYTES}) FROM generate_series(1, ${ROWS}) g`);
});

test.after(async () => {
  await Promise.all(open.map((c) => c.end().catch(() => undefined)));
  await Promise.all(proxies.map((p) => p.stop()));
  await direct(`DROP TABLE IF EXISTS ${TABLE}`);
});

test('--cache-max-bytes 64KiB: evictions, bytes never above the budget, a hot entry survives', async () => {
  const { proxy, client } = await proxyWith(['--cache-max-bytes', '64KiB']);
  const HOT = 1;
  await oneRow(client, HOT);
  let maxBytesSeen = 0;
  const { delta } = await measure(proxy.adminPort, async () => {
    for (let id = 2; id <= 201; id++) {
      const row = await oneRow(client, id);
      assert.is(row.v, id);
      assert.is(row.pad.length, PAD_BYTES);
      // Touch the hot entry between fills: the most recently used and the most often read.
      assert.is((await oneRow(client, HOT)).v, HOT);
      if (id % 20 === 0) maxBytesSeen = Math.max(maxBytesSeen, (await cacheCounters(proxy.adminPort)).bytes);
    }
  });
  assert.ok(delta.evictions > 0, `evictions: ${JSON.stringify(delta)}`);
  assert.ok(delta.bytes > 0 && delta.bytes <= BUDGET_BYTES, `bytes ${delta.bytes} within ${BUDGET_BYTES}`);
  assert.ok(maxBytesSeen <= BUDGET_BYTES, `bytes peaked at ${maxBytesSeen}`);
  assert.ok(delta.entries > 0 && delta.entries < 200, `entries ${delta.entries}`);
  assert.is(delta.hits, 200, `every read of the hot row was a hit: ${JSON.stringify(delta)}`);
  // The oldest of the others were evicted: reading one again is a miss, with the right row.
  const again = await measure(proxy.adminPort, () => oneRow(client, 2));
  assert.is(again.result.v, 2);
  assert.is(again.delta.misses, 1, JSON.stringify(again.delta));
});

test('--cache-ttl 1s: a write behind the proxy\'s back is served until the entry expires, then fresh', async () => {
  const { proxy, client } = await proxyWith(['--cache-ttl', '1s']);
  // Within the TTL means within 0.9 s of sending the fill (the margin covers the store's coarse
  // clock); a try that a loaded machine stalled longer proves nothing, and the next uses another row.
  const flipped: number[] = [];
  const { ID, first, stale } = await withinWindow(900, async (n) => {
    const ID = 500 + n;
    const first = await measure(proxy.adminPort, async () => [await oneRow(client, ID), await oneRow(client, ID)]);
    // Directly, not through the proxy: nothing but the TTL can refresh the entry.
    await direct(`UPDATE ${TABLE} SET v = -v WHERE id = ${ID}`);
    flipped.push(ID);
    return { ID, first, stale: await measure(proxy.adminPort, () => oneRow(client, ID)) };
  });
  assert.is(first.delta.hits, 1, JSON.stringify(first.delta));
  assert.is(stale.result.v, ID, 'within the TTL the entry is still served (proves the next read is fresh only by expiry)');
  assert.is(stale.delta.hits, 1);
  await sleep(1500);
  const fresh = await measure(proxy.adminPort, () => oneRow(client, ID));
  assert.is(fresh.result.v, -ID, 'after the TTL the read reaches PostgreSQL');
  assert.is(fresh.delta.hits, 0, JSON.stringify(fresh.delta));
  assert.is(fresh.delta.misses, 1, JSON.stringify(fresh.delta));
  // And the refreshed entry is cached again.
  const refilled = await measure(proxy.adminPort, () => oneRow(client, ID));
  assert.is(refilled.result.v, -ID);
  assert.is(refilled.delta.hits, 1);
  await direct(`UPDATE ${TABLE} SET v = -v WHERE id IN (${flipped.join(', ')})`);
});

test('--cache-max-entry-bytes 16KiB: a 100 KB result is relayed whole every time and never cached', async () => {
  const { proxy, client } = await proxyWith(['--cache-max-entry-bytes', '16KiB']);
  const big = `SELECT id, pad FROM ${TABLE} WHERE id <= 100 ORDER BY id`;
  const expected = (await direct(big)).rows;
  assert.ok(expected.length * PAD_BYTES > 6 * MAX_ENTRY_BYTES);
  const { delta } = await measure(proxy.adminPort, async () => {
    for (let i = 0; i < 3; i++) assert.equal((await client.query(big)).rows, expected, `simple read ${i}`);
    for (let i = 0; i < 2; i++) {
      assert.equal((await client.query(`${big.replace('<= 100', '<= $1')}`, [100])).rows, expected, `extended read ${i}`);
    }
  });
  assert.is(delta.hits, 0, JSON.stringify(delta));
  assert.is(delta.entries, 0, 'nothing stored');
  // Small results on the same proxy are still cached.
  const small = await measure(proxy.adminPort, async () => [await oneRow(client, 7), await oneRow(client, 7)]);
  assert.is(small.result[1].v, 7);
  assert.is(small.delta.hits, 1, JSON.stringify(small.delta));
});

test('default limits: a 2 MB result spanning many TCP chunks is cached and replayed exactly', async () => {
  const { proxy, client } = await proxyWith([]);
  const big = `SELECT id, v, pad FROM ${TABLE} ORDER BY id`;
  const expected = (await direct(big)).rows;
  assert.ok(expected.length * PAD_BYTES >= 2_000_000);
  const { delta } = await measure(proxy.adminPort, async () => {
    for (let i = 0; i < 3; i++) assert.equal((await client.query(big)).rows, expected, `simple read ${i}`);
    const extended = { text: big.replace('ORDER BY', 'WHERE id > $1 ORDER BY'), values: [0] };
    for (let i = 0; i < 3; i++) assert.equal((await client.query(extended)).rows, expected, `extended read ${i}`);
  });
  assert.is(delta.hits, 4, JSON.stringify(delta));
  assert.ok(delta.bytes > 4_000_000, `two entries of over 2 MB: ${JSON.stringify(delta)}`);
});

test('--cache-max-bytes 0 turns caching off: no hits, no entries, right results', async () => {
  const { proxy, client } = await proxyWith(['--cache-max-bytes', '0']);
  const { delta } = await measure(proxy.adminPort, async () => {
    for (let i = 0; i < 3; i++) assert.is((await oneRow(client, 9)).v, 9);
    for (let i = 0; i < 2; i++) assert.is((await client.query(`SELECT v FROM ${TABLE} WHERE id = 9`)).rows[0].v, 9);
  });
  assert.is(delta.hits, 0, JSON.stringify(delta));
  assert.is(delta.entries, 0);
});

test.run();
