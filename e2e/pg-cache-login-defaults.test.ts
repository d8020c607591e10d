// test-timeout: 90
// A new PostgreSQL session adopts the context an earlier session with the same startup was probed
// into, so a short-lived connection's first read can be a hit. When the login's defaults change
// under it (ALTER ROLE ... SET search_path here: the same text then names another schema's table),
// the session's own identity check reads its context too: a changed one is probed again instead of
// answering from the other table's entry. The role is the test's own.
import { test } from 'uvu';
import pg from 'pg';
import { direct, uniqueName } from './support/pg-direct.js';
import { measure } from './support/metrics.js';
import { DIRECT_PG, startProxy, type RunningProxy } from './support/sidecache.js';
import { loginDefaultsChange } from './support/login-defaults.js';

const PREFIX = uniqueName('sc_logdef');
const ROLE = `${PREFIX}_role`;
const TABLE = `${PREFIX}_t`;
const OTHER = `${PREFIX}_s2`;
let proxy: RunningProxy;

/** The read on a new connection as ROLE, as a short-lived client makes it. */
async function readOnce(port: number): Promise<string> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: ROLE, database: 'test' });
  await c.connect();
  try {
    return (await c.query<{ v: string }>(`SELECT v FROM ${TABLE} WHERE id = 1`)).rows[0]!.v;
  } finally {
    await c.end();
  }
}

test.before(async () => {
  await direct(`CREATE ROLE ${ROLE} LOGIN`);
  await direct(`CREATE SCHEMA ${OTHER}`);
  await direct(`GRANT USAGE ON SCHEMA ${OTHER} TO ${ROLE}`);
  for (const [table, v] of [[`public.${TABLE}`, 'public'], [`${OTHER}.${TABLE}`, 'other']] as const) {
    await direct(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    await direct(`INSERT INTO ${table} VALUES (1, '${v}')`);
    await direct(`GRANT SELECT ON ${table} TO ${ROLE}`);
  }
  proxy = await startProxy({});
});

test.after(async () => {
  await proxy?.stop();
  await direct(`DROP TABLE IF EXISTS public.${TABLE}`).catch(() => undefined);
  await direct(`DROP SCHEMA IF EXISTS ${OTHER} CASCADE`).catch(() => undefined);
  await direct(`DROP ROLE IF EXISTS ${ROLE}`).catch(() => undefined);
});

test('ALTER ROLE ... SET search_path: new sessions read the other table, then hit again', () => loginDefaultsChange({
  throughProxy: async () => {
    const { result, delta } = await measure(proxy.adminPort, () => readOnce(proxy.pgPort));
    return { result, hits: delta.hits };
  },
  direct: () => readOnce(DIRECT_PG.port),
  change: async () => {
    await direct(`ALTER ROLE ${ROLE} SET search_path = ${OTHER}, public`);
  },
  before: 'public',
  after: 'other',
}));

test.run();
