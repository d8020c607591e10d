import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from './clock.js';
import { CacheOptionsError, ResultStore, chargedBytes, type StoreOptions } from './store.js';
import { dependencyTags, tableTag } from './tags.js';

interface Meta {
  rows: number;
}

const T1 = tableTag('app', 'public', 'users');
const T2 = tableTag('app', 'public', 'orders');

function makeStore(overrides: Partial<StoreOptions> = {}, clock = new ManualClock()): ResultStore<Meta> {
  return new ResultStore<Meta>({ maxBytes: 1 << 20, maxEntryBytes: 1 << 16, defaultTtlMs: 0, clock, ...overrides });
}

/** Stores immediately, as a fill whose query went upstream just now. */
function put(store: ResultStore<Meta>, key: string, bytes: Buffer, tags: readonly string[] = [T1], rows = 1) {
  return store.set(key, bytes, { rows }, { token: store.startFill(), tags });
}

function keysByRecency(store: ResultStore<Meta>): string[] {
  return [...store.entriesByRecency()].map((e) => e.key);
}

test('a miss, then a hit that returns the stored bytes and metadata', () => {
  const store = makeStore();
  assert.is(store.get('q1'), undefined);
  assert.is(put(store, 'q1', Buffer.from('DataRow...'), [T1], 3), 'stored');
  const hit = store.get('q1');
  assert.ok(hit);
  assert.equal(hit.bytes, Buffer.from('DataRow...'));
  assert.equal(hit.meta, { rows: 3 });
  assert.equal(hit.tags, [T1]);
  assert.is(store.get('q1'), hit, 'a hit hands out the same entry object, built once at fill time');
  const c = store.counters();
  assert.is(c.hits, 2);
  assert.is(c.misses, 1);
  assert.is(c.entries, 1);
  assert.is(c.bytes, chargedBytes('q1', 10, 1));
});

test('lru: the least recently used entry is evicted first, and a hit refreshes recency', () => {
  const value = Buffer.alloc(100);
  const one = chargedBytes('a', 100, 1);
  const store = makeStore({ maxBytes: 3 * one, maxEntryBytes: one, eviction: 'lru' });
  put(store, 'a', value);
  put(store, 'b', value);
  put(store, 'c', value);
  assert.ok(store.get('a'));
  put(store, 'd', value);
  assert.is(store.get('b'), undefined, 'b was least recently used');
  assert.equal(keysByRecency(store), ['c', 'a', 'd']);
  put(store, 'e', value);
  assert.equal(keysByRecency(store), ['a', 'd', 'e']);
  assert.is(store.counters().evictions, 2);
  assert.is(store.bytes, 3 * one);
});

test('lru: one large entry evicts as many old ones as it needs', () => {
  const small = chargedBytes('a', 0, 1);
  const store = makeStore({ maxBytes: 4 * small, maxEntryBytes: 4 * small, eviction: 'lru' });
  for (const k of ['a', 'b', 'c', 'd']) put(store, k, Buffer.alloc(0));
  assert.is(put(store, 'x', Buffer.alloc(2 * small)), 'stored');
  assert.equal(keysByRecency(store), ['d', 'x']);
  assert.is(store.counters().evictions, 3);
  assert.ok(store.bytes <= 4 * small);
});

// W-TinyLFU (the default): see the comment at the top of store.ts.
const ONE = chargedBytes('k00', 100, 1);

/** A tinylfu store of `n` entries of ONE bytes (keys k00..), each looked up `hits` times after its fill. */
function tinylfuStore(capacity: number, n: number, hits: number): ResultStore<Meta> {
  const store = makeStore({ maxBytes: capacity * ONE, maxEntryBytes: ONE });
  for (let i = 0; i < n; i++) {
    const key = `k${String(i).padStart(2, '0')}`;
    put(store, key, Buffer.alloc(100));
    for (let h = 0; h < hits; h++) assert.ok(store.get(key));
  }
  return store;
}

test('tinylfu: entries read again survive a scan of one-off results that flushes LRU', () => {
  const scan = (store: ResultStore<Meta>): void => {
    for (let i = 0; i < 200; i++) assert.is(put(store, `s${i.toString(36).padStart(2, '0')}`, Buffer.alloc(100)), 'stored');
  };
  const store = tinylfuStore(20, 10, 3);
  scan(store);
  for (let i = 0; i < 10; i++) assert.ok(store.get(`k0${i}`), `k0${i} was flushed`);
  assert.ok(store.bytes <= 20 * ONE);
  // The same with LRU: the scan pushes every popular entry out.
  const lru = makeStore({ maxBytes: 20 * ONE, maxEntryBytes: ONE, eviction: 'lru' });
  for (let i = 0; i < 10; i++) put(lru, `k0${i}`, Buffer.alloc(100));
  scan(lru);
  for (let i = 0; i < 10; i++) assert.is(lru.get(`k0${i}`), undefined);
});

