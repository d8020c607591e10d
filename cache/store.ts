// The in-memory result store: prebuilt wire bytes by key, under a byte budget, with W-TinyLFU
// eviction (or plain LRU), per-entry TTL, a size limit per entry and a tag index for invalidation.
// It knows nothing of SQL: keys and tags are strings its callers build (see tags.ts for the tag
// spelling).
//
// Eviction (issue 17 item 5; `node dist/cache/admission.bench.js` compares the two on Zipf
// workloads larger than the budget, table in bench/README.md): W-TinyLFU after Caffeine. A new
// entry goes into a small LRU window (1% of the budget); the main space is a segmented LRU
// (probation, and protected for entries hit again while in it: 80% of the main space). When room
// is needed and the window is full, its oldest entry (the candidate) is weighed against the
// oldest of probation (the victim) by their recent access frequency (frequency-sketch.ts: a
// count-min sketch behind a doorkeeper, halved as it ages) and the less popular one goes. So a
// burst of one-off results (a scan, a Zipf tail) churns the window without flushing the popular
// entries, which plain LRU does. With `eviction: 'lru'` the window is the whole budget and nothing
// is weighed: the store is exactly the LRU it was.
//
// Layout (after lru-cache): an entry lives in a numbered slot; the three lists (window,
// probation, protected) share two Int32Arrays (next/prev) and a segment byte per slot, and freed
// slots go on a stack, so a warm `set` reuses a slot and a hit only relinks two integers and
// counts in the sketch. `get` allocates nothing: it returns the entry object built once by `set`.
// lru-cache itself is not used because invalidation must reach entries by tag and stale fills must
// be refused atomically with the insert; both need the slot, which lru-cache keeps private.

import { type Clock, CoarseClock } from './clock.js';
import { FrequencySketch, hashKey } from './frequency-sketch.js';
import { type FillToken, TagVersions } from './tag-versions.js';
import { databaseTag } from './tags.js';

/**
 * Entries one walk of entriesByRecency() looks at at most (an /api/tables listing, a fingerprint
 * flush in proxy/result-cache.ts): the walk holds the event loop, so it stops here; past it
 * /api/tables says `truncated`.
 */
export const MAX_SCANNED_ENTRIES = 500_000;

/**
 * Bytes charged per entry on top of its value and key. Measured on Node 20.20 x64 with 200k
 * entries (`node --expose-gc`, heap + array buffers): ~170 bytes of store structures (entry
 * object, key's Map row, typed-array slots with their doubling slack) plus ~180 for the Buffer
 * object and its backing-store bookkeeping. Rounded up so the budget errs toward using less
 * memory than it says. The caller's `meta` object is not counted: keep it small.
 */
export const ENTRY_OVERHEAD_BYTES = 384;
/** Bytes charged per tag of an entry (measured ~45): its slot in the entry's tag array and its row in the tag's Set. */
export const TAG_REF_BYTES = 48;

export interface StoreOptions {
  /** The budget: the sum of the entries' charged sizes stays at or below this. 0 disables caching. */
  maxBytes: number;
  /** Largest charged size of one entry; larger results are refused. Clamped to `maxBytes`. */
  maxEntryBytes: number;
  /** Lifetime of an entry in ms unless its fill says otherwise; 0 = no expiry. */
  defaultTtlMs: number;
  /** Bound on remembered tag bumps (see tag-versions.ts). */
  maxTrackedTags?: number;
  /** 'tinylfu' (the default): W-TinyLFU admission and eviction; 'lru': least recently used first. */
  eviction?: EvictionPolicy;
  clock?: Clock;
}

export type EvictionPolicy = 'tinylfu' | 'lru';

/** What a hit returns; built once per fill and handed out as is, so callers must not mutate it. */
export interface CacheEntry<M> {
  readonly key: string;
  readonly bytes: Buffer;
  readonly meta: M;
  readonly tags: readonly string[];
}

export interface Fill {
  /** Taken with `startFill()` when the query was sent upstream. */
  token: FillToken;
  /** Everything the result depends on; use `dependencyTags` from tags.ts. */
  tags: readonly string[];
  /** Overrides the store's default TTL for this entry; 0 = no expiry. */
  ttlMs?: number;
}

