// `make bench`: pgbench straight at PostgreSQL vs through sidecache (vs PgBouncer in session mode
// and pgpool-II with its query cache, when installed), in one run, on a database of its own, plus
// redis-benchmark GET as the ceiling for a cache hit. Prints tps, ratios to direct, latency, cache
// hit counts, the goals of the result cache with verdicts, a TPC-B consistency check and a check
// that cached reads are fresh after writes. Below-goal numbers still exit 0: this is a
// measurement; errors (pgbench failures, lost transactions, stale reads) exit 1.
// With --rtt the database is a private one behind a network hop of that round trip (netns.ts) and
// the goals are issue 17's.
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startProxy, type RunningProxy } from '../e2e/support/sidecache.js';
import { BenchDatabase, sumsBalance, type TpcbSums } from './bench-database.js';
import { startForwarder, type RunningForwarder } from './forwarder.js';
import { readCache, readingDelta, type CacheReading } from './cache-metrics.js';
import { checkHotReads, primeHotReads, type PrimedReads } from './freshness.js';
import { evaluateGoals, evaluateHopGoals, formatGoals } from './goals.js';
import { keepOnlySigintListener, observeHop, startNetworkHop, type NetworkHop } from './netns.js';
import { formatHopStarted, formatRtt, parseRtt, type RttSummary } from './rtt.js';
import { PgbenchError, runPgbench, type PgbenchTarget } from './pgbench.js';
import { findPgbouncer, startPgbouncer, type RunningPgbouncer } from './pgbouncer.js';
import { findPgpool, startPgpool, type RunningPgpool } from './pgpool.js';
import { processCpuSeconds } from './process-cpu.js';
import { processTreeCpuSeconds } from './process-tree-cpu.js';
import { measureRedisCeiling, type RedisCeiling } from './redis.js';
import { formatCacheTable, formatHopSection, formatRelayCpuTable, formatResultsTable, type CellResult, type MeasuredRun, type TargetId } from './report.js';
import { DEFAULT_WORKLOADS, HOT_KEYS, WORKLOADS, writeWorkloadFiles, type Workload, type WorkloadFiles } from './workloads.js';
import { onOff, positiveInt, targetList, workloadList } from './options.js';
import { formatTlsResults, runTlsBench } from './tls-bench.js';

/** The shared server; with --rtt a private one behind the hop instead. */
const LOCAL_PG_SERVER = { host: '127.0.0.1', port: 5432, user: 'postgres' };
type PgServer = typeof LOCAL_PG_SERVER;
/** Round trips through the hop's echo port before the runs (idle RTT), and the spacing of those during runs. */
const IDLE_PINGS = 200;
const LOADED_PING_INTERVAL_MS = 20;
const REDIS = { host: '127.0.0.1', port: 6379, requests: 200_000 };
const ALL_TARGETS: TargetId[] = ['direct', 'forwarder', 'sidecache', 'passthrough', 'pgbouncer', 'pgpool'];
/** Seconds of pgbench before measuring: once per target at the start, and per target before each hot workload (fills the caches). */
const WARMUP_SECONDS = 2;

const USAGE = `usage: node dist/bench/run.js [options]
  --seconds N      measured seconds per workload and target, split over the rounds (default 10, env BENCH_SECONDS)
  --rounds R       alternating runs per workload and target; the best is reported (default 2)
  --scale S        pgbench -i scale factor (default 10)
  --clients C      pgbench -c and redis-benchmark -c (default 8; pgbench -j is 2)
  --workloads LIST comma-separated, from: ${WORKLOADS.map((w) => w.key).join(', ')}
                   (default ${DEFAULT_WORKLOADS.join(',')})
  --targets LIST   comma-separated, from: ${ALL_TARGETS.join(', ')} (default all; pgbouncer and pgpool only when installed)
  --rtt T          put the database behind a network hop with this round trip (e.g. 1ms, 0.4ms, 400us): a private
                   PostgreSQL in a network namespace, reached over a veth pair through a delaying relay (root, cc)
  --tls on|off     also hot and -S workloads with sslmode=require: direct to a private TLS cluster vs sidecache with
                   TLS on both legs vs a cleartext client leg (default on)
  --workers N      sidecache's (passthrough's, the TLS section's) --workers (default 1; its CPU column is then all processes' sum)`;

