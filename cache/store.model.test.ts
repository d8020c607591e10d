// The store against a plain reference model (fast-check): random sequences of fills (immediate and
// overlapping), lookups, deletes, tag/database/global invalidations, clock moves and purges, with the
// byte total, recency order, tag index and counters compared after every step. Both eviction
// policies: for 'lru' the model picks the victims itself (least recently used); for 'tinylfu',
// whose victims depend on its frequency sketch, the model takes the store's choice but checks it
// was needed (an eviction only while the fill did not fit) and everything else as for 'lru'.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { ManualClock } from './clock.js';
import { ENTRY_OVERHEAD_BYTES, ResultStore, TAG_REF_BYTES, type EvictionPolicy } from './store.js';
import { databaseTag, dependencyTags, tableTag } from './tags.js';

const DATABASES = ['d1', 'd2'];
const TABLES = [
  { database: 'd1', schema: 's', table: 't1' },
  { database: 'd1', schema: 's', table: 't2' },
  { database: 'd2', schema: 's', table: 't3' },
];
const KEYS = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'];
const FILLS = 3;

type Op =
  | { op: 'set'; key: string; size: number; db: string; tables: number[]; ttl: number | undefined }
  | { op: 'start'; fill: number }
  | { op: 'finish'; fill: number; key: string; size: number; db: string; tables: number[]; ttl: number | undefined }
  | { op: 'get'; key: string }
  | { op: 'delete'; key: string }
  | { op: 'invalidate'; tables: number[] }
  | { op: 'invalidateDb'; db: string }
  | { op: 'invalidateAll' }
  | { op: 'advance'; ms: number }
  | { op: 'purge' };

const arbKey = fc.constantFrom(...KEYS);
const arbDb = fc.constantFrom(...DATABASES);
const arbTables = fc.uniqueArray(fc.nat({ max: TABLES.length - 1 }), { maxLength: 3 });
const arbSize = fc.nat({ max: 1200 });
const arbTtl = fc.option(fc.constantFrom(0, 50, 200), { nil: undefined });
const arbFill = fc.nat({ max: FILLS - 1 });
const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('set' as const), key: arbKey, size: arbSize, db: arbDb, tables: arbTables, ttl: arbTtl }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('start' as const), fill: arbFill }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('finish' as const), fill: arbFill, key: arbKey, size: arbSize, db: arbDb, tables: arbTables, ttl: arbTtl }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('get' as const), key: arbKey }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), key: arbKey }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('invalidate' as const), tables: arbTables }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('invalidateDb' as const), db: arbDb }) },
  { weight: 1, arbitrary: fc.constant({ op: 'invalidateAll' as const }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.nat({ max: 120 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'purge' as const }) },
);

interface ModelEntry {
  bytes: Buffer;
  size: number;
  tags: string[];
  expiresAt: number;
}

/** The obvious implementation: a Map in recency order, and per pending fill the tags dirtied since it began. */
class Model {
  readonly entries = new Map<string, ModelEntry>();
  readonly pending = new Map<number, { dirty: Set<string>; all: boolean }>();
  bytes = 0;
  evictions = 0;
  expired = 0;
  invalidated = 0;
  constructor(readonly maxBytes: number, readonly maxEntryBytes: number, readonly defaultTtl: number, readonly clock: ManualClock,
    readonly policy: EvictionPolicy) {}

  drop(key: string): void {
    this.bytes -= this.entries.get(key)!.size;
    this.entries.delete(key);
  }

  get(key: string): Buffer | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt !== 0 && e.expiresAt <= this.clock.now()) {
      this.drop(key);
      this.expired++;
      return undefined;
    }
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.bytes;
  }

  /** `kept`: the keys the store holds after the same fill (its choice of victims, for 'tinylfu'). */
  set(key: string, bytes: Buffer, tags: string[], ttl: number | undefined, stale: boolean, kept: Set<string>): string {
    if (this.entries.has(key)) this.drop(key);
    const size = ENTRY_OVERHEAD_BYTES + key.length * 2 + bytes.length + TAG_REF_BYTES * tags.length;
    if (size > this.maxEntryBytes) return 'too-large';
    if (stale) return 'invalidated';
    if (this.policy === 'lru') {
      while (this.bytes + size > this.maxBytes) {
        this.drop(this.entries.keys().next().value!);
        this.evictions++;
      }
    } else {
      // The store's victims; each must have gone while the fill still did not fit, so even the
      // largest of them, evicted last, was needed.
      const victims = [...this.entries.keys()].filter((k) => !kept.has(k));
      const largest = Math.max(0, ...victims.map((k) => this.entries.get(k)!.size));
      for (const k of victims) this.drop(k);
      this.evictions += victims.length;
      assert.ok(this.bytes + size <= this.maxBytes, 'the store kept more than its budget');
      if (victims.length > 0) assert.ok(this.bytes + largest + size > this.maxBytes, `the store evicted ${victims.join(',')} though fewer would do`);
    }
    const t = ttl ?? this.defaultTtl;
    this.entries.set(key, { bytes, size, tags, expiresAt: t === 0 ? 0 : this.clock.now() + t });
    this.bytes += size;
    return 'stored';
  }

  invalidate(tags: string[]): number {
    for (const p of this.pending.values()) for (const t of tags) p.dirty.add(t);
    let n = 0;
    for (const [k, e] of [...this.entries]) {
      if (e.tags.some((t) => tags.includes(t))) {
        this.drop(k);
        n++;
      }
    }
    this.invalidated += n;
    return n;
  }

  invalidateAll(): number {
    for (const p of this.pending.values()) p.all = true;
    const n = this.entries.size;
    for (const k of [...this.entries.keys()]) this.drop(k);
    this.invalidated += n;
    return n;
  }

  purge(): number {
    let n = 0;
    for (const [k, e] of [...this.entries]) {
      if (e.expiresAt !== 0 && e.expiresAt <= this.clock.now()) {
        this.drop(k);
        n++;
      }
    }
    this.expired += n;
    return n;
  }
}