/** Why `set` did or did not keep the result. */
export type SetOutcome =
  | 'stored'
  | 'too-large' // charged size above maxEntryBytes
  | 'invalidated'; // a tag (or everything) was invalidated after the fill's token was taken

export interface StoreCounters {
  entries: number;
  bytes: number;
  maxBytes: number;
  hits: number;
  misses: number;
  /** Entries dropped to stay under the byte budget. */
  evictions: number;
  /** Entries dropped because their TTL had passed. */
  expired: number;
  /** Entries dropped by invalidateTags / invalidateDatabase / invalidateAll. */
  invalidatedEntries: number;
  refusedTooLarge: number;
  refusedInvalidated: number;
  /** Distinct tags with at least one entry (rows in the tag index). */
  indexedTags: number;
  /** Tags whose last invalidation is remembered for the race rule. */
  trackedTagVersions: number;
}

export class CacheOptionsError extends Error {
  override name = 'CacheOptionsError';
}

const NIL = -1;
/** Missed keys remembered with their hash (a power of two): more than the sessions that miss at once, usually. */
const MISSED_KEYS = 32;
const INITIAL_SLOTS = 1024;
const DEFAULT_MAX_TRACKED_TAGS = 100_000;

/** The three LRU lists of W-TinyLFU; with 'lru' every entry stays in WINDOW. */
const WINDOW = 0;
const PROBATION = 1;
const PROTECTED = 2;
/** Caffeine's starting split (it then adapts the window; this store keeps it fixed). */
const WINDOW_SHARE = 0.01;
const PROTECTED_SHARE = 0.8;
/**
 * The sketch is sized for maxBytes / this many entries: a typical cached result (key, a few rows,
 * the 384 bytes of overhead) is about 1 KiB. More entries than that only blur the estimates a
 * little. Capped so a huge budget does not make a huge sketch: 5 bytes per counted key, ~1.3 MB
 * at the default 256 MiB, outside the budget (which counts entries).
 */
const SKETCH_BYTES_PER_KEY = 1024;
const SKETCH_MAX_KEYS = 1 << 20;

/** The charged size of an entry; exported so tests and callers can predict the accounting. */
export function chargedBytes(key: string, valueBytes: number, tagCount: number): number {
  return ENTRY_OVERHEAD_BYTES + key.length * 2 + valueBytes + tagCount * TAG_REF_BYTES;
}

export class ResultStore<M> {
  // Not readonly: a config reload changes them (setLimits).
  private maxBytes: number;
  private maxEntryBytes: number;
  private defaultTtlMs: number;
  private readonly clock: Clock;
  private readonly versions: TagVersions;

  private readonly slotByKey = new Map<string, number>();
  private readonly slotsByTag = new Map<string, Set<number>>();
  /** Per slot; `undefined` for a free slot. Grown by appending, so the array stays packed. */
  private readonly entries: (CacheEntry<M> | undefined)[] = [];
  private sizes = new Float64Array(INITIAL_SLOTS);
  /** Absolute expiry on the clock's scale; 0 = never. */
  private expiresAt = new Float64Array(INITIAL_SLOTS);
  private next = new Int32Array(INITIAL_SLOTS);
  private prev = new Int32Array(INITIAL_SLOTS);
  /** WINDOW, PROBATION or PROTECTED: the list a slot is on. */
  private segment = new Uint8Array(INITIAL_SLOTS);
  /** hashKey of the slot's key, so a hit counts in the sketch without hashing the key. */
  private keyHash = new Int32Array(INITIAL_SLOTS);
  private freeSlots = new Int32Array(INITIAL_SLOTS);
  private freeCount = 0;
  /** Per segment: least recently used end of its list (evicted first), most recently used end, bytes. */
  private readonly heads = new Int32Array([NIL, NIL, NIL]);
  private readonly tails = new Int32Array([NIL, NIL, NIL]);
  private readonly segmentBytes = new Float64Array(3);
  private readonly policy: EvictionPolicy;
  /** Undefined for 'lru'. Rebuilt (counts forgotten) when the budget changes. */
  private sketch: FrequencySketch | undefined;
  private windowMaxBytes = 0;
  private protectedMaxBytes = 0;
  /**
   * The last keys lookups missed and their hashKey, a ring: a miss is most often filled soon after
   * under the same key (other sessions' misses in between), and hashing it again would walk the
   * whole key a second time (the -S path).
   */
  private readonly missedKeys: string[] = new Array<string>(MISSED_KEYS).fill('');
  private readonly missedHashes = new Int32Array(MISSED_KEYS);
  private missedAt = 0;

