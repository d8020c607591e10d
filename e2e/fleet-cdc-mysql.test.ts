// test-timeout: 300
//
// One binlog reader for a fleet (issue 16, item 5), MariaDB side: two sidecache processes with
// --mysql-cdc in front of a private mariadbd (ROW binlog), sharing a private redis-server. Only the
// holder of the `cdc-mysql` lease runs a binlog dump; a write sent straight to the server
// invalidates the cached reads of both proxies. The leader killed: the other takes over within the
// lease, a write made while no stream ran is seen, and later direct writes invalidate again.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { readUntil, stableHit, waitFor, type StreamItem } from './support/cdc.js';
import { waitForBus } from './support/fleet.js';
import { startMariadb, type MariadbServer } from './support/mariadb-server.js';
import { cacheStats } from './support/metrics.js';
import { measureMySql } from './support/mysql-metrics.js';
import { startRedis, type RedisServer } from './support/redis-server.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const DB = 'fleet_cdc';
const TASK = 'cdc-mysql';
const PASSWORD = 'fleet-cdc-mysql-password';
let server: MariadbServer;
let redis: RedisServer;
let fleet: RunningProxy[] = [];
const clients = new Map<RunningProxy, Connection>();

interface FleetStats {
  fleet: { instance: string; leader: Record<string, boolean>; streams: { mysql?: { leading: boolean; leader: string | null; up: string[] } } };
  changeStreams: StreamItem[];
}

async function connect(port: number): Promise<Connection> {
  const c = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root', database: DB });
  c.on('error', () => undefined);
  return c;
}

async function startMember(): Promise<RunningProxy> {
  const proxy = await startProxy({
    pgUpstream: null,
    mysqlUpstream: server.url,
    args: ['--mysql-cdc', server.url, '--cache-ttl', '10m', '--redis', `redis://127.0.0.1:${redis.port}`, '--fleet-lease', '1s'],
    env: { SIDECACHE_REDIS_PASSWORD: PASSWORD },
  });
  fleet.push(proxy);
  clients.set(proxy, await connect(proxy.mysqlPort));
  return proxy;
}

async function read(proxy: RunningProxy, sql: string): Promise<unknown[]> {
  const [rows] = await clients.get(proxy)!.query<RowDataPacket[]>(sql);
  return rows.map((r) => ({ ...r }));
}

function cached(proxy: RunningProxy, sql: string): Promise<unknown[]> {
  return stableHit(async () => {
    const { result, delta } = await measureMySql(proxy.adminPort, () => read(proxy, sql));
    return { rows: result, hit: delta.hits === 1 };
  }, `${sql} through :${proxy.mysqlPort}`);
}

async function seenAndKept(proxy: RunningProxy, sql: string, expected: unknown[]): Promise<void> {
  await readUntil(() => read(proxy, sql), expected, `${sql} through :${proxy.mysqlPort}`);
  for (let i = 0; i < 5; i++) assert.equal(await read(proxy, sql), expected, 'read again after it was seen');
}

async function statsOf(proxy: RunningProxy): Promise<FleetStats> {
  return await cacheStats(proxy.adminPort) as unknown as FleetStats;
}

function leaderWithStreamUp(proxies: readonly RunningProxy[]): Promise<RunningProxy> {
  return waitFor('one proxy to lead the binlog stream with it up', async () => {
    const stats = await Promise.all(proxies.map((p) => statsOf(p).catch(() => null)));
    const leaders = proxies.filter((_, i) => stats[i]?.fleet.leader[TASK] === true);
    if (leaders.length !== 1) return undefined;
    const s = stats[proxies.indexOf(leaders[0]!)]!;
    return s.changeStreams.find((c) => c.database === '*')?.state === 'up' ? leaders[0] : undefined;
  }, 60_000, 50);
}

async function binlogDumps(): Promise<number> {
  const rows = await server.query<{ n: number }>("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'");
  return Number(rows[0]!.n);
}

test.before(async () => {
  redis = await startRedis({ password: PASSWORD });
  server = await startMariadb();
  await server.query(`CREATE DATABASE ${DB}; USE ${DB}; CREATE TABLE kv (k INT PRIMARY KEY, v INT) ENGINE=InnoDB; INSERT INTO kv SELECT seq, 0 FROM seq_0_to_9;`);
  await startMember();
  await startMember();
  await waitForBus(fleet);
});

test.after(async () => {
  for (const c of clients.values()) await c.end().catch(() => undefined);
  await Promise.all(fleet.map((p) => p.stop()));
  await redis?.stop();
  await server?.stop();
});

test('one binlog dump for the fleet; a write straight to the server invalidates both proxies', async () => {
  const leader = await leaderWithStreamUp(fleet);
  const other = fleet.find((p) => p !== leader)!;
  const sql = 'SELECT v FROM kv WHERE k = 1';
  for (const p of fleet) assert.equal(await cached(p, sql), [{ v: 0 }]);
  assert.is(await binlogDumps(), 1, 'one binlog reader for the whole fleet');
  const stats = await statsOf(other);
  assert.equal(stats.changeStreams, [], 'no stream of its own');
  assert.equal(stats.fleet.streams.mysql?.up, ['*']);
  assert.is(stats.fleet.streams.mysql?.leader, (await statsOf(leader)).fleet.instance);
  await server.query(`UPDATE ${DB}.kv SET v = 10 WHERE k = 1`);
  for (const p of fleet) await seenAndKept(p, sql, [{ v: 10 }]);
});

test('the leader killed: the other takes over within the lease, the hand-over is a gap, direct writes invalidate again', async () => {
  const old = await leaderWithStreamUp(fleet);
  const survivor = fleet.find((p) => p !== old)!;
  const sql = 'SELECT v FROM kv WHERE k = 2';
  assert.equal(await cached(survivor, sql), [{ v: 0 }]);
  old.child.kill('SIGKILL');
  const killed = Date.now();
  await server.query(`UPDATE ${DB}.kv SET v = 20 WHERE k = 2`);
  assert.is(await leaderWithStreamUp([survivor]), survivor);
  console.log(`the binlog stream was taken over ${Date.now() - killed} ms after the kill (lease 1 s)`);
  await old.stop();
  clients.delete(old);
  fleet = [survivor];
  await seenAndKept(survivor, sql, [{ v: 20 }]);
  assert.equal(await cached(survivor, sql), [{ v: 20 }]);
  await server.query(`UPDATE ${DB}.kv SET v = 21 WHERE k = 2`);
  await seenAndKept(survivor, sql, [{ v: 21 }]);
  await waitFor('the dead leader\'s binlog dump to go', async () => ((await binlogDumps()) === 1 ? true : undefined));
});

test.run();
