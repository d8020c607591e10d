// `make bench-stampede` (node dist/bench/stampede.js [--seconds 10] [--clients 200] [--write-every-ms 100]
// [--protocols postgres,mysql]): the stampede of issue 17 item 2. CLIENTS connections read one hot
// key through sidecache as fast as they can while a writer updates its row through sidecache every
// WRITE_EVERY ms, so the entry is dropped and every client misses at once after each write. Run with
// request coalescing off (--coalesce-wait 0) and on (the default), it counts how many times the
// database executed the read: PostgreSQL's pg_stat_statements on a private cluster, MariaDB's
// Com_select on a private server (nothing else talks to either). Reported per protocol and mode: the
// reads the clients completed, the database's executions of the read, executions per write, the
// coalesced requests and those that went to the database after waiting (by reason), the clients'
// read latency p50 / p99 and sidecache's miss p99. A measurement, no verdict; errors exit 1.
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { startCluster, type Cluster } from '../e2e/support/cluster.js';
import { startMariadb, type MariadbServer } from '../e2e/support/mariadb-server.js';
import { scrape, sumOf, type MetricSample } from '../e2e/support/metrics.js';
import { startProxy, type RunningProxy } from '../e2e/support/sidecache.js';
import { positiveInt, UsageError } from './options.js';
import { stampedeTable, type StampedeRow } from './stampede-report.js';

const PROTOCOLS = ['postgres', 'mysql'] as const;
type Protocol = (typeof PROTOCOLS)[number];
const READ = 'SELECT v FROM hot WHERE id = 1';
const WRITE = 'UPDATE hot SET v = v + 1 WHERE id = 1';

interface Options {
  seconds: number;
  clients: number;
  writeEveryMs: number;
  protocols: Protocol[];
}

/** One client connection, whichever protocol. */
interface Conn {
  query(sql: string): Promise<unknown>;
  end(): Promise<void>;
}

/** The database under the bench: how to reach it and how many times it executed the read. */
interface Database {
  protocol: Protocol;
  upstream: string;
  connect(port: number): Promise<Conn>;
  /** Executions of the read so far (since the start of the window: reset() first). */
  reset(): Promise<void>;
  executions(): Promise<number>;
  stop(): Promise<void>;
}

async function postgres(clients: number): Promise<Database> {
  const cluster: Cluster = await startCluster({ maxConnections: clients * 2 + 20, settings: { shared_preload_libraries: 'pg_stat_statements' } });
  const admin = async (sql: string): Promise<Record<string, unknown>[]> => {
    const c = new pg.Client({ host: cluster.host, port: cluster.port, user: 'postgres', database: 'postgres' });
    await c.connect();
    try {
      return (await c.query(sql)).rows;
    } finally {
      await c.end();
    }
  };
  await admin('CREATE EXTENSION pg_stat_statements');
  await admin('CREATE TABLE hot (id int PRIMARY KEY, v int NOT NULL); INSERT INTO hot VALUES (1, 0)');
  return {
    protocol: 'postgres',
    upstream: `postgres://${cluster.host}:${cluster.port}`,
    connect: async (port) => {
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
      await c.connect();
      return { query: (sql) => c.query(sql), end: () => c.end() };
    },
    reset: async () => void (await admin('SELECT pg_stat_statements_reset()')),
    executions: async () => {
      const rows = await admin(`SELECT coalesce(sum(calls), 0)::int AS n FROM pg_stat_statements WHERE query LIKE 'SELECT v FROM hot WHERE id = $1%'`);
      return Number(rows[0]!.n);
    },
    stop: () => cluster.stop(),
  };
}

async function mariadb(clients: number): Promise<Database> {
  const server: MariadbServer = await startMariadb({ binlog: false, args: [`--max-connections=${clients * 2 + 20}`] });
  await server.query('CREATE DATABASE bench');
  await server.query('CREATE TABLE bench.hot (id int PRIMARY KEY, v int NOT NULL) ENGINE=InnoDB');
  await server.query('INSERT INTO bench.hot VALUES (1, 0)');
  const comSelect = async (): Promise<number> => Number((await server.query<{ Value: string }>("SHOW GLOBAL STATUS LIKE 'Com_select'"))[0]!.Value);
  let base = 0;
  return {
    protocol: 'mysql',
    upstream: server.url,
    connect: async (port) => {
      const c = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root', database: 'bench' });
      return { query: (sql) => c.query(sql), end: () => c.end() };
    },
    // Com_select counts every SELECT of the server, its own status queries included: the bench's
    // two readings (one each end) are taken off.
    reset: async () => {
      base = await comSelect();
    },
    executions: async () => (await comSelect()) - base - 1,
    stop: () => server.stop(),
  };
}

function quantile(sorted: Float64Array, q: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function reasonCounts(samples: readonly MetricSample[], protocol: Protocol): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name === 'sidecache_coalesce_relayed_total' && s.labels.protocol === protocol) out.set(s.labels.reason!, s.value);
  }
  return out;
}

