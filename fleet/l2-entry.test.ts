// The second tier's entry codec and tag-table fields (pure).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeL2Entry, dependencyFields, encodeL2Entry, invalidatedFields, L2_ENTRY_FORMAT, type L2Entry } from './l2-entry.js';

const entry: L2Entry = {
  key: 'Q\u0000select 1\u00ff', era: 'e1', asOf: 42, expiresAt: 1_700_000_000_000.5,
  tags: ['app\u0000\u0000orders', 'app\u0000'], fingerprint: 'fp1', bytes: Buffer.from([0, 1, 2, 255]),
};

test('an entry reads back as written, binary key and bytes included', () => {
  assert.equal(decodeL2Entry(encodeL2Entry('postgres', entry)), entry);
});

test('the check block a Lua script reads comes first: era, asOf, then the dependency fields as UTF-8', () => {
  const data = encodeL2Entry('postgres', entry);
  assert.is(data[0], L2_ENTRY_FORMAT);
  const items: string[] = [];
  for (let at = 5; at < 5 + data.readUInt32BE(1); at += 4 + data.readUInt32BE(at)) items.push(data.toString('utf8', at + 4, at + 4 + data.readUInt32BE(at)));
  assert.equal(items, ['e1', '42', ...dependencyFields('postgres', entry)]);
});

test('what this version did not write is a miss, not an exception', () => {
  const data = encodeL2Entry('postgres', entry);
  const older = Buffer.from(data);
  older[0] = 1;
  assert.is(decodeL2Entry(older), null, 'another format');
  assert.is(decodeL2Entry(data.subarray(0, 10)), null, 'cut short');
  assert.is(decodeL2Entry(Buffer.alloc(0)), null);
  const bad = Buffer.from(data);
  bad.write('}', data.length - entry.bytes.length - 2);
  assert.is(decodeL2Entry(bad), null, 'damaged header');
  const long = Buffer.from(data);
  long.writeUInt32BE(data.length, 1);
  assert.is(decodeL2Entry(long), null, 'a check block longer than the entry');
});

test('an invalidation bumps the fields an entry it drops depends on, and only those', () => {
  const deps = new Set(dependencyFields('postgres', entry));
  const hits = (fields: string[]): boolean => fields.some((f) => deps.has(f));
  assert.ok(hits(invalidatedFields('postgres', { scope: 'tags', tags: ['app\u0000\u0000orders'], tables: ['orders'], catalog: null })));
  assert.ok(hits(invalidatedFields('postgres', { scope: 'tags', tags: ['app\u0000'], tables: 'database', catalog: 'app' })));
  assert.ok(hits(invalidatedFields('postgres', { scope: 'all', catalog: false })));
  assert.ok(hits(invalidatedFields('postgres', { scope: 'fingerprint', fingerprint: 'fp1' })));
  assert.not.ok(hits(invalidatedFields('postgres', { scope: 'tags', tags: ['app\u0000\u0000other'], tables: ['other'], catalog: null })));
  assert.not.ok(hits(invalidatedFields('postgres', { scope: 'fingerprint', fingerprint: 'fp2' })));
  assert.not.ok(hits(invalidatedFields('mysql', { scope: 'all', catalog: true })), 'the other protocol');
});

test.run();
