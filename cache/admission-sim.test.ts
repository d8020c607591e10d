// The eviction comparison's simulation (admission.bench.ts) is deterministic, so its outcome can be
// asserted exactly: hit ratios are counts over a seeded sequence, not machine measurements.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WORKLOADS, prng, simulate, zipf } from './admission-sim.js';
import { ResultStore, chargedBytes, type EvictionPolicy } from './store.js';

test('the PRNG repeats its sequence for a seed and differs between seeds', () => {
  const a = prng(17);
  const b = prng(17);
  const c = prng(18);
  const xs = Array.from({ length: 5 }, () => a());
  assert.equal(Array.from({ length: 5 }, () => b()), xs);
  assert.is.not(c(), xs[0]);
  assert.ok(xs.every((x) => x >= 0 && x < 1));
});

test('Zipf draws favour low ranks in proportion 1/(k+1)^s', () => {
  const draw = zipf(1000, 1, prng(1));
  const counts = new Array<number>(1000).fill(0);
  for (let i = 0; i < 200_000; i++) counts[draw()]!++;
  // P(0) / P(1) = 2 and P(0) / P(9) = 10 for s = 1; a seeded sample of 200k lands close.
  assert.ok(Math.abs(counts[0]! / counts[1]! - 2) < 0.1, `${counts[0]} / ${counts[1]}`);
  assert.ok(Math.abs(counts[0]! / counts[9]! - 10) < 1, `${counts[0]} / ${counts[9]}`);
  assert.ok(counts.every((n) => n >= 0));
});

/** `policy` undefined: the store's default. */
function hitRatio(workloadName: string, policy: EvictionPolicy | undefined, share: number, requests: number): number {
  const workload = WORKLOADS.find((w) => w.name === workloadName)!;
  const tags = ['t'];
  const maxBytes = Math.floor(workload.keys * chargedBytes(workload.keyOf(0), workload.meanValueBytes, 1) * share);
  const store = new ResultStore<null>({ maxBytes, maxEntryBytes: maxBytes, defaultTtlMs: 0, ...(policy ? { eviction: policy } : {}) });
  const { hits, lookups } = simulate(store, workload, requests, tags);
  assert.is(lookups, requests - requests / 10);
  assert.ok(store.bytes <= maxBytes);
  return hits / lookups;
}

test('the same seeded run gives the same hit ratio twice', () => {
  assert.is(hitRatio('zipf 0.8', 'tinylfu', 0.01, 100_000), hitRatio('zipf 0.8', 'tinylfu', 0.01, 100_000));
});

test('W-TinyLFU, the store\'s default, beats LRU on a Zipf workload larger than the budget, with and without scans', () => {
  for (const name of ['zipf 0.8', 'zipf 0.9 + scans']) {
    const lru = hitRatio(name, 'lru', 0.01, 200_000);
    const tinylfu = hitRatio(name, 'tinylfu', 0.01, 200_000);
    assert.ok(tinylfu > lru + 0.03, `${name}: tinylfu ${tinylfu} vs lru ${lru}`);
    assert.is(hitRatio(name, undefined, 0.01, 200_000), tinylfu, 'the default is not tinylfu');
  }
});

test.run();
