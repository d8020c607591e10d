import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RecentMap } from './recent-map.js';

test('holds at most the bound, and what was used in the last generation stays', () => {
  const map = new RecentMap<string, number>(4);
  map.set('a', 1);
  map.set('b', 2);
  // The young generation is full: the next new key makes it old.
  map.set('c', 3);
  assert.is(map.size, 3);
  assert.is(map.get('a'), 1); // back in the young generation
  map.set('d', 4); // young full (c, a): it becomes old, b goes
  assert.is(map.get('b'), undefined);
  assert.is(map.get('a'), 1);
  assert.is(map.get('c'), 3);
  assert.is(map.get('d'), 4);
  for (let i = 0; i < 100; i++) {
    map.set(`k${i}`, i);
    assert.ok(map.size <= 4);
  }
  assert.is(map.get('k99'), 99);
  assert.is(map.get('k98'), 98);
  assert.is(map.get('a'), undefined);
});

test('setting a key again replaces its value wherever it is', () => {
  const map = new RecentMap<string, number>(4);
  map.set('a', 1);
  map.set('b', 2);
  map.set('c', 3); // a and b are old
  map.set('a', 10);
  assert.is(map.get('a'), 10);
  assert.is(map.size, 3);
});

test('object keys work', () => {
  const map = new RecentMap<object, string>(2);
  const [x, y] = [{}, {}];
  map.set(x, 'x');
  map.set(y, 'y'); // x is old
  assert.is(map.get(x), 'x');
  assert.is(map.get(y), 'y');
});

test('a bound under 2 is refused', () => {
  assert.throws(() => new RecentMap(1), RangeError);
});

test.run();
