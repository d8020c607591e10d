// The caches' bounded maps (startup probes, each context's catalog facts, MySQL's decisions) as
// lru-cache instances: when one is full the least recently used entry goes, not the whole map, so
// a workload just past a bound does not lose everything it learned at once. PostgreSQL's maps read
// for every statement (infos by shape, each context's decisions) are recent-map.ts instead.
import { LRUCache } from 'lru-cache';

/**
 * At most `maxEntries`, in arrays that grow as entries arrive. lru-cache preallocates `max` slots
 * up front (several arrays of 10 000 for a bound of 10 000), too much for maps every context holds
 * (a session with temporary tables gets a context of its own); counting each entry as size 1
 * against `maxSize` bounds the same without the preallocation.
 */
export function boundedMap<K extends {}, V extends {}>(maxEntries: number): LRUCache<K, V> {
  return new LRUCache<K, V>({ maxSize: maxEntries, sizeCalculation: () => 1 });
}
