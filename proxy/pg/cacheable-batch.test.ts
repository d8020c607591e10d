import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { serialize } from 'pg-protocol';
import { cacheableBatch, cacheableGroup, type Held } from './cacheable-batch.js';
import type { ClientStatement } from './session-state.js';

function held(...messages: Buffer[]): Held[] {
  return messages.map((m) => ({ code: m[0]!, buf: m, start: 0, end: m.length }));
}

const none = new Map<string, ClientStatement>();
const text = 'SELECT v FROM t WHERE id = $1';

test('Parse/Bind/Describe/Execute of the unnamed statement is cacheable, keyed without the Parse', () => {
  const withParse = cacheableBatch(held(serialize.parse({ text }), serialize.bind({ values: ['7'] }), serialize.describe({ type: 'P' }), serialize.execute()), none);
  assert.ok(withParse);
  assert.is(withParse!.text, text);
  assert.equal(withParse!.parse, { name: '', text, sig: withParse!.sig });
  const statements = new Map([['', { text, sig: withParse!.sig }]]);
  const without = cacheableBatch(held(serialize.bind({ values: ['7'] }), serialize.describe({ type: 'P' }), serialize.execute()), statements);
  assert.is(without!.keySuffix, withParse!.keySuffix, 'a batch with and one without the Parse share the reply');
});

test('parameter values, the Describe kind and result formats are part of the key', () => {
  const key = (bind: Buffer, describe = serialize.describe({ type: 'P' })) =>
    cacheableBatch(held(serialize.parse({ text }), bind, describe, serialize.execute()), none)!.keySuffix;
  const base = key(serialize.bind({ values: ['7'] }));
  assert.is.not(key(serialize.bind({ values: ['8'] })), base);
  assert.is.not(key(serialize.bind({ values: ['7'], binary: true })), base);
  assert.is.not(key(serialize.bind({ values: ['7'] }), serialize.describe({ type: 'S' })), base);
});

test('a batch without Describe names the keys of the same execution with one; a described batch none', () => {
  const described = (kind: 'P' | 'S') => cacheableBatch(held(serialize.parse({ text }), serialize.bind({ values: ['7'] }), serialize.describe({ type: kind }), serialize.execute()), none)!;
  const statements = new Map([['', { text, sig: described('P').sig }]]);
  const bare = cacheableBatch(held(serialize.bind({ values: ['7'] }), serialize.execute()), statements)!;
  assert.is.not(bare.keySuffix, described('P').keySuffix);
  assert.equal(bare.describedKeySuffixes, [described('P').keySuffix, described('S').keySuffix]);
  assert.equal(described('P').describedKeySuffixes, []);
  const other = cacheableBatch(held(serialize.bind({ values: ['8'] }), serialize.execute()), statements)!;
  assert.not.ok(other.describedKeySuffixes.includes(described('P').keySuffix), 'other values, other keys');
});

test('named statements resolve through the client view; unknown names are not cacheable', () => {
  const statements = new Map([['s1', { text, sig: `${text}\0\0\0` }]]);
  const batch = held(serialize.bind({ statement: 's1', values: ['1'] }), serialize.execute());
  assert.is(cacheableBatch(batch, statements)!.text, text);
  assert.is(cacheableBatch(batch, none), null);
});

test('batches the cache must not answer', () => {
  const statements = new Map([['s1', { text, sig: 'x' }]]);
  const cases: [string, Held[]][] = [
    ['a row limit (partial fetch)', held(serialize.parse({ text }), serialize.bind(), serialize.execute({ rows: 5 }))],
    ['two Executes', held(serialize.parse({ text }), serialize.bind(), serialize.execute(), serialize.execute())],
    ['a Close', held(serialize.parse({ text }), serialize.bind(), serialize.execute(), serialize.close({ type: 'S', name: 's1' }))],
    ['no Execute', held(serialize.parse({ text }), serialize.describe({ type: 'S' }))],
    ['re-Parse of a name the client holds (the server reports it)', held(serialize.parse({ name: 's1', text }), serialize.bind({ statement: 's1' }), serialize.execute())],
    ['Execute of another portal', held(serialize.parse({ text }), serialize.bind({ portal: 'p1' }), serialize.execute({ portal: 'p2' }))],
  ];
  for (const [what, batch] of cases) assert.is(cacheableBatch(batch, statements), null, what);
});

test('a Sync group of several statements: each batch in order, a Parse earlier in the group bound by name later', () => {
  const other = 'SELECT w FROM t';
  const group = cacheableGroup(held(
    serialize.parse({ name: 's1', text }), serialize.bind({ statement: 's1', values: ['1'] }), serialize.execute(),
    serialize.parse({ text: other }), serialize.bind(), serialize.describe({ type: 'P' }), serialize.execute(),
    serialize.bind({ statement: 's1', values: ['2'] }), serialize.execute()), none);
  assert.equal(group?.map((b) => [b.text, b.parse?.name ?? null]), [[text, 's1'], [other, ''], [text, null]]);
  const notGroups: [string, Held[]][] = [
    ['one statement', held(serialize.parse({ text }), serialize.bind(), serialize.execute())],
    ['a statement not ended by its Execute', held(serialize.parse({ text }), serialize.bind(), serialize.execute(), serialize.parse({ text: other }))],
    ['a name parsed twice', held(...[1, 2].flatMap(() => [serialize.parse({ name: 's1', text }), serialize.bind({ statement: 's1' }), serialize.execute()]))],
    // PostgreSQL refuses the second Bind: the portal lives until the group's Sync (42P03).
    ['a named portal bound twice', held(serialize.parse({ name: 's1', text }),
      ...[1, 2].flatMap(() => [serialize.bind({ portal: 'p', statement: 's1' }), serialize.execute({ portal: 'p' })]))],
    ['a Close between', held(serialize.parse({ text }), serialize.bind(), serialize.execute(), serialize.close({ type: 'S', name: 'x' }), serialize.parse({ text }), serialize.bind(), serialize.execute())],
  ];
  for (const [what, batch] of notGroups) assert.is(cacheableGroup(batch, none), null, what);
});

test.run();
