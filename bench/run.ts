// `make bench`: pgbench straight at PostgreSQL vs through sidecache (vs PgBouncer in session mode
// when installed), in one run, on a database of its own. Prints tps, ratios to direct, latency,
// the pass-through goal and a TPC-B consistency check. Below-goal numbers still exit 0: this is a
// measurement; errors (pgbench failures, lost transactions) exit 1.
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { startProxy, type RunningProxy } from '../e2e/support/sidecache.js';
import { BenchDatabase, sumsBalance, type TpcbSums } from './bench-database.js';
import { PgbenchError, runPgbench, type PgbenchTarget } from './pgbench.js';
import { findPgbouncer, startPgbouncer, type RunningPgbouncer } from './pgbouncer.js';
import { processCpuSeconds } from './process-cpu.js';
import { formatGoal, formatRelayCpuTable, formatResultsTable, type CellResult, type MeasuredRun, type TargetId } from './report.js';

const PG_SERVER = { host: '127.0.0.1', port: 5432, user: 'postgres' };

interface Workload {
  key: string;
  label: string;
  args: string[];
  /** Writes: checked for lost or doubled transactions after every run. */
  tpcb: boolean;
}

const WORKLOADS: Workload[] = [
  { key: 'select-simple', label: '-S simple', args: ['-S', '-M', 'simple'], tpcb: false },
  { key: 'select-extended', label: '-S extended', args: ['-S', '-M', 'extended'], tpcb: false },
  { key: 'select-prepared', label: '-S prepared', args: ['-S', '-M', 'prepared'], tpcb: false },
  { key: 'tpcb-simple', label: 'TPC-B simple', args: ['-M', 'simple'], tpcb: true },
  { key: 'tpcb-prepared', label: 'TPC-B prepared', args: ['-M', 'prepared'], tpcb: true },
];
const DEFAULT_WORKLOADS = ['select-simple', 'select-extended', 'select-prepared', 'tpcb-simple'];
const ALL_TARGETS: TargetId[] = ['direct', 'sidecache', 'pgbouncer'];
const WARMUP_SECONDS = 2;

const USAGE = `usage: node dist/bench/run.js [options]
  --seconds N      measured seconds per workload and target, split over the rounds (default 10, env BENCH_SECONDS)
  --rounds R       alternating runs per workload and target; the best is reported (default 2)
  --scale S        pgbench -i scale factor (default 10)
  --clients C      pgbench -c (default 8; -j is 2)
  --workloads LIST comma-separated, from: ${WORKLOADS.map((w) => w.key).join(', ')}
                   (default ${DEFAULT_WORKLOADS.join(',')})
  --targets LIST   comma-separated, from: ${ALL_TARGETS.join(', ')} (default all; pgbouncer only when installed)`;

class UsageError extends Error {
  override name = 'UsageError';
}

interface Options {
  seconds: number;
  rounds: number;
  scale: number;
  clients: number;
  workloads: Workload[];
  targets: TargetId[];
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
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return undefined;
  const workloads = values.workloads.split(',').map((key) => {
    const workload = WORKLOADS.find((w) => w.key === key.trim());
    if (!workload) throw new UsageError(`unknown workload "${key}"`);
    return workload;
  });
  const targets = values.targets.split(',').map((t) => {
    if (!ALL_TARGETS.includes(t.trim() as TargetId)) throw new UsageError(`unknown target "${t}"`);
    return t.trim() as TargetId;
  });
  if (!targets.includes('direct')) throw new UsageError('--targets must include direct: ratios are relative to it');
  return {
    seconds: positiveInt('--seconds', values.seconds ?? process.env['BENCH_SECONDS'] ?? '10'),
    rounds: positiveInt('--rounds', values.rounds),
    scale: positiveInt('--scale', values.scale),
    clients: positiveInt('--clients', values.clients),
    workloads,
    targets,
  };
}

