import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { decodePgoutput } from './pgoutput.js';
import { pgoutput } from './pgoutput-messages.js';
import { DDL_MESSAGE_PREFIX, PgoutputTracker, type PgInvalidation } from './pgoutput-tracker.js';

const T = Date.UTC(2026, 11, 7, 12, 0, 0);

/** Feeds wire messages through the decoder as the stream does; returns every invalidation. */
function feed(tracker: PgoutputTracker, messages: Buffer[]): PgInvalidation[] {
  const out: PgInvalidation[] = [];
  for (const m of messages) {
    const inv = tracker.apply(decodePgoutput(m, tracker.inStream));
    if (inv !== null) out.push(inv);
  }
  return out;
}

const ORDERS = pgoutput.relation(100, 'public', 'orders', [['id', 23, -1], ['total', 1700, -1]]);
const ITEMS = pgoutput.relation(101, 'shop', 'items', [['id', 23, -1]]);

test('a committed transaction hands out every relation it wrote, once, at its Commit', () => {
  const t = new PgoutputTracker();
  const before = feed(t, [pgoutput.begin(10, T, 1), ORDERS, pgoutput.insert(100, ['1', '9']), ITEMS, pgoutput.update(101, null, ['2'])]);
  assert.equal(before, [], 'nothing before the Commit');
  const at = feed(t, [pgoutput.delete(100, ['1']), pgoutput.commit(10, 20, T)]);
  assert.equal(at, [{ tables: ['orders', 'items'], wide: false, catalogChanged: false, commitTimeMs: T }]);
  assert.equal(feed(t, [pgoutput.begin(30, T, 2), pgoutput.insert(101, ['3']), pgoutput.commit(30, 40, T)]),
    [{ tables: ['items'], wide: false, catalogChanged: false, commitTimeMs: T }], 'relations stay known across transactions');
});

test('Truncate invalidates every relation it lists', () => {
  const t = new PgoutputTracker();
  assert.equal(feed(t, [pgoutput.begin(1, T, 1), ORDERS, ITEMS, pgoutput.truncate([100, 101]), pgoutput.commit(1, 2, T)]),
    [{ tables: ['orders', 'items'], wide: false, catalogChanged: false, commitTimeMs: T }]);
});

test('a transaction that wrote nothing this stream carries invalidates nothing', () => {
  const t = new PgoutputTracker();
  assert.equal(feed(t, [pgoutput.begin(1, T, 1), pgoutput.commit(1, 2, T)]), []);
});

test('a change of a relation never described invalidates the whole database at its commit', () => {
  const t = new PgoutputTracker();
  assert.equal(feed(t, [pgoutput.begin(1, T, 1), pgoutput.insert(555, ['1']), pgoutput.commit(1, 2, T)]),
    [{ tables: [], wide: true, catalogChanged: false, commitTimeMs: T }]);
  assert.is(t.unattributed, 1);
});

test('a Relation message whose columns changed drops that relation at once; the same shape again drops nothing', () => {
  const t = new PgoutputTracker();
  assert.equal(feed(t, [ORDERS, ORDERS]), []);
  const altered = pgoutput.relation(100, 'public', 'orders', [['id', 23, -1], ['total', 1700, -1], ['note', 25, -1]]);
  assert.equal(feed(t, [altered]), [{ tables: ['orders'], wide: false, catalogChanged: true, commitTimeMs: null }]);
  const retyped = pgoutput.relation(100, 'public', 'orders', [['id', 20, -1], ['total', 1700, -1], ['note', 25, -1]]);
  assert.equal(feed(t, [retyped]).length, 1, 'a column type change counts');
  const renamed = pgoutput.relation(100, 'public', 'purchases', [['id', 20, -1], ['total', 1700, -1], ['note', 25, -1]]);
  assert.equal(feed(t, [renamed]), [{ tables: ['orders', 'purchases'], wide: false, catalogChanged: true, commitTimeMs: null }]);
});

