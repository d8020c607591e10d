// `make bench-mysql-literals`: statements whose literals no one sent before, straight at MariaDB vs
// through sidecache with caching off (the relay alone) vs through sidecache, in one run. Every
// statement is a miss that sidecache may cache; what it costs beyond relaying is the analysis and
// the catalog probe, which must not be paid once per literal (issue 12 item 5). Prints seconds per
// batch, the SELECTs MariaDB ran per statement (its session Com_select: a probe counts as one) and
// sidecache's time over the relay's, with the goal's verdict. A measurement: exits 0 either way.
import { parseArgs } from 'node:util';
import mysql from 'mysql2/promise';
import { mysqlCacheCounters } from '../e2e/support/mysql-metrics.js';
import { startProxy, type RunningProxy } from '../e2e/support/sidecache.js';
import { MysqlBenchServer } from './mysql-server.js';
import { formatNewLiterals, formatNewLiteralsGoals, NEW_LITERALS_TARGETS, type NewLiteralsRun, type NewLiteralsTarget } from './new-literals-report.js';
import { positiveInt, UsageError } from './options.js';
import { processCpuSeconds } from './process-cpu.js';

const MYSQL_SERVER = { host: '127.0.0.1', port: 3306, user: 'root' };
const UPSTREAM = `mysql://${MYSQL_SERVER.host}:${MYSQL_SERVER.port}`;
const TABLE_ROWS = 1000;

/** A statement text for the i-th statement of a batch; `tag` makes every batch's literals new. */
interface Workload {
  key: string;
  /** New literals only, so the goal applies (a new statement shape costs an analysis on top). */
  literalsOnly: boolean;
  statement(tag: string, i: number): string;
}

const WORKLOADS: readonly Workload[] = [
  // The case: no table at all, only a string never seen.
  { key: 'literal', literalsOnly: true, statement: (tag, i) => `SELECT 'c${tag}_${i}' AS a` },
  // One table, a new string in the WHERE clause.
  { key: 'table-literal', literalsOnly: true, statement: (tag, i) => `SELECT id, c FROM nl WHERE c = 'c${tag}_${i}'` },
  // One table, a new statement shape each time (an alias never seen): the table's facts are known.
  { key: 'table-shape', literalsOnly: false, statement: (tag, i) => `SELECT id AS a${tag}_${i} FROM nl WHERE id = ${i % TABLE_ROWS}` },
];

const USAGE = `usage: node dist/bench/mysql-new-literals.js [options]
  --statements N   statements per batch, each with a literal never sent before (default 2000)
  --connections C  connections sharing a batch, each sending its share one after another (default 1)
  --rounds R       batches per workload and target, the targets in alternating order; the fastest is reported (default 3)
  --workloads LIST comma-separated, from: ${WORKLOADS.map((w) => w.key).join(', ')} (default all)`;

interface Options {
  statements: number;
  connections: number;
  rounds: number;
  workloads: Workload[];
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      statements: { type: 'string', default: '2000' },
      connections: { type: 'string', default: '1' },
      rounds: { type: 'string', default: '3' },
      workloads: { type: 'string', default: WORKLOADS.map((w) => w.key).join(',') },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return undefined;
  const workloads = values.workloads.split(',').map((key) => {
    const w = WORKLOADS.find((x) => x.key === key.trim());
    if (w === undefined) throw new UsageError(`unknown workload "${key}"`);
    return w;
  });
  return {
    statements: positiveInt('--statements', values.statements),
    connections: positiveInt('--connections', values.connections),
    rounds: positiveInt('--rounds', values.rounds),
    workloads,
  };
}

async function comSelect(c: mysql.Connection): Promise<number> {
  const [rows] = await c.query<mysql.RowDataPacket[]>("SHOW SESSION STATUS LIKE 'Com_select'");
  return Number(rows[0]!['Value']);
}

/** One batch: `statements` new texts over `connections` connections opened beforehand (not timed). */
/** Where a batch goes: the port, and for a proxy its process (CPU) and admin port (sidecache's counters). */
interface Endpoint {
  port: number;
  pid?: number;
  adminPort?: number;
}

async function batch(endpoint: Endpoint, database: string, workload: Workload, target: NewLiteralsTarget, tag: string, options: Options): Promise<NewLiteralsRun> {
  const connections = await Promise.all(Array.from({ length: options.connections }, () =>
    mysql.createConnection({ ...MYSQL_SERVER, port: endpoint.port, database })));
  try {
    const before = await Promise.all(connections.map(comSelect));
    const { pid, adminPort } = endpoint;
    const cpuBefore = pid === undefined ? undefined : await processCpuSeconds(pid);
    const cacheBefore = adminPort === undefined ? undefined : await mysqlCacheCounters(adminPort);
    const started = performance.now();
    await Promise.all(connections.map(async (c, k) => {
      for (let i = k; i < options.statements; i += connections.length) await c.query(workload.statement(tag, i));
    }));
    const seconds = (performance.now() - started) / 1000;
    const cpuAfter = pid === undefined ? undefined : await processCpuSeconds(pid);
    const cacheAfter = adminPort === undefined ? undefined : await mysqlCacheCounters(adminPort);
    const after = await Promise.all(connections.map(comSelect));
    const serverSelects = after.reduce((sum, n, k) => sum + n - before[k]!, 0);
    const proxyCpuSeconds = cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore;
    const misses = cacheBefore === undefined || cacheAfter === undefined ? undefined : cacheAfter.misses - cacheBefore.misses;
    return { workload: workload.key, target, statements: options.statements, seconds, serverSelects, proxyCpuSeconds, misses };
  } finally {
    await Promise.allSettled(connections.map((c) => c.end()));
  }
}

