// Many clients at once: each gets its own upstream session, sees its own results (simple and
// extended protocol, reads after its own writes), and every upstream session ends with its client,
// whether the client says goodbye (Terminate) or just drops the socket.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { startCluster, type Cluster } from './support/cluster.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const CLIENTS = 200;
const ROWS_PER_CLIENT = 3;
/** Marks this test's sessions in pg_stat_activity, apart from anything the proxy opens itself. */
const APP_NAME = 'sidecache-many-clients-e2e';
const TABLE = 'many_clients_items';
const DRAIN_TIMEOUT_MS = 10_000;

let cluster: Cluster;
let proxy: RunningProxy;

test.before(async () => {
  // The shared server allows 100 connections; this needs 200 plus headroom.
  cluster = await startCluster({ maxConnections: CLIENTS + 60 });
  await cluster.query(`CREATE TABLE ${TABLE} (client_id int, n int, label text, PRIMARY KEY (client_id, n))`);
  proxy = await startProxy({ pgUpstream: `postgres://${cluster.host}:${cluster.port}` });
});

test.after(async () => {
  await proxy?.stop();
  await cluster?.stop();
});

test(`${CLIENTS} clients connected at once each get their own upstream session and their own results`, async () => {
  const clients = Array.from({ length: CLIENTS }, () => new pg.Client({
    host: '127.0.0.1', port: proxy.pgPort, user: 'postgres', database: 'postgres',
    application_name: APP_NAME, connectionTimeoutMillis: 30_000,
  }));
  try {
    const connected = await Promise.allSettled(clients.map((c) => c.connect()));
    assert.equal(failures(connected), [], 'every client connects');
    assert.is(await upstreamSessions(), CLIENTS, 'one upstream session per connected client');

    const work = await Promise.allSettled(clients.map((client, id) => exercise(client, id)));
    assert.equal(failures(work), [], 'every client gets the right results');
    const pids = work.map((w) => (w as PromiseFulfilledResult<number>).value);
    assert.is(new Set(pids).size, CLIENTS, 'no two clients share a backend');
    await Promise.all(clients.map((c, id) => (id % 2 === 0 ? c.end() : dropConnection(c))));
  } finally {
    await Promise.allSettled(clients.map((c) => c.end()));
  }

  const [{ rows }] = await cluster.query<{ rows: number }>(`SELECT count(*)::int AS rows FROM ${TABLE}`);
  assert.is(rows, CLIENTS * ROWS_PER_CLIENT);
  assert.is(await drainedSessions(), 0, 'every upstream session ends with its client, gracefully or not');
});

/** One client's queries, each result checked; resolves with the upstream backend's pid. */
async function exercise(client: pg.Client, id: number): Promise<number> {
  const expect = (what: string, actual: unknown, expected: unknown): void => {
    if (JSON.stringify(actual) !== JSON.stringify(expected)) {
      throw new Error(`client ${id}: ${what}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
    }
  };
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;

  expect('empty before writing', (await client.query(`SELECT count(*)::int AS c FROM ${TABLE} WHERE client_id = ${id}`)).rows, [{ c: 0 }]);
  for (let n = 1; n <= ROWS_PER_CLIENT; n++) {
    const inserted = await client.query(`INSERT INTO ${TABLE} (client_id, n, label) VALUES ($1, $2, $3) RETURNING n`, [id, n, `c${id}-r${n}`]);
    expect('insert', inserted.rows, [{ n }]);
  }
  // Simple protocol (no parameters), then extended protocol with parameters.
  expect('simple read-back',
    (await client.query(`SELECT count(*)::int AS c, sum(n)::int AS s FROM ${TABLE} WHERE client_id = ${id}`)).rows,
    [{ c: ROWS_PER_CLIENT, s: (ROWS_PER_CLIENT * (ROWS_PER_CLIENT + 1)) / 2 }]);
  expect('parameterized read-back',
    (await client.query(`SELECT n, label FROM ${TABLE} WHERE client_id = $1 ORDER BY n`, [id])).rows,
    Array.from({ length: ROWS_PER_CLIENT }, (_, i) => ({ n: i + 1, label: `c${id}-r${i + 1}` })));
  expect('parameterized expression',
    (await client.query('SELECT $1::int * 7 AS x, $2::text AS me', [id, `client-${id}`])).rows,
    [{ x: id * 7, me: `client-${id}` }]);
  return pid;
}

/** Like an application that crashes: the socket closes without a Terminate message. */
function dropConnection(client: pg.Client): Promise<void> {
  return new Promise((resolve) => {
    client.on('error', () => undefined); // "Connection terminated unexpectedly" is the point here
    client.once('end', () => resolve());
    client.connection.stream.destroy();
  });
}

function failures(results: PromiseSettledResult<unknown>[]): string[] {
  return results.flatMap((r, i) => (r.status === 'rejected' ? [`client ${i}: ${(r.reason as Error).message}`] : [])).slice(0, 10);
}

async function upstreamSessions(): Promise<number> {
  const [row] = await cluster.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [APP_NAME]);
  return row!.n;
}

/** Upstream sessions end asynchronously after the client's Terminate; wait a bounded time. */
async function drainedSessions(): Promise<number> {
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  for (;;) {
    const n = await upstreamSessions();
    if (n === 0 || Date.now() > deadline) return n;
    await new Promise((r) => setTimeout(r, 100));
  }
}

test.run();
