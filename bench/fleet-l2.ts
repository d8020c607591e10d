// `make bench-l2` (node dist/bench/fleet-l2.js; also the second half of `make bench-fleet`): the
// fleet's second tier (--l2 on, fleet/l2.ts) measured against the database and against Redis.
//
// 1. What one read costs, by path: straight at the database; through a sidecache whose own memory
//    holds it (an L1 hit); through a sidecache whose memory misses and whose second tier in Redis
//    holds it (an L2 hit); and a bare GET of the very bytes that L2 hit reads (the tier's entry
//    keys) from Node with ioredis, the client sidecache uses. Client-observed round trips, p50/p99,
//    reads/s, each with its ratio to direct, at each concurrency of --clients.
//    How every read of the L2 target is an L2 hit: proxy A (memory large) reads every key once,
//    which fills its memory and Redis; proxy B has a memory budget of a few entries
//    (--cache-max-bytes TINY_L1) and the reads cycle through all keys in order, so the key read has
//    always been evicted from B's memory since its last read (its reuse distance is the key count)
//    and B asks Redis. An L2 hit is then stored in B's memory (the path a real L2 hit takes) and
//    evicted again. Counted, not assumed: B's sidecache_l2_hits_total against the reads, and its
//    misses (reads that went to the database), are printed for every run.
// 2. A new proxy's first minute: a warm fleet (proxy A has served a Zipf workload for a while, its
//    fills kept in Redis), then a new proxy joins, without and then with --l2 on, and serves the
//    same Zipf sequence at the same rate; its hit ratio per time bucket and overall, how much came
//    from Redis, and the reads the database executed for it (its misses; direct, every request is one).
// Every proxy runs with --cache-ttl LONG_TTL so nothing expires during the bench: the comparison is
// of where a new proxy's entries come from, not of TTL churn.
// A measurement: exits 0 whatever the figures, 1 on errors.
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { waitForBus } from '../e2e/support/fleet.js';
import { scrape, sumOf } from '../e2e/support/metrics.js';
import { startRedis, type RedisServer } from '../e2e/support/redis-server.js';
import { DIRECT_MYSQL, DIRECT_MYSQL_URL, startProxy, type RunningProxy } from '../e2e/support/sidecache.js';
import type { RedisConnection } from '../fleet/redis-connection.js';
import { withClient } from './bench-database.js';
import {
  TIER_TARGETS, formatTierTable, formatWarmTable, summarizeLatencies, totalOf,
  type TierRun, type TierTarget, type WarmBucket, type WarmRun,
} from './fleet-l2-report.js';
import { positiveInt, UsageError } from './options.js';
import { processCpuSeconds } from './process-cpu.js';
import { closedLoop, connectRedis, mysqlReader, pacedZipf, pgReader, readAll, redisReader, sleep, type OpenReader } from './read-lanes.js';

type Protocol = 'postgres' | 'mysql';
const PG_SERVER = { host: '127.0.0.1', port: 5432, user: 'postgres' };
/** A memory budget of a handful of ~1 KiB entries (store.ts charges 384 bytes each on top). */
const TINY_L1 = '16384';
const LONG_TTL = '10m';
/** The tier part's statement and the first-minute part's: different texts, so different keys. */
const TIER_SQL = 'SELECT v FROM items WHERE id = $1';
const WARM_SQL = 'SELECT id, v FROM items WHERE id = $1';
/** Lanes of the fleet's warm-up and of each new proxy's first minute. */
const WARM_LANES = 4;
/** YCSB's default skew. */
const ZIPF_EXPONENT = 0.99;

const USAGE = `usage: node dist/bench/fleet-l2.js [options]
  --seconds N          measured seconds per target and concurrency, split over the rounds (default 6)
  --rounds R           alternating runs per target (default 2)
  --clients LIST       concurrencies, comma-separated (default 1,8)
  --keys N             keys the tier part cycles through (default 10000)
  --value-bytes N      bytes of the text column each read returns (default 200)
  --protocols LIST     postgres, mysql (default postgres,mysql); the first-minute part runs on postgres
  --minute-seconds N   how long each new proxy is watched (default 30; 60 for the whole first minute)
  --bucket-seconds N   the hit ratio is printed per bucket of this length (default 10)
  --fleet-seconds N    how long the fleet serves the workload before a proxy joins (default 30)
  --rate N             requests per second, fleet and new proxy alike (default 1000)
  --zipf-keys N        rows of the table, keys of the Zipf workload (default 100000)
  --parts LIST         tier, minute (default both)`;

