// `make bench-cdc` (node dist/bench/cdc-run.js [--seconds 30] [--protocols postgres,mysql]):
// how far behind the database a change stream keeps sidecache, and what following it costs.
//
// PostgreSQL: pgbench TPC-B runs straight against a private cluster (wal_level=logical) at full
// speed while sidecache follows it with --pg-cdc; MariaDB: sysbench oltp_write_only straight against
// a private mariadbd with a ROW binlog, sidecache following with --mysql-cdc. Reported: the
// commit-to-invalidation lag (sidecache_cdc_lag_seconds over the run: PostgreSQL stamps every commit,
// the MySQL side probes the binlog position twice a second), the stream's messages, and sidecache's
// CPU per decoded change (its CPU during the run, less its idle CPU, over the messages decoded).
// The goal: lag p99 < 50 ms. --rate N caps the load at N transactions a second (pgbench -R,
// sysbench --rate): on a machine whose cores the load saturates, the walsender waits for a CPU and
// the tail of the lag is that wait; a capped run shows the stream's own lag. The verdicts are a
// measurement; errors exit 1.
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startLogicalCluster, waitForStream } from '../e2e/support/cdc.js';
import { startMariadb } from '../e2e/support/mariadb-server.js';
import { scrape } from '../e2e/support/metrics.js';
import { spawnSidecache, type RunningProxy } from '../e2e/support/sidecache.js';
import { lagSummary, streamDelta, streamReadingOf, type LagSummary, type StreamReading } from './cdc-metrics.js';
import { positiveInt, UsageError } from './options.js';
import { initPgbench, runPgbench } from './pgbench.js';
import { processCpuSeconds } from './process-cpu.js';
import { prepareSysbench, runSysbench, stoppedOnDeadlock } from './mysql-sysbench.js';

const PROTOCOLS = ['postgres', 'mysql'] as const;
type Protocol = (typeof PROTOCOLS)[number];
const GOAL_P99_MS = 50;
const IDLE_SECONDS = 5;
const CLIENTS = 8;

interface Figures {
  protocol: Protocol;
  load: string;
  tps: number;
  seconds: number;
  stream: StreamReading;
  lag: LagSummary;
  /** sidecache's CPU during the run beyond its idle CPU, in µs per decoded message. */
  cpuPerEventUs: number;
  cpuPercent: number;
}

async function main(argv: string[]): Promise<number> {
  let seconds: number;
  let protocols: Protocol[];
  let rate: number | null;
  try {
    const { values } = parseArgs({ args: argv, options: { seconds: { type: 'string' }, protocols: { type: 'string' }, rate: { type: 'string' } }, strict: true });
    seconds = values.seconds === undefined ? 30 : positiveInt('--seconds', values.seconds);
    rate = values.rate === undefined ? null : positiveInt('--rate', values.rate);
    protocols = values.protocols === undefined ? [...PROTOCOLS] : values.protocols.split(',').map((p) => {
      if (!PROTOCOLS.includes(p.trim() as Protocol)) throw new UsageError(`unknown protocol "${p}"`);
      return p.trim() as Protocol;
    });
  } catch (err) {
    if (!(err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))) throw err;
    console.error(`${(err as Error).message}\nusage: cdc-run.js [--seconds N] [--protocols postgres,mysql] [--rate TPS]`);
    return 2;
  }
  const results: Figures[] = [];
  for (const protocol of protocols) {
    console.log(`bench-cdc ${protocol}: starting a private server ...`);
    results.push(protocol === 'postgres' ? await benchPostgres(seconds, rate) : await benchMysql(seconds, rate));
  }
  console.log('');
  console.log('| database, load straight at it | tps | changes decoded | lag p50 | lag p99 (samples) | goal p99 < 50 ms | sidecache CPU per change |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of results) console.log(row(r));
  for (const r of results) console.log(`${r.protocol} lag: ${shape(r.stream)}`);
  return 0;
}

/** The share of lag samples at or under a few bounds: where the tail starts. */
function shape(r: StreamReading): string {
  const total = r.lagBuckets.at(-1)?.count ?? 0;
  if (total === 0) return 'no samples';
  return [0.001, 0.005, 0.01, 0.05, 0.1, 0.5].map((le) => {
    const under = r.lagBuckets.find((b) => b.le === le)?.count ?? 0;
    return `<= ${le * 1000} ms ${((under / total) * 100).toFixed(1)}%`;
  }).join(', ');
}

function ms(q: { seconds: number; lower: number; upper: number } | undefined): string {
  return q === undefined ? '–' : `${(q.seconds * 1000).toFixed(1)} ms`;
}

function row(r: Figures): string {
  const p99 = r.lag.p99 === undefined ? undefined : r.lag.p99.seconds * 1000;
  const verdict = p99 === undefined ? 'no samples' : p99 < GOAL_P99_MS ? 'PASS' : 'MISS';
  const max = r.lag.maxUpperSeconds === undefined ? '' : `, max <= ${Number.isFinite(r.lag.maxUpperSeconds) ? `${r.lag.maxUpperSeconds * 1000} ms` : 'above 60 s'}`;
  return `| ${r.protocol}, ${r.load} | ${r.tps.toFixed(0)} | ${r.stream.events} (${(r.stream.events / r.seconds).toFixed(0)}/s), ${r.stream.invalidations} invalidations `
    + `| ${ms(r.lag.p50)} | ${ms(r.lag.p99)} (${r.lag.samples}${max}) | ${verdict} | ${r.cpuPerEventUs.toFixed(1)} µs (${r.cpuPercent.toFixed(0)}% of a core) |`;
}

