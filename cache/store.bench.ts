// Micro benchmark of the store's hot operations: `node dist/cache/store.bench.js [entries] [tinylfu|lru]`.
// Not a test (no assertions, machine-dependent); prints ns per operation. Keys look like real
// cache keys (~80 characters) and values like a small result (~200 bytes of wire data).

import { CoarseClock } from './clock.js';
import { ResultStore, type EvictionPolicy } from './store.js';
import { dependencyTags } from './tags.js';

const entries = Number(process.argv[2] ?? 10_000);
const eviction = (process.argv[3] ?? 'tinylfu') as EvictionPolicy;
const keys = Array.from({ length: entries }, (_, i) => `app\u0000alice\u0000search_path=public\u0000SELECT * FROM users WHERE id = $1\u0000${i}`);
const misses = keys.map((k) => k + '?');
const tags = Object.freeze(dependencyTags('app', [{ database: 'app', schema: 'public', table: 'users' }]));
const value = Buffer.allocUnsafeSlow(200).fill(0x44);
const meta = { rows: 1 };

function makeStore(maxBytes: number): ResultStore<typeof meta> {
  return new ResultStore({ maxBytes, maxEntryBytes: Math.min(maxBytes, 1 << 20), defaultTtlMs: 60_000, clock: new CoarseClock(), eviction });
}

/** Results of the loops, printed at the end so the JIT cannot drop the work as unused. */
let checksum = 0;

function measure(name: string, ops: number, body: (ops: number) => number): void {
  body(Math.min(ops, 200_000)); // warm-up: let the JIT optimise the loop
  const start = process.hrtime.bigint();
  checksum += body(ops);
  const ns = Number(process.hrtime.bigint() - start) / ops;
  console.log(`${name.padEnd(44)} ${ns.toFixed(1).padStart(8)} ns/op  (${ops} ops)`);
}

const roomy = makeStore(1 << 30);
for (const k of keys) roomy.set(k, value, meta, { token: roomy.startFill(), tags });

measure(`get, hit (${entries} entries)`, 5_000_000, (n) => {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += roomy.get(keys[i % entries]!)!.bytes.length;
  return sum;
});

measure('get, miss', 5_000_000, (n) => {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += roomy.get(misses[i % entries]!) === undefined ? 1 : 0;
  return sum;
});

measure('set, overwrite of an existing key', 1_000_000, (n) => {
  for (let i = 0; i < n; i++) roomy.set(keys[i % entries]!, value, meta, { token: roomy.startFill(), tags });
  return roomy.size;
});

// A budget of half the keys: every set of a new key evicts the least recently used one.
const tight = makeStore(Math.floor(entries / 2) * (roomy.bytes / roomy.size));
measure('set, new key evicting the LRU entry', 1_000_000, (n) => {
  for (let i = 0; i < n; i++) tight.set(keys[i % entries]!, value, meta, { token: tight.startFill(), tags });
  return tight.counters().evictions;
});

measure('set + invalidateTags of its table (1 entry)', 500_000, (n) => {
  const store = makeStore(1 << 30);
  const table = [tags[1]!];
  for (let i = 0; i < n; i++) {
    store.set(keys[i % entries]!, value, meta, { token: store.startFill(), tags });
    store.invalidateTags(table);
  }
  return store.size;
});

console.log(`(checksum ${checksum})`);