function positiveInt(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, got "${text}"`);
  return n;
}

/** Per target: did every TPC-B run leave one history row per reported transaction and balanced sums? */
interface ConsistencyRecord {
  runs: number;
  problems: string[];
}

/** The running servers under test and how to reach each. */
class Targets {
  proxy: RunningProxy | undefined;
  pgbouncer: RunningPgbouncer | undefined;

  endpoint(target: TargetId, database: string): PgbenchTarget {
    const port = target === 'direct' ? PG_SERVER.port : target === 'sidecache' ? this.proxy!.pgPort : this.pgbouncer!.port;
    return { host: '127.0.0.1', port, user: PG_SERVER.user, database };
  }

  /** The relay process between pgbench and PostgreSQL, if any. */
  relayPid(target: TargetId): number | undefined {
    return target === 'sidecache' ? this.proxy!.child.pid : target === 'pgbouncer' ? this.pgbouncer!.pid : undefined;
  }

  async stop(): Promise<void> {
    await Promise.allSettled([this.proxy?.stop(), this.pgbouncer?.stop()]);
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
  warnIfBusy();
  const targets = new Targets();
  let db: BenchDatabase | undefined;
  let cleaning: Promise<void> | undefined;
  // Runs once, whether reached by SIGINT or by the end of main.
  const cleanup = (): Promise<void> => (cleaning ??= (async () => {
    await targets.stop();
    await db?.drop();
  })());
  let interrupted = false;
  process.once('SIGINT', () => {
    interrupted = true;
    console.error('bench: interrupted, cleaning up');
    void cleanup().finally(() => process.exit(130));
  });
  try {
    const active = await startTargets(options.targets, targets);
    const name = `sidecache_bench_${process.pid}`;
    console.log(`bench: pgbench -i -s ${options.scale} into database ${name} ...`);
    db = await BenchDatabase.create(PG_SERVER, name, options.scale);
    console.log(`bench: ${options.clients} clients, -j 2, ${options.rounds} alternating runs of ${perRunSeconds} s per workload and target`);
    for (const target of active) {
      await measure(targets, db, target, ['-S', '-M', 'simple'], options.clients, WARMUP_SECONDS);
    }
    const { cells, consistency } = await measureWorkloads(options, targets, db, active, perRunSeconds);
    const labels = options.workloads.map((w) => w.label);
    console.log(`\nresults (best of ${options.rounds} runs; latency avg from pgbench, p50 from a 2% sample)`);
    console.log(formatResultsTable(labels, active, cells));
    const relays = active.filter((t) => t !== 'direct');
    if (relays.length > 0) {
      console.log('\nrelay CPU per transaction (all runs; on 2 cores this CPU is taken from PostgreSQL and pgbench)');
      console.log(formatRelayCpuTable(labels, relays, cells));
    }
    if (options.targets.includes('pgbouncer') && !active.includes('pgbouncer')) {
      console.log('pgbouncer: not installed (`which pgbouncer` found nothing), column skipped');
    }
    const consistent = printConsistency(consistency);
    console.log(`\n${formatGoal(labels, cells)}`);
    return consistent ? 0 : 1;
  } catch (err) {
    // Ctrl-C reaches pgbench too, whose failure is then no news.
    if (!interrupted) console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    await cleanup();
  }
}

/** Every workload on every target, round after round in alternating target order. */
async function measureWorkloads(options: Options, targets: Targets, db: BenchDatabase, active: TargetId[], perRunSeconds: number):
  Promise<{ cells: CellResult[]; consistency: Map<TargetId, ConsistencyRecord> }> {
  const cells: CellResult[] = [];
  const consistency = new Map<TargetId, ConsistencyRecord>(active.map((t) => [t, { runs: 0, problems: [] }]));
  for (const workload of options.workloads) {
    for (let round = 0; round < options.rounds; round++) {
      // direct, sidecache, pgbouncer, then the reverse: slow drift (table bloat, other load) hits all alike.
      const order = round % 2 === 0 ? active : [...active].reverse();
      for (const target of order) {
        await db.prepareRun();
        const before = workload.tpcb ? await db.tpcbSums() : undefined;
        const run = await measure(targets, db, target, workload.args, options.clients, perRunSeconds);
        console.log(`  ${workload.label.padEnd(16)} ${target.padEnd(10)} round ${round + 1}/${options.rounds}: ${run.tps.toFixed(0)} tps`);
        let cell = cells.find((c) => c.workload === workload.label && c.target === target);
        if (!cell) cells.push((cell = { workload: workload.label, target, runs: [] }));
        cell.runs.push(run);
        if (before) checkTpcbRun(before, await db.tpcbSums(), run.transactions, consistency.get(target)!);
      }
    }
  }
  return { cells, consistency };
}

/** Other work competing for the CPUs skews the ratios; say so before measuring rather than after. */
function warnIfBusy(): void {
  const load = loadavg()[0]!;
  if (load >= 1) {
    console.log(`bench: warning: the machine is busy before the bench starts (1-minute load average ${load.toFixed(1)} on ${cpus().length} CPUs); ratios may be skewed`);
  }
}

async function startTargets(wanted: TargetId[], targets: Targets): Promise<TargetId[]> {
  const active: TargetId[] = ['direct'];
  if (wanted.includes('sidecache')) {
    targets.proxy = await startProxy({ pgUpstream: `postgres://${PG_SERVER.host}:${PG_SERVER.port}` });
    active.push('sidecache');
  }
  const binary = wanted.includes('pgbouncer') ? findPgbouncer() : undefined;
  if (binary) {
    targets.pgbouncer = await startPgbouncer(binary, PG_SERVER);
    active.push('pgbouncer');
  }
  return active;
}

async function measure(targets: Targets, db: BenchDatabase, target: TargetId, workloadArgs: string[], clients: number, seconds: number): Promise<MeasuredRun> {
  // -n: no pgbench vacuum, whose TRUNCATE of pgbench_history would break the consistency check.
  const args = [...workloadArgs, '-n', '-c', String(clients), '-j', '2', '-T', String(seconds)];
  const relay = targets.relayPid(target);
  try {
    const cpuBefore = relay === undefined ? undefined : await processCpuSeconds(relay);
    const run = await runPgbench({ target: targets.endpoint(target, db.target.database), args, timeoutMs: 60_000 + seconds * 2000 });
    const cpuAfter = relay === undefined ? undefined : await processCpuSeconds(relay);
    const relayCpuSeconds = cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore;
    return { ...run, relayCpuSeconds };
  } catch (err) {
    if (err instanceof PgbenchError && target === 'sidecache' && targets.proxy) {
      err.message += `\n--- sidecache output (last 4000 chars) ---\n${targets.proxy.output().slice(-4000)}`;
    }
    throw err;
  }
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

process.exitCode = await main();