interface Options {
  seconds: number;
  rounds: number;
  clients: number[];
  keys: number;
  valueBytes: number;
  protocols: Protocol[];
  minuteSeconds: number;
  bucketSeconds: number;
  fleetSeconds: number;
  rate: number;
  zipfKeys: number;
  parts: Set<'tier' | 'minute'>;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string', default: '6' }, rounds: { type: 'string', default: '2' }, clients: { type: 'string', default: '1,8' },
      keys: { type: 'string', default: '10000' }, 'value-bytes': { type: 'string', default: '200' },
      protocols: { type: 'string', default: 'postgres,mysql' }, 'minute-seconds': { type: 'string', default: '30' },
      'bucket-seconds': { type: 'string', default: '10' }, 'fleet-seconds': { type: 'string', default: '30' },
      rate: { type: 'string', default: '1000' }, 'zipf-keys': { type: 'string', default: '100000' },
      parts: { type: 'string', default: 'tier,minute' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return undefined;
  const list = <T extends string>(flag: string, text: string, all: readonly T[]): T[] => text.split(',').map((x) => {
    if (!all.includes(x.trim() as T)) throw new UsageError(`${flag}: unknown "${x}"`);
    return x.trim() as T;
  });
  const options: Options = {
    seconds: positiveInt('--seconds', values.seconds),
    rounds: positiveInt('--rounds', values.rounds),
    clients: values.clients.split(',').map((c) => positiveInt('--clients', c.trim())),
    keys: positiveInt('--keys', values.keys),
    valueBytes: positiveInt('--value-bytes', values['value-bytes']),
    protocols: list('--protocols', values.protocols, ['postgres', 'mysql'] as const),
    minuteSeconds: positiveInt('--minute-seconds', values['minute-seconds']),
    bucketSeconds: positiveInt('--bucket-seconds', values['bucket-seconds']),
    fleetSeconds: positiveInt('--fleet-seconds', values['fleet-seconds']),
    rate: positiveInt('--rate', values.rate),
    zipfKeys: positiveInt('--zipf-keys', values['zipf-keys']),
    parts: new Set(list('--parts', values.parts, ['tier', 'minute'] as const)),
  };
  if (options.zipfKeys < options.keys) throw new UsageError('--zipf-keys is the table\'s size: it must be at least --keys');
  return options;
}

/** What a proxy counted, cumulative: its memory's hits and misses (an L2 hit counts as a hit) and the tier's. */
interface ProxyCounts {
  hits: number;
  misses: number;
  bypass: number;
  l2Hits: number;
  l2Misses: number;
  l2Writes: number;
}

async function proxyCounts(proxy: RunningProxy, protocol: Protocol): Promise<ProxyCounts> {
  const samples = await scrape(proxy.adminPort);
  const p = { protocol };
  return {
    hits: sumOf(samples, 'sidecache_cache_hits_total', p),
    misses: sumOf(samples, 'sidecache_cache_misses_total', p),
    bypass: sumOf(samples, 'sidecache_cache_bypass_total', p),
    // The tier's counters are the proxy's, over both protocols; one protocol is read at a time here.
    l2Hits: sumOf(samples, 'sidecache_l2_hits_total'),
    l2Misses: sumOf(samples, 'sidecache_l2_misses_total'),
    l2Writes: sumOf(samples, 'sidecache_l2_writes_total'),
  };
}

function minus(a: ProxyCounts, b: ProxyCounts): ProxyCounts {
  return { hits: a.hits - b.hits, misses: a.misses - b.misses, bypass: a.bypass - b.bypass, l2Hits: a.l2Hits - b.l2Hits, l2Misses: a.l2Misses - b.l2Misses, l2Writes: a.l2Writes - b.l2Writes };
}

/** The tier's entry keys of `protocol` in Redis; waits (bounded) until there are at least `count`. */
async function tierKeys(redis: RedisConnection, protocol: Protocol, count: number): Promise<string[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.call('SCAN', cursor, 'MATCH', `sidecache:l2:${protocol}:*`, 'COUNT', 1000) as [string, string[]];
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    if (keys.length >= count) return keys;
    if (Date.now() > deadline) throw new Error(`only ${keys.length} of ${count} ${protocol} entries reached Redis`);
    await sleep(100);
  }
}