interface Options {
  seconds: number;
  rounds: number;
  scale: number;
  clients: number;
  workloads: Workload[];
  targets: TargetId[];
  /** Round trip of the network hop in µs; undefined: the shared server on loopback. */
  rttUs: number | undefined;
  tls: boolean;
  workers: number;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string' },
      rounds: { type: 'string', default: '2' },
      scale: { type: 'string', default: '10' },
      clients: { type: 'string', default: '8' },
      workloads: { type: 'string', default: DEFAULT_WORKLOADS.join(',') },
      targets: { type: 'string', default: ALL_TARGETS.join(',') },
      rtt: { type: 'string' },
      tls: { type: 'string', default: 'on' },
      workers: { type: 'string', default: '1' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return undefined;
  const workloads = workloadList(values.workloads, WORKLOADS);
  const targets = targetList(values.targets, ALL_TARGETS);
  return {
    seconds: positiveInt('--seconds', values.seconds ?? process.env['BENCH_SECONDS'] ?? '10'),
    rounds: positiveInt('--rounds', values.rounds),
    scale: positiveInt('--scale', values.scale),
    clients: positiveInt('--clients', values.clients),
    workloads,
    targets,
    rttUs: values.rtt === undefined ? undefined : parseRtt(values.rtt),
    tls: onOff('--tls', values.tls),
    workers: positiveInt('--workers', values.workers),
  };
}


/** Per target: did every TPC-B run leave one history row per reported transaction and balanced sums? */
interface ConsistencyRecord {
  runs: number;
  problems: string[];
}

/** Per sidecache TPC-B run: were the hot rows cached before it, did it change some, and do cached reads match after it? */
interface FreshnessRecord {
  runs: number;
  primedHits: number[];
  changed: number;
  stale: string[];
}

/** The running servers under test and how to reach each. */
class Targets {
  constructor(readonly server: PgServer, readonly hop: NetworkHop | undefined) {}
  proxy: RunningProxy | undefined;
  /** Copies bytes and nothing else: what the extra hop alone costs. */
  forwarder: RunningForwarder | undefined;
  /** sidecache with caching off: what the relay alone costs. */
  passthrough: RunningProxy | undefined;
  pgbouncer: RunningPgbouncer | undefined;
  pgpool: RunningPgpool | undefined;
  /** Why a wanted target is not running, printed with the results. */
  readonly notes: string[] = [];

  endpoint(target: TargetId, database: string): PgbenchTarget {
    if (target === 'direct') return { ...this.server, database };
    const ports: Record<Exclude<TargetId, 'direct'>, () => number> = {
      forwarder: () => this.forwarder!.port,
      sidecache: () => this.proxy!.pgPort,
      passthrough: () => this.passthrough!.pgPort,
      pgbouncer: () => this.pgbouncer!.port,
      pgpool: () => this.pgpool!.port,
    };
    return { host: '127.0.0.1', port: ports[target](), user: this.server.user, database };
  }

  /** CPU seconds used so far by the relay between pgbench and PostgreSQL; undefined for direct. */
  async relayCpuSeconds(target: TargetId): Promise<number | undefined> {
    switch (target) {
      case 'direct': return undefined;
      case 'forwarder': return processCpuSeconds(this.forwarder!.child.pid!);
      // With --workers the primary forks the processes that do the work.
      case 'sidecache': return processTreeCpuSeconds(this.proxy!.child.pid!);
      case 'passthrough': return processTreeCpuSeconds(this.passthrough!.child.pid!);
      case 'pgbouncer': return processCpuSeconds(this.pgbouncer!.pid);
      case 'pgpool': return this.pgpool!.cpuSeconds();
    }
  }

  /** The relay's own output, appended to a pgbench failure through it. */
  relayOutput(target: TargetId): string | undefined {
    if (target === 'sidecache') return this.proxy?.output();
    if (target === 'passthrough') return this.passthrough?.output();
    if (target === 'pgpool') return this.pgpool?.output();
    return undefined;
  }

