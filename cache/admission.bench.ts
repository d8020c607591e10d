// Hit ratios of the store's two eviction policies, LRU and W-TinyLFU (store.ts), on workloads
// larger than the budget: `node dist/cache/admission.bench.js [requests]`. A pure simulation of
// the proxy's use of the store (get; on a miss, set what the database answered), deterministic
// (seeded PRNG), so the table is the same on every machine; only the ns per request vary.
// Issue 17 item 5; the table is kept in bench/README.md.
import { ResultStore, chargedBytes, type EvictionPolicy } from './store.js';
import { dependencyTags } from './tags.js';
import { formatTable } from '../bench/report.js';
import { WORKLOADS, simulate, type SimWorkload } from './admission-sim.js';

const requests = Number(process.argv[2] ?? 1_000_000);
const BUDGETS = [0.01, 0.05, 0.1, 0.25];
const POLICIES: EvictionPolicy[] = ['lru', 'tinylfu'];

const tags = Object.freeze(dependencyTags('app', [{ database: 'app', schema: 'public', table: 'items' }]));

function run(workload: SimWorkload, share: number, policy: EvictionPolicy): { hitRatio: number; cpuNsPerRequest: number } {
  // The budget: `share` of what every key's entry would take at the workload's mean value size.
  const meanEntry = chargedBytes(workload.keyOf(0), workload.meanValueBytes, tags.length);
  const maxBytes = Math.floor(workload.keys * meanEntry * share);
  const store = new ResultStore<null>({ maxBytes, maxEntryBytes: Math.min(maxBytes, 1 << 20), defaultTtlMs: 0, eviction: policy });
  // CPU rather than wall time: on a shared machine the wall clock mostly measures the neighbours.
  const start = process.cpuUsage();
  const { hits, lookups } = simulate(store, workload, requests, tags);
  const cpu = process.cpuUsage(start);
  return { hitRatio: hits / lookups, cpuNsPerRequest: (cpu.user + cpu.system) * 1000 / requests };
}

const header = ['workload', 'budget', ...POLICIES.map((p) => `${p} hits`), 'tinylfu - lru', ...POLICIES.map((p) => `${p} CPU ns/req`)];
const rows: string[][] = [];
for (const workload of WORKLOADS) {
  for (const share of BUDGETS) {
    const results = POLICIES.map((p) => run(workload, share, p));
    rows.push([
      workload.name,
      `${(share * 100).toFixed(0)}% of keys`,
      ...results.map((r) => `${(r.hitRatio * 100).toFixed(1)}%`),
      `${((results[1]!.hitRatio - results[0]!.hitRatio) * 100).toFixed(1)} pt`,
      ...results.map((r) => r.cpuNsPerRequest.toFixed(0)),
    ]);
  }
}
console.log(`hit ratio over the last 90% of ${requests} requests per cell (the first 10% warm the cache); seeded: the same sequence for both policies`);
console.log('budget: that share of what all the workload\'s keys would take; CPU per request includes building the key and the simulated fill');
console.log(formatTable(header, rows));
for (const w of WORKLOADS) console.log(`  ${w.name}: ${w.description}`);
