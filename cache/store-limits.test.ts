// setLimits: what a config reload does to a running store.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from './clock.js';
import { CacheOptionsError, ResultStore, chargedBytes } from './store.js';
import { tableTag } from './tags.js';

const TAG = tableTag('app', 'public', 'users');
const VALUE = Buffer.alloc(1000, 1);
const SIZE = chargedBytes('k0', VALUE.length, 1);

function fill(store: ResultStore<null>, key: string, ttlMs?: number) {
  return store.set(key, VALUE, null, { token: store.startFill(), tags: [TAG], ...(ttlMs === undefined ? {} : { ttlMs }) });
}

test('lru: shrinking the budget evicts least recently used entries down to it at once', () => {
  const store = new ResultStore<null>({ maxBytes: 10 * SIZE, maxEntryBytes: SIZE, defaultTtlMs: 0, clock: new ManualClock(), eviction: 'lru' });
  for (let i = 0; i < 10; i++) assert.is(fill(store, `k${i}`), 'stored');
  store.get('k0'); // most recently used now: survives
  store.setLimits({ maxBytes: 3 * SIZE, maxEntryBytes: SIZE, defaultTtlMs: 0 });
  assert.ok(store.bytes <= 3 * SIZE, `${store.bytes} bytes kept`);
  assert.equal([...store.entriesByRecency()].map((e) => e.key), ['k8', 'k9', 'k0']);
  assert.is(store.counters().maxBytes, 3 * SIZE);
  assert.is(store.counters().evictions, 7);
});

test('tinylfu: shrinking the budget evicts down to it at once, entries never read again before those hit again', () => {
  const store = new ResultStore<null>({ maxBytes: 10 * SIZE, maxEntryBytes: SIZE, defaultTtlMs: 0, clock: new ManualClock() });
  for (let i = 0; i < 10; i++) assert.is(fill(store, `k${i}`), 'stored');
  store.get('k0'); // promoted to protected: survives
  store.get('k1');
  store.setLimits({ maxBytes: 3 * SIZE, maxEntryBytes: SIZE, defaultTtlMs: 0 });
  assert.is(store.bytes, 3 * SIZE);
  // k9, the window's candidate, is no more popular than probation's oldest and goes first; then
  // probation oldest first, down to the newest (k8); the two entries hit again stay.
  assert.equal([...store.entriesByRecency()].map((e) => e.key).sort(), ['k0', 'k1', 'k8']);
  assert.is(store.counters().evictions, 7);
  // The budget holds after further fills under the new split.
  for (let i = 10; i < 30; i++) fill(store, `k${i}`);
  assert.ok(store.bytes <= 3 * SIZE);
  assert.ok(store.get('k0') && store.get('k1'));
});

test('a new entry limit and default TTL judge the next fills', () => {
  const clock = new ManualClock();
  const store = new ResultStore<null>({ maxBytes: 100 * SIZE, maxEntryBytes: SIZE, defaultTtlMs: 0, clock });
  assert.is(fill(store, 'ol'), 'stored');
  store.setLimits({ maxBytes: 100 * SIZE, maxEntryBytes: SIZE - 1, defaultTtlMs: 1000 });
  assert.is(fill(store, 'bg'), 'too-large');
  store.setLimits({ maxBytes: 100 * SIZE, maxEntryBytes: SIZE, defaultTtlMs: 1000 });
  assert.is(fill(store, 'nw'), 'stored');
  clock.advance(1000);
  assert.is(store.get('nw'), undefined, 'filled under the new default TTL');
  assert.ok(store.get('ol'), 'an entry stored before keeps its expiry (none)');
});

test('a budget of 0 empties the store and refuses fills; raising it caches again', () => {
  const store = new ResultStore<null>({ maxBytes: 10 * SIZE, maxEntryBytes: SIZE, defaultTtlMs: 0, clock: new ManualClock() });
  fill(store, 'a');
  store.setLimits({ maxBytes: 0, maxEntryBytes: SIZE, defaultTtlMs: 0 });
  assert.is(store.size, 0);
  assert.is(fill(store, 'b'), 'too-large');
  store.setLimits({ maxBytes: 10 * SIZE, maxEntryBytes: SIZE, defaultTtlMs: 0 });
  assert.is(fill(store, 'c'), 'stored');
});

test('invalid limits are refused and leave the store as it was', () => {
  const store = new ResultStore<null>({ maxBytes: 10 * SIZE, maxEntryBytes: SIZE, defaultTtlMs: 0, clock: new ManualClock() });
  assert.throws(() => store.setLimits({ maxBytes: -1, maxEntryBytes: SIZE, defaultTtlMs: 0 }), (e: unknown) => e instanceof CacheOptionsError);
  assert.is(store.counters().maxBytes, 10 * SIZE);
});

test.run();
