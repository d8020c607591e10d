// Multi-tenant row-level security keyed by a custom setting: sessions of the same role that set
// app.tenant differently (SET, set_config, startup options) must never share cached results.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { direct, uniqueName } from './support/pg-direct.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';
import { cacheCounters } from './support/metrics.js';

const ROLE = uniqueName('sc_tenant_role');
const TABLE = uniqueName('sc_tenant_rows');
let proxy: RunningProxy;
const clients: pg.Client[] = [];

async function connect(options?: string): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: proxy.pgPort, user: ROLE, database: 'test', ...(options ? { options } : {}) });
  await c.connect();
  clients.push(c);
  return c;
}

async function rows(c: pg.Client, params?: unknown[]): Promise<string[]> {
  const sql = `SELECT name FROM ${TABLE} ORDER BY name`;
  const r = params ? await c.query(`${sql} LIMIT $1`, params) : await c.query(sql);
  return r.rows.map((x: { name: string }) => x.name);
}

test.before(async () => {
  await direct(`CREATE ROLE ${ROLE} LOGIN`);
  await direct(`CREATE TABLE ${TABLE} (tenant text NOT NULL, name text NOT NULL)`);
  await direct(`INSERT INTO ${TABLE} VALUES ('a', 'alpha-1'), ('a', 'alpha-2'), ('b', 'beta-1')`);
  await direct(`ALTER TABLE ${TABLE} ENABLE ROW LEVEL SECURITY`);
  await direct(`CREATE POLICY by_tenant ON ${TABLE} USING (tenant = current_setting('app.tenant', true))`);
  await direct(`GRANT SELECT ON ${TABLE} TO ${ROLE}`);
  proxy = await startProxy();
});

test.after(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await proxy?.stop();
  await direct(`DROP TABLE IF EXISTS ${TABLE}`);
  await direct(`DROP ROLE IF EXISTS ${ROLE}`);
});

test('SET app.tenant: each tenant sees its own rows, read after read, simple and extended', async () => {
  const a = await connect();
  const b = await connect();
  await a.query(`SET app.tenant = 'a'`);
  await b.query(`SET app.tenant = 'b'`);
  for (let round = 0; round < 3; round++) {
    assert.equal(await rows(a), ['alpha-1', 'alpha-2'], `tenant a, round ${round}`);
    assert.equal(await rows(b), ['beta-1'], `tenant b, round ${round}`);
    assert.equal(await rows(a, [10]), ['alpha-1', 'alpha-2']);
    assert.equal(await rows(b, [10]), ['beta-1']);
  }
  const before = (await cacheCounters(proxy.adminPort)).hits;
  assert.equal(await rows(a), ['alpha-1', 'alpha-2']);
  assert.ok((await cacheCounters(proxy.adminPort)).hits > before, 'a tenant\'s repeated read is still a hit');
  await a.query(`SELECT set_config('app.tenant', 'b', false)`);
  assert.equal(await rows(a), ['beta-1'], 'after set_config the session reads as tenant b');
});

test('set_config alone: sessions choosing tenants by literal values only (one statement shape) never share', async () => {
  const a = await connect();
  const b = await connect();
  await a.query(`SELECT set_config('app.tenant', 'a', false)`);
  await b.query(`SELECT set_config('app.tenant', 'b', false)`);
  for (let round = 0; round < 2; round++) {
    assert.equal(await rows(a), ['alpha-1', 'alpha-2'], `tenant a, round ${round}`);
    assert.equal(await rows(b), ['beta-1'], `tenant b, round ${round}`);
  }
});

test('a tenant chosen in the startup options is part of the key', async () => {
  const a = await connect('-c app.tenant=a');
  const b = await connect('-c app.tenant=b');
  for (let round = 0; round < 2; round++) {
    assert.equal(await rows(a), ['alpha-1', 'alpha-2']);
    assert.equal(await rows(b), ['beta-1']);
  }
});

test('set_config with a computed name makes the session share nothing', async () => {
  const a = await connect();
  await a.query(`SELECT set_config('app.' || 'tenant', 'a', false)`);
  const other = await connect();
  await other.query(`SET app.tenant = 'b'`);
  for (let round = 0; round < 2; round++) {
    assert.equal(await rows(a), ['alpha-1', 'alpha-2']);
    assert.equal(await rows(other), ['beta-1']);
  }
});

test.run();
