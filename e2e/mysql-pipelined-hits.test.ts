// test-timeout: 120
//
// Hits for commands sent without waiting (issue 17, item 3), MySQL side: a cacheable read sent
// while earlier commands of the session are outstanding is answered from the cache in its place in
// the reply order, and MariaDB never runs it. The protocol has no pipelining of its own, but a
// client may write several commands before reading (each starts its own sequence at 0). mysql2
// does not: it queues commands client-side and writes the next one after the previous reply (seen
// on the wire), so its queries "in flight" on one connection reach sidecache one at a time and hit
// as usual; the raw client below writes them back to back. A relay between sidecache and MariaDB
// holds the replies from the first command on until the server answered the last one, so every
// command reaches sidecache while the first is outstanding. MariaDB's own session counter
// (Com_select of the upstream session) counts the SELECTs it ran.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RowDataPacket } from 'mysql2/promise';
import { startHoldRelay, type HoldRelay } from './support/hold-relay.js';
import { connectMySql, directMySql, uniqueName, type MySqlConnection } from './support/mysql-direct.js';
import { measureMySql } from './support/mysql-metrics.js';
import { RawMySql, command, type Packet } from './support/mysql-raw.js';
import { DIRECT_MYSQL, startProxy, type RunningProxy } from './support/sidecache.js';

const COM_QUERY = 0x03;
const db = uniqueName('sc_mpipe');

let relay: HoldRelay;
let proxy: RunningProxy;
let raw: RawMySql;
const open: MySqlConnection[] = [];

/** The first column of a one-row text result set (classic EOFs): [column count, definition, EOF, row, EOF]. */
function value(packets: Packet[]): string {
  assert.is(packets.length, 5, `a one-column, one-row result set: ${packets.map((p) => p.payload.toString('latin1')).join(' | ')}`);
  const row = packets[3]!.payload;
  return row.toString('utf8', 1, 1 + row[0]!);
}

async function query(sql: string): Promise<string> {
  raw.send(command(COM_QUERY, sql));
  return value(await raw.readResultSet());
}

/** SELECTs MariaDB ran in the raw client's upstream session. */
async function upstreamSelects(): Promise<number> {
  raw.send(command(COM_QUERY, "SHOW SESSION STATUS LIKE 'Com_select'"));
  const packets = await raw.readResultSet();
  // Two columns (name, value): the row is the fifth packet.
  const row = packets[4]!.payload;
  const nameLength = row[0]!;
  return Number(row.toString('utf8', 2 + nameLength, 2 + nameLength + row[1 + nameLength]!));
}

test.before(async () => {
  await directMySql(`CREATE DATABASE ${db}`, `CREATE TABLE ${db}.items (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB`,
    `INSERT INTO ${db}.items SELECT seq, seq * 10 FROM seq_1_to_100`);
  relay = await startHoldRelay({ host: DIRECT_MYSQL.host, port: DIRECT_MYSQL.port });
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: `mysql://127.0.0.1:${relay.port}` });
  raw = await RawMySql.login(proxy.mysqlPort, { database: db });
});

test.after(async () => {
  raw?.socket.destroy();
  for (const c of open) await c.end().catch(() => undefined);
  await proxy?.stop();
  await relay?.close();
  await directMySql(`DROP DATABASE IF EXISTS ${db}`).catch(() => undefined);
});

test('commands written back to back: hits behind an outstanding read, in order, never run by MariaDB', async () => {
  const first = (id: number) => `SELECT v AS mp_first FROM items WHERE id = ${id} /* mp-first */`;
  const hit = (id: number) => `SELECT v AS mp_hit FROM items WHERE id = ${id}`;
  const last = (id: number) => `SELECT v AS mp_last FROM items WHERE id = ${id}`;
  // Each statement judged once (its decision known), the hits' rows stored.
  for (const sql of [first(50), hit(1), hit(2), last(50)]) await query(sql);
  const before = await upstreamSelects();
  const { result, delta } = await measureMySql(proxy.adminPort, async () => {
    const hold = relay.holdAfter('mp-first');
    raw.send(Buffer.concat([first(3), hit(1), hit(2), hit(1), last(4)].map((sql) => command(COM_QUERY, sql))));
    await hold.waitHeldContains('mp_last', 10_000).finally(() => hold.release());
    const values: string[] = [];
    for (let i = 0; i < 5; i++) values.push(value(await raw.readResultSet()));
    return values;
  });
  assert.equal(result, ['30', '10', '20', '10', '40']);
  assert.is(delta.hits, 3, JSON.stringify(delta));
  assert.equal(delta.bypassByReason, { pipelined: 1 }, 'only the miss behind the hits');
  assert.is(await upstreamSelects() - before, 2, 'MariaDB ran the first and the last read only');
});

test('a write earlier among the commands: the cached read behind it goes to MariaDB and sees the write', async () => {
  const read = 'SELECT v AS mw_read FROM items WHERE id = 7';
  assert.equal([await query(read), await query(read)], ['70', '70'], 'stored');
  const hold = relay.holdAfter('mw-write');
  raw.send(Buffer.concat([command(COM_QUERY, 'UPDATE items SET v = 777 WHERE id = 7 /* mw-write */'), command(COM_QUERY, read)]));
  // Released whatever happens, so a read answered from the cache shows as its stale row.
  const reached = await hold.waitHeldContains('mw_read', 10_000).then(() => true, () => false).finally(() => hold.release());
  const ok = await raw.readPacket();
  assert.is(ok.payload[0], 0x00, 'the UPDATE\'s OK');
  assert.equal([await value(await raw.readResultSet()), reached], ['777', true]);
  assert.is(await query(read), '777');
});

test('mysql2 with several queries in flight on one connection: queued client-side, each a hit', async () => {
  const c = await connectMySql(proxy.mysqlPort, { database: db });
  open.push(c);
  const sql = 'SELECT v AS m2_hit FROM items WHERE id = 9';
  await c.query(sql);
  const { result, delta } = await measureMySql(proxy.adminPort, async () =>
    (await Promise.all([c.query<RowDataPacket[]>(sql), c.query<RowDataPacket[]>(sql), c.query<RowDataPacket[]>(sql)])).map(([rows]) => rows));
  assert.equal(result, [[{ m2_hit: 90 }], [{ m2_hit: 90 }], [{ m2_hit: 90 }]]);
  assert.is(delta.hits, 3, JSON.stringify(delta));
  assert.equal(delta.bypassByReason, {});
});

test.run();
