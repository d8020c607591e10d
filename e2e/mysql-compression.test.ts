// test-timeout: 180
// The compressed protocol (CLIENT_COMPRESS, zlib) on the client leg, issue 12 item 7: a client that
// asks for compression gets it from sidecache as it would from MariaDB, while sidecache's own
// connection to MariaDB stays plain. mysql2 with `compress: true` (queries, cache hits, prepared
// statements, packets over 16 MiB both ways), and a raw client that reads every byte: the replies
// after the login are compressed packets, a hit's reply too, and a packet that does not inflate is
// refused. The mariadb CLI's --compress is in mysql-cli.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import type { RowDataPacket } from 'mysql2/promise';
import { connectMySql, directMySql, uniqueName, type MySqlConnection } from './support/mysql-direct.js';
import { measureMySql } from './support/mysql-metrics.js';
import { BASE_CAPABILITIES, CLIENT, RawMySql, command, compressedPacket, decodeErr, type CompressedPacket } from './support/mysql-raw.js';
import { DIRECT_MYSQL, DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

let proxy: RunningProxy;
const db = uniqueName('sc_mcomp');
const open: MySqlConnection[] = [];
const BIG_PACKET = 64 * 1024 * 1024;
let savedMaxAllowedPacket = 0;
/** Random text (base64 of random bytes) deflates to about 3/4: 300 KB stays well over 64 KiB. */
const noise = randomBytes(225 * 1024).toString('base64');

async function connect(port: number): Promise<MySqlConnection> {
  const c = await connectMySql(port, { database: db, compress: true });
  open.push(c);
  return c;
}

/** What mysql2 negotiated: its config keeps CLIENT_COMPRESS only when the server offered it. */
function negotiatedCompression(c: MySqlConnection): boolean {
  return Boolean((c as unknown as { connection: { config: { compress: unknown } } }).connection.config.compress);
}

test.before(async () => {
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: DIRECT_MYSQL_URL });
  const [row] = await directMySql('SELECT @@GLOBAL.max_allowed_packet AS v') as { v: number }[];
  savedMaxAllowedPacket = Number(row!.v);
  await directMySql(
    `CREATE DATABASE ${db}`,
    `CREATE TABLE ${db}.items (id INT PRIMARY KEY, name VARCHAR(40))`,
    `INSERT INTO ${db}.items VALUES (1, 'one'), (2, 'two'), (3, 'three')`,
    `CREATE TABLE ${db}.blobs (id INT PRIMARY KEY, data LONGBLOB)`,
    `CREATE TABLE ${db}.texts (id INT PRIMARY KEY, body MEDIUMTEXT)`,
    `INSERT INTO ${db}.texts VALUES (1, '${noise}')`,
  );
});

test.after(async () => {
  for (const c of open) await c.end().catch(() => undefined);
  await directMySql(`DROP DATABASE IF EXISTS ${db}`, `SET GLOBAL max_allowed_packet = ${savedMaxAllowedPacket || 16777216}`).catch(() => undefined);
  await proxy?.stop();
});

