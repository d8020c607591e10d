// `make bench-literals`: what a statement with a never-seen literal costs. One client sends N
// statements one after another, each with literals no statement before had (as applications that
// inline values do), straight at PostgreSQL, through sidecache with caching off (the relay alone)
// and through sidecache; prints µs per statement and the ratios. A measurement: exits 0 whatever
// the ratios, 1 on errors.
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startProxy, type RunningProxy } from '../e2e/support/sidecache.js';
import { withClient } from './bench-database.js';
import { readCache, readingDelta } from './cache-metrics.js';
import {
  BATCH_STATEMENTS, LITERAL_TABLE_ROWS, LITERAL_WORKLOADS, formatLiteralTable, literalGoal, medianSeconds,
  type LiteralRun, type LiteralTarget, type LiteralWorkload,
} from './literal-workloads.js';
import { positiveInt, targetList, workloadList } from './options.js';
import type { PgbenchTarget } from './pgbench.js';
import { processCpuSeconds } from './process-cpu.js';

const PG_SERVER = { host: '127.0.0.1', port: 5432, user: 'postgres' };
const ALL_TARGETS: LiteralTarget[] = ['direct', 'passthrough', 'sidecache'];
/** Statements before the measured ones on each connection: the session's context is learned then. */
const WARMUP_STATEMENTS = 20;
/** Added to a run's number for its warm-up's literals. */
const WARMUP_RUNS = 1000;

const USAGE = `usage: node dist/bench/new-literals.js [options]
  --statements N   measured statements per run (default 500)
  --rounds R       alternating runs per workload and target (default 3)
  --workloads LIST comma-separated, from: ${LITERAL_WORKLOADS.map((w) => w.key).join(', ')} (default all)
  --targets LIST   comma-separated, from: ${ALL_TARGETS.join(', ')} (default all)`;

interface Options {
  statements: number;
  rounds: number;
  workloads: LiteralWorkload[];
  targets: LiteralTarget[];
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      statements: { type: 'string', default: '500' },
      rounds: { type: 'string', default: '3' },
      workloads: { type: 'string', default: LITERAL_WORKLOADS.map((w) => w.key).join(',') },
      targets: { type: 'string', default: ALL_TARGETS.join(',') },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return undefined;
  return {
    statements: positiveInt('--statements', values.statements),
    rounds: positiveInt('--rounds', values.rounds),
    workloads: workloadList(values.workloads, LITERAL_WORKLOADS),
    targets: targetList(values.targets, ALL_TARGETS),
  };
}

async function main(): Promise<number> {
  let options: Options | undefined;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    console.error(`bench-literals: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (!options) {
    console.log(USAGE);
    return 0;
  }
  const database = `sidecache_bench_literals_${process.pid}`;
  const proxies = new Map<LiteralTarget, RunningProxy>();
  try {
    await withClient({ ...PG_SERVER, database: 'postgres' }, (c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`));
    await withClient({ ...PG_SERVER, database }, (c) => c.query(`
      CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL);
      CREATE INDEX ON items (v);
      INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, ${LITERAL_TABLE_ROWS}) g;
      ANALYZE items`));
    const upstream = `postgres://${PG_SERVER.host}:${PG_SERVER.port}`;
    if (options.targets.includes('sidecache')) proxies.set('sidecache', await startProxy({ pgUpstream: upstream }));
    if (options.targets.includes('passthrough')) proxies.set('passthrough', await startProxy({ pgUpstream: upstream, args: ['--cache-max-bytes', '0'] }));
    const port = (t: LiteralTarget): number => (t === 'direct' ? PG_SERVER.port : proxies.get(t)!.pgPort);
    console.log(`bench-literals: ${options.statements} statements per run, ${options.rounds} alternating runs per target, one client, simple protocol`);
    // Untimed: every process runs every kind of statement once (JIT, first probes, the context).
    for (const workload of options.workloads) {
      for (const target of options.targets) await timeRun({ ...PG_SERVER, port: port(target), database }, workload, 500, 100);
    }
    const runs: LiteralRun[] = [];
    let run = 1;
    for (const workload of options.workloads) {
      for (let round = 0; round < options.rounds; round++) {
        const order = round % 2 === 0 ? options.targets : [...options.targets].reverse();
        for (const target of order) {
          const admin = proxies.get(target)?.adminPort;
          const before = target === 'sidecache' && admin !== undefined ? await readCache(admin) : undefined;
          const pid = proxies.get(target)?.child.pid;
          const cpuBefore = pid === undefined ? undefined : await processCpuSeconds(pid);
          const batches = await timeRun({ ...PG_SERVER, port: port(target), database }, workload, run++, options.statements);
          const cpuAfter = pid === undefined ? undefined : await processCpuSeconds(pid);
          const cache = before !== undefined ? readingDelta(await readCache(admin!), before) : undefined;
          const relayCpu = cpuBefore === undefined || cpuAfter === undefined ? undefined : (cpuAfter - cpuBefore) / (options.statements + WARMUP_STATEMENTS);
          const result: LiteralRun = { workload: workload.key, target, batches, relayCpu };
          runs.push(result);
          const counts = cache ? `, sidecache misses ${cache.misses} hits ${cache.hits} bypass ${cache.bypass}` : '';
          const median = medianSeconds([result], workload.key, target)!;
          console.log(`  ${workload.key.padEnd(8)} ${target.padEnd(11)} round ${round + 1}: median ${(median * 1e6).toFixed(0)} µs/statement${counts}`);
        }
      }
    }
    console.log(`\nresults (µs per statement: the median batch of ${BATCH_STATEMENTS} statements over all runs; passthrough = sidecache --cache-max-bytes 0;`
      + ' relay CPU per statement from /proc, warm-ups included)');
    for (const w of options.workloads) console.log(`  ${w.key}: ${w.example}`);
    console.log(formatLiteralTable(runs, options.targets));
    console.log(literalGoal(runs));
    return 0;
  } catch (err) {
    console.error(`bench-literals: ${err instanceof Error ? err.message : String(err)}`);
    for (const [target, proxy] of proxies) console.error(`--- ${target} output (last 2000 chars) ---\n${proxy.output().slice(-2000)}`);
    return 1;
  } finally {
    await Promise.allSettled([...proxies.values()].map((p) => p.stop()));
    await withClient({ ...PG_SERVER, database: 'postgres' }, (c) => c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)} WITH (FORCE)`));
  }
}

/** Seconds per statement of each batch of `count` statements of run number `run`, on a new connection after its warm-up. */
async function timeRun(target: PgbenchTarget, workload: LiteralWorkload, run: number, count: number): Promise<number[]> {
  return withClient(target, async (client) => {
    // The warm-up's statements are of the same kind, with literals of their own.
    for (let i = 0; i < WARMUP_STATEMENTS; i++) await client.query(workload.statement(WARMUP_RUNS + run, i));
    const batches: number[] = [];
    for (let i = 0; i < count; i += BATCH_STATEMENTS) {
      const started = process.hrtime.bigint();
      const end = Math.min(i + BATCH_STATEMENTS, count);
      for (let j = i; j < end; j++) await client.query(workload.statement(run, j));
      batches.push(Number(process.hrtime.bigint() - started) / 1e9 / (end - i));
    }
    return batches;
  });
}

process.exitCode = await main();