test('the DDL event trigger\'s message names the relations, or none (the whole database), at its commit', () => {
  const t = new PgoutputTracker();
  const ddl = (content: string): Buffer => pgoutput.message(DDL_MESSAGE_PREFIX, content, true, 5);
  assert.equal(feed(t, [pgoutput.begin(1, T, 1), ddl('{"relations":["orders","items"]}'), pgoutput.commit(1, 2, T)]),
    [{ tables: ['orders', 'items'], wide: false, catalogChanged: true, commitTimeMs: T }]);
  assert.equal(feed(t, [pgoutput.begin(3, T, 2), ddl('{"relations":null}'), pgoutput.commit(3, 4, T)]),
    [{ tables: [], wide: true, catalogChanged: true, commitTimeMs: T }]);
  assert.equal(feed(t, [pgoutput.begin(5, T, 3), ddl('not json'), pgoutput.commit(5, 6, T)]),
    [{ tables: [], wide: true, catalogChanged: true, commitTimeMs: T }], 'content it cannot read counts as unsure');
  assert.equal(feed(t, [pgoutput.begin(7, T, 4), pgoutput.message('someone.else', '{}', true, 5), pgoutput.commit(7, 8, T)]), [],
    'other applications\' messages are not ours');
  assert.equal(feed(t, [pgoutput.message(DDL_MESSAGE_PREFIX, '{"relations":["x"]}', false, 9)]),
    [{ tables: ['x'], wide: false, catalogChanged: true, commitTimeMs: null }], 'a non-transactional one applies at once');
});

test('a streamed transaction is handed out at its Stream Commit, interleaved with others', () => {
  const t = new PgoutputTracker();
  const out = feed(t, [
    ORDERS, ITEMS,
    pgoutput.streamStart(900, true), pgoutput.insert(100, ['1'], 900), pgoutput.streamStop(),
    pgoutput.begin(10, T, 901), pgoutput.insert(101, ['1']), pgoutput.commit(10, 11, T),
    pgoutput.streamStart(900, false), pgoutput.relation(102, 'public', 'logs', [['id', 23, -1]], 900), pgoutput.insert(102, ['1'], 900), pgoutput.streamStop(),
  ]);
  assert.equal(out, [{ tables: ['items'], wide: false, catalogChanged: false, commitTimeMs: T }]);
  assert.equal(feed(t, [pgoutput.streamCommit(900, 50, 60, T + 5)]), [{ tables: ['orders', 'logs'], wide: false, catalogChanged: false, commitTimeMs: T + 5 }]);
});

test('an aborted streamed transaction hands out nothing; a subtransaction abort keeps the rest', () => {
  const t = new PgoutputTracker();
  feed(t, [ORDERS, pgoutput.streamStart(7, true), pgoutput.insert(100, ['1'], 7), pgoutput.streamStop()]);
  assert.equal(feed(t, [pgoutput.streamAbort(7, 7), pgoutput.streamCommit(7, 1, 2, T)]), []);
  feed(t, [pgoutput.streamStart(8, true), pgoutput.insert(100, ['1'], 8), pgoutput.streamStop()]);
  assert.equal(feed(t, [pgoutput.streamAbort(8, 81), pgoutput.streamCommit(8, 1, 2, T)]).map((i) => i.tables), [['orders']]);
});

test('a message type the decoder does not know invalidates the database now and at the commit', () => {
  const t = new PgoutputTracker();
  const out = feed(t, [pgoutput.begin(1, T, 1), Buffer.from('Zzz'), pgoutput.commit(1, 2, T)]);
  assert.equal(out, [
    { tables: [], wide: true, catalogChanged: true, commitTimeMs: null },
    { tables: [], wide: true, catalogChanged: false, commitTimeMs: T },
  ]);
});

test('Origin and Type messages change nothing', () => {
  const t = new PgoutputTracker();
  assert.equal(feed(t, [pgoutput.begin(1, T, 1), pgoutput.origin(1, 'n'), pgoutput.type(1, 'public', 'mood'), pgoutput.commit(1, 2, T)]), []);
});

test('property: every relation changed inside a committed transaction is invalidated at its commit', () => {
  const names = ['a', 'b', 'c', 'd'];
  fc.assert(fc.property(fc.array(fc.record({ relation: fc.integer({ min: 0, max: 3 }), kind: fc.constantFrom('insert', 'update', 'delete', 'truncate') }), { maxLength: 20 }), (changes) => {
    const t = new PgoutputTracker();
    const msgs = [pgoutput.begin(1, T, 1), ...names.map((n, i) => pgoutput.relation(i, 'public', n, [['id', 23, -1]]))];
    for (const c of changes) {
      msgs.push(c.kind === 'insert' ? pgoutput.insert(c.relation, ['1'])
        : c.kind === 'update' ? pgoutput.update(c.relation, null, ['1'])
          : c.kind === 'delete' ? pgoutput.delete(c.relation, ['1']) : pgoutput.truncate([c.relation]));
    }
    msgs.push(pgoutput.commit(1, 2, T));
    const out = feed(t, msgs);
    const expected = new Set(changes.map((c) => names[c.relation]!));
    if (expected.size === 0) return out.length === 0;
    return out.length === 1 && new Set(out[0]!.tables).size === expected.size && out[0]!.tables.every((n) => expected.has(n));
  }), { numRuns: 500 });
});

test.run();