function tagsOf(db: string, tables: number[]): string[] {
  return dependencyTags(db, tables.map((i) => TABLES[i]!));
}

const keysOf = (store: ResultStore<number>): Set<string> => new Set([...store.entriesByRecency()].map((e) => e.key));

for (const policy of ['lru', 'tinylfu'] as const) test(`property (${policy}): byte accounting, recency, TTL, tags and the race rule match a reference model`, () => {
  let serial = 0;
  fc.assert(
    fc.property(fc.array(arbOp, { maxLength: 120 }), (ops) => {
      const clock = new ManualClock(1);
      const maxBytes = 4_000;
      const maxEntryBytes = 1_600;
      const store = new ResultStore<number>({ maxBytes, maxEntryBytes, defaultTtlMs: 100, clock, eviction: policy });
      const model = new Model(maxBytes, maxEntryBytes, 100, clock, policy);
      const tokens = new Map<number, ReturnType<typeof store.startFill>>();
      let hits = 0;
      let misses = 0;
      for (const o of ops) {
        switch (o.op) {
          case 'set': {
            const bytes = Buffer.alloc(o.size, serial++ & 0xff);
            const tags = tagsOf(o.db, o.tables);
            const outcome = store.set(o.key, bytes, serial, { token: store.startFill(), tags, ttlMs: o.ttl });
            assert.is(outcome, model.set(o.key, bytes, tags, o.ttl, false, keysOf(store)));
            break;
          }
          case 'start':
            tokens.set(o.fill, store.startFill());
            model.pending.set(o.fill, { dirty: new Set(), all: false });
            break;
          case 'finish': {
            const token = tokens.get(o.fill);
            const p = model.pending.get(o.fill);
            if (token === undefined || !p) break;
            tokens.delete(o.fill);
            model.pending.delete(o.fill);
            const bytes = Buffer.alloc(o.size, serial++ & 0xff);
            const tags = tagsOf(o.db, o.tables);
            const stale = p.all || tags.some((t) => p.dirty.has(t));
            const outcome = store.set(o.key, bytes, serial, { token, tags, ttlMs: o.ttl });
            assert.is(outcome, model.set(o.key, bytes, tags, o.ttl, stale, keysOf(store)));
            break;
          }
          case 'get': {
            const expected = model.get(o.key);
            const got = store.get(o.key);
            if (expected === undefined) {
              misses++;
              assert.is(got, undefined);
            } else {
              hits++;
              assert.ok(got);
              assert.ok(got.bytes.equals(expected));
            }
            break;
          }
          case 'delete': {
            const had = model.entries.has(o.key);
            if (had) model.drop(o.key);
            assert.is(store.delete(o.key), had);
            break;
          }
          case 'invalidate': {
            const tags = o.tables.map((i) => tableTag(TABLES[i]!.database, TABLES[i]!.schema, TABLES[i]!.table));
            assert.is(store.invalidateTags(tags), model.invalidate(tags));
            break;
          }
          case 'invalidateDb':
            assert.is(store.invalidateDatabase(o.db), model.invalidate([databaseTag(o.db)]));
            break;
          case 'invalidateAll':
            assert.is(store.invalidateAll(), model.invalidateAll());
            break;
          case 'advance':
            clock.advance(o.ms);
            break;
          case 'purge':
            assert.is(store.purgeExpired(), model.purge());
            break;
        }
        const c = store.counters();
        assert.is(c.bytes, model.bytes);
        assert.ok(c.bytes <= maxBytes);
        assert.is(c.entries, model.entries.size);
        const order = [...store.entriesByRecency()].map((e) => e.key);
        // 'tinylfu' lists by segment, so only the set of keys is the model's; 'lru' keeps its exact order.
        if (policy === 'lru') assert.equal(order, [...model.entries.keys()]);
        else assert.equal(order.sort(), [...model.entries.keys()].sort());
        assert.is(c.indexedTags, new Set([...model.entries.values()].flatMap((e) => e.tags)).size);
        assert.is(c.evictions, model.evictions);
        assert.is(c.expired, model.expired);
        assert.is(c.invalidatedEntries, model.invalidated);
        assert.is(c.hits, hits);
        assert.is(c.misses, misses);
      }
    }),
    { numRuns: 400 },
  );
});

test.run();
