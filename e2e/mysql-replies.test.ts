// The reply tracker against the real MariaDB: a raw connection sends commands of every kind, and
// the bytes the server answers are fed through ServerScanner + ReplyTracker. The tracker must say
// each reply is complete exactly at its last byte (never before, never after) and learn the facts
// the cache depends on, with CLIENT_DEPRECATE_EOF on and off. No proxy here: this proves the
// reading of server replies on the server's own bytes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ReplyTracker } from '../proxy/mysql/replies.js';
import { ServerScanner } from '../proxy/mysql/server-scanner.js';
import { MySqlSessionState } from '../proxy/mysql/session-state.js';
import { directMySql, uniqueName } from './support/mysql-direct.js';
import { BASE_CAPABILITIES, CLIENT, RawMySql, command } from './support/mysql-raw.js';

const db = uniqueName('sc_replies');

test.before(async () => {
  await directMySql(
    `CREATE DATABASE ${db}`,
    `CREATE TABLE ${db}.t (id INT PRIMARY KEY, v VARCHAR(10))`,
    `INSERT INTO ${db}.t VALUES (1, 'a'), (2, NULL), (3, 'c')`,
    `CREATE PROCEDURE ${db}.p() BEGIN SELECT 1 AS x; SELECT v FROM ${db}.t; END`,
  );
});

test.after(async () => {
  await directMySql(`DROP DATABASE IF EXISTS ${db}`);
});

class Probe {
  readonly state = new MySqlSessionState();
  readonly tracker = new ReplyTracker(this.state);
  private readonly scanner = new ServerScanner();

  private constructor(readonly raw: RawMySql) {}

  static async open(capabilities: number): Promise<Probe> {
    const raw = await RawMySql.login(3306, { capabilities, database: db });
    const p = new Probe(raw);
    p.state.capabilities = (capabilities | CLIENT.CONNECT_WITH_DB) & raw.handshake!.capabilities;
    p.state.authenticated = true;
    p.state.database = db;
    return p;
  }

