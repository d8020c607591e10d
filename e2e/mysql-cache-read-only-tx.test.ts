// test-timeout: 120
//
// The `in-read-only-transactions: true` cache rule on MariaDB, through the real binary: MariaDB
// reports a read-only transaction in its status flags (SERVER_STATUS_IN_TRANS_READONLY, 0x2000),
// which this test checks first; a read cached outside is answered from the cache inside START
// TRANSACTION READ ONLY (COM_QUERY and COM_STMT_EXECUTE) with the transaction's flags in its EOF/OK
// packets, byte for byte what the server sends in the same transaction; without the rule, in a
// read-write transaction and with autocommit off it goes to the server; a miss inside is stored
// only when it is the transaction's first statement and the transaction did not start WITH
// CONSISTENT SNAPSHOT (the server's snapshot timing is shown on the server itself); a write
// through the proxy still invalidates.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { RowDataPacket } from 'mysql2/promise';
import { connectMySql, directMySql, uniqueName, type MySqlConnection } from './support/mysql-direct.js';
import { measureMySql } from './support/mysql-metrics.js';
import { BASE_CAPABILITIES, CLIENT, RawMySql, command, type Packet } from './support/mysql-raw.js';
import { DIRECT_MYSQL, localServersConfig, spawnSidecache, type RunningProxy } from './support/sidecache.js';

const RO = uniqueName('sc_rotx');
const PLAIN = uniqueName('sc_rotx_plain');
const dir = mkdtempSync(path.join(tmpdir(), 'sidecache-rotx-mysql-'));
const file = path.join(dir, 'sidecache.yaml');
const IN_TRANS = 0x0001;
const AUTOCOMMIT = 0x0002;
const IN_TRANS_READONLY = 0x2000;
const RO_TX = IN_TRANS | AUTOCOMMIT | IN_TRANS_READONLY;
const COM_QUERY = 0x03;
const COM_STMT_PREPARE = 0x16;
const COM_STMT_EXECUTE = 0x17;
let proxy: RunningProxy;
let c: MySqlConnection;

async function v(conn: MySqlConnection, table: string, id: number, prepared = false): Promise<number> {
  const sql = `SELECT v FROM ${table} WHERE id = ${prepared ? '?' : id}`;
  const [rows] = prepared ? await conn.execute<RowDataPacket[]>(sql, [id]) : await conn.query<RowDataPacket[]>(sql);
  return Number(rows[0]!.v);
}

/** A text or binary result set's packets, up to its terminator (or an OK/ERR instead of one). */
async function readResult(r: RawMySql, deprecateEof: boolean): Promise<Packet[]> {
  const first = await r.readPacket();
  if (first.payload[0] === 0x00 || first.payload[0] === 0xff) return [first];
  const packets = [first];
  const columns = first.payload[0]!;
  for (let i = 0; i < columns + (deprecateEof ? 0 : 1); i++) packets.push(await r.readPacket());
  for (;;) {
    const p = await r.readPacket();
    packets.push(p);
    if (p.payload[0] === 0xff || (p.payload[0] === 0xfe && p.payload.length < (deprecateEof ? 0xffffff : 9))) return packets;
  }
}

/** The status flags of an OK packet, or of a result set's terminator. */
function statusOf(packets: Packet[], deprecateEof: boolean): number {
  const last = packets.at(-1)!.payload;
  if (last[0] === 0xfe && !deprecateEof) return last.readUInt16LE(3);
  return last.readUInt16LE(3); // OK: header, affected rows and insert id (one byte each here), status
}

async function rawQuery(r: RawMySql, sql: string, deprecateEof: boolean): Promise<Packet[]> {
  r.send(command(COM_QUERY, sql));
  return readResult(r, deprecateEof);
}

/** Prepares `sql` (no parameters) and returns a function executing it. */
async function rawPrepare(r: RawMySql, sql: string, deprecateEof: boolean): Promise<() => Promise<Packet[]>> {
  r.send(command(COM_STMT_PREPARE, sql));
  const ok = await r.readPacket();
  assert.is(ok.payload[0], 0x00, 'prepared');
  const id = ok.payload.readUInt32LE(1);
  const columns = ok.payload.readUInt16LE(5);
  for (let i = 0; i < columns + (deprecateEof ? 0 : 1); i++) await r.readPacket();
  const execute = Buffer.alloc(9);
  execute.writeUInt32LE(id, 0);
  execute.writeUInt32LE(1, 5);
  return () => {
    r.send(command(COM_STMT_EXECUTE, execute));
    return readResult(r, deprecateEof);
  };
}