  private usedBytes = 0;
  private hits = 0;
  private misses = 0;
  private evictions = 0;
  private expired = 0;
  private invalidatedEntries = 0;
  private refusedTooLarge = 0;
  private refusedInvalidated = 0;

  constructor(options: StoreOptions) {
    const maxTrackedTags = options.maxTrackedTags ?? DEFAULT_MAX_TRACKED_TAGS;
    checkWholeNumbers([['maxTrackedTags', maxTrackedTags]]);
    this.policy = options.eviction ?? 'tinylfu';
    if (this.policy !== 'tinylfu' && this.policy !== 'lru') throw new CacheOptionsError(`eviction must be 'tinylfu' or 'lru', got ${String(this.policy)}`);
    this.maxBytes = 0;
    this.maxEntryBytes = 0;
    this.defaultTtlMs = 0;
    this.setLimits(options);
    this.clock = options.clock ?? new CoarseClock();
    this.versions = new TagVersions(maxTrackedTags);
  }

  /**
   * New budget, entry limit and default TTL (a config reload). A smaller budget evicts down to it
   * at once (for 'lru' the least recently used entries; for 'tinylfu' probation first, then
   * protected, then the window, each least recently used first); entries already stored keep
   * their size and expiry (the new limits judge the next fills).
   */
  setLimits(limits: Pick<StoreOptions, 'maxBytes' | 'maxEntryBytes' | 'defaultTtlMs'>): void {
    const { maxBytes, maxEntryBytes, defaultTtlMs } = limits;
    checkWholeNumbers([['maxBytes', maxBytes], ['maxEntryBytes', maxEntryBytes], ['defaultTtlMs', defaultTtlMs]]);
    const budgetChanged = maxBytes !== this.maxBytes || (this.policy === 'tinylfu' && this.sketch === undefined);
    this.maxBytes = maxBytes;
    // Clamped rather than rejected: a small --cache-max-bytes alone is a sensible setting.
    this.maxEntryBytes = Math.min(maxEntryBytes, maxBytes);
    this.defaultTtlMs = defaultTtlMs;
    if (this.policy === 'lru') {
      this.windowMaxBytes = Infinity;
    } else {
      this.windowMaxBytes = Math.floor(maxBytes * WINDOW_SHARE);
      this.protectedMaxBytes = Math.floor((maxBytes - this.windowMaxBytes) * PROTECTED_SHARE);
      if (budgetChanged) this.sketch = new FrequencySketch(Math.min(SKETCH_MAX_KEYS, Math.ceil(maxBytes / SKETCH_BYTES_PER_KEY)));
    }
    this.makeRoom(0);
    this.rebalance();
  }

  /** The entry under `key`, marked most recently used; undefined on a miss or after its TTL. */
  get(key: string): CacheEntry<M> | undefined {
    const slot = this.slotByKey.get(key);
    if (slot === undefined) {
      // A key asked for while absent gains popularity too: that is what lets it in later.
      if (this.sketch !== undefined) {
        const hash = hashKey(key);
        const at = (this.missedAt = (this.missedAt + 1) & (MISSED_KEYS - 1));
        this.missedKeys[at] = key;
        this.missedHashes[at] = hash;
        this.sketch.increment(hash);
      }
      this.misses++;
      return undefined;
    }
    this.sketch?.increment(this.keyHash[slot]!);
    const expiresAt = this.expiresAt[slot];
    if (expiresAt !== 0 && expiresAt <= this.clock.now()) {
      this.remove(slot);
      this.expired++;
      this.misses++;
      return undefined;
    }
    this.touch(slot);
    this.hits++;
    return this.entries[slot];
  }

  /** The token a fill must present to `set`; take it when the query is sent upstream. */
  startFill(): FillToken {
    return this.versions.token();
  }

