// The probe against the real PostgreSQL: what it says about relation kinds, temporary tables,
// partitions, cascading foreign keys, views and function volatility decides what may be cached and
// which writes invalidate an entry, so each answer is checked on a real catalog.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type pg from 'pg';
import { connectPg, uniqueName } from '../e2e/support/pg-direct.js';
import { analyzeSql, loadPgParser } from './pg-analysis.js';
import { closureDefinitions, judgeProbed, learnFacts, viewDefinitionHazard } from './pg-facts.js';
import { buildProbeSql, probeFailureIsPassing, probeQuery, readProbeRow, type ProbeResult } from './pg-probe.js';

const schema = uniqueName('sc_probe');
/** A foreign-data wrapper and server are database objects, not schema ones: dropped by name. */
const wrapper = uniqueName('sc_probe_fdw');
let c: pg.Client;

/** The probe's row for `sql`, and what the proxy concludes from it for `sql`. */
interface Probed extends ProbeResult {
  /** Why the proxy refuses to cache `sql`, or null. */
  notCacheable: string | null;
  dependsOn: string[];
  functionsBuiltin: boolean;
  /** The view definitions and policies (as queries) of the relations read. */
  definitions: string[];
}

async function probe(sql: string): Promise<Probed> {
  const analysis = analyzeSql(sql);
  const r = await c.query({ text: buildProbeSql(analysis), rowMode: 'array' });
  assert.is(r.rows.length, 1);
  const result = readProbeRow((r.rows[0] as unknown[]).map((v) => (v === null ? null : String(v))));
  const verdict = judgeProbed(analysis, learnFacts(result.relations, result.functions, analyzeSql));
  return {
    ...result,
    notCacheable: verdict.reason,
    dependsOn: [...verdict.dependsOn],
    functionsBuiltin: verdict.functionsBuiltin,
    definitions: [...new Set(result.relations.flatMap((rel) => closureDefinitions(rel.closure ?? [])))],
  };
}

async function verdict(sql: string): Promise<string | null> {
  return (await probe(sql)).notCacheable;
}

test.before(async () => {
  await loadPgParser();
  c = await connectPg(5432);
  await c.query(`CREATE SCHEMA ${schema}; SET search_path = ${schema}, public`);
  await c.query(`
    CREATE TABLE plain (id int PRIMARY KEY, v int);
    CREATE VIEW plain_view AS SELECT * FROM plain;
    CREATE MATERIALIZED VIEW plain_mat AS SELECT * FROM plain;
    CREATE SEQUENCE seq;
    CREATE TABLE parent (id int PRIMARY KEY);
    CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent(id) ON DELETE CASCADE);
    CREATE TABLE grandchild (id int, child_id int REFERENCES child(id) ON UPDATE SET NULL);
    CREATE TABLE plain_ref (id int, plain_id int REFERENCES plain(id));
    CREATE TABLE measurements (at date NOT NULL, v int) PARTITION BY RANGE (at);
    CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
    CREATE TABLE "Mixed Case" (id int);
    CREATE FUNCTION f_immutable(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1 + 1';
    CREATE FUNCTION f_stable(int) RETURNS int LANGUAGE sql STABLE AS 'SELECT $1 + 1';
    CREATE FUNCTION f_volatile(int) RETURNS int LANGUAGE sql VOLATILE AS 'SELECT $1 + 1';
    CREATE TEMP TABLE scratch (id int);
    CREATE TABLE audited (id int);
    CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN UPDATE plain SET v = v + 1; RETURN NEW; END';
    CREATE TRIGGER audited_insert AFTER INSERT ON audited FOR EACH ROW EXECUTE FUNCTION audit();
    CREATE TABLE ruled (id int);
    CREATE RULE ruled_insert AS ON INSERT TO ruled DO ALSO UPDATE plain SET v = 0;
    CREATE TABLE orders (id int PRIMARY KEY, customer_id int);
    CREATE TABLE customers (id int PRIMARY KEY, name text);
    CREATE VIEW order_names AS SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id;
    CREATE VIEW recent_order_names AS SELECT * FROM order_names WHERE id > 100;
    CREATE VIEW plain_now AS SELECT id, now() AS at FROM plain;
    CREATE VIEW plain_current_timestamp AS SELECT id, CURRENT_TIMESTAMP AS at FROM plain;
    CREATE VIEW plain_over_now AS SELECT * FROM plain_now;
    CREATE VIEW plain_volatile AS SELECT f_volatile(v) FROM plain;
    CREATE VIEW plain_stable AS SELECT f_stable(v) FROM plain;
    CREATE VIEW plain_immutable AS SELECT f_immutable(v) FROM plain;
    CREATE VIEW plain_size AS SELECT id, pg_relation_size('plain') FROM plain;
    CREATE FUNCTION f_volatile_plus(int, int) RETURNS int LANGUAGE sql VOLATILE AS 'SELECT $1 + $2';
    CREATE OPERATOR <+> (LEFTARG = int, RIGHTARG = int, FUNCTION = f_volatile_plus);
    CREATE VIEW plain_operator AS SELECT id <+> v FROM plain;
    CREATE VIEW measurements_view AS SELECT * FROM measurements;
    CREATE VIEW catalog_view AS SELECT relname FROM pg_class;
    CREATE VIEW sequence_view AS SELECT last_value FROM seq;
    CREATE VIEW plain_barrier WITH (security_barrier, security_invoker) AS SELECT * FROM plain WHERE v > 0;
    CREATE MATERIALIZED VIEW now_mat AS SELECT * FROM plain_now;
    CREATE TEMP VIEW scratch_view AS SELECT * FROM scratch;
    CREATE FOREIGN DATA WRAPPER ${wrapper};
    CREATE SERVER ${wrapper} FOREIGN DATA WRAPPER ${wrapper};
    CREATE FOREIGN TABLE remote (id int) SERVER ${wrapper};
    CREATE VIEW remote_view AS SELECT * FROM remote;
    CREATE TABLE allowed (owner text);
    CREATE TABLE by_list (id int, owner text);
    CREATE POLICY listed ON by_list USING (owner IN (SELECT a.owner FROM allowed a));
    CREATE TABLE by_function (id int, owner text);
    CREATE POLICY via_function ON by_function USING (f_stable(id) > 0);
    CREATE TABLE by_time (id int, public_at timestamptz);
    CREATE POLICY released ON by_time USING (public_at <= now());
    CREATE TABLE by_tenant (id int, tenant text);
    CREATE POLICY tenant ON by_tenant USING (tenant = current_setting('app.tenant', true));
  `);
});