test('mysql2 compress: true is compressed to sidecache, not to MariaDB; replies equal the server\'s, hits count', async () => {
  const direct = await connect(DIRECT_MYSQL.port);
  const c = await connect(proxy.mysqlPort);
  assert.ok(negotiatedCompression(direct), 'MariaDB offers compression');
  assert.ok(negotiatedCompression(c), 'sidecache offers it too: the client did not fall back to the plain protocol');
  const status = "SHOW SESSION STATUS LIKE 'Compression'";
  assert.equal((await direct.query<RowDataPacket[]>(status))[0], [{ Variable_name: 'Compression', Value: 'ON' }]);
  assert.equal((await c.query<RowDataPacket[]>(status))[0], [{ Variable_name: 'Compression', Value: 'OFF' }], 'sidecache\'s own session is plain');

  const sql = 'SELECT id, name, REPEAT(name, 40) AS long_name FROM items ORDER BY id';
  const expected = (await direct.query<RowDataPacket[]>(sql))[0];
  assert.equal((await c.query<RowDataPacket[]>(sql))[0], expected, 'a miss');
  const { result: [hit], delta } = await measureMySql(proxy.adminPort, () => c.query<RowDataPacket[]>(sql));
  assert.is(delta.hits, 1);
  assert.equal(hit, expected, 'a hit: the stored reply, compressed on its way');

  const prepared = 'SELECT name FROM items WHERE id = ?';
  assert.equal((await c.execute<RowDataPacket[]>(prepared, [2]))[0], [{ name: 'two' }]);
  const { result: [again], delta: preparedDelta } = await measureMySql(proxy.adminPort, () => c.execute<RowDataPacket[]>(prepared, [2]));
  assert.is(preparedDelta.hits, 1, 'prepared statements are answered from the cache too');
  assert.equal(again, [{ name: 'two' }]);

  await c.query("UPDATE items SET name = 'deux' WHERE id = 2");
  assert.equal((await c.execute<RowDataPacket[]>(prepared, [2]))[0], [{ name: 'deux' }], 'and invalidated by a write');
  // COM_CHANGE_USER's auth exchange and COM_RESET_CONNECTION run inside the compressed stream too.
  await c.changeUser({ user: DIRECT_MYSQL.user, password: DIRECT_MYSQL.password, database: db });
  await c.reset();
  assert.equal((await c.query<RowDataPacket[]>('SELECT name FROM items WHERE id = 1'))[0], [{ name: 'one' }]);
});

test('packets over 16 MiB both ways, and compressed payloads over 64 KiB', async () => {
  await directMySql(`SET GLOBAL max_allowed_packet = ${BIG_PACKET}`);
  const c = await connect(proxy.mysqlPort);
  assert.ok(negotiatedCompression(c));
  const blob = Buffer.alloc(17 * 1024 * 1024 + 5);
  for (let i = 0; i < blob.length; i += 1024) randomBytes(16).copy(blob, i);
  const digest = createHash('sha256').update(blob).digest('hex');
  await c.execute('INSERT INTO blobs VALUES (?, ?)', [1, blob]);
  const [binary] = await c.execute<RowDataPacket[]>('SELECT data FROM blobs WHERE id = ?', [1]);
  assert.is(createHash('sha256').update(binary[0]!.data as Buffer).digest('hex'), digest, 'binary protocol');
  const [text] = await c.query<RowDataPacket[]>('SELECT data FROM blobs WHERE id = 1');
  assert.is(createHash('sha256').update(text[0]!.data as Buffer).digest('hex'), digest, 'text protocol');
  const [wide] = await c.query<RowDataPacket[]>(`SELECT REPEAT('z', ${17 * 1024 * 1024}) AS z, 1 AS one`);
  assert.is((wide[0]!.z as string).length, 17 * 1024 * 1024);
  // A statement whose compressed packet is far over 64 KiB, to sidecache and back from its cache.
  const [echo] = await c.query<RowDataPacket[]>(`SELECT LENGTH('${noise}') AS n, MD5('${noise}') AS m`);
  assert.equal(echo, [{ n: noise.length, m: createHash('md5').update(noise).digest('hex') }]);
  await c.query('SELECT body FROM texts WHERE id = 1');
  const { result: [[row]], delta } = await measureMySql(proxy.adminPort, () => c.query<RowDataPacket[]>('SELECT body FROM texts WHERE id = 1'));
  assert.is(delta.hits, 1);
  assert.is(row!.body, noise);
});

test('with caching off (the relay alone) the client leg is compressed the same way', async () => {
  const relay = await startProxy({ pgUpstream: null, mysqlUpstream: DIRECT_MYSQL_URL, args: ['--cache-max-bytes', '0'] });
  try {
    const c = await connect(relay.mysqlPort);
    assert.ok(negotiatedCompression(c));
    const [rows] = await c.query<RowDataPacket[]>(`SELECT id, REPEAT(name, 50) AS n FROM items ORDER BY id`);
    assert.equal(rows.map((r) => r.id), [1, 2, 3]);
    assert.equal((await c.execute<RowDataPacket[]>('SELECT LENGTH(?) AS n', [noise]))[0], [{ n: noise.length }]);
    await c.end();
  } finally {
    await relay.stop();
  }
});

