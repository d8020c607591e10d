import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { EventType, decodeBinlogPacket } from './binlog-events.js';
import { BinlogTracker, type BinlogInvalidation } from './binlog-tracker.js';
import { CAPTURED, event, hex, mariadbGtidEvent, queryEvent, rowsEvent, tableMapEvent, xidEvent } from './binlog-test-events.js';

function feed(tracker: BinlogTracker, packets: Buffer[]): BinlogInvalidation[] {
  const out: BinlogInvalidation[] = [];
  for (const p of packets) {
    const decoded = decodeBinlogPacket(p, { checksum: true, tableIdBytes: 6 });
    if (decoded.kind !== 'event') throw new Error(decoded.kind);
    const inv = tracker.apply(decoded.event);
    if (inv !== null) out.push(inv);
  }
  return out;
}

const SERVER = { serverId: 1 };

test('a captured InnoDB transaction invalidates its table at the XID, and the GTID position moves', () => {
  const t = new BinlogTracker('0-1-10');
  assert.equal(feed(t, [hex(CAPTURED.insertGtid), hex(CAPTURED.insertTableMap), hex(CAPTURED.insertRows)]), []);
  assert.is(t.gtidPosition, '0-1-10', 'not before the commit');
  assert.equal(feed(t, [hex(CAPTURED.insertXid)]), [{ tables: [{ database: 'd2', name: 't' }], wide: false, catalogChanged: false }]);
  assert.is(t.gtidPosition, '0-1-11');
});

test('a captured MyISAM group ends with a COMMIT Query', () => {
  const t = new BinlogTracker();
  assert.equal(feed(t, [hex(CAPTURED.myisamGtid), hex(CAPTURED.myisamTableMap), hex(CAPTURED.myisamRows), hex(CAPTURED.myisamCommit)]),
    [{ tables: [{ database: 'd2', name: 'm' }], wide: false, catalogChanged: false }]);
  assert.is(t.gtidPosition, '0-1-12');
});

test('captured DDL (a standalone group) and TRUNCATE drop everything at once', () => {
  const t = new BinlogTracker();
  assert.equal(feed(t, [hex(CAPTURED.ddlGtid), hex(CAPTURED.ddlQuery)]), [{ tables: [], wide: true, catalogChanged: true }]);
  assert.is(t.gtidPosition, '0-1-8');
  assert.equal(feed(t, [mariadbGtidEvent(13n, 0, true, SERVER), hex(CAPTURED.truncateQuery)]), [{ tables: [], wide: true, catalogChanged: true }]);
});

test('several tables and statements in one transaction are handed out once, at the commit', () => {
  const t = new BinlogTracker();
  const out = feed(t, [
    mariadbGtidEvent(1n, 0, false), tableMapEvent(5, 'shop', 'orders'), tableMapEvent(6, 'shop', 'items'),
    rowsEvent(EventType.WriteRowsV1, 5, false), rowsEvent(EventType.UpdateRowsV1, 6, true),
    tableMapEvent(5, 'shop', 'orders'), rowsEvent(EventType.DeleteRowsV1, 5, true), tableMapEvent(9, 'other', 'orders'), rowsEvent(EventType.WriteRowsV2, 9),
  ]);
  assert.equal(out, []);
  assert.equal(feed(t, [xidEvent()]), [{
    tables: [{ database: 'shop', name: 'orders' }, { database: 'shop', name: 'items' }, { database: 'other', name: 'orders' }],
    wide: false, catalogChanged: false,
  }]);
});

test('a table mapped in a transaction is invalidated even without rows of its own (a foreign-key cascade target)', () => {
  const t = new BinlogTracker();
  assert.equal(feed(t, [mariadbGtidEvent(1n, 0, false), tableMapEvent(5, 'a', 'parent'), tableMapEvent(6, 'b', 'child'), rowsEvent(EventType.DeleteRowsV1, 5), xidEvent()]),
    [{ tables: [{ database: 'a', name: 'parent' }, { database: 'b', name: 'child' }], wide: false, catalogChanged: false }]);
});

test('table ids are forgotten at each commit: a rows event without its map is unattributable (everything)', () => {
  const t = new BinlogTracker();
  feed(t, [mariadbGtidEvent(1n, 0, false), tableMapEvent(5, 's', 'a'), rowsEvent(23, 5), xidEvent()]);
  assert.equal(feed(t, [mariadbGtidEvent(2n, 0, false), rowsEvent(23, 5), xidEvent()]), [{ tables: [], wide: true, catalogChanged: false }]);
  assert.is(t.unattributed, 1);
});