test.after(async () => {
  await c.query(`DROP SCHEMA ${schema} CASCADE; DROP FOREIGN DATA WRAPPER IF EXISTS ${wrapper} CASCADE`);
  await c.end();
});

test('the session: database, role and the keyed settings (search_path included)', async () => {
  const p = await probe('SELECT 1');
  assert.is(p.database, 'test');
  assert.is(p.currentUser, 'postgres');
  assert.ok(p.settings.startsWith(`${schema}, public`), p.settings);
  await c.query('SET extra_float_digits = 3');
  const changed = await probe('SELECT 1');
  await c.query('RESET extra_float_digits');
  assert.is.not(changed.settings, p.settings, 'extra_float_digits is part of the context');
});

test('a plain table through the search_path may be cached and depends on itself only', async () => {
  const p = await probe('SELECT v FROM plain WHERE id = 1');
  assert.is(p.notCacheable, null);
  assert.equal(p.dependsOn, ['plain'], 'a table referencing plain does not change plain');
});

test('a session with temporary relations says so', async () => {
  assert.ok((await probe('SELECT 1')).hasTempRelations, 'this session created scratch');
  const other = await connectPg(5432);
  try {
    const r = await other.query({ text: buildProbeSql(analyzeSql('SELECT 1')), rowMode: 'array' });
    assert.not.ok(readProbeRow((r.rows[0] as unknown[]).map((v) => (v === null ? null : String(v)))).hasTempRelations);
  } finally {
    await other.end();
  }
});

test('foreign tables, sequences, temporary and missing tables are refused', async () => {
  assert.is((await probe('SELECT * FROM seq')).notCacheable, 'sequence');
  assert.is((await probe('SELECT * FROM remote')).notCacheable, 'foreign-table');
  assert.is((await probe('SELECT * FROM scratch')).notCacheable, 'temporary-table');
  assert.is((await probe('SELECT * FROM no_such_table')).notCacheable, 'unresolved-table');
  assert.is((await probe('SELECT * FROM plain_mat')).notCacheable, null, 'a materialized view changes only on REFRESH');
});

test('a view over a table may be cached and depends on the table', async () => {
  const p = await probe('SELECT * FROM plain_view WHERE id = 1');
  assert.is(p.notCacheable, null);
  assert.is(viewDefinitionHazard(p.definitions, analyzeSql), null);
  assert.equal(p.dependsOn.sort(), ['plain', 'plain_view']);
  assert.is(p.definitions.length, 1);
  assert.ok(p.functionsBuiltin);
});

test('a view over a view over a join depends on every base table', async () => {
  const p = await probe('SELECT * FROM recent_order_names');
  assert.is(await verdict('SELECT * FROM recent_order_names'), null);
  assert.equal(p.dependsOn.sort(), ['customers', 'order_names', 'orders', 'recent_order_names']);
  assert.is(p.definitions.length, 2, 'both views are judged by their definitions');
});

