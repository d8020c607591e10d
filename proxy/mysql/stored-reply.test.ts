// Transaction flags in stored result-set replies: both EOFs (or the closing OK under DEPRECATE_EOF)
// get the session's flags, the result's own flags stay, the stored bytes are not touched, and
// bytes that are not one result set are refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ServerStatus } from './codes.js';
import { encodePacket } from './packets.js';
import { STORED_TRANSACTION_FLAGS, withTransactionFlags } from './stored-reply.js';

const NO_INDEX_USED = 0x0020;
const RO_TX = ServerStatus.InTrans | ServerStatus.Autocommit | ServerStatus.InTransReadonly;

const eof = (status: number): Buffer => Buffer.from([0xfe, 0, 0, status & 0xff, status >> 8]);
const okFe = (status: number, affected = Buffer.from([0])): Buffer => Buffer.concat([Buffer.from([0xfe]), affected, Buffer.from([0, status & 0xff, status >> 8, 0, 0])]);
const def = (name: string): Buffer => Buffer.concat([Buffer.from('\x03def'), Buffer.from([name.length]), Buffer.from(name), Buffer.alloc(20)]);
const row = (v: string): Buffer => Buffer.concat([Buffer.from([v.length]), Buffer.from(v)]);

function reply(...payloads: Buffer[]): Buffer {
  return Buffer.concat(payloads.map((p, i) => encodePacket(p, i + 1)));
}

/** The status of every 0xFE packet, in order. */
function statuses(bytes: Buffer, deprecateEof: boolean): number[] {
  const out: number[] = [];
  for (let pos = 0; pos < bytes.length;) {
    const length = bytes.readUIntLE(pos, 3);
    const p = bytes.subarray(pos + 4, pos + 4 + length);
    if (p[0] === 0xfe) out.push(deprecateEof && length > 5 ? p.readUInt16LE(p[1] === 0xfc ? 5 : 3) : p.readUInt16LE(3));
    pos += 4 + length;
  }
  return out;
}

test('classic EOFs: both the column EOF and the closing EOF get the transaction flags; other flags stay', () => {
  const stored = reply(Buffer.from([2]), def('a'), def('b'), eof(ServerStatus.Autocommit), row('x'), row('y'), eof(ServerStatus.Autocommit | NO_INDEX_USED));
  const copy = Buffer.from(stored);
  const patched = withTransactionFlags(stored, false, RO_TX | ServerStatus.SessionStateChanged)!;
  assert.equal(statuses(patched, false), [RO_TX, RO_TX | NO_INDEX_USED]);
  assert.ok(stored.equals(copy), 'the stored bytes are not changed');
  assert.is(patched.length, stored.length);
  assert.equal(statuses(withTransactionFlags(patched, false, STORED_TRANSACTION_FLAGS)!, false), [ServerStatus.Autocommit, ServerStatus.Autocommit | NO_INDEX_USED]);
});

test('DEPRECATE_EOF: the closing OK gets the flags (short and long length-encoded fields)', () => {
  const short = reply(Buffer.from([1]), def('a'), row('x'), okFe(ServerStatus.Autocommit));
  assert.equal(statuses(withTransactionFlags(short, true, RO_TX)!, true), [RO_TX]);
  const long = reply(Buffer.from([1]), def('a'), row('x'), okFe(ServerStatus.Autocommit, Buffer.from([0xfc, 0x10, 0x27])));
  const patched = withTransactionFlags(long, true, RO_TX)!;
  assert.is(patched.readUInt16LE(patched.length - 4), RO_TX);
});

test('no rows and binary rows (header 0x00) are walked alike', () => {
  const empty = reply(Buffer.from([1]), def('a'), eof(2), eof(2));
  assert.equal(statuses(withTransactionFlags(empty, false, RO_TX)!, false), [RO_TX, RO_TX]);
  const binary = reply(Buffer.from([1]), def('a'), eof(2), Buffer.from([0x00, 0x00, 0x01, 0x02]), eof(2));
  assert.equal(statuses(withTransactionFlags(binary, false, RO_TX)!, false), [RO_TX, RO_TX]);
});

test('anything but one whole result set is refused', () => {
  assert.is(withTransactionFlags(reply(Buffer.from([0, 0, 0, 2, 0, 0, 0])), false, RO_TX), null, 'an OK');
  assert.is(withTransactionFlags(reply(Buffer.from([1]), def('a'), eof(2), row('x')), false, RO_TX), null, 'no terminator');
  const whole = reply(Buffer.from([1]), def('a'), eof(2), row('x'), eof(2));
  assert.is(withTransactionFlags(whole.subarray(0, whole.length - 2), false, RO_TX), null, 'cut');
  assert.is(withTransactionFlags(reply(Buffer.from([1]), def('a'), row('x'), eof(2)), false, RO_TX), null, 'no column EOF where one belongs');
  assert.is(withTransactionFlags(Buffer.alloc(0), false, RO_TX), null);
});

test.run();