  /**
   * Stores a complete result unless it is too large or one of its tags was invalidated since
   * `fill.token`. Any entry already under `key` goes either way: a refused result is newer than
   * it, so keeping the old one would serve data older than what the database just answered.
   *
   * `bytes` is kept, not copied, when it owns its whole memory; a view into a larger buffer
   * (a socket chunk, Node's shared pool for small buffers) is copied so the budget counts what
   * the entry really keeps alive.
   */
  /**
   * Stores a reply captured in `parts` (`size` bytes in all), refusing it when it is larger than
   * `maxEntryBytes` (a per-statement limit below the store's own): a refused result also drops
   * the older entry under the key, which is staler than the one refused.
   */
  setParts(key: string, parts: readonly Buffer[], size: number, meta: M, fill: Fill, maxEntryBytes?: number): SetOutcome {
    if (maxEntryBytes !== undefined && chargedBytes(key, size, fill.tags.length) > maxEntryBytes) {
      this.delete(key);
      return 'too-large';
    }
    return this.set(key, parts.length === 1 ? parts[0]! : Buffer.concat(parts, size), meta, fill);
  }

  set(key: string, bytes: Buffer, meta: M, fill: Fill): SetOutcome {
    const ttlMs = fill.ttlMs ?? this.defaultTtlMs;
    // NaN would make an entry that never expires: fail loudly on a caller's bug instead.
    if (!(ttlMs >= 0)) throw new CacheOptionsError(`ttlMs must be >= 0, got ${ttlMs}`);
    const existing = this.slotByKey.get(key);
    if (existing !== undefined) this.remove(existing);

    const size = chargedBytes(key, bytes.length, fill.tags.length);
    if (size > this.maxEntryBytes) {
      this.refusedTooLarge++;
      return 'too-large';
    }
    if (!this.versions.isCurrent(fill.token, fill.tags)) {
      this.refusedInvalidated++;
      return 'invalidated';
    }
    this.makeRoom(size);

    const slot = this.allocateSlot();
    const entry: CacheEntry<M> = { key, bytes: ownedCopy(bytes), meta, tags: frozenTags(fill.tags) };
    this.entries[slot] = entry;
    this.sizes[slot] = size;
    this.expiresAt[slot] = ttlMs === 0 ? 0 : this.clock.now() + ttlMs;
    if (this.sketch !== undefined) this.keyHash[slot] = this.hashOfNew(key);
    this.linkAtTail(slot, WINDOW);
    this.slotByKey.set(key, slot);
    for (let i = 0; i < entry.tags.length; i++) {
      const tag = entry.tags[i]!;
      let slots = this.slotsByTag.get(tag);
      if (slots === undefined) {
        slots = new Set();
        this.slotsByTag.set(tag, slots);
      }
      slots.add(slot);
    }
    this.usedBytes += size;
    this.rebalance();
    return 'stored';
  }

  /** Drops one entry; true when there was one. */
  delete(key: string): boolean {
    const slot = this.slotByKey.get(key);
    if (slot === undefined) return false;
    this.remove(slot);
    return true;
  }

  /**
   * A write changed what these tags stand for: in-flight fills depending on any of them go stale
   * and their entries are freed. Call before the write's acknowledgement reaches the client.
   * Returns the number of entries freed.
   */
  invalidateTags(tags: readonly string[]): number {
    this.versions.bump(tags);
    let freed = 0;
    for (let i = 0; i < tags.length; i++) {
      const tag = tags[i]!;
      const slots = this.slotsByTag.get(tag);
      if (slots === undefined) continue;
      // Detached first: remove() then skips this tag and takes each slot out of its other tags'
      // Sets, so an entry listed under several of `tags` is met exactly once.
      this.slotsByTag.delete(tag);
      for (const slot of slots) this.remove(slot);
      freed += slots.size;
    }
    this.invalidatedEntries += freed;
    return freed;
  }

  /**
   * A whole database changed (DDL, a write the analysis did not understand): frees every entry
   * that carries its wide tag and makes such fills in flight stale. Returns the entries freed.
   */
  invalidateDatabase(database: string): number {
    return this.invalidateTags([databaseTag(database)]);
  }

  /** Flush: every entry is freed and every fill in flight goes stale. Returns the entries freed. */
  invalidateAll(): number {
    this.versions.bumpAll();
    const freed = this.slotByKey.size;
    for (let seg = WINDOW; seg <= PROTECTED; seg++) {
      while (this.heads[seg] !== NIL) this.remove(this.heads[seg]!);
    }
    this.invalidatedEntries += freed;
    return freed;
  }

