// test-timeout: 240
// A server that restarts or fails over while sidecache has no session open: sidecache learns it
// from the server's identity (system identifier, start time) at the next login, before the cache
// answers that session, and drops what it held. A write made straight on the server before the
// restart is then seen by the next read; a second server at the same address is not taken for the
// first. A request the cache could answer waits for the identity check, unless the client sends
// more behind it; a session that cannot read the identity is never answered from the cache.
// Private clusters: the shared server cannot be restarted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { startCluster, type Cluster } from './support/cluster.js';
import { RawClient, serialize } from './support/pg-raw.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';
import { measure, waitForUpstreamConnections } from './support/metrics.js';
import { serverChangeTests } from './support/server-change.js';

let cluster: Cluster;
let second: Cluster | null = null;
let proxy: RunningProxy;
const open: pg.Client[] = [];

async function connect(user = 'postgres'): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: proxy.pgPort, user, database: 'postgres' });
  c.on('error', () => undefined);
  await c.connect();
  open.push(c);
  return c;
}

/** Reads `sql` on `c`: its rows and whether the cache answered. */
async function read(c: pg.Client, sql: string): Promise<{ rows: unknown[]; hit: boolean }> {
  const { result, delta } = await measure(proxy.adminPort, () => c.query(sql));
  return { rows: result.rows, hit: delta.hits === 1 };
}

/** Ends every session and waits until sidecache holds no upstream connection. */
async function closeAll(): Promise<void> {
  await Promise.all(open.splice(0).map((c) => c.end()));
  assert.is(await waitForUpstreamConnections(proxy.adminPort, 'postgres', 0), 0, 'no session is open');
}

const scenarios = serverChangeTests({
  logName: 'pg',
  proxy: () => proxy,
  connect: async () => {
    const c = await connect();
    return { read: (sql) => read(c, sql) };
  },
  closeAll,
  direct: async (sql) => void await cluster.query(sql),
  restart: () => cluster.restart(),
  replace: async () => {
    const port = cluster.port;
    await cluster.stop();
    second = await startCluster({ port });
    await second.query('CREATE TABLE t (id int PRIMARY KEY, v int)');
    await second.query('INSERT INTO t VALUES (1, 99)');
  },
});

test.before(async () => {
  cluster = await startCluster();
  await cluster.query('CREATE TABLE t (id int PRIMARY KEY, v int)');
  await cluster.query('INSERT INTO t VALUES (1, 10), (2, 20)');
  proxy = await startProxy({ pgUpstream: `postgres://${cluster.host}:${cluster.port}` });
});

test.after(async () => {
  await Promise.all(open.map((c) => c.end().catch(() => undefined)));
  await proxy?.stop();
  await second?.stop();
  await cluster?.stop();
});

scenarios.sameServer();

test('a request sent right behind one waiting for the identity check sends it on: both answered, in order', async () => {
  const raw = await RawClient.login(proxy.pgPort, { database: 'postgres' });
  try {
    const { result, delta } = await measure(proxy.adminPort, async () => {
      // The first could be answered from the cache (the test above stored it); the second follows in the same write.
      raw.send(serialize.query('SELECT v FROM t WHERE id = 2'), serialize.query('SELECT v AS other FROM t WHERE id = 1'));
      const replies = [...await raw.readUntilReadyForQuery(), ...await raw.readUntilReadyForQuery()];
      return replies.filter((m) => m.code === 'D').map((m) => (m.msg as unknown as { fields: string[] }).fields[0]);
    });
    assert.equal(result, ['20', '10']);
    assert.is(delta.hits, 0, 'the first went to the server too');
  } finally {
    raw.socket.destroy();
  }
});

test('a session that cannot read the server\'s identity is never answered from the cache, and says so', async () => {
  await cluster.query('REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC');
  await cluster.query('CREATE ROLE plain LOGIN');
  await cluster.query('GRANT SELECT ON t TO plain');
  try {
    const sql = 'SELECT v AS plain FROM t WHERE id = 2';
    const c = await connect('plain');
    await c.query(sql);
    const { result, delta } = await measure(proxy.adminPort, () => c.query(sql));
    assert.equal(result.rows, [{ plain: 20 }]);
    assert.is(delta.hits, 0);
    assert.equal(delta.bypassByReason, { 'unidentified-server': 1 });
    assert.match(proxy.output(), /pg: cannot identify the upstream server; caching off for this session/);
    const other = await connect();
    await other.query(sql);
    assert.equal(await read(other, sql), { rows: [{ plain: 20 }], hit: true }, 'other sessions are not affected');
  } finally {
    await closeAll();
    await cluster.query('GRANT EXECUTE ON FUNCTION pg_control_system() TO PUBLIC');
  }
});

scenarios.restart();
scenarios.failover();

test.run();