async function main(): Promise<number> {
  let options: Options | undefined;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    console.error(`bench-mysql-literals: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (!options) {
    console.log(USAGE);
    return 0;
  }
  const server = await MysqlBenchServer.connect(MYSQL_SERVER);
  const proxies: RunningProxy[] = [];
  let cleaning: Promise<void> | undefined;
  // Runs once, whether reached by SIGINT or by the end of main: the database is on a shared server.
  const cleanup = (): Promise<void> => (cleaning ??= (async () => {
    await Promise.allSettled(proxies.map((p) => p.stop()));
    await server.close();
  })());
  process.once('SIGINT', () => {
    console.error('bench-mysql-literals: interrupted, cleaning up');
    void cleanup().finally(() => process.exit(130));
  });
  try {
    const database = `sidecache_bench_literals_${process.pid}`;
    await server.createDatabase(database);
    const setup = await mysql.createConnection({ ...MYSQL_SERVER, database });
    await setup.query('CREATE TABLE nl (id INT PRIMARY KEY, c VARCHAR(40) NOT NULL, KEY (c))');
    await setup.query('INSERT INTO nl SELECT seq, CONCAT(\'r\', seq) FROM seq_0_to_' + (TABLE_ROWS - 1));
    await setup.end();
    const relay = await startProxy({ pgUpstream: null, mysqlUpstream: UPSTREAM, args: ['--cache-max-bytes', '0'] });
    proxies.push(relay);
    const sidecache = await startProxy({ pgUpstream: null, mysqlUpstream: UPSTREAM });
    proxies.push(sidecache);
    const endpoints: Record<NewLiteralsTarget, Endpoint> = {
      direct: { port: MYSQL_SERVER.port },
      relay: { port: relay.mysqlPort, pid: relay.child.pid },
      sidecache: { port: sidecache.mysqlPort, pid: sidecache.child.pid, adminPort: sidecache.adminPort },
    };
    console.log(`bench-mysql-literals: ${options.statements} statements per batch over ${options.connections} connection(s), best of ${options.rounds}`);
    const runs: NewLiteralsRun[] = [];
    for (const workload of options.workloads) {
      for (let round = 0; round < options.rounds; round++) {
        const order = round % 2 === 0 ? NEW_LITERALS_TARGETS : [...NEW_LITERALS_TARGETS].reverse();
        for (const target of order) {
          const run = await batch(endpoints[target], database, workload, target, `${process.pid}x${round}${target}`, options);
          const cpu = (run.proxyCpuSeconds === undefined ? '' : `, proxy CPU ${(run.proxyCpuSeconds * 1000).toFixed(0)} ms`)
            + (run.misses === undefined ? '' : `, sidecache misses ${run.misses}`);
          console.log(`  ${workload.key.padEnd(14)} ${target.padEnd(9)} round ${round + 1}/${options.rounds}: ${run.seconds.toFixed(3)} s, ${run.serverSelects} server SELECTs${cpu}`);
          runs.push(run);
        }
      }
    }
    const keys = options.workloads.map((w) => w.key);
    const goalKeys = options.workloads.filter((w) => w.literalsOnly).map((w) => w.key);
    console.log(`\n${formatNewLiterals(keys, runs)}\n\n${formatNewLiteralsGoals(goalKeys, runs)}`);
    console.log(`
how measured: every statement carries a literal (or, for table-shape, a column alias) no earlier statement of the run used, so
each is a miss through sidecache; mysql2 text queries, each connection sending its share one after another. relay: sidecache
with --cache-max-bytes 0. selects/stmt: MariaDB's session Com_select growth on the bench's connections per statement (1.00 = no
probe; through sidecache a probe is one more). CPU µs/stmt: the proxy process's user+system CPU (/proc) over the batch, the steadier
figure on a shared machine. sidecache misses: from its /metrics (fewer than the statements means some were not
looked up: a failed probe turns caching off for its session). Table nl: ${TABLE_ROWS} rows, id primary key, c indexed.`);
    return 0;
  } catch (err) {
    console.error(`bench-mysql-literals: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    await cleanup();
  }
}

process.exitCode = await main();
