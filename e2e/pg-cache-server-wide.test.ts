// test-timeout: 120
// Changes every database of the server sees, made through the proxy in one database, reach cached
// reads in the others: REVOKE of a role membership run in database B makes alice's cached read in
// database A fail with the server's permission error, as a direct read does; ALTER ROLE ... SET
// run in B reaches alice's next session in A. Each test first proves the read was a hit.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { connectPg, direct, rejectionOf, uniqueName } from './support/pg-direct.js';
import { measure } from './support/metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const S = uniqueName('sc_wide');
const DB_A = `${S}_a`;
const DB_B = `${S}_b`;
const GROUP = `${S}_grp`;
const ALICE = `${S}_alice`;
let proxy: RunningProxy;
const open: pg.Client[] = [];

async function connect(port: number, user: string, database: string): Promise<pg.Client> {
  const c = await connectPg(port, { user, database });
  c.on('error', () => undefined);
  open.push(c);
  return c;
}

/** Reads `sql` twice; the second read must be a hit. Returns its rows. */
async function cached(c: pg.Client, sql: string): Promise<unknown[]> {
  await c.query(sql);
  const { result, delta } = await measure(proxy.adminPort, () => c.query(sql));
  assert.is(delta.hits, 1, `the second read is a hit: ${sql}`);
  return result.rows;
}

test.before(async () => {
  await direct(`CREATE ROLE ${GROUP} NOLOGIN`);
  await direct(`CREATE ROLE ${ALICE} LOGIN IN ROLE ${GROUP}`);
  await direct(`CREATE DATABASE ${DB_A}`);
  await direct(`CREATE DATABASE ${DB_B}`);
  await direct('CREATE TABLE t (id int PRIMARY KEY, v int)', [], DB_A);
  await direct('INSERT INTO t VALUES (1, 10)', [], DB_A);
  await direct(`GRANT SELECT ON t TO ${GROUP}`, [], DB_A);
  await direct(`CREATE SCHEMA app AUTHORIZATION ${ALICE}`, [], DB_A);
  await direct(`CREATE TABLE app.t (id int PRIMARY KEY, v int)`, [], DB_A);
  await direct('INSERT INTO app.t VALUES (1, 77)', [], DB_A);
  await direct(`GRANT SELECT ON app.t TO ${ALICE}`, [], DB_A);
  proxy = await startProxy();
});

test.after(async () => {
  await Promise.all(open.map((c) => c.end().catch(() => undefined)));
  await proxy?.stop();
  await direct(`DROP DATABASE IF EXISTS ${DB_A} WITH (FORCE)`);
  await direct(`DROP DATABASE IF EXISTS ${DB_B} WITH (FORCE)`);
  await direct(`DROP ROLE IF EXISTS ${ALICE}`);
  await direct(`DROP ROLE IF EXISTS ${GROUP}`);
});

test('REVOKE of a membership run in database B: alice\'s cached read in database A is denied, as direct', async () => {
  const sql = 'SELECT v FROM t WHERE id = 1';
  const alice = await connect(proxy.pgPort, ALICE, DB_A);
  assert.equal(await cached(alice, sql), [{ v: 10 }]);
  const admin = await connect(proxy.pgPort, 'postgres', DB_B);
  await admin.query(`REVOKE ${GROUP} FROM ${ALICE}`);
  const directly = await connect(5432, ALICE, DB_A);
  assert.is((await rejectionOf(directly.query(sql))).code, '42501', 'the server denies it');
  const { result, delta } = await measure(proxy.adminPort, () => rejectionOf(alice.query(sql)));
  assert.is(result.code, '42501', 'and so does sidecache');
  assert.is(delta.hits, 0);
  const fresh = await connect(proxy.pgPort, ALICE, DB_A);
  assert.is((await rejectionOf(fresh.query(sql))).code, '42501', 'in a new session too');
});

test('ALTER ROLE ... SET run in database B: alice\'s next session in database A reads under it', async () => {
  const sql = 'SELECT v FROM t WHERE id = 1';
  await direct(`GRANT SELECT ON t TO ${ALICE}`, [], DB_A);
  const first = await connect(proxy.pgPort, ALICE, DB_A);
  assert.equal(await cached(first, sql), [{ v: 10 }], 'public.t, through the default search_path');
  await first.end();
  const admin = await connect(proxy.pgPort, 'postgres', DB_B);
  await admin.query(`ALTER ROLE ${ALICE} SET search_path = app`);
  const next = await connect(proxy.pgPort, ALICE, DB_A);
  const { result, delta } = await measure(proxy.adminPort, () => next.query(sql));
  assert.equal(result.rows, [{ v: 77 }], 'app.t, as the role\'s new setting says');
  assert.is(delta.hits, 0);
});

test.run();
