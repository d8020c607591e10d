// A bounded map for lookups on every statement (PgCache.info), written by hand because it is hot:
// lru-cache's get relinks its typed-array list and checks TTLs on every hit, and the statement
// path looks up once or twice per statement (issue 17 item 6: lru-cache's get was the largest
// single cost of the TPC-B path through sidecache). Two generations of plain Maps: entries go
// into the young one; when it holds half the bound, the old one is dropped and the young one
// becomes old. A hit in the old generation moves the entry back into the young one, so what is
// used stays; what was not used for a whole generation goes, never everything at once.

export class RecentMap<K, V> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();
  /** Entries per generation: the map holds at most twice this. */
  private readonly generation: number;

  constructor(maxEntries: number) {
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 2) throw new RangeError(`RecentMap: maxEntries must be an integer >= 2, got ${maxEntries}`);
    this.generation = Math.floor(maxEntries / 2);
  }

  get(key: K): V | undefined {
    const value = this.young.get(key);
    if (value !== undefined || this.old.size === 0) return value;
    const aged = this.old.get(key);
    if (aged !== undefined) this.set(key, aged);
    return aged;
  }

  set(key: K, value: V): void {
    this.old.delete(key);
    if (this.young.size >= this.generation && !this.young.has(key)) {
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, value);
  }

  get size(): number {
    return this.young.size + this.old.size;
  }
}