test.before(async () => {
  for (const t of [RO, PLAIN]) {
    await directMySql(`CREATE TABLE ${t} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB`,
      `INSERT INTO ${t} SELECT seq, 1 FROM seq_1_to_20`);
  }
  writeFileSync(file, [
    ...localServersConfig({ mysql: true }),
    'cache-ttl: 0', // entries stay until invalidated: a write behind the proxy's back tells a hit
    'rules:',
    `  - match: {table: ${RO}}`,
    '    in-read-only-transactions: true',
  ].join('\n') + '\n');
  proxy = await spawnSidecache(['--config', file]);
  c = await connectMySql(proxy.mysqlPort);
});

test.after(async () => {
  await c?.end().catch(() => {});
  await proxy?.stop();
  for (const t of [RO, PLAIN]) await directMySql(`DROP TABLE IF EXISTS ${t}`);
  rmSync(dir, { recursive: true, force: true });
});

test('MariaDB flags read-only transactions (what the proxy relies on), and not autocommit-off ones', async () => {
  const r = await RawMySql.login(DIRECT_MYSQL.port, { database: DIRECT_MYSQL.database });
  try {
    const status = async (sql: string): Promise<number> => statusOf(await rawQuery(r, sql, false), false);
    assert.is(await status('START TRANSACTION READ ONLY'), RO_TX);
    assert.is(await status(`SELECT v FROM ${RO} WHERE id = 1`), RO_TX);
    assert.is(await status('COMMIT'), AUTOCOMMIT);
    await status('SET TRANSACTION READ ONLY');
    assert.is(await status('BEGIN'), RO_TX);
    assert.is(await status('COMMIT'), AUTOCOMMIT);
    assert.is(await status('START TRANSACTION'), IN_TRANS | AUTOCOMMIT);
    assert.is(await status('COMMIT'), AUTOCOMMIT);
    await status('SET autocommit = 0');
    await status('SET TRANSACTION READ ONLY');
    // Read-only and in a transaction, but autocommit off: the proxy does not count it.
    assert.is(await status(`SELECT v FROM ${RO} WHERE id = 1`), IN_TRANS | IN_TRANS_READONLY);
    await status('COMMIT');
    await status('SET autocommit = 1');
  } finally {
    r.destroy();
  }
});

test('a read cached outside is a hit inside START TRANSACTION READ ONLY (text and prepared); COMMIT works', async () => {
  for (const prepared of [false, true]) {
    await v(c, RO, 1, prepared);
    await v(c, RO, 1, prepared);
  }
  await directMySql(`UPDATE ${RO} SET v = 2 WHERE id = 1`); // behind the proxy's back
  const { delta } = await measureMySql(proxy.adminPort, async () => {
    await c.query('START TRANSACTION READ ONLY');
    assert.is(await v(c, RO, 1), 1, 'text protocol: from the cache');
    assert.is(await v(c, RO, 1, true), 1, 'prepared: from the cache');
    const [one] = await c.query<RowDataPacket[]>('SELECT 1 AS one');
    assert.equal(one, [{ one: 1 }]);
    await c.query('COMMIT');
  });
  assert.is(delta.hits, 2, JSON.stringify(delta));
});

