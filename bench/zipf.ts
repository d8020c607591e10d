// A hot-key workload for the benches: keys 1..n drawn with Zipf's law (key k with weight 1/k^s,
// YCSB's default s = 0.99), from a seeded generator, so two runs meant to be compared (a new proxy
// with and without the second tier) send exactly the same sequence. Pure.

/** mulberry32: a small, fast 32-bit generator; plenty for picking keys. Returns [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The cumulative weights of keys 1..n, normalised to end at 1; shared by every sampler of (n, s). */
export function zipfCdf(n: number, s: number): Float64Array {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 1; k <= n; k++) {
    sum += 1 / k ** s;
    cdf[k - 1] = sum;
  }
  for (let i = 0; i < n; i++) cdf[i] = cdf[i]! / sum;
  return cdf;
}

/** Draws keys 1..cdf.length by inverse transform (a binary search of the cumulative weights). */
export function zipfSampler(cdf: Float64Array, random: () => number): () => number {
  return () => {
    const u = random();
    let lo = 0;
    let hi = cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  };
}
