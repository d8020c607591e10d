import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { BinlogError, EventType, decodeBinlogPacket, type BinlogEvent, type BinlogFormat } from './binlog-events.js';
import { encodeBinlogDump } from './binlog-dump.js';
import {
  CAPTURED, errorPacket, event, formatDescription, heartbeatEvent, hex, mariadbGtidEvent, queryEvent, rowsEvent, tableMapEvent, xidEvent,
} from './binlog-test-events.js';

const CRC: BinlogFormat = { checksum: true, tableIdBytes: 6 };

function decode(payload: Buffer, format: BinlogFormat = CRC): BinlogEvent {
  const p = decodeBinlogPacket(payload, format);
  if (p.kind !== 'event') throw new Error(`expected an event, got ${p.kind}`);
  return p.event;
}

const without = (e: BinlogEvent): Record<string, unknown> => {
  const { header: _h, ...rest } = e;
  return rest;
};

test('captured MariaDB events: rotate, GTIDs, table map, rows, XID, COMMIT and DDL queries', () => {
  assert.equal(without(decode(hex(CAPTURED.rotate))), { kind: 'rotate', position: 4, nextFile: 'binlog.000001' });
  assert.is(decode(hex(CAPTURED.rotate)).header.logPos, 0);
  assert.equal(without(decode(hex(CAPTURED.ddlGtid))), { kind: 'mariadb-gtid', domainId: 0, sequence: '8', standalone: true });
  assert.equal(without(decode(hex(CAPTURED.ddlQuery))), { kind: 'query', schema: 'd2', sql: 'CREATE DATABASE IF NOT EXISTS d2' });
  assert.equal(without(decode(hex(CAPTURED.insertGtid))), { kind: 'mariadb-gtid', domainId: 0, sequence: '11', standalone: false });
  assert.equal(without(decode(hex(CAPTURED.insertTableMap))), { kind: 'table-map', tableId: 24, schema: 'd2', table: 't' });
  assert.equal(without(decode(hex(CAPTURED.insertRows))), { kind: 'rows', tableId: 24, endOfStatement: true });
  assert.equal(without(decode(hex(CAPTURED.insertXid))), { kind: 'xid' });
  assert.is(decode(hex(CAPTURED.insertXid)).header.logPos, 2487);
  assert.equal(without(decode(hex(CAPTURED.myisamCommit))), { kind: 'query', schema: '', sql: 'COMMIT' });
  assert.equal(without(decode(hex(CAPTURED.updateRows))), { kind: 'rows', tableId: 18, endOfStatement: true });
  assert.equal(without(decode(hex(CAPTURED.truncateQuery))), { kind: 'query', schema: '', sql: 'TRUNCATE d1.t' });
  assert.is(decode(hex(CAPTURED.gtidList)).kind, 'ignored');
  assert.is(decode(hex(CAPTURED.checkpoint)).kind, 'ignored');
});

test('the Format Description gives the server version and the table id width', () => {
  assert.equal(without(decode(formatDescription())), { kind: 'format', serverVersion: '10.11.19-MariaDB-log', tableIdBytes: 6 });
  assert.is((decode(formatDescription('5.1.73', 6)) as { tableIdBytes: number }).tableIdBytes, 4);
});

test('4-byte table ids are read when the format says so', () => {
  const old: BinlogFormat = { checksum: false, tableIdBytes: 4 };
  const id = Buffer.alloc(4 + 2 + 4);
  id.writeUInt32LE(77, 0);
  id.writeUInt16LE(1, 4);
  assert.equal(without(decode(event(EventType.WriteRowsV1, id, { checksum: false }), old)), { kind: 'rows', tableId: 77, endOfStatement: true });
});

test('every rows event type, MariaDB\'s compressed ones and MySQL\'s v2 and partial updates, gives its table id', () => {
  for (const type of [20, 21, 22, 23, 24, 25, 30, 31, 32, 39, 166, 167, 168, 169, 170, 171]) {
    assert.equal(without(decode(rowsEvent(type, 0x0102030405, false))), { kind: 'rows', tableId: 0x0102030405, endOfStatement: false }, `type ${type}`);
  }
});

