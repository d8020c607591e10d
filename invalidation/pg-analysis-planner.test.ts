// The analysis checked against PostgreSQL itself: for each statement, the tables the analysis says
// it reads and writes, resolved through the session's search_path by the server (to_regclass, as
// the probe does), must be exactly the relations PostgreSQL's planner touches (EXPLAIN VERBOSE
// lists each scanned or modified relation with its schema). Cases avoid what the planner prunes (unused CTEs,
// constant-false filters) and views (the planner shows the tables under them).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type pg from 'pg';
import { analyzeSql, loadPgParser, type QualifiedName } from './pg-analysis.js';
import { connectPg, DIRECT_PG, uniqueName } from '../e2e/support/pg-direct.js';

const schema = uniqueName('inv_plan');
const other = `${schema}_other`;
const mixed = `${schema}_Mixed`;
let client: pg.Client;

test.before(async () => {
  await loadPgParser();
  client = await connectPg(DIRECT_PG.port);
  await client.query(`
    CREATE SCHEMA ${schema};
    CREATE SCHEMA ${other};
    CREATE SCHEMA "${mixed}";
    SET search_path = ${schema};
    CREATE TABLE a (x int PRIMARY KEY, y int);
    CREATE TABLE b (x int, y int);
    CREATE TABLE c (x int, y int);
    CREATE TABLE t (x int, y int);
    CREATE TABLE u (x int, y int);
    CREATE TABLE nodes (x int, parent int);
    CREATE TABLE ${other}.t (x int, y int);
    CREATE TABLE "${mixed}"."Case" (x int);
  `);
});

test.after(async () => {
  await client.query(`DROP SCHEMA IF EXISTS ${schema}, ${other}, "${mixed}" CASCADE`);
  await client.end();
});

/** `schema.name` of each name as the server resolves it in this session; null for a name it does not know. */
async function resolved(names: readonly QualifiedName[]): Promise<(string | null)[]> {
  const rows = await client.query<{ relation: string | null }>(
    `SELECT (SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = to_regclass(CASE WHEN s IS NULL THEN quote_ident(r) ELSE quote_ident(s) || '.' || quote_ident(r) END)) AS relation
       FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS q(s, r, i) ORDER BY i`,
    [names.map((t) => t.schema), names.map((t) => t.name)]);
  return rows.rows.map((row) => row.relation);
}

/** Schema-qualified relations in an EXPLAIN (VERBOSE, FORMAT JSON) plan. */
function plannedRelations(plan: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(plan)) plan.forEach((p) => plannedRelations(p, into));
  else if (plan !== null && typeof plan === 'object') {
    const node = plan as Record<string, unknown>;
    if (typeof node['Relation Name'] === 'string') into.add(`${node['Schema']}.${node['Relation Name']}`);
    Object.values(node).forEach((v) => plannedRelations(v, into));
  }
  return into;
}

const cases = [
  'SELECT a.x FROM a JOIN u ON true',
  'SELECT x FROM a UNION SELECT x FROM b',
  '(SELECT 1 FROM a) EXCEPT ((SELECT 1 FROM b) INTERSECT ALL SELECT 1 FROM c)',
  'SELECT * FROM a WHERE x IN (SELECT x FROM b) AND EXISTS (SELECT 1 FROM c WHERE c.x = a.y)',
  'SELECT (SELECT max(x) FROM b) AS m, x FROM a',
  'SELECT * FROM a, LATERAL (SELECT * FROM b WHERE b.x = a.x) l',
  'SELECT * FROM generate_series(1, (SELECT count(*) FROM a)::int) g',
  'WITH t AS (SELECT * FROM u) SELECT * FROM t',
  'WITH a AS (SELECT * FROM b) SELECT * FROM a JOIN c ON true',
  'WITH t AS (SELECT * FROM t) SELECT * FROM t',
  'WITH a AS (SELECT * FROM b), b AS (SELECT 1 AS x) SELECT * FROM a',
  'WITH x1 AS (SELECT * FROM u), x2 AS (SELECT * FROM x1 JOIN c USING (x)) SELECT * FROM x2',
  'SELECT * FROM (WITH t AS (SELECT * FROM u) SELECT * FROM t) s JOIN t ON true',
  'WITH RECURSIVE r(n) AS (SELECT x FROM nodes UNION ALL SELECT nodes.x FROM nodes JOIN r ON nodes.parent = r.n) SELECT * FROM r',
  `SELECT * FROM ${other}.t JOIN t ON true`,
  `SELECT * FROM "${mixed}"."Case"`,
  'TABLE a',
  'INSERT INTO a SELECT * FROM b',
  'INSERT INTO a (x) VALUES (1) ON CONFLICT (x) DO UPDATE SET y = excluded.y WHERE a.y < (SELECT max(y) FROM c)',
  'UPDATE a SET y = b.y FROM b WHERE a.x = b.x',
  'UPDATE a SET y = (SELECT max(y) FROM c WHERE c.x = a.x)',
  'DELETE FROM a USING b WHERE a.x = b.x',
  'DELETE FROM t WHERE x IN (SELECT x FROM u) RETURNING *',
  'MERGE INTO a USING b ON a.x = b.x WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (b.x, b.y)',
  'WITH d AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM d',
  'WITH u AS (UPDATE t SET y = 1 RETURNING *) SELECT * FROM u JOIN c USING (x)',
];

for (const sql of cases) {
  test(`same relations as the planner: ${sql}`, async () => {
    const analysis = analyzeSql(sql);
    assert.is.not(analysis.kind, 'unknown');
    const names = [...analysis.tablesRead, ...analysis.tablesWritten];
    const relations = await resolved(names);
    assert.equal(names.filter((_, i) => relations[i] === null), []);
    const explained = await client.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (VERBOSE, FORMAT JSON) ${sql}`);
    const planned = plannedRelations(explained.rows[0]!['QUERY PLAN']);
    assert.equal(new Set(relations), planned);
  });
}

test.run();
