// Session-state changes the cache must follow on PostgreSQL: SET SESSION AUTHORIZATION, DISCARD
// ALL and RESET ALL, and a CALL of a procedure that writes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { direct, uniqueName } from './support/pg-direct.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';
import { cacheCounters } from './support/metrics.js';

const PREFIX = uniqueName('sc_sess');
const SCHEMA_A = `${PREFIX}_a`;
const SCHEMA_B = `${PREFIX}_b`;
const ROLE = `${PREFIX}_role`;
let proxy: RunningProxy;
const clients: pg.Client[] = [];

async function connect(): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: proxy.pgPort, user: 'postgres', database: 'test' });
  await c.connect();
  clients.push(c);
  return c;
}

async function names(c: pg.Client, sql: string): Promise<string[]> {
  return (await c.query(sql)).rows.map((r: { name: string }) => r.name);
}

async function hits(): Promise<number> {
  return (await cacheCounters(proxy.adminPort)).hits;
}

test.before(async () => {
  await direct(`CREATE ROLE ${ROLE}`);
  for (const [schema, name] of [[SCHEMA_A, 'from a'], [SCHEMA_B, 'from b']] as const) {
    await direct(`CREATE SCHEMA ${schema}`);
    await direct(`CREATE TABLE ${schema}.items (owner text, name text)`);
    await direct(`INSERT INTO ${schema}.items VALUES ('postgres', '${name} (postgres)'), ('${ROLE}', '${name} (${ROLE})')`);
    await direct(`ALTER TABLE ${schema}.items ENABLE ROW LEVEL SECURITY`);
    await direct(`CREATE POLICY own ON ${schema}.items USING (owner = current_user)`);
    await direct(`GRANT USAGE ON SCHEMA ${schema} TO ${ROLE}`);
    await direct(`GRANT SELECT, INSERT ON ${schema}.items TO ${ROLE}`);
  }
  await direct(`CREATE PROCEDURE ${SCHEMA_A}.add_item(n text) LANGUAGE sql AS $$ INSERT INTO ${SCHEMA_A}.items VALUES ('postgres', n) $$`);
  proxy = await startProxy();
});

test.after(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await proxy?.stop();
  await direct(`DROP SCHEMA IF EXISTS ${SCHEMA_A} CASCADE`);
  await direct(`DROP SCHEMA IF EXISTS ${SCHEMA_B} CASCADE`);
  await direct(`DROP ROLE IF EXISTS ${ROLE}`);
});

test('SET SESSION AUTHORIZATION changes whose rows a cached read returns', async () => {
  const c = await connect();
  const sql = `SELECT name FROM ${SCHEMA_A}.items ORDER BY name`;
  // The superuser bypasses row-level security: it sees both rows.
  assert.equal(await names(c, sql), ['from a (postgres)', `from a (${ROLE})`]);
  assert.equal(await names(c, sql), ['from a (postgres)', `from a (${ROLE})`]);
  await c.query(`SET SESSION AUTHORIZATION ${ROLE}`);
  assert.equal(await names(c, sql), [`from a (${ROLE})`], 'the role sees only its own row');
  assert.equal(await names(c, sql), [`from a (${ROLE})`]);
  await c.query('RESET SESSION AUTHORIZATION');
  assert.equal(await names(c, sql), ['from a (postgres)', `from a (${ROLE})`]);
});

test('DISCARD ALL and RESET ALL bring back the default search_path for cached reads', async () => {
  const c = await connect();
  const sql = 'SELECT name FROM items ORDER BY name';
  for (const reset of ['DISCARD ALL', 'RESET ALL']) {
    await c.query(`SET search_path = ${SCHEMA_B}`);
    assert.equal(await names(c, sql), ['from b (postgres)', `from b (${ROLE})`]);
    const before = await hits();
    assert.equal(await names(c, sql), ['from b (postgres)', `from b (${ROLE})`]);
    assert.ok((await hits()) > before, 'the read is cached under search_path b');
    await c.query(`SET search_path = ${SCHEMA_A}`);
    assert.equal(await names(c, sql), ['from a (postgres)', `from a (${ROLE})`], `${reset}: schema a after SET`);
    await c.query(reset);
    // After the reset search_path is "$user", public again: no items table there.
    await c.query(sql).then(
      () => assert.unreachable(`${reset}: items must not resolve with the default search_path`),
      (err: { code?: string }) => assert.is(err.code, '42P01'),
    );
  }
});

test('CALL of a procedure that writes: cached reads of the table are fresh right after', async () => {
  const reader = await connect();
  const writer = await connect();
  const sql = `SELECT count(*)::int AS n FROM ${SCHEMA_A}.items`;
  const before = (await reader.query(sql)).rows[0].n as number;
  await reader.query(sql);
  const cachedHits = await hits();
  await reader.query(sql);
  assert.ok((await hits()) > cachedHits, 'the count is cached');
  await writer.query(`CALL ${SCHEMA_A}.add_item('called')`);
  assert.equal((await reader.query(sql)).rows, [{ n: before + 1 }]);
});

test.run();
