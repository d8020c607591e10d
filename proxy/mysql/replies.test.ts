// The reply tracker fed through the server scanner with synthetic server bytes, cut at every byte:
// it must say a reply is complete exactly at its last byte, and learn the session facts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Capability, Command, MAX_PACKET_PAYLOAD, ServerStatus } from './codes.js';
import { encodePacket } from './packets.js';
import { ReplyTracker } from './replies.js';
import { ServerScanner } from './server-scanner.js';
import { MySqlSessionState } from './session-state.js';

const BASE = Capability.Protocol41 | Capability.Transactions | Capability.SecureConnection | Capability.MultiResults;

function lenenc(n: number): Buffer {
  return n < 0xfb ? Buffer.from([n]) : Buffer.from([0xfc, n & 0xff, n >> 8]);
}
const ok = (status: number, extra: Buffer = Buffer.alloc(0)): Buffer => Buffer.concat([Buffer.from([0, 0, 0, status & 0xff, status >> 8, 0, 0]), extra]);
const okFe = (status: number): Buffer => Buffer.from([0xfe, 0, 0, status & 0xff, status >> 8, 0, 0]);
const eof = (status: number): Buffer => Buffer.from([0xfe, 0, 0, status & 0xff, status >> 8]);
const err = (code: number): Buffer => Buffer.concat([Buffer.from([0xff, code & 0xff, code >> 8]), Buffer.from('#HY000oops')]);
const def = (name: string): Buffer => Buffer.concat([Buffer.from('\x03def'), Buffer.from([name.length]), Buffer.from(name), Buffer.alloc(20)]);
const row = (...values: string[]): Buffer => Buffer.concat(values.flatMap((v) => [lenenc(v.length), Buffer.from(v)]));

/** Sequence-numbered packets from 1 (the reply to a command sent with id 0). */
function reply(...payloads: Buffer[]): Buffer {
  return Buffer.concat(payloads.map((p, i) => encodePacket(p, i + 1)));
}

function command(code: number, arg = ''): Buffer {
  return encodePacket(Buffer.concat([Buffer.from([code]), Buffer.from(arg)]), 0);
}

function tracker(caps: number): ReplyTracker {
  const state = new MySqlSessionState();
  state.capabilities = caps >>> 0;
  return new ReplyTracker(state);
}

/**
 * Sends `cmd`, feeds `bytes` cut at `cut`, and returns the byte offset after which nothing was
 * awaited any more (-1 if the reply never completed).
 */
function completionOffset(t: ReplyTracker, cmd: Buffer, bytes: Buffer, cut: number): number {
  t.clientPacket(cmd, 0, cmd.length, cmd.length - 4);
  const scanner = new ServerScanner();
  let done = -1;
  for (let i = 0; i < bytes.length; i++) {
    // Feed one byte at a time after the cut, the rest before it in one piece.
    const piece = i < cut ? bytes.subarray(0, cut) : bytes.subarray(i, i + 1);
    if (i < cut && i > 0) continue;
    scanner.feed(piece, t);
    const end = i < cut ? cut : i + 1;
    if (t.awaiting === 0 && done < 0) done = end;
  }
  return done;
}

function assertCompletesAtEnd(caps: number, cmd: Buffer, bytes: Buffer, check?: (t: ReplyTracker) => void): void {
  for (const cut of [1, 5, Math.floor(bytes.length / 2), bytes.length]) {
    const t = tracker(caps);
    assert.is(completionOffset(t, cmd, bytes, cut), bytes.length, `cut at ${cut}`);
    check?.(t);
  }
}

test('a text result set with EOF packets completes at its last EOF; status flags learned', () => {
  const bytes = reply(Buffer.from([2]), def('a'), def('b'), eof(0), row('1', 'x'), row('2', ''), eof(ServerStatus.InTrans | ServerStatus.Autocommit));
  assertCompletesAtEnd(BASE, command(Command.Query, 'SELECT'), bytes, (t) => {
    assert.ok(t.state.inTransaction);
    assert.ok(t.state.autocommit);
  });
});

test('CLIENT_DEPRECATE_EOF: no EOF after the columns, an OK with 0xFE ends the rows', () => {
  const bytes = reply(Buffer.from([1]), def('a'), row('1'), row('2'), okFe(ServerStatus.Autocommit));
  assertCompletesAtEnd(BASE | Capability.DeprecateEof, command(Command.Query, 'SELECT'), bytes, (t) => assert.ok(t.state.autocommit));
});

test('multi-statements: results follow while SERVER_MORE_RESULTS_EXISTS is set; an ERR ends all', () => {
  const more = ServerStatus.MoreResultsExist | ServerStatus.Autocommit;
  const bytes = reply(Buffer.from([1]), def('a'), eof(more), row('1'), eof(more), ok(more), Buffer.from([1]), def('b'), eof(more), eof(ServerStatus.Autocommit));
  assertCompletesAtEnd(BASE, command(Command.Query, 'SELECT 1; INSERT; SELECT 2'), bytes);
  const failing = reply(Buffer.from([1]), def('a'), eof(more), row('1'), eof(more), err(1064));
  assertCompletesAtEnd(BASE, command(Command.Query, 'SELECT 1; SELEC'), failing);
});

test('a row whose first value is 16 MiB or longer starts with 0xFE and is not an EOF', () => {
  const big = Buffer.concat([Buffer.from([0xfe]), Buffer.from([0, 0, 0, 1, 0, 0, 0, 0]), Buffer.alloc(1 << 24, 0x61)]);
  const bytes = Buffer.concat([
    encodePacket(Buffer.from([1]), 1), encodePacket(def('z'), 2), encodePacket(eof(0), 3),
    encodePacket(big, 4), // two physical packets: 0xFFFFFF and the rest
    encodePacket(eof(ServerStatus.Autocommit), 6),
  ]);
  assert.ok(big.length > MAX_PACKET_PAYLOAD);
  const t = tracker(BASE);
  assert.is(completionOffset(t, command(Command.Query, 'SELECT'), bytes, bytes.length - 3), bytes.length);
});