for (const deprecateEof of [false, true]) {
  test(`raw packets${deprecateEof ? ' (DEPRECATE_EOF)' : ''}: a hit in the transaction is what the server sends there, flags included`, async () => {
    const caps = BASE_CAPABILITIES | (deprecateEof ? CLIENT.DEPRECATE_EOF : 0);
    const id = deprecateEof ? 3 : 2;
    const sql = `SELECT v, id FROM ${RO} WHERE id = ${id}`;
    const run = async (port: number, cache: boolean): Promise<{ text: Packet[]; binary: Packet[]; outside: Packet[] }> => {
      const r = await RawMySql.login(port, { database: DIRECT_MYSQL.database, capabilities: caps });
      try {
        const execute = await rawPrepare(r, sql, deprecateEof);
        if (cache) {
          for (let i = 0; i < 2; i++) {
            await rawQuery(r, sql, deprecateEof);
            await execute();
          }
        }
        await rawQuery(r, 'START TRANSACTION READ ONLY', deprecateEof);
        const text = await rawQuery(r, sql, deprecateEof);
        const binary = await execute();
        assert.is(statusOf(await rawQuery(r, 'COMMIT', deprecateEof), deprecateEof), AUTOCOMMIT);
        return { text, binary, outside: await rawQuery(r, sql, deprecateEof) };
      } finally {
        r.destroy();
      }
    };
    const direct = await run(DIRECT_MYSQL.port, false);
    const { result: proxied, delta } = await measureMySql(proxy.adminPort, () => run(proxy.mysqlPort, true));
    assert.is(delta.hits, 2 + 3, '2 warm-up hits, text and binary in the transaction, and the one after it');
    assert.is(statusOf(proxied.text, deprecateEof), RO_TX);
    assert.is(statusOf(proxied.binary, deprecateEof), RO_TX);
    assert.is(statusOf(proxied.outside, deprecateEof), AUTOCOMMIT);
    const bytes = (ps: Packet[]) => ps.map((p) => `${p.seq}:${p.payload.toString('hex')}`);
    assert.equal(bytes(proxied.text), bytes(direct.text), 'text result');
    assert.equal(bytes(proxied.binary), bytes(direct.binary), 'binary result');
    assert.equal(bytes(proxied.outside), bytes(direct.outside));
  });
}

test('without the rule, in a read-write transaction and with autocommit off, reads are bypasses', async () => {
  await v(c, PLAIN, 1);
  await v(c, PLAIN, 1);
  await v(c, RO, 4);
  await v(c, RO, 4);
  await directMySql(`UPDATE ${RO} SET v = 2 WHERE id = 4`, `UPDATE ${PLAIN} SET v = 2 WHERE id = 1`);
  const { delta } = await measureMySql(proxy.adminPort, async () => {
    await c.query('START TRANSACTION READ ONLY');
    assert.is(await v(c, PLAIN, 1), 2);
    await c.query('COMMIT');
    for (const begin of ['START TRANSACTION', 'START TRANSACTION READ WRITE', 'BEGIN']) {
      await c.query(begin);
      assert.is(await v(c, RO, 4), 2);
      await c.query('COMMIT');
    }
  });
  assert.is(delta.hits, 0, JSON.stringify(delta));
  assert.is(delta.bypassByReason['in-transaction'], 4 + 4, 'the reads and the COMMITs: ' + JSON.stringify(delta.bypassByReason));
  // Autocommit off: an implicit transaction is never known read-only, even after SET TRANSACTION
  // READ ONLY: from the server.
  const d = await connectMySql(proxy.mysqlPort);
  try {
    await v(d, RO, 4);
    const off = await measureMySql(proxy.adminPort, async () => {
      await d.query('SET autocommit = 0');
      await d.query('SET TRANSACTION READ ONLY');
      assert.is(await v(d, RO, 4), 2);
      await d.query('COMMIT');
      await d.query('SET autocommit = 1');
    });
    assert.is(off.delta.hits, 0, JSON.stringify(off.delta));
  } finally {
    await d.end();
  }
});

test('SET SESSION TRANSACTION READ ONLY then BEGIN (what Connector/J\'s setReadOnly sends): a read-only transaction, hits with the rule', async () => {
  const d = await connectMySql(proxy.mysqlPort);
  try {
    await v(d, RO, 6);
    await v(d, RO, 6); // cached, and the session's context known
    await directMySql(`UPDATE ${RO} SET v = 3 WHERE id = 6`); // behind the proxy's back: a hit shows the old value
    const { delta } = await measureMySql(proxy.adminPort, async () => {
      await d.query('SET SESSION TRANSACTION READ ONLY');
      await d.query('BEGIN');
      assert.is(await v(d, RO, 6), 1, 'answered from the cache');
      await d.query('COMMIT');
      await d.query('SET SESSION TRANSACTION READ WRITE');
    });
    assert.is(delta.hits, 1, JSON.stringify(delta));
    await d.query('BEGIN');
    assert.is(await v(d, RO, 6), 3, 'back to READ WRITE: a transaction reads from the server again');
    await d.query('COMMIT');
  } finally {
    await d.end();
  }
});

