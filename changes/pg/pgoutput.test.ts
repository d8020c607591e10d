import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import {
  PgoutputError, decodePgoutput, decodeReplicationMessage, formatLsn, parseLsn, standbyStatusUpdate, type PgoutputMessage,
} from './pgoutput.js';
import { pgoutput, walsender } from './pgoutput-messages.js';

const T = Date.UTC(2026, 11, 7, 12, 0, 0, 250);
const BIG_LSN = 0x16 * 0x1_0000_0000 + 0xb374d848;

test('Begin, Commit and their LSNs and times', () => {
  assert.equal(decodePgoutput(pgoutput.begin(BIG_LSN, T, 4242), false), { type: 'begin', finalLsn: BIG_LSN, commitTimeMs: T, xid: 4242 });
  assert.equal(decodePgoutput(pgoutput.commit(100, 180, T), false), { type: 'commit', commitLsn: 100, endLsn: 180, commitTimeMs: T });
});

test('a Relation gives its id, names and columns', () => {
  const m = decodePgoutput(pgoutput.relation(16384, 'public', 'orders', [['id', 23, -1], ['note', 1043, 36]]), false);
  assert.equal(m, {
    type: 'relation', xid: null, relid: 16384, namespace: 'public', name: 'orders',
    columns: [{ name: 'id', typeOid: 23, typeModifier: -1 }, { name: 'note', typeOid: 1043, typeModifier: 36 }],
  });
});

test('Insert, Update and Delete give the relation only, whatever the row data', () => {
  assert.equal(decodePgoutput(pgoutput.insert(7, ['1', 'x'.repeat(5000)]), false), { type: 'change', xid: null, relid: 7 });
  assert.equal(decodePgoutput(pgoutput.update(7, ['1'], ['1', 'y']), false), { type: 'change', xid: null, relid: 7 });
  assert.equal(decodePgoutput(pgoutput.update(7, null, ['1', 'y']), false), { type: 'change', xid: null, relid: 7 });
  assert.equal(decodePgoutput(pgoutput.delete(8, ['1']), false), { type: 'change', xid: null, relid: 8 });
});

test('Truncate lists every relation it empties', () => {
  assert.equal(decodePgoutput(pgoutput.truncate([5, 6, 7]), false), { type: 'truncate', xid: null, relids: [5, 6, 7] });
});

test('a logical decoding message keeps its prefix, content and whether it is transactional', () => {
  const m = decodePgoutput(pgoutput.message('sidecache.ddl', '{"relations":["t"]}', true, 77), false);
  assert.equal({ ...m, content: (m as { content: Buffer }).content.toString() },
    { type: 'message', xid: null, transactional: true, lsn: 77, prefix: 'sidecache.ddl', content: '{"relations":["t"]}' });
  assert.is((decodePgoutput(pgoutput.message('other', '', false, 78), false) as { transactional: boolean }).transactional, false);
});

test('inside a stream block, changes carry the xid of their transaction', () => {
  assert.equal(decodePgoutput(pgoutput.streamStart(900, true), false), { type: 'stream-start', xid: 900, firstSegment: true });
  assert.equal(decodePgoutput(pgoutput.insert(7, ['1'], 900), true), { type: 'change', xid: 900, relid: 7 });
  assert.equal(decodePgoutput(pgoutput.truncate([7], 900), true), { type: 'truncate', xid: 900, relids: [7] });
  assert.equal((decodePgoutput(pgoutput.relation(7, 's', 't', [], 900), true) as { xid: number }).xid, 900);
  assert.equal((decodePgoutput(pgoutput.message('p', 'c', true, 5, 900), true) as { xid: number }).xid, 900);
  assert.equal(decodePgoutput(pgoutput.streamStop(), false), { type: 'stream-stop' });
  assert.equal(decodePgoutput(pgoutput.streamCommit(900, 10, 20, T), false), { type: 'stream-commit', xid: 900, commitLsn: 10, endLsn: 20, commitTimeMs: T });
  assert.equal(decodePgoutput(pgoutput.streamAbort(900, 901), false), { type: 'stream-abort', xid: 900, subxid: 901 });
});

test('Origin and Type are ignored; an unknown message is reported as unknown, not skipped silently', () => {
  assert.equal(decodePgoutput(pgoutput.origin(1, 'node'), false), { type: 'ignored', code: 0x4f });
  assert.equal(decodePgoutput(pgoutput.type(16400, 'public', 'mood'), false), { type: 'ignored', code: 0x59 });
  assert.equal(decodePgoutput(Buffer.from('Zxyz'), false), { type: 'unknown', code: 0x5a });
});

