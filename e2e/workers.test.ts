// test-timeout: 360
//
// Several worker processes (--workers 2, docs/workers.md): the primary spreads connections over
// both, each worker has its own cache, and the promise of one proxy holds across them. Which worker
// serves a connection is learned from /stats (e2e/support/workers.ts).
// - both workers fill and hit; /metrics is the sum of both;
// - a write through one worker is acknowledged only after the other dropped what it made stale:
//   with the other worker stopped (SIGSTOP) the acknowledgement does not come; once it runs again
//   it comes, and reads on both workers see the write; the same read-after-write on MySQL;
// - a fill in flight on one worker while a write through the other is acknowledged is not stored
//   (its reply held at a relay, as in pg-cache-race.test.ts), with a control run that is stored;
// - an admin flush empties every worker; the stale-read checker over two workers finds nothing;
// - SIGTERM to the primary ends every process.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { DEFAULT_OPTIONS, type CheckOptions } from './consistency/checker.js';
import { checkThroughOwnProxy } from './consistency/own-proxy.js';
import { pgDriver } from './consistency/pg-driver.js';
import { details, summaryLine } from './consistency/summary.js';
import { startHoldRelay, type HoldRelay } from './support/hold-relay.js';
import { cacheCounters, cacheStats, measure, scrape, sumOf } from './support/metrics.js';
import { DIRECT_PG, connectPg, direct, sleep, uniqueName } from './support/pg-direct.js';
import { connectMySql, directMySql, type MySqlConnection } from './support/mysql-direct.js';
import { BIN, DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';
import type { WorkerSummary } from '../workers/stats-merge.js';
import { connectionsOnEachWorker, workers } from './support/workers.js';

const WORKERS = ['--workers', '2'];
/** Both workers start at once, each as a whole sidecache does: slower than one on a loaded machine. */
const START_TIMEOUT_MS = 90_000;

let proxy: RunningProxy;
let relay: HoldRelay;
let heldProxy: RunningProxy;
const open: pg.Client[] = [];
const openMySql: MySqlConnection[] = [];
const MYSQL_DB = uniqueName('sc_mworkers');
const tables: string[] = [];

test.before(async () => {
  relay = await startHoldRelay({ host: DIRECT_PG.host, port: DIRECT_PG.port });
  proxy = await startProxy({ mysqlUpstream: DIRECT_MYSQL_URL, args: WORKERS, timeoutMs: START_TIMEOUT_MS });
  await directMySql(`CREATE DATABASE ${MYSQL_DB}`, `CREATE TABLE ${MYSQL_DB}.t (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB`, `INSERT INTO ${MYSQL_DB}.t VALUES (1, 1)`);
  heldProxy = await startProxy({ pgUpstream: relay.url, args: WORKERS, timeoutMs: START_TIMEOUT_MS });
});

test.after(async () => {
  await Promise.all([...open, ...openMySql].map((c) => c.end().catch(() => undefined)));
  await directMySql(`DROP DATABASE IF EXISTS ${MYSQL_DB}`).catch(() => undefined);
  await proxy?.stop();
  await heldProxy?.stop();
  await relay?.close();
  for (const t of tables) await direct(`DROP TABLE IF EXISTS ${t}`);
});

async function newTable(): Promise<string> {
  const name = uniqueName('sc_workers');
  tables.push(name);
  await direct(`CREATE TABLE ${name} (id int PRIMARY KEY, v int NOT NULL)`);
  await direct(`INSERT INTO ${name} VALUES (1, 1)`);
  return name;
}

function clientsOnEachWorker(port: number, adminPort: number, each: number): Promise<Map<number, pg.Client[]>> {
  return connectionsOnEachWorker(adminPort, each, async () => {
    const c = await connectPg(port);
    // The last test stops the proxy under open connections: their end is expected.
    c.on('error', () => undefined);
    open.push(c);
    // The session's first cacheable read checks the server's identity (upstream-identity.ts): done
    // now, so the reads below are what the test says.
    await c.query('SELECT 1');
    return c;
  }, (c) => c.query('SELECT now()'));
}

async function readV(c: pg.Client, table: string, marker = 'read'): Promise<number> {
  const { rows } = await c.query(`SELECT v FROM ${table} WHERE id = 1 /* ${marker} */`);
  return rows[0].v as number;
}

test('both workers fill and hit their own caches; /metrics and /stats sum both', async () => {
  const table = await newTable();
  const bySlot = await clientsOnEachWorker(proxy.pgPort, proxy.adminPort, 2);
  const before = await workers(proxy.adminPort);
  for (const clients of bySlot.values()) for (const c of clients) assert.is(await readV(c, table), 1);
  const after = await workers(proxy.adminPort);
  for (const [slot, clients] of bySlot) {
    const b = before.find((w) => w.slot === slot)!;
    const a = after.find((w) => w.slot === slot)!;
    // The first read on each worker fills it; every later one there is a hit.
    assert.is(a.misses - b.misses, 1, `worker ${slot} filled once: ${JSON.stringify({ b, a })}`);
    assert.is(a.hits - b.hits, clients.length - 1, `worker ${slot} answered the rest: ${JSON.stringify({ b, a })}`);
  }
  const samples = await scrape(proxy.adminPort);
  const stats = await cacheStats(proxy.adminPort);
  const lines = stats.workers as WorkerSummary[];
  assert.is(lines.length, 2);
  assert.is(sumOf(samples, 'sidecache_cache_hits_total', { protocol: 'postgres' }), lines.reduce((n, w) => n + w.hits, 0));
  assert.is(sumOf(samples, 'sidecache_cache_misses_total', { protocol: 'postgres' }), lines.reduce((n, w) => n + w.misses, 0));
  assert.is(stats.hits, lines.reduce((n, w) => n + w.hits, 0));
  assert.ok(lines.every((w) => w.hits > 0 && w.entries > 0), JSON.stringify(lines));
});

test('a write through one worker is acknowledged only once the other dropped the stale entry', async () => {
  const table = await newTable();
  const bySlot = await clientsOnEachWorker(proxy.pgPort, proxy.adminPort, 2);
  const [writerSlot, otherSlot] = [...bySlot.keys()] as [number, number];
  const writer = bySlot.get(writerSlot)![0]!;
  const readers = bySlot.get(otherSlot)!;
  // The other worker holds the entry: its second read is a hit.
  assert.is(await readV(readers[0]!, table), 1);
  const { result, delta } = await measure(proxy.adminPort, () => readV(readers[1]!, table));
  assert.is(result, 1);
  assert.is(delta.hits, 1, JSON.stringify(delta));
  const other = (await workers(proxy.adminPort)).find((w) => w.slot === otherSlot)!;
  process.kill(other.pid, 'SIGSTOP');
  let write: Promise<pg.QueryResult> | null = null;
  try {
    write = writer.query(`UPDATE ${table} SET v = 2 WHERE id = 1`);
    // While the other worker cannot run, it cannot have dropped its entry: no acknowledgement.
    const first = await Promise.race([write.then(() => 'acknowledged'), sleep(500).then(() => 'held')]);
    assert.is(first, 'held', 'the acknowledgement waited for the stopped worker');
  } finally {
    process.kill(other.pid, 'SIGCONT');
  }
  assert.is((await write).rowCount, 1);
  for (const c of [...readers, writer]) assert.is(await readV(c, table), 2);
  // Again and again: each write through one worker is seen at once by a reader on the other.
  for (let v = 3; v < 23; v++) {
    assert.is(await readV(readers[0]!, table), v - 1);
    await writer.query(`UPDATE ${table} SET v = $1 WHERE id = 1`, [v]);
    assert.is(await readV(readers[0]!, table), v, `read after write ${v}`);
  }
});

test('MySQL: a write through one worker is seen at once by a reader on the other', async () => {
  const bySlot = await connectionsOnEachWorker(proxy.adminPort, 1, async () => {
    const c = await connectMySql(proxy.mysqlPort, { database: MYSQL_DB });
    c.on('error', () => undefined);
    openMySql.push(c);
    return c;
  }, (c) => c.query('SELECT NOW()'));
  const [writer, reader] = [...bySlot.values()].map((l) => l[0]!) as [MySqlConnection, MySqlConnection];
  const readV = async (): Promise<number> => ((await reader.query('SELECT v FROM t WHERE id = 1'))[0] as { v: number }[])[0]!.v;
  const hits = async (): Promise<number> => sumOf(await scrape(proxy.adminPort), 'sidecache_cache_hits_total', { protocol: 'mysql' });
  assert.is(await readV(), 1);
  const before = await hits();
  assert.is(await readV(), 1);
  assert.is(await hits() - before, 1, 'the reader\'s worker holds the entry');
  for (let v = 2; v < 12; v++) {
    await writer.query('UPDATE t SET v = ? WHERE id = 1', [v]);
    assert.is(await readV(), v, `read after write ${v}`);
    assert.is(await readV(), v);
  }
});

/** Ends a test's connections now: the file's connections all at once would crowd the shared server. */
async function endAll(bySlot: Map<number, pg.Client[]>): Promise<void> {
  const clients = [...bySlot.values()].flat();
  for (const c of clients) open.splice(open.indexOf(c), 1);
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
}

/** Every row of `tables` has v = `v` in the database itself. */
async function committed(tables: readonly string[], v: number): Promise<boolean> {
  for (const t of tables) if ((await direct(`SELECT v FROM ${t} WHERE id = 1`)).rows[0].v !== v) return false;
  return true;
}

test('commits piled up behind a stopped worker each wait for it, and it then answers none stale', async () => {
  // Several writes through one worker while the other is stopped (SIGSTOP): each invalidation is
  // held at the other worker, and no acknowledgement may leave before it applied them all.
  const WRITES = 3;
  const tables = await Promise.all(Array.from({ length: WRITES }, () => newTable()));
  // One write per connection: a connection's next statement would wait behind the held acknowledgement.
  const bySlot = await clientsOnEachWorker(proxy.pgPort, proxy.adminPort, WRITES);
  const [writerSlot, otherSlot] = [...bySlot.keys()] as [number, number];
  const writers = bySlot.get(writerSlot)!;
  const reader = bySlot.get(otherSlot)![0]!;
  for (const t of tables) await readV(reader, t);
  const { delta } = await measure(proxy.adminPort, async () => {
    for (const t of tables) assert.is(await readV(reader, t), 1);
  });
  assert.is(delta.hits, WRITES, `the other worker holds every entry: ${JSON.stringify(delta)}`);
  const other = (await workers(proxy.adminPort)).find((w) => w.slot === otherSlot)!;
  let acknowledged = 0;
  let writes: Promise<unknown>[] = [];
  process.kill(other.pid, 'SIGSTOP');
  try {
    writes = tables.map((t, i) => writers[i]!.query(`UPDATE ${t} SET v = 2 WHERE id = 1`).then(() => acknowledged++));
    // Bounded well below the 5 s apply deadline, which would kill the stopped worker.
    const deadline = Date.now() + 2500;
    while (!(await committed(tables, 2)) && Date.now() < deadline) await sleep(20);
    assert.ok(await committed(tables, 2), 'every write committed in the database');
    assert.is(acknowledged, 0, 'no acknowledgement left while the other worker could not apply the invalidations');
  } finally {
    process.kill(other.pid, 'SIGCONT');
  }
  await Promise.all(writes);
  assert.is(acknowledged, WRITES);
  for (const t of tables) assert.is(await readV(reader, t), 2, `${t} read on the other worker after the acknowledgement`);
  await endAll(bySlot);
});

test('many concurrent commits through both workers: each acknowledged write is read at once on the other worker', async () => {
  const PER_WORKER = 2;
  const ROUNDS = 15;
  const bySlot = await clientsOnEachWorker(proxy.pgPort, proxy.adminPort, 2 * PER_WORKER);
  const [s1, s2] = [...bySlot.keys()] as [number, number];
  // Connection i of one worker writes its own table; connection PER_WORKER + i of the other reads it.
  const lanes = await Promise.all([[s1, s2], [s2, s1]].flatMap(([w, r]) => Array.from({ length: PER_WORKER }, async (_, i) => ({
    table: await newTable(), writer: bySlot.get(w!)![i]!, reader: bySlot.get(r!)![PER_WORKER + i]!,
  }))));
  const before = await cacheCounters(proxy.adminPort);
  const seen = await Promise.all(lanes.map(async ({ table, writer, reader }) => {
    const stale: string[] = [];
    for (let v = 2; v < 2 + ROUNDS; v++) {
      // Read twice so the reader's worker holds the entry (the second read may hit) before the write.
      await readV(reader, table);
      await readV(reader, table);
      await writer.query(`UPDATE ${table} SET v = $1 WHERE id = 1`, [v]);
      const got = await readV(reader, table);
      if (got !== v) stale.push(`${table}: wrote ${v}, read ${got}`);
    }
    return stale;
  }));
  assert.equal(seen.flat(), [], 'no read after an acknowledged write returned the value before it');
  const after = await cacheCounters(proxy.adminPort);
  // The stale entries were there to be answered: the readers hit between the writes.
  assert.ok(after.hits - before.hits >= lanes.length, JSON.stringify({ before, after }));
  await endAll(bySlot);
});

/**
 * A's read, served by one worker, has its reply held at the relay after the server ran it;
 * `meanwhile` runs; then the reply goes on. Returns what A read.
 */
async function heldRead(a: pg.Client, table: string, marker: string, meanwhile: () => Promise<void>): Promise<number> {
  const hold = relay.holdAfter(marker);
  const pending = readV(a, table, marker);
  try {
    await hold.waitHeld();
    await sleep(50); // the rest of the reply piles up too
    await meanwhile();
  } finally {
    hold.release();
  }
  return pending;
}

test('control: a held fill with no write meanwhile is stored', async () => {
  const table = await newTable();
  const bySlot = await clientsOnEachWorker(heldProxy.pgPort, heldProxy.adminPort, 1);
  const a = [...bySlot.values()][0]![0]!;
  const marker = `hold-${table}`;
  assert.is(await heldRead(a, table, marker, async () => undefined), 1);
  const { result, delta } = await measure(heldProxy.adminPort, () => readV(a, table, marker));
  assert.is(result, 1);
  assert.is(delta.hits, 1, JSON.stringify(delta));
});

test('a fill in flight on one worker while a write through the other is acknowledged is not stored', async () => {
  const table = await newTable();
  const bySlot = await clientsOnEachWorker(heldProxy.pgPort, heldProxy.adminPort, 2);
  const [fillSlot, writeSlot] = [...bySlot.keys()] as [number, number];
  const [a, c] = bySlot.get(fillSlot)! as [pg.Client, pg.Client];
  const b = bySlot.get(writeSlot)![0]!;
  const marker = `hold-${table}`;
  const seenByA = await heldRead(a, table, marker, async () => {
    assert.is((await b.query(`UPDATE ${table} SET v = 2 WHERE id = 1`)).rowCount, 1);
  });
  assert.is(seenByA, 1, 'A read before the write (its reply was held after the server ran it)');
  assert.is(await readV(a, table, marker), 2, 'A\'s next read, on the same worker, sees the acknowledged write');
  assert.is(await readV(c, table, marker), 2, 'so does another connection of that worker');
  assert.is(await readV(a, table, marker), 2);
});

test('an admin flush empties every worker', async () => {
  const table = await newTable();
  const bySlot = await clientsOnEachWorker(proxy.pgPort, proxy.adminPort, 1);
  for (const clients of bySlot.values()) await readV(clients[0]!, table);
  assert.ok((await workers(proxy.adminPort)).every((w) => w.entries > 0));
  const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/api/flush`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ all: true }),
  });
  assert.is(res.status, 200, await res.text());
  const lines = await workers(proxy.adminPort);
  assert.ok(lines.every((w) => w.entries === 0), JSON.stringify(lines));
  assert.is((await cacheCounters(proxy.adminPort)).entries, 0);
});

// At least 5 s, then until 300 hits, at most 40 s.
const CHECK: CheckOptions = { ...DEFAULT_OPTIONS, seconds: 5, minHits: 300, maxSeconds: 40, writers: 3, readers: 6, workers: 2 };

test('the stale-read checker through two workers: no read older than an acknowledged write', async () => {
  const report = await checkThroughOwnProxy(pgDriver, CHECK);
  const text = [summaryLine(report), ...details(report)].join('\n');
  console.log(text);
  assert.is(report.violations, 0, text);
  assert.equal(report.errors, [], text);
  assert.ok(report.hits >= CHECK.minHits, text);
  assert.equal(report.failures, [], text);
});

/** The process has exited: gone, or a zombie its parent (the primary) has not reaped yet. */
function ended(pid: number): boolean {
  try {
    // The state follows the command name in parentheses, which may itself contain spaces.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Resolves with the workers once `ready` holds of them (polled at most `ms`). */
async function workersWhen(ready: (lines: WorkerSummary[]) => boolean, ms: number): Promise<WorkerSummary[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const lines = await workers(proxy.adminPort).catch(() => [] as WorkerSummary[]);
    if (ready(lines)) return lines;
    if (Date.now() > deadline) assert.unreachable(`workers did not get there: ${JSON.stringify(lines)}`);
    await sleep(100);
  }
}

test('a worker stuck past the apply deadline is killed, the write it held is acknowledged, and the worker started in its place takes part both ways', async () => {
  const table = await newTable();
  const bySlot = await clientsOnEachWorker(proxy.pgPort, proxy.adminPort, 1);
  const [writerSlot, stuckSlot] = [...bySlot.keys()] as [number, number];
  const writer = bySlot.get(writerSlot)![0]!;
  const stuck = (await workers(proxy.adminPort)).find((w) => w.slot === stuckSlot)!;
  await readV(bySlot.get(stuckSlot)![0]!, table);
  process.kill(stuck.pid, 'SIGSTOP');
  try {
    // Held until the stopped worker is killed (docs/workers.md: 5 s); it never runs again.
    assert.is((await writer.query(`UPDATE ${table} SET v = 2 WHERE id = 1`)).rowCount, 1);
    assert.ok(ended(stuck.pid), 'the stuck worker was killed before the acknowledgement');
  } finally {
    try {
      process.kill(stuck.pid, 'SIGCONT');
    } catch {
      // gone, as it should be
    }
  }
  await endAll(bySlot);
  // The primary starts another worker in the slot; it joins the other before it serves.
  await workersWhen((lines) => lines.length === 2 && lines.every((w) => w.pid !== stuck.pid), 60_000);
  const fresh = await clientsOnEachWorker(proxy.pgPort, proxy.adminPort, 1);
  const oldOne = fresh.get(writerSlot)![0]!;
  const newOne = fresh.get(stuckSlot)![0]!;
  for (let v = 3; v < 13; v++) {
    const [w, r] = v % 2 === 0 ? [oldOne, newOne] : [newOne, oldOne];
    assert.is(await readV(r, table), v - 1);
    assert.is(await readV(r, table), v - 1);
    await w.query(`UPDATE ${table} SET v = $1 WHERE id = 1`, [v]);
    assert.is(await readV(r, table), v, `write ${v} through slot ${v % 2 === 0 ? writerSlot : stuckSlot}, read on the other`);
  }
  await endAll(fresh);
});

test('no directory for the workers\' sockets: one line says what to change, exit 1', () => {
  const long = path.join(os.tmpdir(), uniqueName('sc_long').padEnd(90, 'x'));
  mkdirSync(long);
  try {
    for (const tmp of [path.join(os.tmpdir(), uniqueName('sc_missing')), long]) {
      const run = spawnSync(process.execPath, [BIN, '--pg-upstream', 'postgres://127.0.0.1:5432', '--pg-listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0', ...WORKERS], {
        env: { ...process.env, TMPDIR: tmp }, encoding: 'utf8', timeout: 60_000,
      });
      assert.is(run.status, 1, run.stderr);
      assert.match(run.stderr, /--workers needs a private directory for the workers' sockets: .*set TMPDIR to a short writable directory, or pass --workers 1/);
    }
  } finally {
    rmSync(long, { recursive: true, force: true });
  }
});

test('SIGTERM to the primary ends every worker', async () => {
  const pids = (await workers(proxy.adminPort)).map((w) => w.pid);
  assert.is(pids.length, 2);
  assert.is(await proxy.stop(), 0);
  for (const pid of pids) {
    let alive = true;
    for (let i = 0; i < 100 && alive; i++) {
      try {
        process.kill(pid, 0);
        await sleep(50);
      } catch {
        alive = false;
      }
    }
    assert.not.ok(alive, `worker ${pid} ended`);
  }
});

test.run();
