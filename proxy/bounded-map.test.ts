import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { boundedMap } from './bounded-map.js';

test('a full map drops its least recently used entry, not everything', () => {
  const map = boundedMap<string, number>(3);
  map.set('a', 1);
  map.set('b', 2);
  map.set('c', 3);
  assert.is(map.get('a'), 1); // a is now the most recently used; b the least
  map.set('d', 4);
  assert.is(map.size, 3);
  assert.equal([...map.keys()].sort(), ['a', 'c', 'd']);
  for (let i = 0; i < 100; i++) map.set(`k${i}`, i);
  assert.is(map.size, 3);
  assert.equal([...map.keys()].sort(), ['k97', 'k98', 'k99']);
});

test('object keys work (decisions are keyed by the statement info itself)', () => {
  const map = boundedMap<object, string>(2);
  const [x, y, z] = [{}, {}, {}];
  map.set(x, 'x');
  map.set(y, 'y');
  map.set(z, 'z');
  assert.is(map.get(x), undefined);
  assert.is(map.get(y), 'y');
  assert.is(map.get(z), 'z');
});

test.run();