test('a view over a partitioned table depends on its partitions', async () => {
  assert.is(await verdict('SELECT * FROM measurements_view'), null);
  assert.equal((await probe('SELECT * FROM measurements_view')).dependsOn.sort(), ['measurements', 'measurements_2026', 'measurements_view']);
});

test('a view computing the time is refused, however deep', async () => {
  assert.is(await verdict('SELECT * FROM plain_now'), 'view-time-dependent', 'now() leaves no pg_depend row');
  assert.is(await verdict('SELECT * FROM plain_current_timestamp'), 'view-time-dependent');
  assert.is(await verdict('SELECT * FROM plain_over_now'), 'view-time-dependent');
  assert.is(await verdict('SELECT * FROM now_mat'), null, 'a materialized view holds what REFRESH computed');
});

test('a view calling a user function: only IMMUTABLE may be cached, and it is not a built-in', async () => {
  assert.is(await verdict('SELECT * FROM plain_volatile'), 'function');
  assert.is(await verdict('SELECT * FROM plain_stable'), 'function');
  const immutable = await probe('SELECT * FROM plain_immutable');
  assert.is(await verdict('SELECT * FROM plain_immutable'), null);
  assert.not.ok(immutable.functionsBuiltin, 'a user function may change settings');
  assert.is(await verdict('SELECT * FROM plain_operator'), 'function', 'an operator runs its function');
});

test('a view calling a volatile built-in the analysis does not list is refused by pg_proc', async () => {
  assert.is(await verdict('SELECT * FROM plain_size'), 'function');
});

test('a view over a temporary, foreign, sequence or catalog relation is refused', async () => {
  assert.is(await verdict('SELECT * FROM scratch_view'), 'temporary-table');
  assert.is(await verdict('SELECT * FROM remote_view'), 'foreign-table');
  assert.is(await verdict('SELECT * FROM sequence_view'), 'sequence');
  assert.is(await verdict('SELECT * FROM catalog_view'), 'view-system-catalog', 'pg_class is pinned: only the text names it');
});

test('security_barrier and security_invoker views may be cached (the key holds the role)', async () => {
  assert.is(await verdict('SELECT * FROM plain_barrier'), null);
});

test('a temporary table shadowing a real one is refused', async () => {
  await c.query('CREATE TEMP TABLE plain (id int)');
  try {
    assert.is((await probe('SELECT * FROM plain')).notCacheable, 'temporary-table');
    assert.is((await probe(`SELECT * FROM ${schema}.plain`)).notCacheable, null);
  } finally {
    await c.query('DROP TABLE pg_temp.plain');
  }
});

test('tables whose cascading foreign keys reach the table read are dependencies, transitively', async () => {
  assert.equal((await probe('SELECT * FROM grandchild')).dependsOn.sort(), ['child', 'grandchild', 'parent']);
  assert.equal((await probe('SELECT * FROM child')).dependsOn.sort(), ['child', 'parent']);
});

test('partitions and partitioned parents depend on each other', async () => {
  assert.equal((await probe('SELECT * FROM measurements')).dependsOn.sort(), ['measurements', 'measurements_2026']);
  assert.equal((await probe('SELECT * FROM measurements_2026')).dependsOn.sort(), ['measurements', 'measurements_2026']);
});

test('views and tables with user triggers or rules are listed (a write to them changes other tables)', async () => {
  const p = await probe('SELECT 1');
  assert.ok(p.fanOutTables.includes('plain_view'), 'a write to an updatable view writes its base table');
  assert.ok(p.fanOutTables.includes('audited'), JSON.stringify(p.fanOutTables));
  assert.ok(p.fanOutTables.includes('ruled'));
  assert.not.ok(p.fanOutTables.includes('child'), 'foreign-key triggers are internal and handled as cascades');
});

test('row-level security: what policies read is a dependency; policies calling user or time functions are refused', async () => {
  const listed = await probe('SELECT * FROM by_list');
  assert.is(await verdict('SELECT * FROM by_list'), null);
  assert.ok(listed.dependsOn.includes('allowed'), `a write to the policy's table changes the rows seen: ${listed.dependsOn}`);
  assert.is(await verdict('SELECT * FROM by_function'), 'function', 'a policy calling a user function');
  assert.is(await verdict('SELECT * FROM by_time'), 'view-time-dependent', 'a policy comparing with now()');
  assert.is(await verdict('SELECT * FROM by_tenant'), null, 'current_setting() in a policy: the settings are keyed');
});

test('quoted identifiers resolve', async () => {
  const p = await probe('SELECT * FROM "Mixed Case"');
  assert.is(p.notCacheable, null);
  assert.equal(p.dependsOn, ['Mixed Case']);
});

