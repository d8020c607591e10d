import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Invalidation } from '../proxy/result-cache.js';
import { decodeEntry, encodeMessage, SEQ_FIELD, type BusMessage } from './message.js';

const text = fc.string({ unit: 'binary', maxLength: 20 });
const invalidation: fc.Arbitrary<Invalidation> = fc.oneof(
  fc.record({ scope: fc.constant('tags' as const), tags: fc.array(text, { maxLength: 5 }), tables: fc.oneof(fc.constant('database' as const), fc.array(text, { maxLength: 5 })), catalog: fc.option(text, { nil: null }) }),
  fc.record({ scope: fc.constant('all' as const), catalog: fc.boolean() }),
  fc.record({ scope: fc.constant('fingerprint' as const), fingerprint: text }),
);
const message: fc.Arbitrary<BusMessage> = fc.record({
  origin: text,
  sentAt: fc.double({ min: 0, max: 4e12, noNaN: true }),
  body: fc.oneof(
    fc.constant({ kind: 'beat' as const }),
    fc.record({ kind: fc.constant('invalidation' as const), protocol: fc.constantFrom('postgres' as const, 'mysql' as const), invalidation }),
    fc.record({ kind: fc.constant('streams' as const), protocol: fc.constantFrom('postgres' as const, 'mysql' as const), up: fc.array(text, { maxLength: 5 }) }),
  ),
});

test('every message reads back as written, with the number the publish script adds', () => {
  fc.assert(fc.property(message, fc.integer({ min: 1, max: 2 ** 50 }), (m, seq) => {
    // Through JSON: fast-check's records have no prototype, decoded ones a plain one.
    assert.equal(decodeEntry([SEQ_FIELD, String(seq), ...encodeMessage(m)]), JSON.parse(JSON.stringify({ seq, message: m })));
  }));
});

test('an entry without a number, or one that is not a message of this version, reads as unknown', () => {
  const fields = encodeMessage({ origin: 'a', sentAt: 1, body: { kind: 'invalidation', protocol: 'mysql', invalidation: { scope: 'all', catalog: false } } });
  assert.is(decodeEntry(fields).seq, null);
  const unreadable = [
    ['s', '1', 'v', '2', 'o', 'a', 't', '1', 'k', 'b'],
    ['s', '1', 'v', '1', 'o', 'a', 't', 'soon', 'k', 'b'],
    ['s', '1', 'v', '1', 'o', 'a', 't', '1', 'k', 'z'],
    ['s', '1', 'v', '1', 'o', 'a', 't', '1', 'k', 'i', 'p', 'oracle', 'd', '{"scope":"all","catalog":true}'],
    ['s', '1', 'v', '1', 'o', 'a', 't', '1', 'k', 'i', 'p', 'mysql', 'd', '{"scope":"all"}'],
    ['s', '1', 'v', '1', 'o', 'a', 't', '1', 'k', 'i', 'p', 'mysql', 'd', '{"scope":"tags","tags":[1],"tables":[],"catalog":null}'],
    ['s', '1', 'v', '1', 'o', 'a', 't', '1', 'k', 'i', 'p', 'mysql', 'd', 'not json'],
    ['s', '1', 'v', '1', 'o', 'a', 't', '1', 'k', 'i', 'p', 'mysql', 'd', 'null'],
    ['s', '1', 'v', '1', 'o', 'a', 't', '1', 'k', 's', 'p', 'mysql', 'd', '[1]'],
    ['s', '1', 'v', '1', 'o', 'a', 't', '1', 'k', 's', 'p', 'oracle', 'd', '["*"]'],
    ['s', '1', 'v', '1', 'o', 'a', 't', '1', 'k', 's', 'p', 'postgres', 'd', '{}'],
  ];
  for (const entry of unreadable) assert.equal(decodeEntry(entry), { seq: 1, message: null }, entry.join(' '));
  assert.is(decodeEntry(['s', '-1', 'v', '1']).seq, null);
});

test.run();