test('COM_STMT_PREPARE: parameter and column definitions (with and without EOF); the statement is recorded', () => {
  const prepareOk = (id: number, cols: number, params: number): Buffer => {
    const b = Buffer.alloc(12);
    b.writeUInt32LE(id, 1);
    b.writeUInt16LE(cols, 5);
    b.writeUInt16LE(params, 7);
    return b;
  };
  const sql = 'SELECT ? + ?';
  assertCompletesAtEnd(BASE, command(Command.StmtPrepare, sql), reply(prepareOk(7, 1, 2), def('p1'), def('p2'), eof(2), def('c'), eof(2)), (t) => {
    assert.is(t.state.statements.get(7), sql);
  });
  assertCompletesAtEnd(BASE | Capability.DeprecateEof, command(Command.StmtPrepare, sql), reply(prepareOk(8, 1, 2), def('p1'), def('p2'), def('c')));
  assertCompletesAtEnd(BASE, command(Command.StmtPrepare, 'DO 1'), reply(prepareOk(9, 0, 0)));
  const t = tracker(BASE);
  completionOffset(t, command(Command.StmtPrepare, 'SELECT 1'), reply(prepareOk(3, 1, 0), def('c'), eof(2)), 1);
  const close = encodePacket(Buffer.from([Command.StmtClose, 3, 0, 0, 0]), 0);
  assert.is(t.clientPacket(close, 0, close.length, 5), 'no-reply');
  assert.is(t.state.statements.size, 0);
});

test('LOCAL INFILE: the client sends the file, its empty packet ends it, then the OK completes', () => {
  const t = tracker(BASE);
  const cmd = command(Command.Query, 'LOAD DATA LOCAL INFILE');
  t.clientPacket(cmd, 0, cmd.length, cmd.length - 4);
  const scanner = new ServerScanner();
  scanner.feed(encodePacket(Buffer.from('\xfbrows.tsv', 'latin1'), 1), t);
  assert.ok(t.awaitingClient);
  const data = encodePacket(Buffer.from('1\tx\n'), 2);
  assert.is(t.clientPacket(data, 0, data.length, 4), 'data');
  const empty = encodePacket(Buffer.alloc(0), 3);
  assert.is(t.clientPacket(empty, 0, empty.length, 0), 'data');
  assert.is(t.awaiting, 1);
  scanner.feed(encodePacket(ok(2), 4), t);
  assert.is(t.awaiting, 0);
});

test('simple commands, COM_FIELD_LIST, COM_STATISTICS, COM_CHANGE_USER with an auth switch', () => {
  assertCompletesAtEnd(BASE, command(Command.Ping), reply(ok(2)));
  assertCompletesAtEnd(BASE, command(Command.InitDb, 'shop'), reply(ok(2)), (t) => assert.is(t.state.database, 'shop'));
  assertCompletesAtEnd(BASE, command(Command.FieldList, 't\0'), reply(def('a'), def('b'), eof(2)));
  assertCompletesAtEnd(BASE, command(Command.Statistics), reply(Buffer.from('Uptime: 5  Threads: 1')));
  const t = tracker(BASE);
  t.state.authenticated = true;
  t.state.statements.set(1, 'SELECT 1');
  const change = command(Command.ChangeUser, 'bob\0\x00shop\0');
  t.clientPacket(change, 0, change.length, change.length - 4);
  const scanner = new ServerScanner();
  scanner.feed(encodePacket(Buffer.from('\xfemysql_native_password\0abcdefghijklmnopqrst\0', 'latin1'), 1), t);
  assert.ok(t.awaitingClient);
  const answer = encodePacket(Buffer.alloc(20, 1), 2);
  assert.is(t.clientPacket(answer, 0, answer.length, 20), 'data');
  scanner.feed(encodePacket(ok(2), 3), t);
  assert.is(t.awaiting, 0);
  assert.is(t.state.user, 'bob');
  assert.is(t.state.database, 'shop');
  assert.is(t.state.statements.size, 0, 'COM_CHANGE_USER drops prepared statements');
});

test('a MariaDB progress report (ERR 0xFFFF) does not end the reply', () => {
  const t = tracker(BASE);
  t.state.mariaDbCapabilities = 1;
  const cmd = command(Command.Query, 'ALTER TABLE');
  t.clientPacket(cmd, 0, cmd.length, cmd.length - 4);
  const scanner = new ServerScanner();
  scanner.feed(encodePacket(err(0xffff), 1), t);
  assert.is(t.awaiting, 1);
  scanner.feed(encodePacket(ok(2), 2), t);
  assert.is(t.awaiting, 0);
});

test('session tracking: the schema and system variables in an OK packet', () => {
  const caps = BASE | Capability.SessionTrack;
  const schema = Buffer.concat([Buffer.from([1]), lenenc(5), lenenc(4), Buffer.from('shop')]);
  const variable = Buffer.concat([Buffer.from([0]), lenenc(16), lenenc(9), Buffer.from('time_zone'), lenenc(5), Buffer.from('+1:00')]);
  const changes = Buffer.concat([schema, variable]);
  const payload = ok(ServerStatus.Autocommit | ServerStatus.SessionStateChanged, Buffer.concat([lenenc(0), lenenc(changes.length), changes]));
  assertCompletesAtEnd(caps, command(Command.Query, 'USE shop'), reply(payload), (t) => {
    assert.is(t.state.database, 'shop');
    assert.is(t.state.variables.get('time_zone'), '+1:00');
  });
});

test.run();