/** The number of the tier's entries of `protocol` once it stopped changing (the fills' writes are not awaited). */
async function settledKeyCount(redis: RedisConnection, protocol: Protocol): Promise<number> {
  let last = -1;
  for (let i = 0; i < 100; i++) {
    await sleep(200);
    const count = (await tierKeys(redis, protocol, 0)).length;
    if (count === last) return count;
    last = count;
  }
  throw new Error(`the ${protocol} entries in Redis kept changing for 20 s`);
}

interface Fleet {
  redis: RedisServer;
  /** Commands of the bench's own (SCAN, STRLEN). */
  admin: RedisConnection;
  proxies: RunningProxy[];
  database: string;
  options: Options;
}

function fleetArgs(fleet: Fleet, l2: boolean, extra: string[] = []): string[] {
  return ['--fleet-lease', '1s', '--redis', `redis://127.0.0.1:${fleet.redis.port}`, ...(l2 ? ['--l2', 'on'] : []), '--cache-ttl', LONG_TTL, ...extra];
}

async function startFleetProxy(fleet: Fleet, l2: boolean, extra: string[] = []): Promise<RunningProxy> {
  const mysqlSide = fleet.options.protocols.includes('mysql') ? { mysqlUpstream: DIRECT_MYSQL_URL } : {};
  const proxy = await startProxy({ ...mysqlSide, args: fleetArgs(fleet, l2, extra) });
  fleet.proxies.push(proxy);
  await waitForBus([proxy]);
  return proxy;
}

function readerFor(protocol: Protocol, port: number, database: string): OpenReader {
  return protocol === 'postgres' ? pgReader({ ...PG_SERVER, port, database }, 'tier', TIER_SQL) : mysqlReader(port, database, TIER_SQL.replace('$1', '?'));
}

/** The first-minute part's Zipf reads at the bench's rate; `sample` at the end of each bucket. */
function zipfReads(open: OpenReader, options: Options, seed: number, seconds: number, bucketSeconds: number, sample: (endSeconds: number, reads: number) => Promise<void>): Promise<number[]> {
  return pacedZipf(open, { lanes: WARM_LANES, rate: options.rate, seconds, keys: options.zipfKeys, exponent: ZIPF_EXPONENT, seed, bucketSeconds, sample });
}

/** Part 1 for one protocol: direct, L1 hit, L2 hit and Redis GET, alternating, each count checked. */
async function measureTier(fleet: Fleet, protocol: Protocol, a: RunningProxy, b: RunningProxy): Promise<TierRun[]> {
  const { options, database } = fleet;
  const portOf = (p: RunningProxy): number => (protocol === 'postgres' ? p.pgPort : p.mysqlPort);
  const directPort = protocol === 'postgres' ? PG_SERVER.port : DIRECT_MYSQL.port;
  // A fills its memory and the tier with every key; B learns the statement (identity, probe).
  const aBefore = await proxyCounts(a, protocol);
  await readAll(readerFor(protocol, portOf(a), database), 8, options.keys);
  const filled = minus(await proxyCounts(a, protocol), aBefore);
  const keys = await tierKeys(fleet.admin, protocol, options.keys);
  const entryBytes = await fleet.admin.call('STRLEN', keys[0]!) as number;
  console.log(`${protocol}: proxy A filled ${filled.misses} keys (kept in Redis: ${filled.l2Writes}), an entry is ${entryBytes} bytes in Redis`);
  await readAll(readerFor(protocol, portOf(b), database), 1, 50);

  const opens: Record<TierTarget, OpenReader> = {
    direct: readerFor(protocol, directPort, database),
    'l1-hit': readerFor(protocol, portOf(a), database),
    'l2-hit': readerFor(protocol, portOf(b), database),
    'redis-get': redisReader(fleet.redis.port, keys),
  };
  const cursors = new Map<TierTarget, number>(TIER_TARGETS.map((t) => [t, 0]));
  const runs: TierRun[] = [];
  const perRun = options.seconds / options.rounds;
  for (const clients of options.clients) {
    for (let round = 0; round < options.rounds; round++) {
      const order = round % 2 === 0 ? TIER_TARGETS : [...TIER_TARGETS].reverse();
      for (const target of order) {
        const watched = target === 'l1-hit' ? a : target === 'l2-hit' ? b : undefined;
        const before = watched && await proxyCounts(watched, protocol);
        const cpuBefore = watched && await processCpuSeconds(watched.child.pid!);
        // In key order, continuing where the target's last run stopped: B's memory never holds the next key.
        const nextId = (): number => {
          const n = cursors.get(target)!;
          cursors.set(target, n + 1);
          return (n % options.keys) + 1;
        };
        const run = await closedLoop(opens[target], clients, perRun, nextId);
        const cpuAfter = watched && await processCpuSeconds(watched.child.pid!);
        const proxyCpuUs = cpuBefore === undefined || cpuAfter === undefined ? undefined : (cpuAfter - cpuBefore) / run.reads * 1e6;
        runs.push({ protocol, target, clients, ...run, proxyCpuUs });
        const latency = summarizeLatencies(run.latenciesMs)!;
        let counted = '';
        if (watched && before) {
          const d = minus(await proxyCounts(watched, protocol), before);
          counted = target === 'l1-hit'
            ? `; A: ${d.hits} hits, ${d.misses} misses, CPU ${proxyCpuUs?.toFixed(1)} µs/read`
            : `; B: ${d.l2Hits} L2 hits (${(d.l2Hits / run.reads * 100).toFixed(1)}% of reads), ${d.hits - d.l2Hits} L1 hits, ${d.misses} misses (database reads), CPU ${proxyCpuUs?.toFixed(1)} µs/read`;
        }
        console.log(`  ${protocol} ${clients} clients ${target.padEnd(9)} round ${round + 1}: ${(run.reads / run.seconds).toFixed(0)} reads/s, p50 ${latency.p50Ms.toFixed(3)} ms, p99 ${latency.p99Ms.toFixed(3)} ms${counted}`);
      }
    }
  }
  return runs;
}