test('tinylfu: a newcomer asked for more often than the oldest probation entry displaces it; a tie keeps the resident', () => {
  // 10 entries never read again fill the store (one in the window, nine on probation).
  const store = tinylfuStore(10, 10, 0);
  // Missed three times, then filled: more popular than k00, the oldest on probation.
  for (let i = 0; i < 3; i++) assert.is(store.get('hot'), undefined);
  assert.is(put(store, 'hot', Buffer.alloc(100)), 'stored'); // into the window; k09 (window) loses its tie with k00
  assert.is(store.get('k09'), undefined, 'the window candidate, no more popular than the victim, is evicted');
  assert.ok(store.get('k00'), 'the resident wins a tie');
  // The next fill pushes 'hot' out of the window: it beats the oldest probation entry (k01) and stays.
  assert.is(put(store, 'new', Buffer.alloc(100)), 'stored');
  assert.ok(store.get('hot'), 'the popular newcomer was admitted');
  assert.is(store.get('k01'), undefined, 'the less popular victim was evicted');
  assert.is(store.size, 10);
  assert.is(store.bytes, 10 * ONE);
  assert.is(store.counters().evictions, 2);
});

test('tinylfu: one large entry evicts as many as it needs, never more, and is itself kept', () => {
  const small = chargedBytes('a', 0, 1);
  const store = makeStore({ maxBytes: 4 * small, maxEntryBytes: 4 * small });
  for (const k of ['a', 'b', 'c', 'd']) put(store, k, Buffer.alloc(0));
  assert.is(put(store, 'x', Buffer.alloc(2 * small)), 'stored'); // charged 3 small: three must go
  assert.ok(store.get('x'));
  assert.is(store.counters().evictions, 3);
  assert.is(store.size, 2);
  assert.is(store.bytes, chargedBytes('x', 2 * small, 1) + small);
});

test('tinylfu: hits on probation promote to protected, which keeps at most 80% of the main space', () => {
  const store = tinylfuStore(100, 100, 0); // window holds 1 (1% of 100), probation the other 99
  for (let i = 0; i < 99; i++) store.get(`k${String(i).padStart(2, '0')}`); // each promoted once
  const order = [...store.entriesByRecency()].map((e) => e.key);
  // Protected may hold floor(0.8 * 99 entries' bytes) = 79 entries; the 20 promoted first were demoted back.
  assert.equal(order.slice(0, 20), Array.from({ length: 20 }, (_, i) => `k${String(i).padStart(2, '0')}`), 'probation: the demoted, oldest first');
  assert.equal(order.slice(20, 99), Array.from({ length: 79 }, (_, i) => `k${String(i + 20).padStart(2, '0')}`), 'protected');
  assert.equal(order.slice(99), ['k99'], 'window');
  assert.is(store.bytes, 100 * ONE);
});

test('overwriting a key replaces the entry and its tags, counting bytes once', () => {
  const store = makeStore();
  put(store, 'q', Buffer.alloc(10), [T1], 1);
  put(store, 'q', Buffer.alloc(50), [T2], 2);
  assert.is(store.size, 1);
  assert.is(store.bytes, chargedBytes('q', 50, 1));
  assert.is(store.get('q')!.meta.rows, 2);
  assert.is(store.invalidateTags([T1]), 0, 'the old entry\'s tag no longer points at the key');
  assert.ok(store.get('q'));
  assert.is(store.invalidateTags([T2]), 1);
  assert.is(store.bytes, 0);
});

test('TTL: an entry expires at its deadline; ttl 0 never expires; a fill may override the default', () => {
  const clock = new ManualClock(1_000);
  const store = makeStore({ defaultTtlMs: 5_000 }, clock);
  put(store, 'default', Buffer.from('x'));
  store.set('forever', Buffer.from('y'), { rows: 1 }, { token: store.startFill(), tags: [T1], ttlMs: 0 });
  store.set('short', Buffer.from('z'), { rows: 1 }, { token: store.startFill(), tags: [T1], ttlMs: 100 });
  clock.advance(99);
  assert.ok(store.get('short'));
  clock.advance(1);
  assert.is(store.get('short'), undefined);
  clock.advance(4_899);
  assert.ok(store.get('default'));
  clock.advance(1);
  assert.is(store.get('default'), undefined);
  clock.advance(365 * 24 * 3600 * 1000);
  assert.ok(store.get('forever'));
  const c = store.counters();
  assert.is(c.expired, 2);
  assert.is(c.entries, 1);
  assert.is(c.bytes, chargedBytes('forever', 1, 1));
});