test('the server takes the snapshot at the first read, unless WITH CONSISTENT SNAPSHOT', async () => {
  const a = await connectMySql(DIRECT_MYSQL.port);
  try {
    await a.query('START TRANSACTION READ ONLY');
    await directMySql(`UPDATE ${RO} SET v = 7 WHERE id = 6`);
    assert.is(await v(a, RO, 6), 7, 'a write committed after START is seen by the first read');
    await directMySql(`UPDATE ${RO} SET v = 8 WHERE id = 6`);
    assert.is(await v(a, RO, 6), 7, 'but not by the second');
    await a.query('COMMIT');
    await a.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
    await directMySql(`UPDATE ${RO} SET v = 9 WHERE id = 6`);
    assert.is(await v(a, RO, 6), 8, 'WITH CONSISTENT SNAPSHOT took it at START');
    await a.query('COMMIT');
  } finally {
    await a.end();
  }
});

test('a miss in the transaction is stored only as its first statement, and not after WITH CONSISTENT SNAPSHOT', async () => {
  const notFirst = await measureMySql(proxy.adminPort, async () => {
    await c.query('START TRANSACTION READ ONLY');
    await v(c, PLAIN, 2);
    assert.is(await v(c, RO, 7), 1);
    await c.query('COMMIT');
    await c.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
    assert.is(await v(c, RO, 8), 1);
    await c.query('COMMIT');
    assert.is(await v(c, RO, 7), 1);
    assert.is(await v(c, RO, 8), 1);
  });
  assert.is(notFirst.delta.hits, 0, JSON.stringify(notFirst.delta));
  assert.is(notFirst.delta.misses, 4, JSON.stringify(notFirst.delta));
  const first = await measureMySql(proxy.adminPort, async () => {
    for (const prepared of [false, true]) {
      await c.query('START TRANSACTION READ ONLY');
      assert.is(await v(c, RO, 9, prepared), 1);
      await c.query('COMMIT');
      assert.is(await v(c, RO, 9, prepared), 1);
    }
  });
  assert.is(first.delta.misses, 2, JSON.stringify(first.delta));
  assert.is(first.delta.hits, 2, JSON.stringify(first.delta));
  // Stored as a reply outside a transaction: its flags are what the server sends outside one.
  const sql = `SELECT v, id FROM ${RO} WHERE id = 11`;
  const r = await RawMySql.login(proxy.mysqlPort, { database: DIRECT_MYSQL.database });
  const d = await RawMySql.login(DIRECT_MYSQL.port, { database: DIRECT_MYSQL.database });
  try {
    await rawQuery(r, 'START TRANSACTION READ ONLY', false);
    assert.is(statusOf(await rawQuery(r, sql, false), false), RO_TX, 'the miss as the server sent it');
    await rawQuery(r, 'COMMIT', false);
    const { result: hit, delta } = await measureMySql(proxy.adminPort, () => rawQuery(r, sql, false));
    assert.is(delta.hits, 1);
    const bytes = (ps: Packet[]) => ps.map((p) => `${p.seq}:${p.payload.toString('hex')}`);
    assert.equal(bytes(hit), bytes(await rawQuery(d, sql, false)));
    assert.is(statusOf(hit, false), AUTOCOMMIT);
  } finally {
    r.destroy();
    d.destroy();
  }
});

test('a write through the proxy by another connection invalidates; the transaction then reads fresh data', async () => {
  await v(c, RO, 10);
  await v(c, RO, 10);
  const writer = await connectMySql(proxy.mysqlPort);
  try {
    await c.query('START TRANSACTION READ ONLY');
    assert.is(await v(c, RO, 10), 1, 'a hit');
    await writer.query(`UPDATE ${RO} SET v = 5 WHERE id = 10`);
    const { delta } = await measureMySql(proxy.adminPort, async () => {
      assert.is(await v(c, RO, 10), 5, 'fresh from the server');
    });
    assert.is(delta.misses, 1);
    await c.query('COMMIT');
    const after = await measureMySql(proxy.adminPort, async () => assert.is(await v(writer, RO, 10), 5));
    assert.is(after.delta.hits, 1, 'the transaction\'s first read on the server was stored');
  } finally {
    await writer.end();
  }
});

test.run();