  /**
   * Sends one command; asserts the tracker completes its reply exactly at the reply's last byte:
   * bytes are fed one at a time as they arrive, none may come after the tracker says complete, and
   * it must say so before the reply stops coming (however slowly the bytes arrive).
   */
  async run(packet: Buffer, what: string, expectReply = true): Promise<Buffer> {
    const kind = this.tracker.clientPacket(packet, 0, packet.length, packet.length - 4);
    this.raw.send(packet);
    if (!expectReply) {
      assert.is(kind, 'no-reply', what);
      assert.is((await this.raw.readQuiet(120)).length, 0, `${what}: no reply`);
      return Buffer.alloc(0);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    while (this.tracker.awaiting !== 0) {
      const bytes = await this.raw.readAvailable();
      if (bytes.length === 0) assert.unreachable(`${what}: the reply stopped after ${total} bytes, the tracker still waits`);
      for (let i = 0; i < bytes.length; i++) {
        if (this.tracker.awaiting === 0) assert.unreachable(`${what}: complete after ${total + i} bytes, but more came`);
        this.scanner.feed(bytes.subarray(i, i + 1), this.tracker);
      }
      total += bytes.length;
      chunks.push(bytes);
    }
    assert.is((await this.raw.readQuiet(120)).length, 0, `${what}: complete at the last byte`);
    return Buffer.concat(chunks);
  }

  query(sql: string): Promise<Buffer> {
    return this.run(command(0x03, sql), sql);
  }
}

/** COM_STMT_EXECUTE with one BIGINT parameter (or NULL), or none when `value` is undefined. */
function execute(stmtId: number, flags: number, value?: number | null): Buffer {
  const head = Buffer.alloc(10);
  head[0] = 0x17;
  head.writeUInt32LE(stmtId, 1);
  head[5] = flags;
  head.writeUInt32LE(1, 6);
  if (value === undefined) return packetOf(head);
  if (value === null) return packetOf(Buffer.concat([head, Buffer.from([0x01, 0x01, 0x08, 0x00])]));
  const v = Buffer.alloc(8);
  v.writeBigInt64LE(BigInt(value));
  return packetOf(Buffer.concat([head, Buffer.from([0x00, 0x01, 0x08, 0x00]), v]));
}

function packetOf(payload: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUIntLE(payload.length, 0, 3);
  return Buffer.concat([h, payload]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

for (const [label, caps] of [['EOF packets', BASE_CAPABILITIES], ['CLIENT_DEPRECATE_EOF + session tracking', BASE_CAPABILITIES | CLIENT.DEPRECATE_EOF | CLIENT.SESSION_TRACK]] as const) {
  test(`${label}: text results, multi-statements, CALL, errors, status flags`, async () => {
    const p = await Probe.open(caps);
    try {
      await p.query('SELECT * FROM t ORDER BY id');
      await p.query('SELECT 1; SELECT 2, 3; DO 1; SELECT v FROM t');
      await p.query('CALL p()');
      await p.query('SELEC oops');
      await p.query('SELECT 1; SELEC oops; SELECT 2');
      await p.query('SELECT * FROM t WHERE 1 = 0');
      await p.query('BEGIN');
      assert.ok(p.state.inTransaction, 'in transaction after BEGIN');
      await p.query(`UPDATE t SET v = 'z' WHERE id = 3`);
      await p.query('ROLLBACK');
      assert.not.ok(p.state.inTransaction);
      await p.query('SET autocommit = 0');
      assert.not.ok(p.state.autocommit);
      await p.query('SET autocommit = 1');
      assert.ok(p.state.autocommit);
      await p.query('USE mysql');
      // With session tracking the server names the new database; without it, it is unknown.
      assert.is(p.state.database, caps & CLIENT.SESSION_TRACK ? 'mysql' : null);
      await p.run(command(0x02, db), 'COM_INIT_DB');
      assert.is(p.state.database, db);
      if (caps & CLIENT.SESSION_TRACK) {
        await p.query(`SET time_zone = '+03:00'`);
        assert.is(p.state.variables.get('time_zone'), '+03:00');
      }
    } finally {
      p.raw.destroy();
    }
  });

  test(`${label}: prepared statements (binary rows, NULL parameter, cursor + fetch), close, reset`, async () => {
    const p = await Probe.open(caps);
    try {
      const prepared = await p.run(command(0x16, 'SELECT id, v FROM t WHERE id >= ? ORDER BY id'), 'prepare');
      const stmtId = prepared.readUInt32LE(5);
      assert.is(p.state.statements.get(stmtId), 'SELECT id, v FROM t WHERE id >= ? ORDER BY id');
      await p.run(execute(stmtId, 0, 2), 'execute');
      await p.run(execute(stmtId, 0, null), 'execute with NULL');
      await p.run(execute(stmtId, 1, 1), 'execute opening a cursor');
      await p.run(command(0x1c, Buffer.concat([u32(stmtId), u32(2)])), 'fetch 2');
      await p.run(command(0x1c, Buffer.concat([u32(stmtId), u32(5)])), 'fetch the rest');
      await p.run(command(0x1a, u32(stmtId)), 'COM_STMT_RESET');
      const noParams = await p.run(command(0x16, 'DO 1'), 'prepare without columns or parameters');
      await p.run(command(0x19, u32(stmtId)), 'COM_STMT_CLOSE', false);
      assert.not.ok(p.state.statements.has(stmtId));
      assert.ok(p.state.statements.has(noParams.readUInt32LE(5)));
      await p.run(command(0x16, 'SELEC nothing'), 'prepare error');
      await p.run(command(0x16, `CALL p()`), 'prepare CALL');
      const callId = [...p.state.statements.keys()].at(-1)!;
      await p.run(execute(callId, 0), 'execute CALL (two result sets)');
      await p.run(command(0x1f), 'COM_RESET_CONNECTION');
      assert.is(p.state.statements.size, 0);
    } finally {
      p.raw.destroy();
    }
  });

  test(`${label}: COM_PING, COM_FIELD_LIST, COM_STATISTICS, COM_SET_OPTION`, async () => {
    const p = await Probe.open(caps);
    try {
      await p.run(command(0x0e), 'ping');
      await p.run(command(0x04, 't\0'), 'field list');
      await p.run(command(0x04, 'missing\0'), 'field list of a missing table');
      await p.run(command(0x09), 'statistics');
      await p.run(command(0x1b, Buffer.from([1, 0])), 'set option: multi-statements off');
      await p.query('SELECT 1');
    } finally {
      p.raw.destroy();
    }
  });
}

test.run();