test('MySQL\'s BEGIN ... XID and statement-format writes inside a group (wide at the commit)', () => {
  const t = new BinlogTracker();
  assert.equal(feed(t, [event(EventType.MysqlGtid, Buffer.alloc(40)), queryEvent('s', 'BEGIN'), tableMapEvent(1, 's', 'a'), rowsEvent(30, 1)]), []);
  assert.equal(feed(t, [queryEvent('s', 'UPDATE a SET x = 1')]), [], 'a statement inside the group waits for the commit');
  assert.equal(feed(t, [xidEvent()]), [{ tables: [{ database: 's', name: 'a' }], wide: true, catalogChanged: true }]);
  assert.is(t.gtidPosition, '', 'MySQL GTIDs are not followed');
});

test('savepoints and XA bookkeeping change nothing; XA PREPARE and a ROLLBACK Query end the group', () => {
  const t = new BinlogTracker();
  assert.equal(feed(t, [queryEvent('s', 'BEGIN'), queryEvent('s', 'SAVEPOINT `a`'), queryEvent('s', 'ROLLBACK TO `a`'), queryEvent('s', 'RELEASE SAVEPOINT a')]), []);
  assert.equal(feed(t, [tableMapEvent(1, 's', 'm'), rowsEvent(23, 1), queryEvent('s', 'ROLLBACK')]), [{ tables: [{ database: 's', name: 'm' }], wide: false, catalogChanged: false }],
    'non-transactional changes of a rolled-back transaction are in the binlog and did happen');
  assert.equal(feed(t, [queryEvent('s', "XA START X'01'"), tableMapEvent(1, 's', 'x'), rowsEvent(23, 1), queryEvent('s', "XA END X'01'"), event(EventType.XaPrepare, Buffer.alloc(20))]),
    [{ tables: [{ database: 's', name: 'x' }], wide: false, catalogChanged: false }]);
  assert.equal(feed(t, [queryEvent('s', "XA COMMIT X'01'")]), [{ tables: [], wide: true, catalogChanged: true }], 'the tables of an XA COMMIT are not in its event');
});

test('compressed transactions, incidents, opaque statements and unknown events drop everything at once', () => {
  for (const e of [event(EventType.TransactionPayload, Buffer.alloc(9)), event(EventType.Incident, Buffer.alloc(4)), event(EventType.ExecuteLoadQuery, Buffer.alloc(30)), event(240, Buffer.alloc(3))]) {
    const t = new BinlogTracker();
    const out = feed(t, [e]);
    assert.is(out.length, 1);
    assert.ok(out[0]!.wide);
  }
});

test('heartbeats, rotates and ignorable events change nothing', () => {
  const t = new BinlogTracker();
  assert.equal(feed(t, [hex(CAPTURED.rotate), hex(CAPTURED.gtidList), hex(CAPTURED.checkpoint), event(EventType.Heartbeat, Buffer.from('b.1'))]), []);
});

test('the GTID position keeps one entry per domain', () => {
  const t = new BinlogTracker('1-1-5,0-1-3');
  feed(t, [mariadbGtidEvent(4n, 0, false, { serverId: 2 }), xidEvent(), mariadbGtidEvent(9n, 2, true, { serverId: 3 }), queryEvent('', 'CREATE TABLE x (a int)')]);
  assert.is(t.gtidPosition, '0-2-4,1-1-5,2-3-9');
});

test('property: every table written in a committed group is invalidated at its XID', () => {
  fc.assert(fc.property(fc.array(fc.record({ table: fc.integer({ min: 0, max: 5 }), type: fc.constantFrom(23, 24, 25, 30, 31, 32) }), { minLength: 1, maxLength: 15 }), (writes) => {
    const t = new BinlogTracker();
    const packets = [mariadbGtidEvent(1n, 0, false)];
    for (const w of writes) packets.push(tableMapEvent(100 + w.table, 'db', `t${w.table}`), rowsEvent(w.type, 100 + w.table));
    packets.push(xidEvent());
    const out = feed(t, packets);
    const expected = new Set(writes.map((w) => `t${w.table}`));
    return out.length === 1 && !out[0]!.wide && out[0]!.tables.length === expected.size && out[0]!.tables.every((x) => expected.has(x.name));
  }), { numRuns: 300 });
});

test.run();
