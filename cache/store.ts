// The in-memory result store: prebuilt wire bytes by key, under a byte budget, with LRU eviction,
// per-entry TTL, a size limit per entry and a tag index for invalidation. It knows nothing of SQL:
// keys and tags are strings its callers build (see tags.ts for the tag spelling).
//
// Layout (after lru-cache): an entry lives in a numbered slot; the recency list is two Int32Arrays
// (next/prev) and freed slots go on a stack, so a warm `set` reuses a slot and a hit only relinks
// two integers. `get` allocates nothing: it returns the entry object built once by `set`.
// lru-cache itself is not used because invalidation must reach entries by tag and stale fills must
// be refused atomically with the insert; both need the slot, which lru-cache keeps private.

import { type Clock, CoarseClock } from './clock.js';
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
  clock?: Clock;
}

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
const INITIAL_SLOTS = 1024;
const DEFAULT_MAX_TRACKED_TAGS = 100_000;

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
  private freeSlots = new Int32Array(INITIAL_SLOTS);
  private freeCount = 0;
  /** Least recently used end of the list: evicted first. */
  private head = NIL;
  /** Most recently used end. */
  private tail = NIL;

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
    this.maxBytes = 0;
    this.maxEntryBytes = 0;
    this.defaultTtlMs = 0;
    this.setLimits(options);
    this.clock = options.clock ?? new CoarseClock();
    this.versions = new TagVersions(maxTrackedTags);
  }

  /**
   * New budget, entry limit and default TTL (a config reload). A smaller budget evicts the least
   * recently used entries down to it at once; entries already stored keep their size and expiry
   * (the new limits judge the next fills).
   */
  setLimits(limits: Pick<StoreOptions, 'maxBytes' | 'maxEntryBytes' | 'defaultTtlMs'>): void {
    const { maxBytes, maxEntryBytes, defaultTtlMs } = limits;
    checkWholeNumbers([['maxBytes', maxBytes], ['maxEntryBytes', maxEntryBytes], ['defaultTtlMs', defaultTtlMs]]);
    this.maxBytes = maxBytes;
    // Clamped rather than rejected: a small --cache-max-bytes alone is a sensible setting.
    this.maxEntryBytes = Math.min(maxEntryBytes, maxBytes);
    this.defaultTtlMs = defaultTtlMs;
    while (this.usedBytes > this.maxBytes) {
      this.remove(this.head);
      this.evictions++;
    }
  }

  /** The entry under `key`, marked most recently used; undefined on a miss or after its TTL. */
  get(key: string): CacheEntry<M> | undefined {
    const slot = this.slotByKey.get(key);
    if (slot === undefined) {
      this.misses++;
      return undefined;
    }
    const expiresAt = this.expiresAt[slot];
    if (expiresAt !== 0 && expiresAt <= this.clock.now()) {
      this.remove(slot);
      this.expired++;
      this.misses++;
      return undefined;
    }
    if (slot !== this.tail) {
      this.unlink(slot);
      this.linkAtTail(slot);
    }
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
    while (this.usedBytes + size > this.maxBytes) {
      this.remove(this.head);
      this.evictions++;
    }

    const slot = this.allocateSlot();
    const entry: CacheEntry<M> = { key, bytes: ownedCopy(bytes), meta, tags: frozenTags(fill.tags) };
    this.entries[slot] = entry;
    this.sizes[slot] = size;
    this.expiresAt[slot] = ttlMs === 0 ? 0 : this.clock.now() + ttlMs;
    this.linkAtTail(slot);
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
    for (const tag of tags) {
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
    while (this.head !== NIL) this.remove(this.head);
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
    for (let slot = this.head; slot !== NIL; ) {
      const following = this.next[slot];
      const expiresAt = this.expiresAt[slot];
      if (expiresAt !== 0 && expiresAt <= now) {
        this.remove(slot);
        purged++;
      }
      slot = following;
    }
    this.expired += purged;
    return purged;
  }

  /** Entries from least to most recently used, without touching recency. Do not mutate meanwhile. */
  *entriesByRecency(): IterableIterator<CacheEntry<M>> {
    for (let slot = this.head; slot !== NIL; slot = this.next[slot]) yield this.entries[slot]!;
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
    this.freeSlots = grown(this.freeSlots, new Int32Array(capacity));
  }

  private unlink(slot: number): void {
    const before = this.prev[slot];
    const after = this.next[slot];
    if (before === NIL) this.head = after;
    else this.next[before] = after;
    if (after === NIL) this.tail = before;
    else this.prev[after] = before;
  }

  private linkAtTail(slot: number): void {
    this.prev[slot] = this.tail;
    this.next[slot] = NIL;
    if (this.tail === NIL) this.head = slot;
    else this.next[this.tail] = slot;
    this.tail = slot;
  }
}

function checkWholeNumbers(values: readonly (readonly [string, number])[]): void {
  for (const [name, v] of values) {
    if (!Number.isSafeInteger(v) || v < 0) throw new CacheOptionsError(`${name} must be a whole number >= 0, got ${v}`);
  }
}

function grown<T extends Float64Array | Int32Array>(old: T, larger: T): T {
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
