// Micro benchmark of the counting on the query path: `node dist/telemetry/query-stats.bench.js`.
// Not a test (no assertions, machine-dependent); prints ns per call. prom-client's own histogram
// child is measured alongside, as the cost QueryStats avoids on every hit.
import { Histogram, Registry } from 'prom-client';
import { DURATION_BUCKETS_SECONDS } from './duration-histogram.js';
import { createMetrics } from './metrics.js';
import { QueryStats, type StatementIdentity } from './query-stats.js';

const stats = new QueryStats('postgres', createMetrics());
const identities: StatementIdentity[] = Array.from({ length: 1000 }, (_, i) => stats.identify(`fp${i}`, `SELECT * FROM t${i % 50} WHERE id = $1`, [`public.t${i % 50}`]));
// Hit latencies as a loopback hit sees them: mostly 20-80 µs, some slower.
const durations = Float64Array.from({ length: 1024 }, (_, i) => 0.00002 + (i % 7) * 0.00001 + (i % 97 === 0 ? 0.002 : 0));

/** Results printed at the end so the JIT cannot drop the work as unused. */
let checksum = 0;

function measure(name: string, ops: number, body: (ops: number) => void): void {
  body(Math.min(ops, 200_000)); // warm-up: let the JIT optimise the loop
  const start = process.hrtime.bigint();
  body(ops);
  const ns = Number(process.hrtime.bigint() - start) / ops;
  console.log(`${name.padEnd(44)} ${ns.toFixed(1).padStart(8)} ns/op  (${ops} ops)`);
}

measure('QueryStats.hit', 10_000_000, (ops) => {
  for (let i = 0; i < ops; i++) stats.hit(identities[i % 1000]!, durations[i & 1023]!);
});
measure('QueryStats.miss', 10_000_000, (ops) => {
  for (let i = 0; i < ops; i++) stats.miss(identities[i % 1000]!, durations[i & 1023]! * 10);
});
measure('QueryStats.bypass (2 reasons)', 5_000_000, (ops) => {
  for (let i = 0; i < ops; i++) stats.bypass(identities[i % 1000]!, i & 1 ? 'in-transaction' : 'not-cacheable', durations[i & 1023]!);
});

const registry = new Registry();
const promHistogram = new Histogram({ name: 'h', help: 'h', labelNames: ['protocol', 'outcome'], buckets: [...DURATION_BUCKETS_SECONDS], registers: [registry] });
const child = promHistogram.labels('postgres', 'hit');
measure('prom-client Histogram child observe (avoided)', 1_000_000, (ops) => {
  for (let i = 0; i < ops; i++) child.observe(durations[i & 1023]!);
});

const start = process.hrtime.bigint();
const report = stats.snapshot();
checksum += report.hits + stats.topQueries(20, 'hits').length + stats.topTables(20, 'hits').length;
console.log(`${'snapshot + top 20 queries and tables'.padEnd(44)} ${(Number(process.hrtime.bigint() - start) / 1000).toFixed(0).padStart(8)} µs  (1000 fingerprints)`);
console.log(`checksum ${checksum}`);
