// `make bench-mysql`: sysbench straight at MariaDB vs through sidecache vs MariaDB with its own query
// cache on, in one run, on databases of its own. Prints tps/qps, ratios to direct, sidecache's hit
// counts and CPU per transaction, the goals of issue 4 item 7 with verdicts, and a check that reads
// through sidecache are fresh after oltp_read_write. Below-goal numbers still exit 0: this is a
// measurement; errors (sysbench errors, a stale read) exit 1.
// With --rtt MariaDB is a private one behind a network hop of that round trip (netns.ts), every
// target crosses it, and the goals are issue 17's.
import { cpus, loadavg } from 'node:os';
import { scrape, sumOf } from '../e2e/support/metrics.js';
import { startProxy, type RunningProxy } from '../e2e/support/sidecache.js';
import { startForwarder, type RunningForwarder } from './forwarder.js';
import { keepOnlySigintListener, observeHop, startNetworkHop, type NetworkHop } from './netns.js';
import { MYSQL_USAGE, parseMysqlOptions, type MysqlOptions } from './mysql-options.js';
import { evaluateMysqlCpuGoals, evaluateMysqlGoals, evaluateMysqlHopGoals, formatMysqlCache, formatMysqlFloor, formatMysqlGoals, formatMysqlResults, type MysqlCell, type MysqlMeasuredRun, type MysqlTargetId } from './mysql-report.js';
import { FingerprintReader, MARIADB_BEHIND_HOP, MysqlBenchServer, QUERY_CACHE_BYTES, type MysqlServer, type QueryCacheSettings } from './mysql-server.js';
import { prepareSysbench, runSysbench, stoppedOnDeadlock, SysbenchError, type SysbenchTarget } from './mysql-sysbench.js';
import { FULL_ROWS, HOT_ROWS, tableRows, type MysqlTable, type MysqlWorkload } from './mysql-workloads.js';
import { processCpuSeconds } from './process-cpu.js';
import { formatHopSection } from './report.js';
import { formatHopStarted, formatRtt, type RttSummary } from './rtt.js';

/** The shared server; with --rtt a private one behind the hop instead. */
const LOCAL_MYSQL_SERVER: MysqlServer = { host: '127.0.0.1', port: 3306, user: 'root' };
/** Round trips through the hop's echo port before the runs (idle RTT), and the spacing of those during runs. */
const IDLE_PINGS = 200;
const LOADED_PING_INTERVAL_MS = 20;
/** Runs stopped by a deadlock are repeated this many times at most (any other error fails the bench). */
const DEADLOCK_RETRIES = 2;
/** Seconds of sysbench before measuring a hot workload, so every cache is filled. */
const WARMUP_SECONDS = 2;

/** Per oltp_read_write run through sidecache: was the primed read a hit, did the run change the table, did the proxy's read match after? */
interface FreshnessRecord {
  runs: number;
  primedHits: number;
  changed: number;
  stale: string[];
}

class Bench {
  proxy: RunningProxy | undefined;
  forwarder: RunningForwarder | undefined;
  /** The server's query cache settings at the start; put back after every qcache run and at the end. */
  originalQueryCache: QueryCacheSettings | undefined;
  readonly databases = new Map<MysqlTable, SysbenchTarget>();
  readonly notes: string[] = [];

  constructor(readonly server: MysqlBenchServer, readonly options: MysqlOptions, readonly hop: NetworkHop | undefined) {}

  endpoint(target: MysqlTargetId, table: MysqlTable): SysbenchTarget {
    const db = this.databases.get(table)!;
    // The proxies listen here on loopback; the server may be behind the hop.
    if (target === 'sidecache') return { ...db, host: '127.0.0.1', port: this.proxy!.mysqlPort };
    if (target === 'forwarder') return { ...db, host: '127.0.0.1', port: this.forwarder!.port };
    return db;
  }

  async restoreQueryCache(): Promise<void> {
    if (this.originalQueryCache) await this.server.setQueryCache(this.originalQueryCache);
  }