  /**
   * Stops serving: every entry is freed and every fill refused ('invalidated') until resume(). For
   * a proxy that can no longer know what other writers changed (a fleet member without its bus).
   * A suspended store is empty, so every lookup misses: callers need no check of their own.
   */
  suspend(): number {
    this.versions.suspend();
    return this.invalidateAll();
  }

  /** Serves again; fills sent upstream before now, while suspended included, are still refused. */
  resume(): void {
    this.versions.resume();
  }

  /** Frees entries whose TTL has passed without waiting for a lookup or eviction to find them. */
  purgeExpired(): number {
    const now = this.clock.now();
    let purged = 0;
    for (let seg = WINDOW; seg <= PROTECTED; seg++) {
      for (let slot = this.heads[seg]!; slot !== NIL; ) {
        const following = this.next[slot]!;
        const expiresAt = this.expiresAt[slot];
        if (expiresAt !== 0 && expiresAt <= now) {
          this.remove(slot);
          purged++;
        }
        slot = following;
      }
    }
    this.expired += purged;
    return purged;
  }

  /**
   * Entries without touching recency, in the order they would be evicted if nothing else
   * happened: for 'lru' from least to most recently used; for 'tinylfu' probation, then protected,
   * then the window, each from least to most recently used. Do not mutate meanwhile.
   */
  *entriesByRecency(): IterableIterator<CacheEntry<M>> {
    for (const seg of [PROBATION, PROTECTED, WINDOW]) {
      for (let slot = this.heads[seg]!; slot !== NIL; slot = this.next[slot]!) yield this.entries[slot]!;
    }
  }

  get size(): number {
    return this.slotByKey.size;
  }

  get bytes(): number {
    return this.usedBytes;
  }

  /** A snapshot for the metrics exporter; allocates, so call it per scrape, not per query. */
  counters(): StoreCounters {
    return {
      entries: this.slotByKey.size,
      bytes: this.usedBytes,
      maxBytes: this.maxBytes,
      hits: this.hits,
      misses: this.misses,
      evictions: this.evictions,
      expired: this.expired,
      invalidatedEntries: this.invalidatedEntries,
      refusedTooLarge: this.refusedTooLarge,
      refusedInvalidated: this.refusedInvalidated,
      indexedTags: this.slotsByTag.size,
      trackedTagVersions: this.versions.trackedTags,
    };
  }

  /**
   * Evicts until `incoming` more bytes fit the budget. W-TinyLFU: while the window (counting the
   * incoming entry, which will join it) is over its share, its oldest entry is the candidate for
   * the main space and is weighed against the oldest of probation (or, probation empty, of
   * protected); the less often asked for is evicted (a tie keeps the resident: a newcomer must be
   * more popular to displace it). Otherwise the oldest of the main space goes. For 'lru' the
   * window is everything and its oldest entry goes.
   */
  private makeRoom(incoming: number): void {
    while (this.usedBytes + incoming > this.maxBytes) {
      const candidate = this.heads[WINDOW]!;
      const victim = this.heads[PROBATION] !== NIL ? this.heads[PROBATION]! : this.heads[PROTECTED]!;
      let evict: number;
      if (victim === NIL && candidate === NIL) {
        break; // nothing left; cannot happen while size <= maxEntryBytes <= maxBytes
      } else if (victim === NIL) {
        evict = candidate;
      } else if (candidate !== NIL && this.segmentBytes[WINDOW]! + incoming > this.windowMaxBytes) {
        const sketch = this.sketch!;
        evict = sketch.frequency(this.keyHash[candidate]!) > sketch.frequency(this.keyHash[victim]!) ? victim : candidate;
      } else {
        evict = victim;
      }
      this.remove(evict);
      this.evictions++;
    }
  }

  /**
   * Moves what the window holds beyond its share to probation (admitted: makeRoom already made the
   * room), and what protected holds beyond its share back to probation, oldest first. The newest
   * window entry always stays, so an entry larger than the window share is still cached.
   */
  private rebalance(): void {
    while (this.segmentBytes[WINDOW]! > this.windowMaxBytes && this.heads[WINDOW] !== this.tails[WINDOW]) {
      this.moveToTail(this.heads[WINDOW]!, PROBATION);
    }
    while (this.segmentBytes[PROTECTED]! > this.protectedMaxBytes) {
      this.moveToTail(this.heads[PROTECTED]!, PROBATION);
    }
  }