/** Part 2: a new proxy's first minute in a warm fleet, without and with the second tier. */
async function measureFirstMinute(fleet: Fleet, a: RunningProxy): Promise<WarmRun[]> {
  const { options, database } = fleet;
  const open = (p: RunningProxy): OpenReader => pgReader({ ...PG_SERVER, port: p.pgPort, database }, 'warm', WARM_SQL);
  const aBefore = await proxyCounts(a, 'postgres');
  // The fleet's own traffic: the same distribution, another sequence (other seeds).
  await zipfReads(open(a), options, 1000, options.fleetSeconds, options.fleetSeconds, async () => {});
  const warmed = minus(await proxyCounts(a, 'postgres'), aBefore);
  // Two lanes missing the same key at once both fill it, so the writes are not a count of keys: wait until Redis holds still.
  const kept = await settledKeyCount(fleet.admin, 'postgres');
  console.log(`\nfleet warm-up: proxy A served ${warmed.hits + warmed.misses} Zipf reads in ${options.fleetSeconds} s, hit ratio ${(warmed.hits / (warmed.hits + warmed.misses) * 100).toFixed(1)}%, ${warmed.misses} fills kept in Redis (${kept} postgres entries there now)`);
  const runs: WarmRun[] = [];
  // Without the tier first: a proxy with it writes its own fills to Redis too.
  for (const l2 of [false, true]) {
    const proxy = await startFleetProxy(fleet, l2);
    const label = l2 ? 'with --l2 on' : 'without L2';
    const buckets: WarmBucket[] = [];
    const start = await proxyCounts(proxy, 'postgres');
    let last = start;
    let lastRequests = 0;
    const latenciesMs = await zipfReads(open(proxy), options, 1, options.minuteSeconds, options.bucketSeconds, async (endSeconds, requests) => {
      const now = await proxyCounts(proxy, 'postgres');
      const d = minus(now, last);
      buckets.push({ endSeconds, requests: requests - lastRequests, hits: d.hits, misses: d.misses, l2Hits: l2 ? d.l2Hits : 0 });
      last = now;
      lastRequests = requests;
    });
    const total = minus(last, start);
    runs.push({ label, buckets, databaseReads: total.misses + total.bypass, latency: summarizeLatencies(latenciesMs) });
    const t = totalOf(buckets);
    console.log(`  new proxy ${label}: ${t.requests} reads in ${options.minuteSeconds} s, hit ratio ${(t.hits / (t.hits + t.misses) * 100).toFixed(1)}%, ${total.misses + total.bypass} database reads`);
    await proxy.stop();
    fleet.proxies.splice(fleet.proxies.indexOf(proxy), 1);
  }
  return runs;
}