  /**
   * Switches MariaDB's query cache on and checks that it took; undefined when it did, else why not.
   * A server started with query_cache_type = OFF still accepts ON at runtime as long as the size
   * is not 0 (MariaDB 10.11); turning it OFF again empties it.
   */
  async enableQueryCache(): Promise<string | undefined> {
    try {
      await this.server.setQueryCache({ type: 'ON', size: QUERY_CACHE_BYTES });
    } catch (err) {
      return `MariaDB refused to enable its query cache: ${(err as Error).message}`;
    }
    const now = await this.server.queryCacheSettings();
    return now.type === 'ON' && now.size > 0 ? undefined : `MariaDB did not enable its query cache (query_cache_type ${now.type}, size ${now.size})`;
  }
}

async function main(): Promise<number> {
  let options: MysqlOptions | undefined;
  try {
    options = parseMysqlOptions(process.argv.slice(2));
  } catch (err) {
    console.error(`bench-mysql: ${(err as Error).message}\n${MYSQL_USAGE}`);
    return 2;
  }
  if (!options) {
    console.log(MYSQL_USAGE);
    return 0;
  }
  const perRunSeconds = Math.max(1, Math.round(options.seconds / options.rounds));
  const load = warnIfBusy();
  let hop: NetworkHop | undefined;
  let bench: Bench | undefined;
  let cleaning: Promise<void> | undefined;
  // Runs once, whether reached by SIGINT or by the end of main; the query cache first, since the
  // shared server is shared; the hop (relay, private server, namespace) last.
  const cleanup = (): Promise<void> => (cleaning ??= (async () => {
    if (bench) {
      await Promise.allSettled([bench.restoreQueryCache(), bench.proxy?.stop(), bench.forwarder?.stop()]);
      await bench.server.close().catch((err: Error) => console.error(`bench-mysql: dropping the databases: ${err.message}`));
    }
    await hop?.stop();
  })());
  let interrupted = false;
  const onInterrupt = (): void => {
    interrupted = true;
    console.error('bench-mysql: interrupted, cleaning up');
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onInterrupt);
  try {
    let idleRtt: RttSummary | undefined;
    if (options.rttUs !== undefined) {
      console.log(`bench-mysql: network hop of ${options.rttUs} µs round trip: network namespace, private MariaDB, delay relay ...`);
      hop = await startNetworkHop(options.rttUs, MARIADB_BEHIND_HOP);
      // The bench's own cleanup stops the forwarder and sidecache too, then the hop.
      keepOnlySigintListener(onInterrupt);
      idleRtt = await hop.measureRtt(IDLE_PINGS, 30_000);
      console.log(`bench-mysql: ${formatHopStarted(hop.plan, idleRtt)}`);
    }
    bench = new Bench(await MysqlBenchServer.connect(hop?.server ?? LOCAL_MYSQL_SERVER), options, hop);
    bench.originalQueryCache = await bench.server.queryCacheSettings();
    const active = await startTargets(bench);
    for (const table of new Set(options.workloads.map((w) => w.table))) {
      const name = `sidecache_bench_mysql_${table}_${process.pid}`;
      console.log(`bench-mysql: sysbench prepare ${tableRows(table)} rows into database ${name} ...`);
      const target = await bench.server.createDatabase(name);
      await prepareSysbench(target, tableRows(table));
      bench.databases.set(table, target);
    }
    console.log(`bench-mysql: targets ${active.join(', ')}; ${options.threads} threads, ${options.rounds} alternating runs of ${perRunSeconds} s per workload and target`);
    const { cells, freshness } = await measureWorkloads(bench, active, perRunSeconds);
    return await printResults(bench, active, cells, freshness, perRunSeconds, { load, idleRtt }) ? 0 : 1;
  } catch (err) {
    if (!interrupted) console.error(`bench-mysql: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    await cleanup();
  }
}

async function startTargets(bench: Bench): Promise<MysqlTargetId[]> {
  const active: MysqlTargetId[] = ['direct'];
  if (bench.options.targets.includes('forwarder')) {
    bench.forwarder = await startForwarder(bench.server.server);
    active.push('forwarder');
  }
  if (bench.options.targets.includes('sidecache')) {
    const { host, port } = bench.server.server;
    bench.proxy = await startProxy({ pgUpstream: null, mysqlUpstream: `mysql://${host}:${port}` });
    active.push('sidecache');
  }
  if (bench.options.targets.includes('qcache')) {
    // Probed once up front, then off again until a qcache run: other tests share this server.
    const refused = await bench.enableQueryCache();
    await bench.restoreQueryCache();
    if (refused) bench.notes.push(`qcache: ${refused}; column skipped`);
    else active.push('qcache');
  }
  return active;
}

async function measureWorkloads(bench: Bench, active: MysqlTargetId[], perRunSeconds: number): Promise<{ cells: MysqlCell[]; freshness: FreshnessRecord }> {
  const cells: MysqlCell[] = [];
  const freshness: FreshnessRecord = { runs: 0, primedHits: 0, changed: 0, stale: [] };
  for (const workload of bench.options.workloads) {
    if (workload.kind === 'hot') {
      // Fills sidecache (and MariaDB's buffer pool); the query cache is filled before each of its runs, since switching it off empties it.
      for (const target of active.filter((t) => t !== 'qcache')) await measure(bench, workload, target, WARMUP_SECONDS);
    }
    for (let round = 0; round < bench.options.rounds; round++) {
      // Forward, then reverse order: slow drift (other load, buffer pool) hits all alike.
      const order = round % 2 === 0 ? active : [...active].reverse();
      for (const target of order) {
        const checked = workload.kind === 'read-write' && target === 'sidecache';
        const primed = checked ? await primeFingerprint(bench, workload.table) : undefined;
        const run = await measureRetryingDeadlocks(bench, workload, target, perRunSeconds);
        const extra = run.cache ? `, sidecache hits ${run.cache.hits} misses ${run.cache.misses} bypass ${run.cache.bypass}`
          : run.queryCacheHits !== undefined ? `, Qcache_hits +${run.queryCacheHits}` : '';
        console.log(`  ${workload.label.padEnd(26)} ${target.padEnd(9)} round ${round + 1}/${bench.options.rounds}: ${run.tps.toFixed(0)} tps, ${run.qps.toFixed(0)} qps${extra}`);
        let cell = cells.find((c) => c.workload === workload.label && c.target === target);
        if (!cell) cells.push((cell = { workload: workload.label, target, runs: [] }));
        cell.runs.push(run);
        if (primed) await checkFreshness(bench, workload.table, primed, freshness);
      }
    }
  }
  return { cells, freshness };
}

interface PrimedFingerprint {
  direct: string;
  hit: boolean;
  /** Open across the run: the after-run read goes through the same connection as the cached one. */
  reader: FingerprintReader;
}

/** Reads the table's fingerprint through sidecache twice (the second must be a hit), so a missed invalidation would serve it stale after the run. */
async function primeFingerprint(bench: Bench, table: MysqlTable): Promise<PrimedFingerprint> {
  const direct = await bench.server.fingerprint(bench.databases.get(table)!.database);
  const reader = await FingerprintReader.open(bench.endpoint('sidecache', table));
  await reader.read();
  const before = await readSidecacheCache(bench.proxy!);
  await reader.read();
  const after = await readSidecacheCache(bench.proxy!);
  return { direct, hit: after.hits - before.hits === 1, reader };
}

async function checkFreshness(bench: Bench, table: MysqlTable, primed: PrimedFingerprint, record: FreshnessRecord): Promise<void> {
  const direct = await bench.server.fingerprint(bench.databases.get(table)!.database);
  const proxied = await primed.reader.read().finally(() => primed.reader.close());
  record.runs++;
  if (primed.hit) record.primedHits++;
  if (direct !== primed.direct) record.changed++;
  if (proxied !== direct) record.stale.push(`through sidecache: ${proxied}; MariaDB: ${direct}`);
}

async function readSidecacheCache(proxy: RunningProxy): Promise<{ hits: number; misses: number; bypass: number }> {
  const samples = await scrape(proxy.adminPort);
  const mysql = { protocol: 'mysql' };
  return {
    hits: sumOf(samples, 'sidecache_cache_hits_total', mysql),
    misses: sumOf(samples, 'sidecache_cache_misses_total', mysql),
    bypass: sumOf(samples, 'sidecache_cache_bypass_total', mysql),
  };
}

async function measure(bench: Bench, workload: MysqlWorkload, target: MysqlTargetId, seconds: number): Promise<MysqlMeasuredRun> {
  const run = { target: bench.endpoint(target, workload.table), test: workload.test, tableSize: tableRows(workload.table), args: [...workload.args], threads: bench.options.threads };
  if (target === 'qcache') {
    const refused = await bench.enableQueryCache();
    if (refused) throw new Error(refused);
  }
  try {
    if (target === 'qcache' && workload.kind === 'hot') await runSysbench({ ...run, seconds: WARMUP_SECONDS });
    const pid = target === 'sidecache' ? bench.proxy!.child.pid! : target === 'forwarder' ? bench.forwarder!.child.pid! : undefined;
    const cpuBefore = pid === undefined ? undefined : await processCpuSeconds(pid);
    const cacheBefore = target === 'sidecache' ? await readSidecacheCache(bench.proxy!) : undefined;
    const qcacheBefore = target === 'qcache' ? await bench.server.queryCacheHits() : undefined;
    const { result, hop } = await observeHop(bench.hop, LOADED_PING_INTERVAL_MS, () => runSysbench({ ...run, seconds }));
    const qcacheAfter = target === 'qcache' ? await bench.server.queryCacheHits() : undefined;
    const cacheAfter = target === 'sidecache' ? await readSidecacheCache(bench.proxy!) : undefined;
    const cpuAfter = pid === undefined ? undefined : await processCpuSeconds(pid);
    return {
      ...result,
      relayCpuSeconds: cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore,
      cache: cacheBefore && cacheAfter
        ? { hits: cacheAfter.hits - cacheBefore.hits, misses: cacheAfter.misses - cacheBefore.misses, bypass: cacheAfter.bypass - cacheBefore.bypass }
        : undefined,
      queryCacheHits: qcacheBefore === undefined || qcacheAfter === undefined ? undefined : qcacheAfter - qcacheBefore,
      hop,
    };
  } catch (err) {
    if (err instanceof SysbenchError && target === 'sidecache') {
      err.message += `\n--- sidecache output (last 4000 chars) ---\n${bench.proxy!.output().slice(-4000)}`;
    }
    throw err;
  } finally {
    if (target === 'qcache') await bench.restoreQueryCache();
  }
}

/**
 * measure(), repeated when sysbench stopped on a deadlock (the server's doing, as likely direct as
 * through a proxy), with the repeat noted; any other error fails the bench.
 */
async function measureRetryingDeadlocks(bench: Bench, workload: MysqlWorkload, target: MysqlTargetId, seconds: number): Promise<MysqlMeasuredRun> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await measure(bench, workload, target, seconds);
    } catch (err) {
      if (!stoppedOnDeadlock(err) || attempt >= DEADLOCK_RETRIES) throw err;
      bench.notes.push(`note: a ${workload.label} run against ${target} stopped on a deadlock (MariaDB error 1213) and was repeated`);
      console.log(`  ${workload.label.padEnd(26)} ${target.padEnd(9)} stopped on a deadlock (1213), repeating the run`);
    }
  }
}

