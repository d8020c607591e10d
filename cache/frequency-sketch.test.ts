import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FrequencySketch, hashKey } from './frequency-sketch.js';

const keys = Array.from({ length: 2000 }, (_, i) => hashKey(`key ${i}`));

test('hashes are deterministic 30-bit integers, spread over the range', () => {
  assert.is(hashKey('SELECT 1'), hashKey('SELECT 1'));
  assert.is.not(hashKey('SELECT 1'), hashKey('SELECT 2'));
  assert.ok(keys.every((h) => Number.isInteger(h) && h >= 0 && h < 2 ** 30));
  assert.is(new Set(keys).size, keys.length);
  // Top two bits of the 30: each quarter of the range gets a fair share of 2000 keys.
  const quarters = [0, 0, 0, 0];
  for (const h of keys) quarters[h >>> 28]!++;
  assert.ok(quarters.every((q) => q > 400), quarters.join(','));
});

test('the doorkeeper takes the first access; later ones reach the counters, capped at 15', () => {
  const sketch = new FrequencySketch(1024);
  const h = keys[0]!;
  assert.is(sketch.frequency(h), 0);
  sketch.increment(h);
  assert.is(sketch.frequency(h), 1);
  for (let i = 0; i < 5; i++) sketch.increment(h);
  assert.is(sketch.frequency(h), 6);
  for (let i = 0; i < 100; i++) sketch.increment(h);
  assert.is(sketch.frequency(h), 16); // 15 counted + the doorkeeper's one
});

test('estimates never under-count, and with room to spare mostly count exactly', () => {
  const sketch = new FrequencySketch(4096);
  const truth = new Map<number, number>();
  // 1000 keys, key i accessed (i % 7) + 1 times: 4000 accesses, below the aging sample (40960).
  for (let i = 0; i < 1000; i++) {
    for (let n = 0; n <= i % 7; n++) sketch.increment(keys[i]!);
    truth.set(keys[i]!, (i % 7) + 1);
  }
  let exact = 0;
  for (const [h, n] of truth) {
    const estimate = sketch.frequency(h);
    assert.ok(estimate >= n, `under-counted: ${estimate} < ${n}`);
    if (estimate === n) exact++;
  }
  assert.ok(exact >= 950, `${exact} of 1000 exact`);
  assert.is(sketch.bytes, 4096 * 4 + 4096);
});

test('aging: after 10 x width accesses every count is halved and the doorkeeper forgotten', () => {
  const sketch = new FrequencySketch(64); // sample size 640
  const hot = keys[0]!;
  for (let i = 0; i < 11; i++) sketch.increment(hot); // doorkeeper + 10
  assert.is(sketch.frequency(hot), 11);
  // Other keys, each once, until the 640th access: only doorkeeper bits, no counter of `hot` moves.
  for (let i = 11; i < 639; i++) sketch.increment(keys[1 + (i % 1999)]!);
  assert.ok(sketch.frequency(hot) >= 11);
  sketch.increment(keys[1999]!); // the 640th
  assert.is(sketch.frequency(hot), 5); // 10 halved, doorkeeper cleared
});

test.run();