test('a store without a default TTL keeps entries until evicted or invalidated', () => {
  const clock = new ManualClock();
  const store = makeStore({ defaultTtlMs: 0 }, clock);
  put(store, 'q', Buffer.from('x'));
  clock.advance(1e12);
  assert.ok(store.get('q'));
});

test('purgeExpired frees expired entries nobody asks for, and only those', () => {
  const clock = new ManualClock();
  const store = makeStore({ defaultTtlMs: 1_000 }, clock);
  put(store, 'old1', Buffer.alloc(10));
  put(store, 'old2', Buffer.alloc(10));
  clock.advance(500);
  put(store, 'young', Buffer.alloc(10));
  clock.advance(500);
  assert.is(store.purgeExpired(), 2);
  assert.equal(keysByRecency(store), ['young']);
  assert.is(store.bytes, chargedBytes('young', 10, 1));
  assert.is(store.counters().expired, 2);
  assert.is(store.counters().indexedTags, 1);
});

test('an entry above maxEntryBytes is refused with a reason; one exactly at the limit is stored', () => {
  const limit = chargedBytes('big', 1000, 1);
  const store = makeStore({ maxEntryBytes: limit });
  assert.is(put(store, 'big', Buffer.alloc(1001)), 'too-large');
  assert.is(store.get('big'), undefined);
  assert.is(store.bytes, 0);
  assert.is(store.counters().refusedTooLarge, 1);
  assert.is(put(store, 'big', Buffer.alloc(1000)), 'stored');
  assert.is(store.bytes, limit);
});

test('a refused fill also drops the older entry under its key', () => {
  const store = makeStore({ maxEntryBytes: chargedBytes('q', 100, 1) });
  put(store, 'q', Buffer.alloc(10));
  assert.is(put(store, 'q', Buffer.alloc(101)), 'too-large');
  assert.is(store.get('q'), undefined, 'the older result must not outlive a newer one we could not keep');
  put(store, 'q', Buffer.alloc(10));
  const token = store.startFill();
  store.invalidateTags([T2]);
  assert.is(store.set('q', Buffer.alloc(10), { rows: 1 }, { token, tags: [T2] }), 'invalidated');
  assert.is(store.get('q'), undefined);
  assert.is(store.bytes, 0);
});

test('invalidating a tag frees exactly the entries that carry it, their bytes and their index rows', () => {
  const store = makeStore();
  put(store, 'users', Buffer.alloc(100), [T1]);
  put(store, 'orders', Buffer.alloc(200), [T2]);
  put(store, 'join', Buffer.alloc(300), [T1, T2]);
  assert.is(store.invalidateTags([T1]), 2);
  assert.equal(keysByRecency(store), ['orders']);
  assert.is(store.bytes, chargedBytes('orders', 200, 1));
  assert.is(store.counters().indexedTags, 1);
  assert.is(store.invalidateTags([T1, T2]), 1);
  const c = store.counters();
  assert.is(c.entries, 0);
  assert.is(c.bytes, 0);
  assert.is(c.indexedTags, 0, 'no empty tag rows are left behind');
  assert.is(c.invalidatedEntries, 3);
});

test('race rule: a fill that overlaps an invalidation of one of its tags is not stored', () => {
  const store = makeStore();
  const token = store.startFill(); // query sent upstream
  assert.is(store.invalidateTags([T1]), 0, 'nothing cached yet, but the bump must still count');
  assert.is(store.set('q', Buffer.from('old rows'), { rows: 1 }, { token, tags: [T1, T2] }), 'invalidated');
  assert.is(store.get('q'), undefined);
  assert.is(store.counters().refusedInvalidated, 1);
});

test('race rule: bumping an unrelated tag does not refuse a fill; a token taken after the bump is fine', () => {
  const store = makeStore();
  const token = store.startFill();
  store.invalidateTags([T2]);
  assert.is(store.set('users', Buffer.from('rows'), { rows: 1 }, { token, tags: [T1] }), 'stored');
  store.invalidateTags([T1]);
  const later = store.startFill();
  assert.is(store.set('users', Buffer.from('new rows'), { rows: 1 }, { token: later, tags: [T1] }), 'stored');
  assert.equal(store.get('users')!.bytes, Buffer.from('new rows'));
});