test('XLogData and keepalive from the walsender', () => {
  const payload = pgoutput.begin(5, T, 1);
  const x = decodeReplicationMessage(walsender.xlogData(BIG_LSN, BIG_LSN + 10, T, payload));
  assert.equal({ ...x, payload: null }, { kind: 'xlog', walStart: BIG_LSN, walEnd: BIG_LSN + 10, sendTimeMs: T, payload: null });
  assert.ok((x as { payload: Buffer }).payload.equals(payload));
  assert.equal(decodeReplicationMessage(walsender.keepalive(BIG_LSN, T, true)), { kind: 'keepalive', walEnd: BIG_LSN, sendTimeMs: T, replyRequested: true });
  assert.throws(() => decodeReplicationMessage(Buffer.from('q')), (e: unknown) => e instanceof PgoutputError);
  assert.throws(() => decodeReplicationMessage(Buffer.alloc(0)), (e: unknown) => e instanceof PgoutputError);
});

test('the standby status update reports the position three times, the clock and the reply flag', () => {
  const b = standbyStatusUpdate(BIG_LSN, T, true);
  assert.is(b.length, 34);
  assert.is(String.fromCharCode(b[0]!), 'r');
  for (const at of [1, 9, 17]) assert.is(Number(b.readBigUInt64BE(at)), BIG_LSN);
  assert.is(Number(b.readBigInt64BE(25)), (T - 946_684_800_000) * 1000);
  assert.is(b[33], 1);
});

test('LSNs print and parse as PostgreSQL writes them', () => {
  assert.is(formatLsn(BIG_LSN), '16/B374D848');
  assert.is(parseLsn('16/B374D848'), BIG_LSN);
  assert.is(parseLsn('0/0'), 0);
  assert.throws(() => parseLsn('16-B3'), (e: unknown) => e instanceof PgoutputError);
});

/** Every message kind the decoder reads, as the stream could send them. */
const SAMPLES: [Buffer, boolean][] = [
  [pgoutput.begin(BIG_LSN, T, 3), false],
  [pgoutput.commit(1, 2, T), false],
  [pgoutput.relation(16384, 'public', 'orders', [['id', 23, -1], ['note', 25, -1]]), false],
  [pgoutput.relation(16384, 'public', 'orders', [['id', 23, -1]], 9), true],
  [pgoutput.insert(7, ['1']), false],
  [pgoutput.update(7, ['1'], ['2'], 9), true],
  [pgoutput.delete(7, ['1']), false],
  [pgoutput.truncate([1, 2]), false],
  [pgoutput.message('sidecache.ddl', '{}', true, 3), false],
  [pgoutput.message('sidecache.ddl', '{}', true, 3, 9), true],
  [pgoutput.streamStart(9, false), false],
  [pgoutput.streamCommit(9, 1, 2, T), false],
  [pgoutput.streamAbort(9, 9), false],
];

test('a message cut short anywhere throws PgoutputError and never yields a wrong value', () => {
  for (const [whole, inStream] of SAMPLES) {
    const full = decodePgoutput(whole, inStream);
    for (let len = 0; len < whole.length; len++) {
      const part = whole.subarray(0, len);
      let got: PgoutputMessage;
      try {
        got = decodePgoutput(part, inStream);
      } catch (err) {
        assert.instance(err, PgoutputError, `cut at ${len} of ${whole.toString('hex')}`);
        continue;
      }
      // Only a change is whole before its end: its row data is never read.
      assert.is(full.type, 'change', `cut at ${len} of ${full.type} decoded as ${got.type}`);
      assert.equal(got, full);
    }
  }
});

test('fuzz: arbitrary bytes decode or throw PgoutputError, nothing else', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), fc.boolean(), (bytes, inStream) => {
    const buf = Buffer.from(bytes);
    for (const decode of [() => decodePgoutput(buf, inStream), () => decodeReplicationMessage(buf)]) {
      try {
        decode();
      } catch (err) {
        if (!(err instanceof PgoutputError)) throw err;
      }
    }
  }), { numRuns: 20_000 });
});

test('fuzz: a Truncate that claims more relations than it holds is refused without allocating them', () => {
  const lying = Buffer.concat([Buffer.from('T'), Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.from([0])]);
  assert.throws(() => decodePgoutput(lying, false), /do not fit/);
});

test.run();
