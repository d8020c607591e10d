// test-timeout: 180
//
// `make run` with no upstream: the quick start on an embedded PostgreSQL (PGlite) with sample data.
// The banner's own instructions are followed as a new user would: connect where it says, run the
// query it suggests, and see the second run, from a new connection, answered from the cache;
// a write through the proxy is seen by the next read.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { connectPg } from './support/pg-direct.js';
import { measure } from './support/metrics.js';
import { spawnSidecache, type RunningProxy } from './support/sidecache.js';

let proxy: RunningProxy;

test.before(async () => {
  proxy = await spawnSidecache(['--pg-listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'], {}, 120_000);
});

test.after(async () => {
  assert.is(await proxy?.stop(), 0, 'a clean exit on SIGTERM');
});

/** The banner's suggested query (after "Try:"). */
function suggestedQuery(): string {
  const m = /Try:\s+(SELECT[^;]*;)/.exec(proxy.output());
  if (!m) throw new Error(`no "Try:" query in the banner:\n${proxy.output()}`);
  return m[1]!;
}

async function runOnce(sql: string): Promise<unknown[]> {
  const c = await connectPg(proxy.pgPort, { user: 'postgres', database: 'postgres' });
  try {
    return (await c.query(sql)).rows;
  } finally {
    await c.end();
  }
}

test('the banner says where to connect, what to try and where the metrics are; MySQL is off', () => {
  const out = proxy.output();
  assert.match(out, /embedded PGlite/);
  assert.match(out, new RegExp(`Connect:\\s+psql "postgres://postgres@127\\.0\\.0\\.1:${proxy.pgPort}/postgres`));
  assert.match(out, new RegExp(`Watch:\\s+http://127\\.0\\.0\\.1:${proxy.adminPort}/`));
  assert.match(out, /No MySQL upstream is configured/);
});

test('the suggested query, run from two connections one after the other: the second is a hit', async () => {
  const sql = suggestedQuery();
  const { result: first, delta: filled } = await measure(proxy.adminPort, () => runOnce(sql));
  assert.ok(first.length > 0, 'the sample data answers it');
  assert.is(filled.misses, 1, 'the first run fills the cache');
  const { result: second, delta: answered } = await measure(proxy.adminPort, () => runOnce(sql));
  assert.equal(second, first);
  assert.is(answered.hits, 1, 'the second, from a new connection, is a hit');
  assert.is(answered.misses, 0);
});

test('a write through the proxy is seen by the next read of the suggested query', async () => {
  const sql = suggestedQuery();
  const before = await runOnce(sql) as { count: string }[];
  const total = (rows: { count: string }[]): number => rows.reduce((n, r) => n + Number(r.count), 0);
  const c = await connectPg(proxy.pgPort, { user: 'postgres', database: 'postgres' });
  try {
    // The sample schema (cli/quickstart.ts): a new product in a category of its own.
    await c.query("INSERT INTO products (id, name, category, price_cents) SELECT max(id) + 1, 'e2e widget', 'e2e', 1 FROM products");
  } finally {
    await c.end();
  }
  const after = await runOnce(sql) as { count: string }[];
  assert.is(total(after), total(before) + 1, 'the cached result was invalidated');
});

/** Listens on 127.0.0.1:port so the quick start finds it taken; null when something else already has it. */
function occupy(port: number): Promise<net.Server | null> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(null));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

test('`make run` with every default port taken: it moves to 15432 / 19180, then to any free port, and says so', async () => {
  // 5432 is the real PostgreSQL's here; the fallbacks are taken by this test.
  const held = await Promise.all([5432, 15432, 9180, 19180].map(occupy));
  let second: RunningProxy | undefined;
  try {
    second = await spawnSidecache([], {}, 120_000);
    const out = second.output();
    assert.match(out, /--pg-listen port 5432 is taken, trying 15432/);
    assert.match(out, /--pg-listen port 15432 is taken, trying any free port/);
    assert.match(out, /--admin-listen port 9180 is taken, trying 19180/);
    assert.ok(![5432, 15432].includes(second.pgPort) && second.pgPort > 0, `pg on ${second.pgPort}`);
    assert.ok(![9180, 19180].includes(second.adminPort) && second.adminPort > 0, `admin on ${second.adminPort}`);
    assert.match(out, new RegExp(`Connect:\\s+psql "postgres://postgres@127\\.0\\.0\\.1:${second.pgPort}/postgres`), 'the banner names the port it took');
    const c = await connectPg(second.pgPort, { user: 'postgres', database: 'postgres' });
    try {
      assert.ok((await c.query('SELECT count(*) AS n FROM products')).rows[0].n > 0);
    } finally {
      await c.end();
    }
  } finally {
    await second?.stop();
    for (const server of held) server?.close();
  }
});

test.run();