test('database invalidation frees every entry that read the database, from any session database', () => {
  const store = makeStore();
  const appUsers = { database: 'app', schema: 'public', table: 'users' };
  const logsEvents = { database: 'logs', schema: 'logs', table: 'events' };
  put(store, 'in-app', Buffer.alloc(10), dependencyTags('app', [appUsers]));
  put(store, 'cross', Buffer.alloc(10), dependencyTags('logs', [logsEvents, appUsers]));
  put(store, 'in-logs', Buffer.alloc(10), dependencyTags('logs', [logsEvents]));
  put(store, 'no-table', Buffer.alloc(10), dependencyTags('app', []));
  const inFlightApp = store.startFill();
  const inFlightLogs = store.startFill();
  assert.is(store.invalidateDatabase('app'), 3);
  assert.equal(keysByRecency(store), ['in-logs']);
  assert.is(
    store.set('in-app', Buffer.alloc(10), { rows: 1 }, { token: inFlightApp, tags: dependencyTags('app', [appUsers]) }),
    'invalidated',
  );
  assert.is(
    store.set('in-logs2', Buffer.alloc(10), { rows: 1 }, { token: inFlightLogs, tags: dependencyTags('logs', [logsEvents]) }),
    'stored',
  );
  assert.is(store.bytes, 2 * chargedBytes('in-logs', 10, 2) + 2);
});

test('invalidateAll flushes everything and refuses every fill in flight', () => {
  const store = makeStore();
  put(store, 'a', Buffer.alloc(10));
  put(store, 'b', Buffer.alloc(10), [T2]);
  const token = store.startFill();
  assert.is(store.invalidateAll(), 2);
  assert.equal(store.counters().entries, 0);
  assert.equal(store.counters().indexedTags, 0);
  assert.is(store.bytes, 0);
  assert.is(store.set('a', Buffer.alloc(10), { rows: 1 }, { token, tags: [] }), 'invalidated');
});

test('suspend frees everything and refuses every fill until resume; fills sent before resume stay refused', () => {
  const store = makeStore();
  put(store, 'a', Buffer.alloc(10));
  const inFlight = store.startFill();
  assert.is(store.suspend(), 1);
  assert.is(store.get('a'), undefined);
  assert.is(put(store, 'b', Buffer.alloc(10)), 'invalidated', 'a fill sent while suspended');
  const during = store.startFill();
  store.resume();
  assert.is(store.set('c', Buffer.alloc(10), { rows: 1 }, { token: inFlight, tags: [T1] }), 'invalidated');
  assert.is(store.set('c', Buffer.alloc(10), { rows: 1 }, { token: during, tags: [T1] }), 'invalidated');
  assert.is(put(store, 'c', Buffer.alloc(10)), 'stored', 'a fill sent after resume');
  assert.ok(store.get('c') !== undefined);
});

test('delete removes one entry and reports whether it existed', () => {
  const store = makeStore();
  put(store, 'a', Buffer.alloc(10));
  assert.is(store.delete('a'), true);
  assert.is(store.delete('a'), false);
  assert.is(store.bytes, 0);
  assert.is(store.counters().indexedTags, 0);
});

test('a value that is a view into a larger buffer is copied, so the budget counts what is kept alive', () => {
  const store = makeStore();
  const chunk = Buffer.alloc(64 * 1024, 7);
  put(store, 'view', chunk.subarray(100, 200));
  const kept = store.get('view')!.bytes;
  assert.is(kept.length, 100);
  assert.is(kept.buffer.byteLength, 100);
  assert.equal(kept, Buffer.alloc(100, 7));
  const owned = Buffer.allocUnsafeSlow(5000);
  put(store, 'owned', owned);
  assert.is(store.get('owned')!.bytes, owned, 'a buffer that owns its memory is kept without a copy');
});

test('a caller changing its tag array after set cannot desynchronise the tag index', () => {
  const store = makeStore();
  const tags = [T1];
  put(store, 'q', Buffer.alloc(10), tags);
  tags[0] = T2;
  assert.equal(store.get('q')!.tags, [T1]);
  assert.is(store.delete('q'), true);
  assert.is(store.counters().indexedTags, 0, 'the row for T1 went with the entry');
  put(store, 'r', Buffer.alloc(10), tags);
  assert.is(store.invalidateTags([T2]), 1);
});