test('functions: only IMMUTABLE or built-in STABLE may be cached; only built-ins are known not to write', async () => {
  const builtin = await probe('SELECT lower(\'A\'), count(*) FROM plain');
  assert.is(builtin.notCacheable, null);
  assert.ok(builtin.functionsBuiltin);
  const immutable = await probe('SELECT f_immutable(v) FROM plain');
  assert.is(immutable.notCacheable, null);
  assert.not.ok(immutable.functionsBuiltin);
  assert.is((await probe('SELECT f_stable(v) FROM plain')).notCacheable, 'function');
  assert.is((await probe('SELECT f_volatile(v) FROM plain')).notCacheable, 'function');
  assert.is((await probe('SELECT no_such_function(1)')).notCacheable, 'function');
});

test('each relation and each function is reported on its own, a name that does not resolve with no closure', async () => {
  const p = await probe('SELECT * FROM plain_view v JOIN child c ON c.id = v.id JOIN no_such_table n ON true WHERE f_immutable(v.id) > lower(c.id::text)::int');
  assert.equal(p.relations.map((r) => r.name), ['"plain_view"', '"child"', '"no_such_table"']);
  assert.equal(p.relations[0]!.closure!.map((r) => r.name).sort(), ['plain', 'plain_view']);
  assert.equal(p.relations[1]!.closure!.map((r) => r.name).sort(), ['child', 'parent']);
  assert.is(p.relations[2]!.closure, null);
  assert.equal(p.functions.map((f) => [f.name, f.safe, f.builtin, f.found]).sort(),
    [['f_immutable', true, false, true], ['lower', true, true, true]]);
  assert.is(p.notCacheable, 'unresolved-table');
});

test('run as a Query with its own settings: the session\'s planner and timeouts do not reach it, and stay as they were', async () => {
  const analysis = analyzeSql('SELECT * FROM recent_order_names');
  const expected = await c.query({ text: buildProbeSql(analysis), rowMode: 'array' });
  await c.query("SET enable_seqscan = off; SET enable_indexscan = off; SET jit_above_cost = 0; SET statement_timeout = '5s'");
  try {
    const results = await c.query({ text: probeQuery(buildProbeSql(analysis), '15.20 (Debian)'), rowMode: 'array' }) as unknown as pg.QueryResult[];
    assert.equal(results[results.length - 1]!.rows, expected.rows);
    const after = await c.query("SELECT current_setting('enable_seqscan') AS s, current_setting('jit_above_cost') AS j, current_setting('statement_timeout') AS t");
    assert.equal(after.rows, [{ s: 'off', j: '0', t: '5s' }]);
  } finally {
    await c.query('RESET enable_seqscan; RESET enable_indexscan; RESET jit_above_cost; RESET statement_timeout');
  }
});

test('the probe\'s own settings exist on the server version they are set for', () => {
  assert.match(probeQuery('SELECT 1', '15.20'), /SET LOCAL jit = off; .*SET LOCAL force_parallel_mode = off;/);
  assert.not.match(probeQuery('SELECT 1', '16.1'), /force_parallel_mode/);
  assert.match(probeQuery('SELECT 1', '16.1'), /debug_parallel_query/);
  assert.not.match(probeQuery('SELECT 1', '10.23'), /jit|memoize/);
  assert.ok(probeQuery('SELECT 1', '15.20').endsWith('; SELECT 1'));
});

test('a failure for a passing reason (cancel, lock, resources, serialization) is told apart from one that will repeat', () => {
  for (const code of ['57014', '55P03', '40001', '40P01', '53200']) assert.ok(probeFailureIsPassing(code), code);
  for (const code of ['42501', '42883', '42P01', 'XX000', '']) assert.not.ok(probeFailureIsPassing(code), code);
});

test('a malformed row is refused', () => {
  const row = ['test', 'u', 'u', 's', '[{"name": "\\"t\\"", "closure": null, "calls": "true true"}]',
    '[{"name": "f", "safe": true, "builtin": true, "found": true}]', 'false', '[]'];
  assert.ok(readProbeRow(row));
  assert.throws(() => readProbeRow(['a', 'b']), /8/);
  assert.throws(() => readProbeRow([null, ...row.slice(1)]), /NULL/);
  assert.throws(() => readProbeRow(row.map((v, i) => (i === 4 ? null : v))), /NULL/);
  assert.throws(() => readProbeRow(row.map((v, i) => (i === 4 ? '[{"name": "t"}]' : v))), /relations/);
  assert.throws(() => readProbeRow(row.map((v, i) => (i === 4 ? '[{"name": "t", "closure": [{"name": "t"}], "calls": "true true"}]' : v))), /relations/);
  assert.throws(() => readProbeRow(row.map((v, i) => (i === 4 ? 'not json' : v))), /relations/);
  assert.throws(() => readProbeRow(row.map((v, i) => (i === 5 ? '[{"name": "f", "safe": "yes"}]' : v))), /functions/);
  assert.throws(() => readProbeRow(row.map((v, i) => (i === 7 ? '[1]' : v))), /fan-out/);
});

test.run();