/** Other work competing for the CPUs skews the ratios; say so before measuring rather than after. Returns the load. */
function warnIfBusy(): number {
  const load = loadavg()[0]!;
  if (load >= 1) {
    console.log(`bench-mysql: warning: the machine is busy before the bench starts (1-minute load average ${load.toFixed(1)} on ${cpus().length} CPUs); ratios may be skewed`);
  }
  return load;
}

/** What the run started from: the machine's load and, with --rtt, the hop's idle round trip. */
interface RunContext {
  load: number;
  idleRtt: RttSummary | undefined;
}

/** Prints every table, check and goal; false when the freshness check failed. */
async function printResults(bench: Bench, active: MysqlTargetId[], cells: MysqlCell[], freshness: FreshnessRecord, perRunSeconds: number, context: RunContext): Promise<boolean> {
  const { options } = bench;
  const labels = options.workloads.map((w) => w.label);
  console.log(`\nresults (best of ${options.rounds} runs; ratio = tps / direct tps; latency avg/p95 from sysbench)`);
  console.log(formatMysqlResults(labels, active, cells));
  console.log('\ncaches during the measured runs (sidecache: its /metrics, protocol="mysql", warm-ups excluded; MariaDB: Qcache_hits growth in the qcache runs)');
  console.log(formatMysqlCache(labels, cells));
  if (bench.hop) {
    const hop = { plan: bench.hop.plan, idleRtt: context.idleRtt, lateness: await bench.hop.lateness(), sampleIntervalMs: LOADED_PING_INTERVAL_MS };
    console.log(`\n${formatHopSection(hop, labels, active, cells)}`);
  }
  for (const note of bench.notes) console.log(note);
  for (const w of options.workloads) {
    const qcache = cells.find((c) => c.workload === w.label && c.target === 'qcache');
    if (w.kind === 'hot' && qcache?.runs.some((r) => r.queryCacheHits === 0)) {
      console.log(`note: MariaDB's query cache served no hits in a "${w.label}" run: its column measured the server without a cache`);
    }
  }
  const fresh = printFreshness(freshness);
  const floor = formatMysqlFloor(labels, cells);
  if (floor !== undefined) console.log(`\n${floor}`);
  console.log(`\n${bench.hop
    ? formatMysqlGoals(evaluateMysqlHopGoals(options.workloads, cells), `goals (issue 17 item 1 for MySQL, set for ~1 ms RTT; this run: ${formatRtt(context.idleRtt)} idle):`)
    : formatMysqlGoals(evaluateMysqlGoals(options.workloads, cells))}`);
  const cpuGoals = evaluateMysqlCpuGoals(options.workloads, cells);
  if (cpuGoals.length > 0) console.log(`\n${formatMysqlGoals(cpuGoals, 'goals (issue 17 item 6, CPU over all runs: a statement inside a transaction costs little more than relaying it):')}`);
  console.log(`machine: 1-minute load average ${context.load.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end, ${cpus().length} CPUs`);
  const where = bench.hop
    ? `a private mariadbd in namespace ${bench.hop.plan.namespace}, reached by every target through the delay relay`
    : 'the shared MariaDB on 127.0.0.1:3306';
  console.log(`
how measured: sysbench --threads=${options.threads} --time=${perRunSeconds} --mysql-ignore-errors=none (any error fails the bench) against each
target in turn; the server: ${where}.
Hot point selects: oltp_point_select on a table of its own with ${HOT_ROWS} rows (sysbench draws ids uniformly over
--table-size, so the hot key range is a small table), after a ${WARMUP_SECONDS} s warm-up per target; --db-ps-mode=auto uses server-side
prepared statements, =disable the text protocol. oltp_read_write on ${FULL_ROWS} rows. qcache: direct to MariaDB after
SET GLOBAL query_cache_size = ${QUERY_CACHE_BYTES}, query_cache_type = ON (and its own warm-up), restored right after each run.
forwarder: bench/forwarder.ts, a process that copies bytes between each client and its own MariaDB connection and nothing else.`);
  return fresh;
}

function printFreshness(record: FreshnessRecord): boolean {
  if (record.runs === 0) return true;
  console.log('\nreads through sidecache after oltp_read_write (the table fingerprint COUNT/SUM(k)/BIT_XOR(CRC32(row)) read through sidecache until cached before each run, compared with MariaDB after it):');
  console.log(`  primed read was a hit in ${record.primedHits} of ${record.runs} runs; the run changed the table in ${record.changed} of ${record.runs}`);
  if (record.primedHits < record.runs) console.log('  note: a primed read was not a hit, so that run did not test invalidation of a cached entry');
  if (record.stale.length === 0) {
    console.log('  every read through sidecache matches MariaDB');
    return true;
  }
  console.log(`  FAILED: ${record.stale.length} stale reads:\n    ${record.stale.join('\n    ')}`);
  return false;
}

process.exitCode = await main();