async function stats(proxy: RunningProxy): Promise<{ protocols: Record<string, { latencyMs: { miss: { p99Ms: number | null } } }> }> {
  const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/stats`);
  return await res.json() as { protocols: Record<string, { latencyMs: { miss: { p99Ms: number | null } } }> };
}

async function runMode(db: Database, opts: Options, coalescing: boolean): Promise<StampedeRow> {
  const protocol = db.protocol;
  // On: the default bound (docs/settings.md).
  const args = [...(coalescing ? [] : ['--coalesce-wait', '0']), '--log-level', 'warn'];
  const proxy = await startProxy(protocol === 'postgres' ? { pgUpstream: db.upstream, args } : { pgUpstream: null, mysqlUpstream: db.upstream, args });
  const conns: Conn[] = [];
  try {
    const port = protocol === 'postgres' ? proxy.pgPort : proxy.mysqlPort;
    for (let i = 0; i < opts.clients; i++) conns.push(await db.connect(port));
    const writer = await db.connect(port);
    conns.push(writer);
    // Every session knows the read (context, decision, server identity) before the window.
    for (const c of conns) await c.query(READ);
    const before = await scrape(proxy.adminPort);
    await db.reset();
    const latencies: number[] = [];
    let running = true;
    let writes = 0;
    const stopAt = Date.now() + opts.seconds * 1000;
    const readers = conns.slice(0, opts.clients).map(async (c) => {
      while (running) {
        const t = performance.now();
        await c.query(READ);
        latencies.push(performance.now() - t);
      }
    });
    const writes$ = (async () => {
      while (Date.now() < stopAt) {
        const next = Date.now() + opts.writeEveryMs;
        await writer.query(WRITE);
        writes++;
        await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
      }
      running = false;
    })();
    await writes$;
    await Promise.all(readers);
    const executions = await db.executions();
    const after = await scrape(proxy.adminPort);
    const delta = (name: string): number => sumOf(after, name, { protocol }) - sumOf(before, name, { protocol });
    const reasonsAfter = reasonCounts(after, protocol);
    const reasonsBefore = reasonCounts(before, protocol);
    const relayed: Record<string, number> = {};
    for (const [reason, n] of reasonsAfter) if (n - (reasonsBefore.get(reason) ?? 0) > 0) relayed[reason] = n - (reasonsBefore.get(reason) ?? 0);
    const sorted = Float64Array.from(latencies).sort();
    const missP99 = (await stats(proxy)).protocols[protocol]?.latencyMs.miss.p99Ms ?? null;
    return {
      protocol, coalescing, reads: latencies.length, writes, executions,
      hits: delta('sidecache_cache_hits_total'), misses: delta('sidecache_cache_misses_total'), coalesced: delta('sidecache_coalesced_total'),
      relayed, p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99), missP99Ms: missP99,
    };
  } finally {
    await Promise.all(conns.map((c) => c.end().catch(() => undefined)));
    await proxy.stop();
  }
}

function options(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: { seconds: { type: 'string' }, clients: { type: 'string' }, 'write-every-ms': { type: 'string' }, protocols: { type: 'string' } },
    strict: true,
  });
  return {
    seconds: values.seconds === undefined ? 10 : positiveInt('--seconds', values.seconds),
    clients: values.clients === undefined ? 200 : positiveInt('--clients', values.clients),
    writeEveryMs: values['write-every-ms'] === undefined ? 100 : positiveInt('--write-every-ms', values['write-every-ms']),
    protocols: values.protocols === undefined ? [...PROTOCOLS] : values.protocols.split(',').map((p) => {
      if (!PROTOCOLS.includes(p.trim() as Protocol)) throw new UsageError(`unknown protocol "${p}"`);
      return p.trim() as Protocol;
    }),
  };
}

async function main(argv: string[]): Promise<number> {
  let opts: Options;
  try {
    opts = options(argv);
  } catch (err) {
    if (!(err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))) throw err;
    console.error(`${(err as Error).message}\nusage: stampede.js [--seconds N] [--clients N] [--write-every-ms N] [--protocols postgres,mysql]`);
    return 2;
  }
  const loadBefore = loadavg()[0]!;
  const rows: StampedeRow[] = [];
  for (const protocol of opts.protocols) {
    const db = protocol === 'postgres' ? await postgres(opts.clients) : await mariadb(opts.clients);
    try {
      for (const coalescing of [false, true]) rows.push(await runMode(db, opts, coalescing));
    } finally {
      await db.stop();
    }
  }
  console.log(`stampede: ${opts.clients} clients reading one hot key, a write every ${opts.writeEveryMs} ms, ${opts.seconds} s per run; ` +
    `${new Date().toISOString().slice(0, 10)}, 1-minute load ${loadBefore.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after`);
  console.log(stampedeTable(rows));
  return 0;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