/** The plain packets of one text-protocol reply (column count, definitions, EOF, rows, EOF), read from compressed packets. */
async function readReply(raw: RawMySql): Promise<{ packets: CompressedPacket[]; plain: Buffer[] }> {
  const packets: CompressedPacket[] = [];
  const plain: Buffer[] = [];
  let stream = Buffer.alloc(0);
  let eofs = 0;
  for (;;) {
    const p = await raw.readCompressedPacket();
    packets.push(p);
    stream = Buffer.concat([stream, p.plain]);
    while (stream.length >= 4 && stream.length >= 4 + stream.readUIntLE(0, 3)) {
      const payload = stream.subarray(4, 4 + stream.readUIntLE(0, 3));
      stream = stream.subarray(4 + payload.length);
      plain.push(payload);
      if (payload[0] === 0xff || (plain.length === 1 && payload[0] === 0x00)) return { packets, plain };
      if (payload[0] === 0xfe && payload.length < 9 && ++eofs === 2) return { packets, plain };
    }
  }
}

test('on the wire: every packet after the login is compressed, a hit\'s reply as one packet over 64 KiB', async () => {
  const raw = await RawMySql.login(proxy.mysqlPort, { database: db, capabilities: BASE_CAPABILITIES | CLIENT.COMPRESS });
  try {
    assert.ok((raw.handshake!.capabilities & CLIENT.COMPRESS) !== 0, 'the handshake offers CLIENT_COMPRESS');
    const sql = 'SELECT body FROM texts WHERE id = 1';
    // A command sent uncompressed inside its compressed packet, then one deflated.
    raw.send(compressedPacket(command(0x03, sql), 0, false));
    const miss = await readReply(raw);
    assert.is(miss.packets[0]!.seq, 1, 'the reply numbers on from the command\'s compressed packet');
    assert.ok(miss.packets.every((p, i) => p.seq === i + 1));
    assert.is(miss.plain.at(-2)!.toString('latin1').includes(noise.slice(0, 100)), true);
    raw.send(compressedPacket(command(0x03, sql), 0, true));
    const hit = await readReply(raw);
    assert.is(hit.packets.length, 1, 'a hit is written at once');
    const [packet] = hit.packets;
    assert.is(packet!.seq, 1);
    assert.ok(packet!.inflatedLength > 0 && packet!.wireLength < packet!.inflatedLength, 'deflated');
    assert.ok(packet!.wireLength > 64 * 1024, `${packet!.wireLength} bytes on the wire`);
    assert.equal(hit.plain.map((p) => p.toString('latin1')), miss.plain.map((p) => p.toString('latin1')));
    // A short reply goes as it is (ulen 0), as the server sends it.
    raw.send(compressedPacket(command(0x0e), 0, false)); // COM_PING
    const pong = await raw.readCompressedPacket();
    assert.equal([pong.seq, pong.inflatedLength, pong.plain[4]], [1, 0, 0x00]);
  } finally {
    raw.destroy();
  }
});

test('a compressed packet that does not inflate gets ERR 1157 and the connection is closed', async () => {
  const raw = await RawMySql.login(proxy.mysqlPort, { database: db, capabilities: BASE_CAPABILITIES | CLIENT.COMPRESS });
  try {
    const bad = compressedPacket(command(0x03, 'SELECT 1'), 0, false);
    bad.writeUIntLE(500, 4, 3); // says deflated, is not
    raw.send(bad);
    const reply = await raw.readCompressedPacket();
    const err = decodeErr(reply.plain.subarray(4));
    assert.is(reply.plain[4], 0xff);
    assert.is(err.code, 1157);
    assert.match(err.message, /uncompress/);
    await raw.readUntilClosed();
  } finally {
    raw.destroy();
  }
});

test.run();