  async stop(): Promise<void> {
    await Promise.allSettled([this.proxy?.stop(), this.forwarder?.stop(), this.passthrough?.stop(), this.pgbouncer?.stop(), this.pgpool?.stop()]);
  }
}

async function main(): Promise<number> {
  let options: Options | undefined;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    console.error(`bench: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (!options) {
    console.log(USAGE);
    return 0;
  }
  const perRunSeconds = Math.max(1, Math.round(options.seconds / options.rounds));
  const load = warnIfBusy();
  let hop: NetworkHop | undefined;
  let targets: Targets | undefined;
  let db: BenchDatabase | undefined;
  let filesDir: string | undefined;
  let cleaning: Promise<void> | undefined;
  // Runs once, whether reached by SIGINT or by the end of main.
  const cleanup = (): Promise<void> => (cleaning ??= (async () => {
    await targets?.stop();
    await db?.drop().catch((err: Error) => console.error(`bench: dropping the database: ${err.message}`));
    await hop?.stop();
    if (filesDir) await rm(filesDir, { recursive: true, force: true });
  })());
  let interrupted = false;
  const onInterrupt = (): void => {
    interrupted = true;
    console.error('bench: interrupted, cleaning up');
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onInterrupt);
  try {
    let idleRtt: RttSummary | undefined;
    if (options.rttUs !== undefined) {
      console.log(`bench: network hop of ${options.rttUs} µs round trip: network namespace, private PostgreSQL, delay relay ...`);
      hop = await startNetworkHop(options.rttUs);
      // The bench's own cleanup stops the relays and PgBouncer/pgpool too, then the hop.
      keepOnlySigintListener(onInterrupt);
      idleRtt = await hop.measureRtt(IDLE_PINGS, 30_000);
      console.log(`bench: ${formatHopStarted(hop.plan, idleRtt)}`);
    }
    targets = new Targets(hop?.server ?? LOCAL_PG_SERVER, hop);
    const active = await startTargets(options, targets);
    filesDir = await mkdtemp(path.join(tmpdir(), 'sidecache-bench-'));
    const files = await writeWorkloadFiles(filesDir);
    const name = `sidecache_bench_${process.pid}`;
    console.log(`bench: pgbench -i -s ${options.scale} into database ${name} ...`);
    db = await BenchDatabase.create(targets.server, name, options.scale);
    console.log(`bench: targets ${active.join(', ')}; ${options.clients} clients, -j 2, ${options.rounds} alternating runs of ${perRunSeconds} s per workload and target`);
    for (const target of active) {
      await measure(targets, db, target, ['-S', '-M', 'simple'], options.clients, WARMUP_SECONDS);
    }
    const results = await measureWorkloads(options, targets, db, files, active, perRunSeconds);
    const ok = await printResults(options, active, targets, results, { load, idleRtt });
    if (options.tls) {
      // After the main table, on its own cluster: the shared server has no TLS.
      const tls = await runTlsBench({ perRunSeconds, rounds: options.rounds, clients: options.clients, scale: options.scale, workers: options.workers, startTimeoutMs: START_TIMEOUT_MS * options.workers }, files);
      console.log(`\n${formatTlsResults(tls)}`);
    }
    return ok ? 0 : 1;
  } catch (err) {
    // Ctrl-C reaches pgbench too, whose failure is then no news.
    if (!interrupted) console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    await cleanup();
  }
}

interface Measurements {
  cells: CellResult[];
  consistency: Map<TargetId, ConsistencyRecord>;
  freshness: FreshnessRecord;
  /** Every redis-benchmark run, or why there is none. */
  redis: RedisCeiling[] | string;
}

/** Every workload on every target, round after round in alternating target order. */
async function measureWorkloads(options: Options, targets: Targets, db: BenchDatabase, files: WorkloadFiles,
  active: TargetId[], perRunSeconds: number): Promise<Measurements> {
  const cells: CellResult[] = [];
  const consistency = new Map<TargetId, ConsistencyRecord>(active.map((t) => [t, { runs: 0, problems: [] }]));
  const freshness: FreshnessRecord = { runs: 0, primedHits: [], changed: 0, stale: [] };
  let redis: RedisCeiling[] | string = [];
  for (const workload of options.workloads) {
    const args = workload.args(files);
    if (workload.kind === 'hot') {
      // Fills every cache (and PostgreSQL's buffers) so the measured runs are nearly all hits.
      for (const target of active) await measure(targets, db, target, args, options.clients, WARMUP_SECONDS);
    }
    for (let round = 0; round < options.rounds; round++) {
      // The ceiling for hits is measured beside the hit runs, under the same passing load.
      if (workload.kind === 'hot' && typeof redis !== 'string') redis = await measureRedis(options, redis);
      // Forward, then reverse order: slow drift (table bloat, other load) hits all alike.
      const order = round % 2 === 0 ? active : [...active].reverse();
      for (const target of order) {
        await db.prepareRun();
        const tpcbBefore = workload.kind === 'tpcb' ? await db.tpcbSums() : undefined;
        const primed = workload.kind === 'tpcb' && target === 'sidecache' ? await primeHot(targets, db) : undefined;
        const run = await measure(targets, db, target, args, options.clients, perRunSeconds);
        const hits = run.cache ? `, sidecache hits ${run.cache.hits} misses ${run.cache.misses} bypass ${run.cache.bypass}` : '';
        console.log(`  ${workload.label.padEnd(16)} ${target.padEnd(10)} round ${round + 1}/${options.rounds}: ${run.tps.toFixed(0)} tps${hits}`);
        let cell = cells.find((c) => c.workload === workload.label && c.target === target);
        if (!cell) cells.push((cell = { workload: workload.label, target, runs: [] }));
        cell.runs.push(run);
        if (tpcbBefore) checkTpcbRun(tpcbBefore, await db.tpcbSums(), run.transactions, consistency.get(target)!);
        if (primed) await checkFreshness(targets, db, primed, freshness);
      }
    }
  }
  return { cells, consistency, freshness, redis };
}

async function primeHot(targets: Targets, db: BenchDatabase): Promise<PrimedReads> {
  return primeHotReads(targets.endpoint('sidecache', db.target.database), targets.proxy!.adminPort, db.target);
}

async function checkFreshness(targets: Targets, db: BenchDatabase, primed: PrimedReads, record: FreshnessRecord): Promise<void> {
  const result = await checkHotReads(targets.endpoint('sidecache', db.target.database), db.target, primed);
  record.runs++;
  record.primedHits.push(primed.hits);
  record.changed += result.changed;
  record.stale.push(...result.stale);
}

/** One more redis-benchmark run added to `runs`, or why Redis cannot be measured. */
async function measureRedis(options: Options, runs: RedisCeiling[]): Promise<RedisCeiling[] | string> {
  const outcome = await measureRedisCeiling({ ...REDIS, clients: options.clients, timeoutMs: 120_000 });
  if ('skipped' in outcome) return `Redis ceiling skipped: ${outcome.skipped}`;
  console.log(`  redis GET        run ${runs.length + 1}: ${outcome.measured.rps.toFixed(0)} rps, p50 ${(outcome.measured.p50Ms * 1000).toFixed(0)} µs`);
  return [...runs, outcome.measured];
}

/** Other work competing for the CPUs skews the ratios; say so before measuring rather than after. Returns the load. */
function warnIfBusy(): number {
  const load = loadavg()[0]!;
  if (load >= 1) {
    console.log(`bench: warning: the machine is busy before the bench starts (1-minute load average ${load.toFixed(1)} on ${cpus().length} CPUs); ratios may be skewed`);
  }
  return load;
}

/** A start of sidecache; each worker starts as a whole one does, all at once. */
const START_TIMEOUT_MS = 30_000;

function workersArgs(options: Options): string[] {
  return ['--workers', String(options.workers)];
}

async function startTargets(options: Options, targets: Targets): Promise<TargetId[]> {
  const wanted = options.targets;
  const active: TargetId[] = ['direct'];
  if (wanted.includes('forwarder')) {
    targets.forwarder = await startForwarder(targets.server);
    active.push('forwarder');
  }
  if (wanted.includes('sidecache')) {
    targets.proxy = await startProxy({ pgUpstream: `postgres://${targets.server.host}:${targets.server.port}`, args: workersArgs(options), timeoutMs: START_TIMEOUT_MS * options.workers });
    active.push('sidecache');
  }
  if (wanted.includes('passthrough')) {
    targets.passthrough = await startProxy({ pgUpstream: `postgres://${targets.server.host}:${targets.server.port}`, args: ['--cache-max-bytes', '0', ...workersArgs(options)],
      timeoutMs: START_TIMEOUT_MS * options.workers });
    active.push('passthrough');
  }
  if (wanted.includes('pgbouncer')) {
    const binary = findPgbouncer();
    if (binary) {
      targets.pgbouncer = await startPgbouncer(binary, targets.server);
      active.push('pgbouncer');
    } else {
      targets.notes.push('pgbouncer: not installed (`apt-get install -y pgbouncer`), column skipped');
    }
  }
  if (wanted.includes('pgpool')) {
    const binary = findPgpool();
    if (!binary) {
      targets.notes.push('pgpool: not installed (`apt-get install -y pgpool2`), column skipped');
    } else {
      // A comparison, not the product: a pgpool that will not start is reported, not fatal.
      try {
        targets.pgpool = await startPgpool(binary, targets.server, options.clients);
        active.push('pgpool');
      } catch (err) {
        targets.notes.push(`pgpool: could not be started, column skipped: ${(err as Error).message}`);
      }
    }
  }
  return active;
}

async function measure(targets: Targets, db: BenchDatabase, target: TargetId, workloadArgs: string[], clients: number, seconds: number): Promise<MeasuredRun> {
  // -n: no pgbench vacuum, whose TRUNCATE of pgbench_history would break the consistency check.
  const args = [...workloadArgs, '-n', '-c', String(clients), '-j', '2', '-T', String(seconds)];
  const adminPort = target === 'sidecache' ? targets.proxy!.adminPort : undefined;
  try {
    const cpuBefore = await targets.relayCpuSeconds(target);
    const cacheBefore = adminPort === undefined ? undefined : await readCache(adminPort);
    const { result: run, hop } = await observeHop(targets.hop, LOADED_PING_INTERVAL_MS,
      () => runPgbench({ target: targets.endpoint(target, db.target.database), args, timeoutMs: 60_000 + seconds * 2000 }));
    const cacheAfter = adminPort === undefined ? undefined : await readCache(adminPort);
    const cpuAfter = await targets.relayCpuSeconds(target);
    const relayCpuSeconds = difference(cpuAfter, cpuBefore);
    const cache: CacheReading | undefined = cacheBefore && cacheAfter ? readingDelta(cacheAfter, cacheBefore) : undefined;
    return { ...run, relayCpuSeconds, cache, hop };
  } catch (err) {
    const relayOutput = targets.relayOutput(target);
    if (err instanceof PgbenchError && relayOutput !== undefined) {
      err.message += `\n--- ${target} output (last 4000 chars) ---\n${relayOutput.slice(-4000)}`;
    }
    throw err;
  }
}

function difference(after: number | undefined, before: number | undefined): number | undefined {
  return after === undefined || before === undefined ? undefined : after - before;
}

/**
 * A run that lost a transaction leaves fewer history rows than pgbench reported; one that split
 * a transaction (part applied) or applied a statement twice leaves the balances unequal to history.
 */
function checkTpcbRun(before: TpcbSums, after: TpcbSums, reported: number, record: ConsistencyRecord): void {
  record.runs++;
  const added = after.historyRows - before.historyRows;
  if (added !== BigInt(reported)) {
    record.problems.push(`pgbench reported ${reported} transactions, pgbench_history grew by ${added}`);
  }
  if (sumsBalance(before) && !sumsBalance(after)) {
    record.problems.push(`balances no longer match history: accounts ${after.accounts}, tellers ${after.tellers}, branches ${after.branches}, history ${after.history}`);
  }
}

/** Prints every table, check and goal; false when a check failed. */
/** What the run started from: the machine's load and, with --rtt, the hop's idle round trip. */
interface RunContext {
  load: number;
  idleRtt: RttSummary | undefined;
}

async function printResults(options: Options, active: TargetId[], targets: Targets, m: Measurements, context: RunContext): Promise<boolean> {
  const labels = options.workloads.map((w) => w.label);
  console.log(`\nresults (best of ${options.rounds} runs; ratio = tps / direct tps; latency avg from pgbench, p50 from a 2% sample of its per-transaction log)`);
  console.log(formatResultsTable(labels, active, m.cells));
  const relays = active.filter((t) => t !== 'direct');
  if (relays.length > 0) {
    console.log('\nrelay CPU per transaction (all runs; pgpool includes its per-client processes; on 2 cores this CPU is taken from PostgreSQL and pgbench)');
    console.log(formatRelayCpuTable(labels, relays, m.cells));
  }
  if (active.includes('sidecache')) {
    console.log('\nsidecache cache during the measured runs (from its /metrics; warm-ups excluded)');
    console.log(formatCacheTable(labels, m.cells));
  }
  if (targets.hop) {
    const hop = { plan: targets.hop.plan, idleRtt: context.idleRtt, lateness: await targets.hop.lateness(), sampleIntervalMs: LOADED_PING_INTERVAL_MS };
    console.log(`\n${formatHopSection(hop, labels, active, m.cells)}`);
  }
  const redis = bestRedis(m.redis);
  console.log(typeof redis === 'string'
    ? `\n${redis}`
    : `\nRedis ceiling (${redis.command}, best of ${m.redis.length} runs, one before each round of a hot workload): ${redis.rps.toFixed(0)} GET/s, p50 ${(redis.p50Ms * 1000).toFixed(0)} µs`);
  for (const note of targets.notes) console.log(note);
  const consistent = printConsistency(m.consistency);
  const fresh = printFreshness(m.freshness);
  console.log(`\n${targets.hop
    ? formatGoals(evaluateHopGoals({ workloads: options.workloads, cells: m.cells }), `goals (issue 17 item 1, set for ~1 ms RTT; this run: ${formatRtt(context.idleRtt)} idle):`)
    : formatGoals(evaluateGoals({ workloads: options.workloads, cells: m.cells, redis }))}`);
  console.log(`machine: 1-minute load average ${context.load.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end, ${cpus().length} CPUs`);
  console.log(`
how measured: pgbench -c ${options.clients} -j 2 -T ${Math.max(1, Math.round(options.seconds / options.rounds))} -n against each target in turn on one database
(scale ${options.scale}); the hot workload reads aid 1..${HOT_KEYS} (\\set aid random(1, ${HOT_KEYS}); SELECT abalance ...), after a
${WARMUP_SECONDS} s warm-up per target that fills the caches; -S is uniform over ${options.scale * 100_000} accounts (mostly misses).
Hit p50 "at pgbench" is the round trip a client sees (2% sample of pgbench's log, best run); "in sidecache" is the
proxy's own sidecache_query_duration_seconds{outcome="hit"} (statement arrival to answer written), interpolated
inside its bucket. The Redis ceiling is redis-benchmark GET with the same number of clients on the same machine.`);
  return consistent && fresh;
}

/** The fastest Redis run, as for pgbench runs: interference only slows a run down. */
function bestRedis(runs: RedisCeiling[] | string): RedisCeiling | string {
  if (typeof runs === 'string') return runs;
  if (runs.length === 0) return 'Redis ceiling not measured: no hot workload in this run';
  return runs.reduce((best, r) => (r.rps > best.rps ? r : best));
}

function printConsistency(consistency: Map<TargetId, ConsistencyRecord>): boolean {
  const checked = [...consistency].filter(([, r]) => r.runs > 0);
  if (checked.length === 0) return true;
  console.log('\nTPC-B consistency (history rows = reported transactions; sum(abalance) = sum(tbalance) = sum(bbalance) = sum(delta)):');
  let ok = true;
  for (const [target, record] of checked) {
    if (record.problems.length === 0) {
      console.log(`  ${target.padEnd(10)} holds over ${record.runs} runs`);
    } else {
      ok = false;
      console.log(`  ${target.padEnd(10)} FAILED: ${record.problems.join('; ')}`);
    }
  }
  return ok;
}

function printFreshness(record: FreshnessRecord): boolean {
  if (record.runs === 0) return true;
  const expected = 2 * HOT_KEYS;
  console.log(`\ncached reads after TPC-B through sidecache (aid 1..${HOT_KEYS}, simple and extended protocol, read through sidecache until cached before each run, compared with PostgreSQL after it):`);
  console.log(`  primed hits per run: ${record.primedHits.join(', ')} of ${expected}; hot rows changed by TPC-B: ${record.changed} over ${record.runs} runs`);
  if (record.primedHits.some((h) => h < expected)) console.log('  note: not every primed read was a hit, so those rows were not cached when TPC-B wrote them');
  if (record.changed === 0) console.log('  note: TPC-B changed none of the hot rows; the check had nothing to catch (run longer)');
  if (record.stale.length === 0) {
    console.log('  every cached read matches PostgreSQL');
    return true;
  }
  console.log(`  FAILED: ${record.stale.length} stale reads, e.g.\n    ${record.stale.slice(0, 10).join('\n    ')}`);
  return false;
}

process.exitCode = await main();