/** Runs `load` and measures the stream and the proxy's CPU around it. */
async function measure(proxy: RunningProxy, protocol: Protocol, database: string, load: () => Promise<number>): Promise<Omit<Figures, 'protocol' | 'load'>> {
  const pid = proxy.child.pid!;
  const idle0 = await processCpuSeconds(pid);
  await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
  const idleRate = ((await processCpuSeconds(pid))! - idle0!) / IDLE_SECONDS;
  const before = streamReadingOf(await scrape(proxy.adminPort), protocol, database);
  const cpu0 = (await processCpuSeconds(pid))!;
  const started = performance.now();
  const tps = await load();
  const elapsed = (performance.now() - started) / 1000;
  const cpu1 = (await processCpuSeconds(pid))!;
  const stream = streamDelta(streamReadingOf(await scrape(proxy.adminPort), protocol, database), before);
  const busy = Math.max(0, cpu1 - cpu0 - idleRate * elapsed);
  return {
    tps,
    seconds: elapsed,
    stream,
    lag: lagSummary(stream),
    cpuPerEventUs: stream.events === 0 ? 0 : (busy / stream.events) * 1e6,
    cpuPercent: ((cpu1 - cpu0) / elapsed) * 100,
  };
}

async function benchPostgres(seconds: number, rate: number | null): Promise<Figures> {
  const cluster = await startLogicalCluster({ settings: { shared_buffers: '128MB', max_connections: 50 } });
  let proxy: RunningProxy | null = null;
  try {
    await cluster.query('CREATE DATABASE bench');
    const target = { host: cluster.host, port: cluster.port, user: 'postgres', database: 'bench' };
    await initPgbench(target, 10, 300_000);
    // pgbench_history has no primary key (TPC-B only inserts into it): sidecache would refuse to
    // create a publication that makes its updates fail, so the bench, as its DBA, creates it.
    const c = new pg.Client(target);
    await c.connect();
    await c.query('CREATE PUBLICATION sidecache FOR ALL TABLES');
    await c.end();
    proxy = await spawnSidecache(['--pg-upstream', `postgres://127.0.0.1:${cluster.port}`, '--pg-listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0',
      '--pg-cdc', `postgres://postgres@127.0.0.1:${cluster.port}`, '--log-level', 'warn']);
    const through = new pg.Client({ ...target, port: proxy.pgPort });
    await through.connect();
    await through.query('SELECT bid FROM pgbench_branches LIMIT 1'); // the first read starts the stream
    await through.end();
    await waitForStream(proxy.adminPort, 'postgres', 'bench', 'up');
    const figures = await measure(proxy, 'postgres', 'bench', async () => {
      const limit = rate === null ? [] : ['-R', String(rate)];
      const r = await runPgbench({ target, args: ['-n', '-M', 'prepared', '-c', String(CLIENTS), '-j', '2', '-T', String(seconds), ...limit], timeoutMs: (seconds + 60) * 1000 });
      return r.tps;
    });
    return { protocol: 'postgres', load: `pgbench TPC-B -M prepared, ${CLIENTS} clients${rate === null ? '' : `, -R ${rate}`}`, ...figures };
  } finally {
    await proxy?.stop();
    await cluster.stop();
  }
}

async function benchMysql(seconds: number, rate: number | null): Promise<Figures> {
  const server = await startMariadb({ args: ['--innodb-buffer-pool-size=256M', '--max-connections=100'] });
  let proxy: RunningProxy | null = null;
  try {
    await server.query('CREATE DATABASE sbtest');
    const target = { host: server.host, port: server.port, user: 'root', database: 'sbtest' };
    await prepareSysbench(target, 100_000);
    proxy = await spawnSidecache(['--mysql-upstream', server.url, '--mysql-listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0',
      '--mysql-cdc', server.url, '--log-level', 'warn']);
    await waitForStream(proxy.adminPort, 'mysql', '*', 'up');
    const figures = await measure(proxy, 'mysql', '*', async () => {
      // oltp_write_only's transactions deadlock now and then on their own: run again for the time left.
      const deadline = performance.now() + seconds * 1000;
      let transactions = 0;
      for (let left = seconds; left >= 1; left = Math.floor((deadline - performance.now()) / 1000)) {
        try {
          const limit = rate === null ? [] : [`--rate=${rate}`];
          transactions += (await runSysbench({ target, test: 'oltp_write_only', tableSize: 100_000, args: limit, threads: CLIENTS, seconds: left })).transactions;
        } catch (err) {
          if (!stoppedOnDeadlock(err)) throw err;
        }
      }
      return transactions / seconds;
    });
    return { protocol: 'mysql', load: `sysbench oltp_write_only, ${CLIENTS} threads${rate === null ? '' : `, --rate ${rate}`}`, ...figures };
  } finally {
    await proxy?.stop();
    await server.stop();
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code), (err: unknown) => {
  console.error(`bench-cdc: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  process.exit(1);
});