async function createDatabases(options: Options, database: string): Promise<void> {
  const value = `repeat('x', ${options.valueBytes})`;
  if (options.protocols.includes('postgres') || options.parts.has('minute')) {
    await withClient({ ...PG_SERVER, database: 'postgres' }, (c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`));
    await withClient({ ...PG_SERVER, database }, (c) => c.query(`
      CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL);
      INSERT INTO items SELECT g, ${value} FROM generate_series(1, ${options.zipfKeys}) g;
      ANALYZE items`));
  }
  if (options.protocols.includes('mysql')) {
    const c = await mysql.createConnection({ ...DIRECT_MYSQL, database: undefined, multipleStatements: true });
    try {
      await c.query(`CREATE DATABASE \`${database}\`; USE \`${database}\`;
        CREATE TABLE items (id INT PRIMARY KEY, v TEXT NOT NULL);
        INSERT INTO items SELECT seq, REPEAT('x', ${options.valueBytes}) FROM seq_1_to_${options.keys}`);
    } finally {
      await c.end();
    }
  }
}

async function dropDatabases(database: string): Promise<void> {
  await withClient({ ...PG_SERVER, database: 'postgres' }, (c) => c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)} WITH (FORCE)`)).catch(() => {});
  const c = await mysql.createConnection({ ...DIRECT_MYSQL, database: undefined }).catch(() => null);
  await c?.query(`DROP DATABASE IF EXISTS \`${database}\``).catch(() => {});
  await c?.end();
}

async function main(): Promise<number> {
  let options: Options | undefined;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    console.error(`bench-l2: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (!options) {
    console.log(USAGE);
    return 0;
  }
  const database = `sidecache_bench_l2_${process.pid}`;
  const loadAtStart = loadavg()[0]!;
  let fleet: Fleet | undefined;
  try {
    await createDatabases(options, database);
    const redis = await startRedis();
    fleet = { redis, admin: await connectRedis(redis.port, 'bench-admin'), proxies: [], database, options };
    console.log(`bench-l2: a private redis-server on ${redis.port}; ${options.keys} keys of ${options.valueBytes}-byte values; load average ${loadAtStart.toFixed(1)} on ${cpus().length} CPUs`);
    const a = await startFleetProxy(fleet, true);
    if (options.parts.has('tier')) {
      const b = await startFleetProxy(fleet, true, ['--cache-max-bytes', TINY_L1]);
      const runs: TierRun[] = [];
      for (const protocol of options.protocols) runs.push(...await measureTier(fleet, protocol, a, b));
      console.log(`\none read by path (best of ${options.rounds} runs of ${(options.seconds / options.rounds).toFixed(1)} s; round trips seen by the client: node-postgres / mysql2 prepared, ioredis GET)`);
      console.log('  direct: the database; l1-hit: sidecache whose memory holds the key; l2-hit: sidecache whose memory misses, answered from Redis;');
      console.log('  redis-get: a bare GET of the same entries in the same Redis from Node');
      console.log(formatTierTable(runs));
    }
    if (options.parts.has('minute')) {
      const warm = await measureFirstMinute(fleet, a);
      console.log(`\na new proxy's first ${options.minuteSeconds} s in a warm fleet, PostgreSQL, Zipf(${ZIPF_EXPONENT}) over ${options.zipfKeys} keys at ${options.rate} reads/s (${WARM_LANES} clients)`);
      console.log(formatWarmTable(warm));
    }
    console.log(`\nmachine: 1-minute load average ${loadAtStart.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end, ${cpus().length} CPUs`);
    return 0;
  } catch (err) {
    console.error(`bench-l2: ${err instanceof Error ? err.message : String(err)}`);
    for (const proxy of fleet?.proxies ?? []) console.error(`--- proxy output (last 2000 chars) ---\n${proxy.output().slice(-2000)}`);
    return 1;
  } finally {
    await Promise.allSettled((fleet?.proxies ?? []).map((p) => p.stop()));
    fleet?.admin.disconnect();
    await fleet?.redis.stop();
    await dropDatabases(database);
  }
}

process.exitCode = await main();