test('thousands of entries: slots grow and are reused after frees', () => {
  const store = makeStore({ maxBytes: 1 << 30, maxEntryBytes: 1 << 20 });
  for (let i = 0; i < 5000; i++) put(store, `k${i}`, Buffer.alloc(i % 50), [i % 2 ? T1 : T2]);
  assert.is(store.size, 5000);
  for (let i = 0; i < 5000; i += 7) assert.is(store.get(`k${i}`)!.bytes.length, i % 50);
  assert.is(store.invalidateTags([T1]), 2500);
  for (let i = 0; i < 2500; i++) put(store, `n${i}`, Buffer.alloc(1), [T1]);
  assert.is(store.size, 5000);
  assert.ok(store.get('n2499'));
  assert.ok(store.get('k4998'));
});

test('options are validated: negative, fractional or NaN numbers are refused', () => {
  const isOptionsError = (e: unknown) => e instanceof CacheOptionsError;
  assert.throws(() => makeStore({ defaultTtlMs: -1 }), isOptionsError);
  assert.throws(() => makeStore({ maxBytes: 1.5 }), isOptionsError);
  assert.throws(() => makeStore({ maxTrackedTags: Number.NaN }), isOptionsError);
  const store = makeStore();
  const fill = { token: store.startFill(), tags: [T1], ttlMs: Number.NaN };
  assert.throws(() => store.set('q', Buffer.alloc(1), { rows: 1 }, fill), isOptionsError);
});

test('maxEntryBytes above maxBytes is clamped to the budget', () => {
  const budget = chargedBytes('q', 100, 1);
  const store = makeStore({ maxBytes: budget, maxEntryBytes: 10 * budget });
  assert.is(put(store, 'q', Buffer.alloc(101)), 'too-large');
  assert.is(put(store, 'q', Buffer.alloc(100)), 'stored');
});

test('maxBytes 0 turns caching off: every fill is refused as too large', () => {
  const store = makeStore({ maxBytes: 0 });
  assert.is(put(store, 'q', Buffer.alloc(0)), 'too-large');
  assert.is(store.size, 0);
});

test('a hit allocates nothing: millions of gets leave the heap untouched', async () => {
  const { PerformanceObserver } = await import('node:perf_hooks');
  const store = makeStore({ defaultTtlMs: 60_000 });
  const keys = Array.from({ length: 100 }, (_, i) => `SELECT * FROM t WHERE id = ${i}`);
  for (const k of keys) put(store, k, Buffer.alloc(64));
  let total = 0;
  const spin = (n: number) => {
    for (let i = 0; i < n; i++) total += store.get(keys[i % 100]!)!.bytes.length;
  };
  spin(200_000); // let the JIT settle
  let collections = 0;
  const observer = new PerformanceObserver((list) => {
    collections += list.getEntries().length;
  });
  observer.observe({ entryTypes: ['gc'] });
  // A collection left over from earlier tests' garbage may land in one attempt, so a clean attempt
  // is enough; 16 bytes per get would be 80 MB per attempt and could never come out clean.
  const attempts: string[] = [];
  let clean = false;
  for (let attempt = 0; attempt < 3 && !clean; attempt++) {
    await new Promise((r) => setTimeout(r, 10));
    collections = 0;
    const before = process.memoryUsage().heapUsed;
    spin(5_000_000);
    const growth = process.memoryUsage().heapUsed - before;
    await new Promise((r) => setTimeout(r, 10));
    attempts.push(`${collections} collections, heap +${growth} bytes`);
    clean = collections === 0 && growth < 256 * 1024;
  }
  observer.disconnect();
  assert.ok(clean, attempts.join('; '));
  assert.ok(total > 0);
});

test('setParts joins the captured parts, and a per-statement limit refuses and drops the older entry', () => {
  const store = makeStore();
  const parts = [Buffer.from('ab'), Buffer.from('cd')];
  assert.is(store.setParts('k', parts, 4, { rows: 1 }, { token: store.startFill(), tags: [T1] }), 'stored');
  assert.is(store.get('k')!.bytes.toString(), 'abcd');
  const big = [Buffer.alloc(2000)];
  assert.is(store.setParts('k', big, 2000, { rows: 2 }, { token: store.startFill(), tags: [T1] }, 1000), 'too-large');
  assert.is(store.get('k'), undefined, 'the older, staler entry is gone too');
});

test.run();