  /** A hit: most recently used in its list; a hit on probation promotes to protected. */
  private touch(slot: number): void {
    const seg = this.segment[slot]!;
    if (seg === PROBATION) {
      this.moveToTail(slot, PROTECTED);
      while (this.segmentBytes[PROTECTED]! > this.protectedMaxBytes && this.heads[PROTECTED] !== slot) {
        this.moveToTail(this.heads[PROTECTED]!, PROBATION);
      }
    } else if (slot !== this.tails[seg]) {
      this.moveToTail(slot, seg);
    }
  }

  private moveToTail(slot: number, seg: number): void {
    this.unlink(slot);
    this.linkAtTail(slot, seg);
  }

  /** hashKey(key), from the ring of missed keys when a lookup missed it lately. */
  private hashOfNew(key: string): number {
    for (let n = 0, at = this.missedAt; n < MISSED_KEYS; n++, at = (at - 1) & (MISSED_KEYS - 1)) {
      if (this.missedKeys[at] === key) return this.missedHashes[at]!;
    }
    return hashKey(key);
  }

  private remove(slot: number): void {
    const entry = this.entries[slot]!;
    this.slotByKey.delete(entry.key);
    const tags = entry.tags;
    for (let i = 0; i < tags.length; i++) {
      const slots = this.slotsByTag.get(tags[i]!);
      if (slots === undefined) continue;
      slots.delete(slot);
      if (slots.size === 0) this.slotsByTag.delete(tags[i]!);
    }
    this.unlink(slot);
    this.usedBytes -= this.sizes[slot];
    this.entries[slot] = undefined;
    this.freeSlots[this.freeCount++] = slot;
  }

  private allocateSlot(): number {
    if (this.freeCount > 0) return this.freeSlots[--this.freeCount];
    const slot = this.entries.length;
    if (slot === this.next.length) this.grow();
    this.entries.push(undefined);
    return slot;
  }

  /** Doubles the typed arrays; slots are bounded by maxBytes / ENTRY_OVERHEAD_BYTES. */
  private grow(): void {
    const capacity = this.next.length * 2;
    this.sizes = grown(this.sizes, new Float64Array(capacity));
    this.expiresAt = grown(this.expiresAt, new Float64Array(capacity));
    this.next = grown(this.next, new Int32Array(capacity));
    this.prev = grown(this.prev, new Int32Array(capacity));
    this.segment = grown(this.segment, new Uint8Array(capacity));
    this.keyHash = grown(this.keyHash, new Int32Array(capacity));
    this.freeSlots = grown(this.freeSlots, new Int32Array(capacity));
  }

  /** Takes the slot off its segment's list (and its bytes off the segment's count). */
  private unlink(slot: number): void {
    const seg = this.segment[slot]!;
    const before = this.prev[slot]!;
    const after = this.next[slot]!;
    if (before === NIL) this.heads[seg] = after;
    else this.next[before] = after;
    if (after === NIL) this.tails[seg] = before;
    else this.prev[after] = before;
    this.segmentBytes[seg] -= this.sizes[slot]!;
  }

  private linkAtTail(slot: number, seg: number): void {
    const tail = this.tails[seg]!;
    this.segment[slot] = seg;
    this.prev[slot] = tail;
    this.next[slot] = NIL;
    if (tail === NIL) this.heads[seg] = slot;
    else this.next[tail] = slot;
    this.tails[seg] = slot;
    this.segmentBytes[seg] += this.sizes[slot]!;
  }
}

function checkWholeNumbers(values: readonly (readonly [string, number])[]): void {
  for (const [name, v] of values) {
    if (!Number.isSafeInteger(v) || v < 0) throw new CacheOptionsError(`${name} must be a whole number >= 0, got ${v}`);
  }
}

function grown<T extends Float64Array | Int32Array | Uint8Array>(old: T, larger: T): T {
  larger.set(old);
  return larger;
}

function ownedCopy(bytes: Buffer): Buffer {
  if (bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length) return bytes;
  const copy = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(copy);
  return copy;
}

/** Frozen arrays (e.g. from a per-statement classification) are shared; others are copied so a
 *  caller mutating its array later cannot desynchronise the tag index. */
function frozenTags(tags: readonly string[]): readonly string[] {
  return Object.isFrozen(tags) ? tags : Object.freeze(tags.slice());
}