test('MySQL\'s GTIDs, XA PREPARE, compressed transactions, incidents and heartbeats', () => {
  for (const type of [EventType.MysqlGtid, EventType.AnonymousGtid, EventType.GtidTagged]) assert.is(decode(event(type, Buffer.alloc(40))).kind, 'mysql-gtid');
  assert.is(decode(event(EventType.XaPrepare, Buffer.alloc(20))).kind, 'xa-prepare');
  assert.is(decode(event(EventType.TransactionPayload, Buffer.alloc(20))).kind, 'transaction-payload');
  assert.is(decode(event(EventType.Incident, Buffer.alloc(4))).kind, 'incident');
  for (const type of [EventType.ExecuteLoadQuery, EventType.QueryCompressed, EventType.Load, EventType.NewLoad]) {
    assert.is(decode(event(type, Buffer.alloc(30))).kind, 'opaque-statement', `type ${type}`);
  }
  assert.equal(without(decode(heartbeatEvent('binlog.000007', 4242))), { kind: 'heartbeat', file: 'binlog.000007' });
  assert.equal(decode(mariadbGtidEvent(2n ** 63n + 5n, 3, false)), { ...decode(mariadbGtidEvent(2n ** 63n + 5n, 3, false)), sequence: '9223372036854775813' });
});

test('an unknown event is reported unknown unless the server flags it ignorable', () => {
  assert.is(decode(event(250, Buffer.alloc(8))).kind, 'unknown');
  assert.is(decode(event(250, Buffer.alloc(8), { flags: 0x80 })).kind, 'ignored');
  assert.is(decode(event(EventType.RowsQuery, Buffer.alloc(8))).kind, 'ignored');
});

test('error and EOF packets', () => {
  assert.equal(decodeBinlogPacket(errorPacket(1236, 'HY000', 'Could not find GTID state requested by slave in any binlog files'), CRC),
    { kind: 'error', code: 1236, sqlState: 'HY000', message: 'Could not find GTID state requested by slave in any binlog files' });
  assert.equal(decodeBinlogPacket(Buffer.from([0xfe, 0, 0, 2, 0]), CRC), { kind: 'eof' });
  assert.throws(() => decodeBinlogPacket(Buffer.from([0x01, 2, 3]), CRC), /unexpected binlog packet 0x1/);
  assert.throws(() => decodeBinlogPacket(Buffer.alloc(0), CRC), (e: unknown) => e instanceof BinlogError);
});

test('an event whose size disagrees with its packet is refused', () => {
  const e = Buffer.from(xidEvent());
  e.writeUInt32LE(999, 10);
  assert.throws(() => decode(e), /says 999 bytes/);
});

test('without checksums the last four bytes are part of the body', () => {
  const q = queryEvent('db', 'COMMIT', { checksum: false });
  assert.equal(without(decode(q, { checksum: false, tableIdBytes: 6 })), { kind: 'query', schema: 'db', sql: 'COMMIT' });
  assert.equal(without(decode(queryEvent('db', 'COMMIT'))), { kind: 'query', schema: 'db', sql: 'COMMIT' });
});

test('a packet cut short anywhere throws BinlogError', () => {
  const samples = [
    ...Object.values(CAPTURED).map(hex), formatDescription(), tableMapEvent(5, 'shop', 'orders'), rowsEvent(30, 5),
    mariadbGtidEvent(9n, 0, true), queryEvent('x', 'ALTER TABLE t ADD c int'), heartbeatEvent('b.000001', 5),
  ];
  for (const whole of samples) {
    for (let len = 1; len < whole.length; len++) {
      assert.throws(() => decodeBinlogPacket(whole.subarray(0, len), CRC), (e: unknown) => e instanceof BinlogError, `cut at ${len} of ${whole.toString('hex')}`);
    }
  }
});

test('fuzz: arbitrary bytes decode or throw BinlogError, nothing else', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), fc.boolean(), (bytes, checksum) => {
    const buf = Buffer.from(bytes);
    if (buf.length > 0) buf[0] = 0; // mostly events
    if (buf.length >= 14) buf.writeUInt32LE(buf.length - 1, 10); // a consistent size, so the body is read
    try {
      decodeBinlogPacket(buf, { checksum, tableIdBytes: 6 });
    } catch (err) {
      if (!(err instanceof BinlogError)) throw err;
    }
  }), { numRuns: 20_000 });
});

test('COM_BINLOG_DUMP: position, flags, server id and file name, after room for the packet header', () => {
  const b = encodeBinlogDump({ serverId: 0xdeadbeef, file: 'binlog.000002', position: 1234 });
  assert.is(b[4], 0x12);
  assert.is(b.readUInt32LE(5), 1234);
  assert.is(b.readUInt16LE(9), 0);
  assert.is(b.readUInt32LE(11), 0xdeadbeef);
  assert.is(b.toString('utf8', 15), 'binlog.000002');
});

test.run();
