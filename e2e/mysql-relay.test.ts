// test-timeout: 240
// The MySQL relay through the real bin/sidecache in front of the local MariaDB, driven by mysql2:
// every case runs the same work directly and through the proxy and compares what the client got
// (rows, column metadata, status flags, errors), so the relay is proved transparent.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import type { FieldPacket, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { DIRECT_MYSQL, bothWays, connectMySql, directMySql, uniqueName, type MySqlConnection } from './support/mysql-direct.js';
import { DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

let proxy: RunningProxy;
const db = uniqueName('sc_relay');
const BIG_PACKET = 64 * 1024 * 1024;
let savedMaxAllowedPacket = 0;

test.before(async () => {
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: DIRECT_MYSQL_URL, args: ['--max-message-bytes', '64MiB'] });
  const [row] = await directMySql('SELECT @@GLOBAL.max_allowed_packet AS v') as { v: number }[];
  savedMaxAllowedPacket = Number(row!.v);
  await directMySql(
    `CREATE DATABASE ${db}`,
    `CREATE TABLE ${db}.types (
      id INT PRIMARY KEY, i BIGINT, u BIGINT UNSIGNED, d DECIMAL(20,6), f FLOAT, g DOUBLE, dt DATE, ts DATETIME(6),
      tm TIME(3), y YEAR, c CHAR(5), v VARCHAR(100), t TEXT, b BLOB, j JSON, e ENUM('a','b'), s SET('x','y'), bits BIT(10))`,
    `INSERT INTO ${db}.types VALUES
      (1, -9223372036854775808, 18446744073709551615, 12345678901234.123456, 1.5, 2.25e-300, '2024-02-29', '2024-02-29 23:59:59.123456',
       '-838:59:59.000', 2024, 'ab', 'héllo 😀', REPEAT('t', 5000), X'00FF10', '{"k": [1, 2]}', 'b', 'x,y', b'1010101010'),
      (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
    `CREATE TABLE ${db}.blobs (id INT PRIMARY KEY, data LONGBLOB)`,
    `CREATE TABLE ${db}.t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB`,
    `CREATE PROCEDURE ${db}.two_results(IN n INT) BEGIN SELECT n AS first; SELECT n * 2 AS second, 'x' AS label; END`,
  );
});

test.after(async () => {
  await directMySql(`DROP DATABASE IF EXISTS ${db}`, `SET GLOBAL max_allowed_packet = ${savedMaxAllowedPacket || 16777216}`).catch(() => undefined);
  await proxy?.stop();
});

/** Column metadata a client relies on, without the parts that name the connection. */
function fieldsOf(fields: FieldPacket[] | undefined): unknown[] {
  return (fields ?? []).map((f) => ({ name: f.name, table: f.orgTable, type: f.type, length: f.columnLength, flags: f.flags, decimals: f.decimals, charset: f.characterSet }));
}

test('the handshake is the server\'s: version, connection id and capabilities less TLS (compression is offered)', async () => {
  type Internals = { connection: { _isMariaDB: boolean; serverCapabilityFlags: number } };
  const c = await connectMySql(proxy.mysqlPort);
  const direct = await connectMySql(DIRECT_MYSQL.port);
  try {
    const [rows] = await c.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id, VERSION() AS version');
    assert.is(Number(rows[0]!.id), c.threadId, 'the client\'s connection id is the server\'s');
    const [directRows] = await direct.query<RowDataPacket[]>('SELECT VERSION() AS version');
    assert.is(rows[0]!.version, directRows[0]!.version);
    const proxied = (c as unknown as Internals).connection;
    const directly = (direct as unknown as Internals).connection;
    assert.ok(proxied._isMariaDB, 'the version string says MariaDB');
    const hidden = 0x800 | 0x02000000 | 0x04000000; // SSL, OPTIONAL_RESULTSET_METADATA, ZSTD
    assert.is(proxied.serverCapabilityFlags, (directly.serverCapabilityFlags & ~hidden) >>> 0);
    assert.ok(proxied.serverCapabilityFlags & 0x20, 'zlib compression is offered as the server offers it (sidecache speaks it with the client)');
  } finally {
    await c.end();
    await direct.end();
  }
});

test('query (text protocol) and execute (binary protocol): every type, NULLs, same rows and metadata', async () => {
  const run = async (c: MySqlConnection): Promise<unknown> => {
    const [qRows, qFields] = await c.query<RowDataPacket[]>(`SELECT * FROM ${db}.types ORDER BY id`);
    const [eRows, eFields] = await c.execute<RowDataPacket[]>(`SELECT * FROM ${db}.types WHERE id >= ? ORDER BY id`, [1]);
    const [params] = await c.execute<RowDataPacket[]>('SELECT ? AS a, ? AS b, ? AS c, ? AS d, ? AS e', [1, 'text', null, Buffer.from([0, 1, 2]), 2.5]);
    return { qRows, q: fieldsOf(qFields), eRows, e: fieldsOf(eFields), params };
  };
  const { direct, proxied } = await bothWays(proxy.mysqlPort, run);
  assert.equal(proxied, direct);
  const q = (proxied as { qRows: RowDataPacket[] }).qRows;
  assert.is(q.length, 2);
  assert.is(q[1]!.v, null);
  assert.is(q[0]!.v, 'héllo 😀');
});

test('errors are the server\'s own: code, SQL state and message', async () => {
  const run = async (c: MySqlConnection): Promise<unknown> => {
    const errors: unknown[] = [];
    for (const sql of ['SELEC 1', `SELECT * FROM ${db}.missing`, `INSERT INTO ${db}.t VALUES (1, 'a'), (1, 'b')`]) {
      try {
        await c.query(sql);
        errors.push('no error');
      } catch (err) {
        const e = err as { errno: number; sqlState: string; sqlMessage: string };
        errors.push({ errno: e.errno, sqlState: e.sqlState, message: e.sqlMessage });
      }
    }
    try {
      await c.execute('SELECT * FROM nowhere WHERE x = ?', [1]);
    } catch (err) {
      errors.push((err as { errno: number }).errno);
    }
    // The session goes on after errors.
    const [rows] = await c.query<RowDataPacket[]>('SELECT 1 AS one');
    errors.push(rows);
    await c.query(`DELETE FROM ${db}.t`);
    return errors;
  };
  const { direct, proxied } = await bothWays(proxy.mysqlPort, run);
  assert.equal(proxied, direct);
  assert.is((direct as { errno: number }[])[0]!.errno, 1064);
});

test('multi-statements and a procedure with two result sets (CALL via query and execute)', async () => {
  const run = async (c: MySqlConnection): Promise<unknown> => {
    const [multi] = await c.query(`SELECT 1 AS a; SELECT 'two' AS b, NULL AS c; INSERT INTO ${db}.t VALUES (10, 'ten'); SELECT v FROM ${db}.t WHERE id = 10; DELETE FROM ${db}.t`);
    const [called] = await c.query(`CALL ${db}.two_results(21)`);
    const [executed] = await c.execute(`CALL ${db}.two_results(?)`, [4]);
    const [after] = await c.query('SELECT 42 AS after_call');
    return { multi, called, executed, after };
  };
  const { direct, proxied } = await bothWays(proxy.mysqlPort, run, { multipleStatements: true });
  assert.equal(proxied, direct);
  const called = (proxied as { called: unknown[] }).called;
  assert.is(called.length, 3, 'two result sets and the CALL\'s OK');
});

test('a BLOB over 16 MiB both ways (packet continuation) via execute and query', async () => {
  await directMySql(`SET GLOBAL max_allowed_packet = ${BIG_PACKET}`);
  const blob = Buffer.alloc(20 * 1024 * 1024 + 7);
  for (let i = 0; i < blob.length; i += 4096) blob[i] = i % 251;
  const digest = createHash('sha256').update(blob).digest('hex');
  const c = await connectMySql(proxy.mysqlPort, { maxPreparedStatements: 4 });
  try {
    await c.execute(`INSERT INTO ${db}.blobs VALUES (?, ?)`, [1, blob]);
    const [binary] = await c.execute<RowDataPacket[]>(`SELECT data FROM ${db}.blobs WHERE id = ?`, [1]);
    assert.is(createHash('sha256').update(binary[0]!.data as Buffer).digest('hex'), digest, 'binary protocol');
    const [text] = await c.query<RowDataPacket[]>(`SELECT data, LENGTH(data) AS n FROM ${db}.blobs WHERE id = 1`);
    assert.is(Number(text[0]!.n), blob.length);
    assert.is(createHash('sha256').update(text[0]!.data as Buffer).digest('hex'), digest, 'text protocol');
    // A row whose first value is longer than 16 MiB starts with 0xFE in the text protocol.
    const [wide] = await c.query<RowDataPacket[]>(`SELECT REPEAT('z', ${17 * 1024 * 1024}) AS z, 1 AS one`);
    assert.is((wide[0]!.z as string).length, 17 * 1024 * 1024);
    const [next] = await c.query<RowDataPacket[]>('SELECT 7 AS seven');
    assert.equal(next, [{ seven: 7 }]);
  } finally {
    await c.end();
  }
});

test('transactions and autocommit: the status flags of every reply are the server\'s', async () => {
  const run = async (c: MySqlConnection): Promise<number[]> => {
    const statuses: number[] = [];
    const status = async (sql: string): Promise<void> => {
      const [r] = await c.query<ResultSetHeader>(sql);
      statuses.push(r.serverStatus);
    };
    await status('BEGIN');
    await status(`INSERT INTO ${db}.t VALUES (20, 'x')`);
    await status('ROLLBACK');
    await status('SET autocommit = 0');
    await status(`INSERT INTO ${db}.t VALUES (21, 'y')`);
    await status('COMMIT');
    await status('SET autocommit = 1');
    await status(`DELETE FROM ${db}.t`);
    return statuses;
  };
  const { direct, proxied } = await bothWays(proxy.mysqlPort, run);
  assert.equal(proxied, direct);
  assert.ok((direct[1]! & 1) === 1, 'in transaction after the INSERT inside BEGIN');
});

test('ping, reset (COM_RESET_CONNECTION) and changeUser (COM_CHANGE_USER) keep the session usable', async () => {
  const user = uniqueName('sc_user');
  const other = uniqueName('sc_db');
  await directMySql(
    `CREATE DATABASE ${other}`,
    `CREATE USER '${user}'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('pw-${user}')`,
    `GRANT ALL ON ${other}.* TO '${user}'@'%'`,
  );
  try {
    const run = async (c: MySqlConnection): Promise<unknown> => {
      await c.ping();
      await c.query('SET @v = 5');
      const [stmtBefore] = await c.execute<RowDataPacket[]>('SELECT ? + 1 AS n', [1]);
      await c.reset();
      const [afterReset] = await c.query<RowDataPacket[]>('SELECT @v AS v, DATABASE() AS db');
      await c.changeUser({ user, password: `pw-${user}`, database: other });
      const [afterChange] = await c.query<RowDataPacket[]>('SELECT CURRENT_USER() AS who, DATABASE() AS db');
      const [prepared] = await c.execute<RowDataPacket[]>('SELECT ? * 3 AS n', [3]);
      await c.ping();
      return { stmtBefore, afterReset, afterChange, prepared };
    };
    const { direct, proxied } = await bothWays(proxy.mysqlPort, run);
    assert.equal(proxied, direct);
    assert.equal((proxied as { afterChange: unknown }).afterChange, [{ who: `${user}@%`, db: other }]);
    // A wrong password on COM_CHANGE_USER: the server's error, as directly.
    const wrong = async (c: MySqlConnection): Promise<unknown> => {
      try {
        await c.changeUser({ user, password: 'wrong' });
        return 'accepted';
      } catch (err) {
        return (err as { errno: number }).errno;
      }
    };
    const refused = await bothWays(proxy.mysqlPort, wrong);
    assert.equal(refused.proxied, refused.direct);
    assert.is(refused.direct, 1045);
  } finally {
    await directMySql(`DROP USER IF EXISTS '${user}'@'%'`, `DROP DATABASE IF EXISTS ${other}`);
  }
});

test('LOAD DATA LOCAL INFILE: the client\'s file is relayed to the server', async () => {
  const { Readable } = await import('node:stream');
  const lines = Array.from({ length: 5000 }, (_, i) => `${1000 + i}\tv${i}\n`).join('');
  const c = await connectMySql(proxy.mysqlPort, { infileStreamFactory: () => Readable.from([Buffer.from(lines)]) });
  try {
    const [r] = await c.query<ResultSetHeader>({ sql: `LOAD DATA LOCAL INFILE 'rows.tsv' INTO TABLE ${db}.t` });
    assert.is(r.affectedRows, 5000);
    const [rows] = await c.query<RowDataPacket[]>(`SELECT COUNT(*) AS n, MAX(v) AS top FROM ${db}.t`);
    assert.equal(rows, [{ n: '5000', top: 'v999' }]);
    await c.query(`DELETE FROM ${db}.t`);
  } finally {
    await c.end();
  }
});

test('prepared statements: many on one connection, closed and re-prepared, ids per connection', async () => {
  const run = async (c: MySqlConnection): Promise<unknown> => {
    const out: unknown[] = [];
    for (let i = 0; i < 30; i++) {
      const [rows] = await c.execute<RowDataPacket[]>(`SELECT ? AS n, ${i} AS k`, [i]);
      out.push(rows);
    }
    const stmt = await c.prepare(`SELECT ? AS a, ? AS b FROM DUAL`);
    const [r1] = await stmt.execute([1, 'x']);
    const [r2] = await stmt.execute([null, 'y']);
    await stmt.close();
    const [after] = await c.query('SELECT 1 AS ok');
    out.push(r1, r2, after);
    return out;
  };
  const { direct, proxied } = await bothWays(proxy.mysqlPort, run, { maxPreparedStatements: 10 });
  assert.equal(proxied, direct);
});

test.run();
