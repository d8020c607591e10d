// How often a key was asked for lately, approximately and in fixed memory: the popularity that
// W-TinyLFU admission (store.ts) weighs a new entry against the one it would evict. After
// Einziger, Friedman & Manes, "TinyLFU: A Highly Efficient Cache Admission Policy" (2017) and
// Caffeine's FrequencySketch:
// - a count-min sketch: 4 rows of 4-bit-range counters (kept in bytes, capped at 15), each key
//   counted in one counter per row, its estimate the smallest of them (over-counts by collisions,
//   never under-counts); conservative update (only the smallest counters grow) keeps collisions'
//   over-counting down;
// - a doorkeeper: a Bloom filter that absorbs each key's first access, so the many keys seen once
//   (a Zipf tail, a scan) never reach the counters;
// - aging: after 10 x width accesses every counter is halved and the doorkeeper cleared, so the
//   estimate follows what is popular now rather than ever.
// Keys come in as 30-bit hashes (hashKey), computed once per entry by the store.

const ROWS = 4;
const MAX_COUNT = 15;
/** Accesses per counter of a row between two halvings (TinyLFU's sample size W = 10 x capacity). */
const SAMPLE_FACTOR = 10;

/**
 * FNV-1a over the UTF-16 code units, finished with murmur3's fmix32 for an even spread, cut to
 * 30 bits: a small integer (Smi) in V8 on every platform, so passing one around never allocates
 * (a hit must not: see store.test.ts). 30 bits index far more counters than the sketch has.
 */
export function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h) & HASH_MASK;
}

const HASH_MASK = 0x3fffffff;

function fmix32(x: number): number {
  let h = x ^ (x >>> 16);
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

export class FrequencySketch {
  /** Counters, row after row: row r of a key's counters is at r * width + index(r). */
  private readonly counters: Uint8Array;
  /** Doorkeeper bits, two per key. */
  private readonly doorkeeper: Uint32Array;
  private readonly mask: number;
  private readonly doorMask: number;
  private readonly sampleSize: number;
  private additions = 0;

  /** `expectedKeys`: about how many keys the cache holds; rounded up to a power of two (at least 64). */
  constructor(expectedKeys: number) {
    let width = 64;
    while (width < expectedKeys) width *= 2;
    this.mask = width - 1;
    this.counters = new Uint8Array(width * ROWS);
    // 8 bits per expected key: with 2 probes a false "seen before" for ~5% of first accesses.
    this.doorkeeper = new Uint32Array(width / 4);
    this.doorMask = width * 8 - 1;
    this.sampleSize = SAMPLE_FACTOR * width;
  }

  /** Bytes of the sketch itself (fixed; not part of the store's budget). */
  get bytes(): number {
    return this.counters.byteLength + this.doorkeeper.byteLength;
  }

  /** Counts one access to the key with this hash. */
  increment(hash: number): void {
    const h2 = secondHash(hash);
    if (!this.doorkeeperHas(hash, h2)) {
      this.doorkeeperAdd(hash, h2);
    } else {
      const min = this.counted(hash, h2);
      if (min < MAX_COUNT) {
        const width = this.mask + 1;
        for (let r = 0; r < ROWS; r++) {
          const i = r * width + ((hash + Math.imul(r, h2)) & this.mask);
          // Conservative update: only the counters at the minimum grow.
          if (this.counters[i] === min) this.counters[i] = min + 1;
        }
      }
    }
    if (++this.additions >= this.sampleSize) this.age();
  }

  /** Estimated recent accesses of the key with this hash (never fewer than counted since the last halving). */
  frequency(hash: number): number {
    const h2 = secondHash(hash);
    return this.counted(hash, h2) + (this.doorkeeperHas(hash, h2) ? 1 : 0);
  }

  private counted(hash: number, h2: number): number {
    const width = this.mask + 1;
    let min = MAX_COUNT;
    for (let r = 0; r < ROWS; r++) {
      const c = this.counters[r * width + ((hash + Math.imul(r, h2)) & this.mask)]!;
      if (c < min) min = c;
    }
    return min;
  }

  private doorkeeperHas(hash: number, h2: number): boolean {
    const a = hash & this.doorMask;
    const b = (hash + h2) & this.doorMask;
    return (this.doorkeeper[a >>> 5]! & (1 << (a & 31))) !== 0 && (this.doorkeeper[b >>> 5]! & (1 << (b & 31))) !== 0;
  }

  private doorkeeperAdd(hash: number, h2: number): void {
    const a = hash & this.doorMask;
    const b = (hash + h2) & this.doorMask;
    this.doorkeeper[a >>> 5]! |= 1 << (a & 31);
    this.doorkeeper[b >>> 5]! |= 1 << (b & 31);
  }

  /** Halves every count and forgets the doorkeeper: old popularity fades. */
  private age(): void {
    for (let i = 0; i < this.counters.length; i++) this.counters[i] = this.counters[i]! >>> 1;
    this.doorkeeper.fill(0);
    this.additions = Math.floor(this.additions / 2);
  }
}

/** An odd second hash for double hashing (index(r) = h1 + r * h2), so the rows probe different counters. */
function secondHash(hash: number): number {
  return (fmix32(hash ^ 0x9e3779b9) & HASH_MASK) | 1;
}
