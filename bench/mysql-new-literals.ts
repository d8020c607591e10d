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
/** Statements per target of the unmeasured batch before each workload's rounds. */
const WARMUP_STATEMENTS = 200;

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
  // One table, a number never seen (numbers were always left out of the shape): any miss costs this.
  { key: 'table-number', literalsOnly: true, statement: (tag, i) => `SELECT id, c FROM nl WHERE id = ${i % TABLE_ROWS} AND id <> ${numberOf(tag) * 1_000_000 + i}` },
  // One table, a new statement shape each time (an alias never seen): the table's facts are known.
  { key: 'table-shape', literalsOnly: false, statement: (tag, i) => `SELECT id AS a${tag}_${i} FROM nl WHERE id = ${i % TABLE_ROWS}` },
];

/** A number for a batch's tag (the tag makes literals new across batches and targets). */
function numberOf(tag: string): number {
  let n = 7;
  for (let i = 0; i < tag.length; i++) n = (n * 31 + tag.charCodeAt(i)) % 1_000_003;
  return n;
}

const USAGE = `usage: node dist/bench/mysql-new-literals.js [options]
  --statements N   statements per batch, each with a literal never sent before (default 2000)
  --connections C  connections sharing a batch, each sending its share one after another (default 1)
  --rounds R       batches per workload; the fastest of each target's is reported (default 3)
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

/** Where a batch goes: the port, and for a proxy its process (CPU) and admin port (sidecache's counters). */
interface Endpoint {
  port: number;
  pid?: number;
  adminPort?: number;
}

/** One target's side of a batch: its connections (one per lane), counters before, time spent. */
interface Side {
  target: NewLiteralsTarget;
  endpoint: Endpoint;
  connections: mysql.Connection[];
  selectsBefore: number[];
  cpuBefore: number | undefined;
  missesBefore: number | undefined;
  seconds: number;
}

/**
 * One batch: `statements` new texts to every target, interleaved statement by statement (in an
 * order that rotates) so that load from elsewhere on a shared machine falls on all targets alike;
 * each target's time is the sum of its own statements' round trips. Connections are opened
 * beforehand (not timed), `connections` lanes per target run at once.
 */
async function batch(endpoints: Record<NewLiteralsTarget, Endpoint>, database: string, workload: Workload, round: number, options: Options): Promise<NewLiteralsRun[]> {
  const sides: Side[] = [];
  try {
    for (const target of NEW_LITERALS_TARGETS) {
      const endpoint = endpoints[target];
      const connections = await Promise.all(Array.from({ length: options.connections }, () =>
        mysql.createConnection({ ...MYSQL_SERVER, port: endpoint.port, database })));
      sides.push({ target, endpoint, connections, selectsBefore: [], cpuBefore: undefined, missesBefore: undefined, seconds: 0 });
    }
    for (const side of sides) {
      side.selectsBefore = await Promise.all(side.connections.map(comSelect));
      side.cpuBefore = side.endpoint.pid === undefined ? undefined : await processCpuSeconds(side.endpoint.pid);
      side.missesBefore = side.endpoint.adminPort === undefined ? undefined : (await mysqlCacheCounters(side.endpoint.adminPort)).misses;
    }
    await Promise.all(Array.from({ length: options.connections }, async (_, lane) => {
      for (let i = lane; i < options.statements; i += options.connections) {
        for (let k = 0; k < sides.length; k++) {
          const side = sides[(i + k) % sides.length]!;
          const started = performance.now();
          await side.connections[lane]!.query(workload.statement(`${process.pid}x${round}${side.target}`, i));
          side.seconds += (performance.now() - started) / 1000;
        }
      }
    }));
    const runs: NewLiteralsRun[] = [];
    for (const side of sides) {
      const { pid, adminPort } = side.endpoint;
      const cpuAfter = pid === undefined ? undefined : await processCpuSeconds(pid);
      const missesAfter = adminPort === undefined ? undefined : (await mysqlCacheCounters(adminPort)).misses;
      const selectsAfter = await Promise.all(side.connections.map(comSelect));
      runs.push({
        workload: workload.key,
        target: side.target,
        statements: options.statements,
        // Lanes run at once: a lane's share of the time, as a batch's elapsed time would be.
        seconds: side.seconds / options.connections,
        serverSelects: selectsAfter.reduce((sum, n, k) => sum + n - side.selectsBefore[k]!, 0),
        proxyCpuSeconds: side.cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - side.cpuBefore,
        misses: side.missesBefore === undefined || missesAfter === undefined ? undefined : missesAfter - side.missesBefore,
      });
    }
    return runs;
  } finally {
    await Promise.allSettled(sides.flatMap((side) => side.connections.map((c) => c.end())));
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
      // Not measured: the first statements of a kind warm up the proxies (JIT, first probe) and the server.
      // (Numbered after the measured rounds: its literals are never theirs.)
      await batch(endpoints, database, workload, options.rounds, { ...options, statements: Math.min(WARMUP_STATEMENTS, options.statements) });
      for (let round = 0; round < options.rounds; round++) {
        for (const run of await batch(endpoints, database, workload, round, options)) {
          const cpu = (run.proxyCpuSeconds === undefined ? '' : `, proxy CPU ${(run.proxyCpuSeconds * 1000).toFixed(0)} ms`)
            + (run.misses === undefined ? '' : `, sidecache misses ${run.misses}`);
          console.log(`  ${workload.key.padEnd(14)} ${run.target.padEnd(9)} round ${round + 1}/${options.rounds}: ${run.seconds.toFixed(3)} s, ${run.serverSelects} server SELECTs${cpu}`);
          runs.push(run);
        }
      }
    }
    const keys = options.workloads.map((w) => w.key);
    const goalKeys = options.workloads.filter((w) => w.literalsOnly).map((w) => w.key);
    console.log(`\n${formatNewLiterals(keys, runs)}\n\n${formatNewLiteralsGoals(goalKeys, runs)}`);
    console.log(`
how measured: every statement carries a literal (or, for table-shape, a column alias) no earlier statement of the run used, so
each is a miss through sidecache; mysql2 text queries, the three targets interleaved statement by statement (rotating order, so
passing load falls on all alike), each target's time the sum of its own round trips; an unmeasured batch of ${WARMUP_STATEMENTS} first
per workload. relay: sidecache
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
