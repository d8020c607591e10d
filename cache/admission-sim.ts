// The workloads of the eviction comparison (admission.bench.ts) and the loop that plays one
// against a store. Pure and deterministic: a seeded PRNG, so a table can be reproduced anywhere.
import type { ResultStore } from './store.js';
import type { FillToken } from './tag-versions.js';

/** mulberry32: a small, fast, well-mixed 32-bit PRNG; returns floats in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Draws ranks 0..n-1 with P(rank k) proportional to 1 / (k + 1)^s (rank 0 the most popular). */
export function zipf(n: number, s: number, random: () => number): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) cdf[k] = sum += 1 / Math.pow(k + 1, s);
  for (let k = 0; k < n; k++) cdf[k]! /= sum;
  return () => {
    const u = random();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

export interface SimWorkload {
  name: string;
  description: string;
  /** Distinct keys the popular part draws from. */
  keys: number;
  meanValueBytes: number;
  keyOf(id: number): string;
  /** A generator of (key id, value size) pairs; fresh, from the same seed, per call. */
  requests(): () => { id: number; valueBytes: number };
}

const SEED = 17;
/** Cache keys as long as the proxy's (database, user, settings, statement, parameters: ~80 chars). */
const keyOf = (id: number): string => `app\u0000alice\u0000search_path=public\u0000SELECT * FROM items WHERE id = $1\u0000${id}`;

function zipfWorkload(name: string, description: string, keys: number, s: number,
  extra?: (i: number, rank: number) => { id: number; valueBytes: number }, meanValueBytes = 200): SimWorkload {
  return {
    name, description, keys, meanValueBytes, keyOf,
    requests() {
      const random = prng(SEED);
      const next = zipf(keys, s, random);
      let i = 0;
      return () => {
        const rank = next();
        return extra?.(i++, rank) ?? { id: rank, valueBytes: 200 };
      };
    },
  };
}

const KEYS = 100_000;
/** Every SCAN_EVERY requests, SCAN_LENGTH reads of keys never seen before (a report, a crawler, an export). */
const SCAN_EVERY = 100_000;
const SCAN_LENGTH = 20_000;

export const WORKLOADS: readonly SimWorkload[] = [
  zipfWorkload('zipf 0.8', `Zipf s=0.8 over ${KEYS} keys, 200-byte results`, KEYS, 0.8),
  zipfWorkload('zipf 1.0', `Zipf s=1.0 over ${KEYS} keys, 200-byte results`, KEYS, 1.0),
  zipfWorkload('zipf 0.9 + scans', `Zipf s=0.9 over ${KEYS} keys; every ${SCAN_EVERY} requests a scan of ${SCAN_LENGTH} keys never read again (scans counted too)`, KEYS, 0.9,
    (i, rank) => {
      const phase = i % (SCAN_EVERY + SCAN_LENGTH);
      return phase >= SCAN_EVERY ? { id: KEYS + i, valueBytes: 200 } : { id: rank, valueBytes: 200 };
    }),
  zipfWorkload('zipf 0.9 shifting', `Zipf s=0.9 over ${KEYS} keys; the popular keys change every 250000 requests (ranks shifted by 1/3 of the keys)`, KEYS, 0.9,
    (i, rank) => ({ id: (rank + Math.floor(i / 250_000) * Math.floor(KEYS / 3)) % KEYS, valueBytes: 200 })),
  zipfWorkload('zipf 0.9 sizes', `Zipf s=0.9 over ${KEYS} keys; result sizes 20 B to ~4 KB, fixed per key, unrelated to popularity`, KEYS, 0.9,
    (_i, rank) => ({ id: rank, valueBytes: sizeOf(rank) }), 750),
];

/** A size per key, log-uniform over 20 B .. 4 KB (mean ~750 B), the same every time the key is read. */
function sizeOf(id: number): number {
  const u = prng(id * 2654435761)();
  return Math.round(20 * Math.pow(200, u));
}

/**
 * Plays `requests` requests against the store as the proxy does: a lookup, and on a miss a fill
 * with what the database would answer. Hits are counted after the first 10% (the warm-up).
 */
export function simulate(store: ResultStore<null>, workload: SimWorkload, requests: number, tags: readonly string[]): { hits: number; lookups: number } {
  const next = workload.requests();
  const warmup = Math.floor(requests / 10);
  const values = new Map<number, Buffer>();
  let hits = 0;
  let lookups = 0;
  for (let i = 0; i < requests; i++) {
    const { id, valueBytes } = next();
    const key = workload.keyOf(id);
    const hit = store.get(key) !== undefined;
    if (i >= warmup) {
      lookups++;
      if (hit) hits++;
    }
    if (!hit) {
      let value = values.get(valueBytes);
      if (!value) values.set(valueBytes, (value = Buffer.allocUnsafeSlow(valueBytes).fill(1)));
      const token: FillToken = store.startFill();
      store.set(key, value, null, { token, tags });
    }
  }
  return { hits, lookups };
}
