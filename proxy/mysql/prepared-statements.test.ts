import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { executeKey } from './cache-key.js';
import { PreparedStatements } from './prepared-statements.js';

const LONGLONG = 0x08;
const CURSOR_READ_ONLY = 0x01;

/** COM_STMT_PREPARE_OK: status, statement id, columns, parameters, filler, warnings. */
function prepareOk(id: number, columns: number, params: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt32LE(id, 1);
  b.writeUInt16LE(columns, 5);
  b.writeUInt16LE(params, 7);
  return b;
}

/** A COM_STMT_EXECUTE payload with BIGINT parameters; `sendTypes` sets new-params-bound. */
function execute(id: number, values: bigint[], sendTypes: boolean, flags = 0): Buffer {
  const head = Buffer.alloc(10);
  head[0] = 0x17;
  head.writeUInt32LE(id, 1);
  head[5] = flags;
  head.writeUInt32LE(1, 6);
  const nullBitmap = Buffer.alloc((values.length + 7) >> 3);
  const types = Buffer.alloc(2 * values.length);
  for (let i = 0; i < values.length; i++) types.writeUInt16LE(LONGLONG, 2 * i);
  const data = Buffer.alloc(8 * values.length);
  values.forEach((v, i) => data.writeBigInt64LE(v, 8 * i));
  return Buffer.concat([head, nullBitmap, Buffer.from([sendTypes ? 1 : 0]), sendTypes ? types : Buffer.alloc(0), data]);
}

function withStatement(params: number): PreparedStatements {
  const s = new PreparedStatements();
  const ok = prepareOk(7, 2, params);
  s.prepared('\x16SELECT a, b FROM t WHERE id = ?', ok, 0, ok.length); // COM_STMT_PREPARE's payload
  return s;
}

test('an execution is keyed by the statement bytes and parameter values, whether or not it resent the types', () => {
  const s = withStatement(1);
  const first = s.execution(execute(7, [42n], true))!;
  assert.is(first.statement.text, 'SELECT a, b FROM t WHERE id = ?');
  assert.is(first.typesAt, -1, 'it sent them');
  const again = s.execution(execute(7, [42n], false))!;
  assert.is(again.keySuffix, first.keySuffix, 'the remembered types complete the key');
  assert.is.not(s.execution(execute(7, [43n], false))!.keySuffix, first.keySuffix, 'another value, another key');
  const types = Buffer.alloc(2);
  types.writeUInt16LE(LONGLONG);
  const value = Buffer.alloc(8);
  value.writeBigInt64LE(42n);
  assert.is(first.keySuffix, executeKey(first.statement.bytes, '\u0000', types.toString('latin1'), value.toString('latin1')));
});

test('a statement not prepared here, a cursor, long data or types never sent: no key', () => {
  const s = withStatement(1);
  assert.is(s.execution(execute(8, [1n], true)), null, 'unknown statement id');
  assert.is(s.execution(execute(7, [1n], false))!.keySuffix, null, 'types never sent');
  assert.is(s.execution(execute(7, [1n], true, CURSOR_READ_ONLY))!.keySuffix, null, 'cursor');
  s.longDataSent(7);
  assert.is(s.execution(execute(7, [1n], true))!.keySuffix, null, 'long data');
  assert.ok(s.execution(execute(7, [1n], true))!.keySuffix !== null, 'the server forgot the long data at that execution');
  s.longDataSent(7);
  s.reset(7);
  assert.ok(s.execution(execute(7, [1n], true))!.keySuffix !== null, 'COM_STMT_RESET drops it too');
  s.closed(7);
  assert.is(s.execution(execute(7, [1n], true)), null, 'closed');
});

test('types sent with an execution the cache answered are put back into the next one the server gets', () => {
  const s = withStatement(1);
  const answered = execute(7, [1n], true);
  s.execution(answered); // answered from the cache: the server never saw it
  const next = execute(7, [2n], false);
  const rebuilt = s.forUpstream(next, s.execution(next)!);
  assert.ok(rebuilt !== null);
  const payload = rebuilt!.subarray(4);
  assert.is(rebuilt!.readUIntLE(0, 3), payload.length);
  assert.equal(payload, execute(7, [2n], true), 'the same execution with its types bound');
  // The server has the types now: the next execution goes as the client sent it.
  const third = execute(7, [3n], false);
  assert.is(s.forUpstream(third, s.execution(third)!), null);
});

test('an execution that sent its types goes as it is; a statement without parameters never changes', () => {
  const s = withStatement(1);
  const sent = execute(7, [1n], true);
  assert.is(s.forUpstream(sent, s.execution(sent)!), null);
  const none = new PreparedStatements();
  const ok = prepareOk(3, 1, 0);
  none.prepared('\x16SELECT 1', ok, 0, ok.length);
  const bare = Buffer.from([0x17, 3, 0, 0, 0, 0, 1, 0, 0, 0]);
  const ex = none.execution(bare)!;
  assert.is(ex.keySuffix, executeKey('\x16SELECT 1', '', '', ''));
  assert.is(none.forUpstream(bare, ex), null);
  none.clear();
  assert.is(none.execution(bare), null, 'forgotten after COM_RESET_CONNECTION / COM_CHANGE_USER');
});

test.run();
