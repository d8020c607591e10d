import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import {
  analyzeSql, loadPgParser, type NotCacheableReason, type QualifiedName, type StatementAnalysis,
  type StatementKind,
} from './pg-analysis.js';

await loadPgParser();

const names = (list: readonly QualifiedName[]): string[] =>
  list.map((q) => (q.schema === null ? q.name : `${q.schema}.${q.name}`));

interface Expected {
  kind: StatementKind;
  cacheable?: boolean;
  reason?: NotCacheableReason;
  read?: string[];
  written?: string[];
  functions?: string[];
  writesUnlisted?: boolean;
  serverWide?: boolean;
}

/** One table row: SQL text and what the analysis must say about it. Unlisted fields must be empty/false. */
function expectAnalysis(sql: string, expected: Expected): StatementAnalysis {
  const a = analyzeSql(sql);
  const label = `${sql} →`;
  assert.is(a.kind, expected.kind, `${label} kind`);
  assert.is(a.cacheable, expected.cacheable ?? false, `${label} cacheable`);
  assert.is(a.reasonNotCacheable, a.cacheable ? undefined : expected.reason ?? a.reasonNotCacheable, `${label} reason`);
  if (!a.cacheable) assert.ok(a.reasonNotCacheable, `${label} a reason is given when not cacheable`);
  assert.equal(names(a.tablesRead), expected.read ?? [], `${label} tablesRead`);
  assert.equal(names(a.tablesWritten), expected.written ?? [], `${label} tablesWritten`);
  if (expected.functions) assert.equal(names(a.functions), expected.functions, `${label} functions`);
  assert.is(a.writesUnlisted, expected.writesUnlisted ?? false, `${label} writesUnlisted`);
  assert.is(a.serverWide, expected.serverWide ?? false, `${label} serverWide`);
  return a;
}

const cases: [string, Expected][] = [
  // reads
  ['SELECT 1', { kind: 'read', cacheable: true }],
  ['SELECT a.x FROM s.t a JOIN u ON true', { kind: 'read', cacheable: true, read: ['s.t', 'u'] }],
  ['SELECT * FROM ONLY a, db.s.t', { kind: 'read', cacheable: true, read: ['a', 's.t'] }],
  ['SELECT x FROM a UNION SELECT x FROM b', { kind: 'read', cacheable: true, read: ['a', 'b'] }],
  ['(SELECT 1 FROM a) EXCEPT ((SELECT 1 FROM b) INTERSECT ALL SELECT 1 FROM c)', { kind: 'read', cacheable: true, read: ['a', 'b', 'c'] }],
  ['SELECT * FROM a WHERE x IN (SELECT y FROM b) AND EXISTS (SELECT 1 FROM c WHERE c.z = a.z)', { kind: 'read', cacheable: true, read: ['a', 'b', 'c'] }],
  ['SELECT (SELECT max(y) FROM b) AS m, x FROM a', { kind: 'read', cacheable: true, read: ['b', 'a'], functions: ['max'] }],
  ['SELECT * FROM a, LATERAL (SELECT * FROM b WHERE b.id = a.id) l', { kind: 'read', cacheable: true, read: ['a', 'b'] }],
  ['SELECT * FROM (SELECT * FROM a) s JOIN (VALUES (1)) v(x) ON true', { kind: 'read', cacheable: true, read: ['a'] }],
  ['SELECT * FROM generate_series(1, 3)', { kind: 'read', cacheable: true, functions: ['generate_series'] }],
  ['SELECT * FROM generate_series(1, (SELECT count(*) FROM a)) g', { kind: 'read', cacheable: true, read: ['a'], functions: ['generate_series', 'count'] }],
  ['SELECT ARRAY(SELECT id FROM a), CASE WHEN x THEN (SELECT 1 FROM b) END FROM c', { kind: 'read', cacheable: true, read: ['a', 'b', 'c'] }],
  ['SELECT * FROM a GROUP BY x HAVING count(*) > (SELECT count(*) FROM b) ORDER BY (SELECT 1 FROM c LIMIT 1)', { kind: 'read', cacheable: true, read: ['a', 'b', 'c'] }],
  ['VALUES (1, 2), (3, 4)', { kind: 'read', cacheable: true }],
  ['TABLE a', { kind: 'read', cacheable: true, read: ['a'] }],
  ['SELECT * FROM "Mixed"."Case" JOIN "lower" ON true JOIN UPPER ON true', { kind: 'read', cacheable: true, read: ['Mixed.Case', 'lower', 'upper'] }],
  ['SELECT * FROM "we.ird"."na me"', { kind: 'read', cacheable: true, read: ['we.ird.na me'] }],
  ['SELECT "MyFn"(1), Lower(\'x\'), pg_catalog.upper(\'x\'), "S".f()', { kind: 'read', cacheable: true, functions: ['MyFn', 'lower', 'pg_catalog.upper', 'S.f'] }],
  ['SELECT * FROM a WHERE id = $1 AND name = ANY($2::text[])', { kind: 'read', cacheable: true, read: ['a'] }],
  ['SELECT a FROM a a', { kind: 'read', cacheable: true, read: ['a'] }],
  ['SELECT extract(year FROM d), x AT TIME ZONE \'UTC\', trim(y) FROM a', { kind: 'read', cacheable: true, read: ['a'], functions: ['pg_catalog.extract', 'pg_catalog.timezone', 'pg_catalog.btrim'] }],
  ['SELECT * FROM a TABLESAMPLE SYSTEM (10) REPEATABLE (42)', { kind: 'read', cacheable: true, read: ['a'] }],
  ['SELECT * FROM ROWS FROM (generate_series(1, 2), unnest(ARRAY[1])) r', { kind: 'read', cacheable: true, functions: ['generate_series', 'unnest'] }],
  ['SELECT * FROM JSON_TABLE(\'[1]\'::jsonb, \'$[*]\' COLUMNS (x int PATH \'$\')) jt JOIN a ON true', { kind: 'read', cacheable: true, read: ['a'] }],
  // CTEs
  ['WITH t AS (SELECT * FROM u) SELECT * FROM t', { kind: 'read', cacheable: true, read: ['u'] }],
  ['WITH a AS (SELECT * FROM b) SELECT * FROM a JOIN c ON true', { kind: 'read', cacheable: true, read: ['b', 'c'] }],
  ['WITH t AS (SELECT * FROM t) SELECT * FROM t', { kind: 'read', cacheable: true, read: ['t'] }],
  ['WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT * FROM t', { kind: 'read', cacheable: true }],
  ['WITH RECURSIVE t(n) AS (SELECT id FROM nodes UNION ALL SELECT p.id FROM nodes p JOIN t ON p.parent = t.n) SELECT * FROM t', { kind: 'read', cacheable: true, read: ['nodes'] }],
  ['WITH t AS (SELECT 1) SELECT * FROM public.t', { kind: 'read', cacheable: true, read: ['public.t'] }],
  ['WITH a AS (SELECT * FROM x), b AS (SELECT * FROM a) SELECT * FROM b', { kind: 'read', cacheable: true, read: ['x'] }],
  ['WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a', { kind: 'read', cacheable: true, read: ['b'] }],
  ['SELECT * FROM (WITH t AS (SELECT * FROM u) SELECT * FROM t) s JOIN t ON true', { kind: 'read', cacheable: true, read: ['u', 't'] }],
  ['WITH t AS (SELECT 1 AS x) SELECT * FROM a WHERE x IN (SELECT x FROM t)', { kind: 'read', cacheable: true, read: ['a'] }],
  ['WITH t AS (SELECT 1 AS x) (SELECT x FROM t) UNION (SELECT x FROM u)', { kind: 'read', cacheable: true, read: ['u'] }],
  // reads that must not be cached
  ['SELECT now()', { kind: 'read', reason: 'time-dependent', functions: ['now'] }],
  ['SELECT pg_catalog.now()', { kind: 'read', reason: 'time-dependent', functions: ['pg_catalog.now'] }],
  ['SELECT * FROM a WHERE ts > current_timestamp - interval \'1 day\'', { kind: 'read', reason: 'time-dependent', read: ['a'] }],
  ['SELECT CURRENT_DATE', { kind: 'read', reason: 'time-dependent' }],
  ['SELECT LOCALTIMESTAMP(3)', { kind: 'read', reason: 'time-dependent' }],
  ['SELECT clock_timestamp()', { kind: 'read', reason: 'time-dependent' }],
  ['SELECT statement_timestamp(), transaction_timestamp()', { kind: 'read', reason: 'time-dependent' }],
  ['SELECT age(born) FROM people', { kind: 'read', reason: 'time-dependent', read: ['people'] }],
  ['SELECT age(died, born) FROM people', { kind: 'read', cacheable: true, read: ['people'] }],
  ['SELECT * FROM a WHERE ts > \'now\'::timestamptz', { kind: 'read', reason: 'time-dependent', read: ['a'] }],
  ['SELECT * FROM a WHERE d = \'Today\'', { kind: 'read', reason: 'time-dependent', read: ['a'] }],
  ['SELECT random()', { kind: 'read', reason: 'unstable-function' }],
  ['SELECT * FROM a ORDER BY random() LIMIT 1', { kind: 'read', reason: 'unstable-function', read: ['a'] }],
  ['SELECT nextval(\'s\')', { kind: 'read', reason: 'unstable-function', functions: ['nextval'] }],
  ['SELECT txid_current()', { kind: 'read', reason: 'unstable-function' }],
  ['SELECT pg_sleep(1)', { kind: 'read', reason: 'unstable-function' }],
  ['SELECT gen_random_uuid()', { kind: 'read', reason: 'unstable-function' }],
  ['SELECT pg_backend_pid()', { kind: 'read', reason: 'unstable-function' }],
  ['SELECT current_setting(\'work_mem\')', { kind: 'read', reason: 'unstable-function' }],
  ['SELECT pg_stat_get_numscans(1)', { kind: 'read', reason: 'unstable-function' }],
  ['SELECT pg_try_advisory_lock(1)', { kind: 'read', reason: 'unstable-function' }],
  ['SELECT app.now(), app.random()', { kind: 'read', cacheable: true, functions: ['app.now', 'app.random'] }],
  ['SELECT * FROM a FOR UPDATE', { kind: 'read', reason: 'locking-clause', read: ['a'] }],
  ['SELECT * FROM a FOR SHARE', { kind: 'read', reason: 'locking-clause', read: ['a'] }],
  ['SELECT * FROM a FOR NO KEY UPDATE OF a SKIP LOCKED', { kind: 'read', reason: 'locking-clause', read: ['a'] }],
  ['SELECT * FROM a FOR KEY SHARE NOWAIT', { kind: 'read', reason: 'locking-clause', read: ['a'] }],
  ['SELECT * FROM (SELECT * FROM a FOR UPDATE) s', { kind: 'read', reason: 'locking-clause', read: ['a'] }],
  ['SELECT * FROM pg_class', { kind: 'read', reason: 'system-catalog', read: ['pg_class'] }],
  ['SELECT * FROM pg_catalog.pg_namespace', { kind: 'read', reason: 'system-catalog', read: ['pg_catalog.pg_namespace'] }],
  ['SELECT * FROM information_schema.tables', { kind: 'read', reason: 'system-catalog', read: ['information_schema.tables'] }],
  ['SELECT count(*) FROM pg_stat_activity', { kind: 'read', reason: 'system-catalog', read: ['pg_stat_activity'] }],
  ['SELECT * FROM pg_temp.scratch', { kind: 'read', reason: 'system-catalog', read: ['pg_temp.scratch'] }],
  // object identifier types look names up in the catalog (REINDEX CONCURRENTLY changes an index's oid)
  ['SELECT \'idx1\'::regclass::oid', { kind: 'read', reason: 'system-catalog' }],
  ['SELECT CAST(\'idx1\' AS pg_catalog.regclass)', { kind: 'read', reason: 'system-catalog' }],
  ['SELECT * FROM a WHERE tableoid = \'a\'::regclass', { kind: 'read', reason: 'system-catalog', read: ['a'] }],
  ['SELECT \'{int4,text}\'::regtype[]', { kind: 'read', reason: 'system-catalog' }],
  ['SELECT regclass(\'idx1\')::oid', { kind: 'read', reason: 'system-catalog', functions: ['regclass'] }],
  ['SELECT to_regclass(\'idx1\')', { kind: 'read', reason: 'system-catalog', functions: ['to_regclass'] }],
  ['SELECT pg_catalog.to_regtype($1)', { kind: 'read', reason: 'system-catalog', functions: ['pg_catalog.to_regtype'] }],
  ...['regproc', 'regprocedure', 'regoper', 'regoperator', 'regconfig', 'regdictionary', 'regnamespace', 'regrole', 'regcollation']
    .map((type): [string, Expected] => [`SELECT 'x'::${type}`, { kind: 'read', reason: 'system-catalog' }]),
  ['SELECT \'x\'::text, 1::oid, app.to_regclass(\'x\')', { kind: 'read', cacheable: true, functions: ['app.to_regclass'] }],
  ['SELECT * FROM a TABLESAMPLE BERNOULLI (5)', { kind: 'read', reason: 'tablesample', read: ['a'] }],
  ['SELECT * INTO n FROM t', { kind: 'ddl', reason: 'select-into', read: ['t'], written: ['n'], writesUnlisted: true }],
  ['SELECT * INTO TEMP n FROM t', { kind: 'ddl', reason: 'select-into', read: ['t'], written: ['n'], writesUnlisted: true }],
  // writes
  ['INSERT INTO a VALUES (1)', { kind: 'write', reason: 'not-a-read', written: ['a'] }],
  ['INSERT INTO s.a (x) SELECT y FROM b JOIN c USING (id)', { kind: 'write', reason: 'not-a-read', written: ['s.a'], read: ['b', 'c'] }],
  ['INSERT INTO a (x) VALUES (1) ON CONFLICT (x) DO UPDATE SET y = excluded.y WHERE a.z < (SELECT max(z) FROM c) RETURNING *', { kind: 'write', written: ['a'], read: ['c'] }],
  ['INSERT INTO a VALUES (1) ON CONFLICT DO NOTHING', { kind: 'write', written: ['a'] }],
  ['INSERT INTO a (t) VALUES (now())', { kind: 'write', reason: 'not-a-read', written: ['a'], functions: ['now'] }],
  ['UPDATE a SET x = b.y FROM b WHERE a.id = b.id', { kind: 'write', written: ['a'], read: ['b'] }],
  ['UPDATE a SET x = (SELECT y FROM c WHERE c.id = a.id)', { kind: 'write', written: ['a'], read: ['c'] }],
  ['UPDATE a SET (x, y) = (SELECT x, y FROM b WHERE b.id = a.id)', { kind: 'write', written: ['a'], read: ['b'] }],
  ['INSERT INTO a DEFAULT VALUES', { kind: 'write', written: ['a'] }],
  ['DELETE FROM a USING b WHERE a.id = b.id', { kind: 'write', written: ['a'], read: ['b'] }],
  ['DELETE FROM ONLY s.a WHERE id IN (SELECT id FROM c) RETURNING *', { kind: 'write', written: ['s.a'], read: ['c'] }],
  ['MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)', { kind: 'write', written: ['t'], read: ['s'] }],
  ['MERGE INTO t USING (SELECT * FROM u JOIN v USING (id)) s ON t.id = s.id WHEN MATCHED THEN DELETE', { kind: 'write', written: ['t'], read: ['u', 'v'] }],
  ['TRUNCATE a, s.b', { kind: 'write', written: ['a', 's.b'] }],
  ['TRUNCATE TABLE a RESTART IDENTITY CASCADE', { kind: 'write', written: ['a'] }],
  ['COPY t FROM STDIN', { kind: 'write', reason: 'copy', written: ['t'] }],
  ['COPY s.t (a, b) FROM STDIN WITH (FORMAT csv) WHERE a > (SELECT 1)', { kind: 'write', reason: 'copy', written: ['s.t'] }],
  ['COPY t TO STDOUT', { kind: 'read', reason: 'copy', read: ['t'] }],
  ['COPY (SELECT * FROM u JOIN v ON true) TO STDOUT WITH (FORMAT binary)', { kind: 'read', reason: 'copy', read: ['u', 'v'] }],
  ['COPY (DELETE FROM t WHERE x RETURNING *) TO STDOUT', { kind: 'write', reason: 'copy', written: ['t'] }],
  ['WITH d AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM d', { kind: 'write', reason: 'data-modifying-cte', written: ['a', 'b'] }],
  ['WITH u AS (UPDATE a SET x = 1 RETURNING *) SELECT * FROM u JOIN c ON true', { kind: 'write', reason: 'data-modifying-cte', written: ['a'], read: ['c'] }],
  ['WITH i AS (INSERT INTO log SELECT * FROM src RETURNING id) SELECT count(*) FROM i', { kind: 'write', reason: 'data-modifying-cte', written: ['log'], read: ['src'] }],
  ['WITH a AS (SELECT 1 AS x) INSERT INTO a SELECT x FROM a', { kind: 'write', written: ['a'] }],
  ['REFRESH MATERIALIZED VIEW CONCURRENTLY s.mv', { kind: 'write', written: ['s.mv'] }],
  // EXPLAIN
  ['EXPLAIN ANALYZE DELETE FROM t WHERE x = 1', { kind: 'write', reason: 'explain', written: ['t'] }],
  ['EXPLAIN (ANALYZE, BUFFERS) UPDATE a SET x = b.x FROM b', { kind: 'write', reason: 'explain', written: ['a'], read: ['b'] }],
  ['EXPLAIN (ANALYZE true) INSERT INTO a VALUES (1)', { kind: 'write', reason: 'explain', written: ['a'] }],
  ['EXPLAIN ANALYZE SELECT * FROM a', { kind: 'read', reason: 'explain', read: ['a'] }],
  ['EXPLAIN ANALYZE CREATE TABLE n AS SELECT * FROM a', { kind: 'ddl', reason: 'explain', written: ['n'], read: ['a'], writesUnlisted: true }],
  ['EXPLAIN DELETE FROM t', { kind: 'other', reason: 'explain' }],
  ['EXPLAIN (ANALYZE off) DELETE FROM t', { kind: 'other', reason: 'explain' }],
  ['EXPLAIN (ANALYZE 0, VERBOSE) DELETE FROM t', { kind: 'other', reason: 'explain' }],
  ['EXPLAIN (FORMAT JSON) SELECT * FROM a', { kind: 'other', reason: 'explain' }],
  // DDL
  ['CREATE TABLE a (id int PRIMARY KEY, b_id int REFERENCES b)', { kind: 'ddl', written: ['a', 'b'], writesUnlisted: true }],
  ['CREATE TABLE n AS SELECT * FROM a', { kind: 'ddl', written: ['n'], read: ['a'], writesUnlisted: true }],
  ['CREATE MATERIALIZED VIEW mv AS SELECT x, count(*) FROM t GROUP BY x', { kind: 'ddl', written: ['mv'], read: ['t'], writesUnlisted: true }],
  ['CREATE VIEW v AS SELECT * FROM t', { kind: 'ddl', written: ['v'], read: ['t'], writesUnlisted: true }],
  ['ALTER TABLE s.a ADD COLUMN c int', { kind: 'ddl', written: ['s.a'], writesUnlisted: true }],
  ['ALTER TABLE a RENAME TO b', { kind: 'ddl', written: ['a'], writesUnlisted: true }],
  ['DROP TABLE a.b, c', { kind: 'ddl', written: ['a.b', 'c'], writesUnlisted: true }],
  ['DROP VIEW IF EXISTS v CASCADE', { kind: 'ddl', written: ['v'], writesUnlisted: true }],
  ['DROP FUNCTION f(int)', { kind: 'ddl', writesUnlisted: true }],
  ['CREATE INDEX CONCURRENTLY ON a (x)', { kind: 'ddl', written: ['a'], writesUnlisted: true }],
  ['CREATE SCHEMA app', { kind: 'ddl', writesUnlisted: true }],
  ['CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1)', { kind: 'ddl', written: ['p1', 'p'], writesUnlisted: true }],
  ['CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$', { kind: 'ddl', writesUnlisted: true }],
  ['CREATE TRIGGER tr AFTER INSERT ON a FOR EACH ROW EXECUTE FUNCTION f()', { kind: 'ddl', written: ['a'], writesUnlisted: true }],
  ['GRANT SELECT ON a TO bob', { kind: 'ddl', written: ['a'], writesUnlisted: true }],
  ['REVOKE ALL ON ALL TABLES IN SCHEMA public FROM bob', { kind: 'ddl', writesUnlisted: true }],
  ['COMMENT ON TABLE a IS \'x\'', { kind: 'ddl', writesUnlisted: true }],
  // DDL every database of the server sees: roles, memberships, server and database settings, tablespaces
  ['CREATE ROLE bob LOGIN', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['ALTER ROLE bob SET search_path = app', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['REVOKE grp FROM alice', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['GRANT grp TO alice', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['ALTER ROLE alice SET role = grp', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['ALTER ROLE alice IN DATABASE other SET search_path = app', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['ALTER ROLE ALL SET search_path = app', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['ALTER USER alice NOINHERIT', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['ALTER GROUP grp DROP USER alice', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['ALTER ROLE alice RENAME TO carol', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['DROP ROLE IF EXISTS alice', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['REASSIGN OWNED BY alice TO bob', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['DROP OWNED BY alice', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['ALTER SYSTEM SET search_path = app', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['ALTER DATABASE other SET search_path = app', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['ALTER DATABASE other CONNECTION LIMIT 1', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['ALTER DATABASE other RENAME TO another', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['ALTER DATABASE other OWNER TO bob', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['DROP DATABASE other', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['REVOKE CONNECT ON DATABASE other FROM PUBLIC', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['GRANT CREATE ON TABLESPACE fast TO bob', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['ALTER TABLESPACE fast SET (random_page_cost = 1)', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['ALTER TABLESPACE fast OWNER TO bob', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  ['GRANT SET ON PARAMETER work_mem TO bob', { kind: 'ddl', writesUnlisted: true, serverWide: true }],
  // ... and DDL of one database's objects, privileges and owners included
  ['ALTER TABLE a OWNER TO bob', { kind: 'ddl', written: ['a'], writesUnlisted: true }],
  ['ALTER SCHEMA app RENAME TO app2', { kind: 'ddl', writesUnlisted: true }],
  ['ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob', { kind: 'ddl', writesUnlisted: true }],
  // transaction control
  ['BEGIN', { kind: 'transaction' }],
  ['START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY', { kind: 'transaction' }],
  ['COMMIT', { kind: 'transaction' }],
  ['END', { kind: 'transaction' }],
  ['ROLLBACK AND CHAIN', { kind: 'transaction' }],
  ['SAVEPOINT s1', { kind: 'transaction' }],
  ['RELEASE SAVEPOINT s1', { kind: 'transaction' }],
  ['ROLLBACK TO SAVEPOINT s1', { kind: 'transaction' }],
  ['PREPARE TRANSACTION \'gid\'', { kind: 'transaction' }],
  ['COMMIT PREPARED \'gid\'', { kind: 'transaction', writesUnlisted: true }],
  ['ROLLBACK PREPARED \'gid\'', { kind: 'transaction' }],
  ['SET TRANSACTION ISOLATION LEVEL SERIALIZABLE', { kind: 'transaction' }],
  ['SET CONSTRAINTS ALL DEFERRED', { kind: 'transaction' }],
  // session
  ['SET search_path = a, "B"', { kind: 'session' }],
  ['SET ROLE bob', { kind: 'session' }],
  ['DISCARD ALL', { kind: 'session' }],
  ['SELECT set_config(\'search_path\', \'a\', false) FROM a', { kind: 'session', reason: 'unstable-function', read: ['a'] }],
  // other
  ['LISTEN chan', { kind: 'other' }],
  ['UNLISTEN *', { kind: 'other' }],
  ['NOTIFY chan, \'payload\'', { kind: 'other' }],
  ['DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t', { kind: 'other', read: ['t'] }],
  ['FETCH 10 FROM c', { kind: 'other' }],
  ['MOVE NEXT IN c', { kind: 'other' }],
  ['CLOSE c', { kind: 'other' }],
  ['PREPARE p (int) AS DELETE FROM t WHERE id = $1', { kind: 'other' }],
  ['EXECUTE p(1)', { kind: 'other', writesUnlisted: true }],
  ['DEALLOCATE ALL', { kind: 'other' }],
  ['CALL app.archive(1, (SELECT max(id) FROM a))', { kind: 'other', read: ['a'], functions: ['app.archive', 'max'], writesUnlisted: true }],
  ['DO $$ BEGIN DELETE FROM t; END $$', { kind: 'other', writesUnlisted: true }],
  ['LOCK TABLE t IN ACCESS EXCLUSIVE MODE', { kind: 'other' }],
  ['VACUUM (ANALYZE) t', { kind: 'other' }],
  ['ANALYZE t', { kind: 'other' }],
  ['SHOW search_path', { kind: 'other' }],
  ['CHECKPOINT', { kind: 'other' }],
  ['REINDEX TABLE t', { kind: 'ddl', written: ['t'], writesUnlisted: true }],
  ['REINDEX INDEX CONCURRENTLY s.idx1', { kind: 'ddl', written: ['s.idx1'], writesUnlisted: true }],
  ['REINDEX (VERBOSE) SCHEMA s', { kind: 'ddl', writesUnlisted: true }],
  ['REINDEX DATABASE CONCURRENTLY', { kind: 'ddl', writesUnlisted: true }],
  ['REINDEX SYSTEM', { kind: 'ddl', writesUnlisted: true }],
  // CLUSTER and VACUUM FULL move every row (new ctids): writes of their tables, or of any table
  ['CLUSTER t USING t_pkey', { kind: 'write', written: ['t'] }],
  ['CLUSTER (VERBOSE) s.t', { kind: 'write', written: ['s.t'] }],
  ['CLUSTER', { kind: 'write', writesUnlisted: true }],
  ['VACUUM FULL t', { kind: 'write', written: ['t'] }],
  ['VACUUM (FULL, ANALYZE) a, s.b', { kind: 'write', written: ['a', 's.b'] }],
  ['VACUUM (FULL false) t', { kind: 'write', written: ['t'] }],
  ['VACUUM FULL', { kind: 'write', writesUnlisted: true }],
  ['VACUUM t', { kind: 'other' }],
  // nothing to parse, or unparsable
  ['', { kind: 'other', reason: 'empty' }],
  [';', { kind: 'other', reason: 'empty' }],
  ['  -- just a comment\n', { kind: 'other', reason: 'empty' }],
  ['garbage', { kind: 'unknown', reason: 'parse-error', writesUnlisted: true }],
  ['SELECT * FROM', { kind: 'unknown', reason: 'parse-error', writesUnlisted: true }],
  ['SELECT \'unterminated', { kind: 'unknown', reason: 'parse-error', writesUnlisted: true }],
  ['SELECT * FROM a.b.c.d', { kind: 'unknown', reason: 'parse-error', writesUnlisted: true }],
  ['DELETE FROM t; SELECT (', { kind: 'unknown', reason: 'parse-error', writesUnlisted: true }],
];

for (const [sql, expected] of cases) {
  test(`${expected.kind}: ${sql.replace(/\s+/g, ' ') || '(empty)'}`, () => {
    expectAnalysis(sql, expected);
  });
}

test('several statements: never cacheable, each statement classified, facts combined', () => {
  const a = expectAnalysis('SELECT 1; SELECT 2', { kind: 'read', reason: 'several-statements' });
  assert.equal(a.statements.map((s) => [s.kind, s.cacheable]), [['read', true], ['read', true]]);

  const tx = expectAnalysis('BEGIN; UPDATE a SET x = 1; SELECT * FROM b; COMMIT', {
    kind: 'write', reason: 'several-statements', written: ['a'], read: ['b'],
  });
  assert.equal(tx.statements.map((s) => s.kind), ['transaction', 'write', 'read', 'transaction']);
  assert.equal(tx.statements.map((s) => s.transaction), ['begin', undefined, undefined, 'commit']);

  const ddl = expectAnalysis('INSERT INTO a VALUES (1); CREATE INDEX ON b (x)', {
    kind: 'ddl', reason: 'several-statements', written: ['a', 'b'], writesUnlisted: true,
  });
  assert.equal(ddl.statements.map((s) => s.command), ['InsertStmt', 'IndexStmt']);

  expectAnalysis('UPDATE a SET x = 1; REVOKE grp FROM alice', {
    kind: 'ddl', reason: 'several-statements', written: ['a'], writesUnlisted: true, serverWide: true,
  });

  const session = expectAnalysis('SET search_path = app; SELECT * FROM a', { kind: 'session', reason: 'several-statements', read: ['a'] });
  assert.equal(session.sessionChanges, [{ action: 'set', setting: 'search_path', local: false }]);
});

test('a single statement carries its command and the same facts as the text', () => {
  const a = analyzeSql('SELECT * FROM a');
  assert.is(a.statements.length, 1);
  assert.is(a.statements[0]!.command, 'SelectStmt');
  assert.is(a.statements[0]!.tablesRead, a.tablesRead);
  assert.is(analyzeSql('garbage').statements.length, 0);
});

test('parse errors carry the parser message', () => {
  assert.match(analyzeSql('SELEC 1').reasonDetail ?? '', /syntax error at or near "SELEC"/);
});

test('SQL value functions: time-dependent ones forbid caching, session ones are part of the key', () => {
  const session = analyzeSql('SELECT current_user, session_user, user, current_role, current_catalog, current_schema');
  assert.ok(session.cacheable);
  assert.equal(session.valueFunctions.map((v) => [v.name, v.dependsOn]), [
    ['CURRENT_USER', 'session'], ['SESSION_USER', 'session'], ['USER', 'session'], ['CURRENT_ROLE', 'session'],
    ['CURRENT_CATALOG', 'session'], ['CURRENT_SCHEMA', 'session'],
  ]);
  const time = analyzeSql('SELECT current_date, current_time, current_timestamp(2), localtime, localtimestamp, current_user');
  assert.not.ok(time.cacheable);
  assert.is(time.reasonNotCacheable, 'time-dependent');
  assert.is(time.reasonDetail, 'CURRENT_DATE');
  assert.equal(time.valueFunctions.map((v) => [v.name, v.dependsOn]), [
    ['CURRENT_DATE', 'time'], ['CURRENT_TIME', 'time'], ['CURRENT_TIMESTAMP', 'time'], ['LOCALTIME', 'time'],
    ['LOCALTIMESTAMP', 'time'], ['CURRENT_USER', 'session'],
  ]);
});

test('reason details name the culprit', () => {
  assert.is(analyzeSql('SELECT * FROM a FOR NO KEY UPDATE').reasonDetail, 'FOR NO KEY UPDATE');
  assert.is(analyzeSql('SELECT x, nextval(\'s\') FROM a').reasonDetail, 'nextval()');
  assert.is(analyzeSql('SELECT * FROM pg_catalog.pg_class').reasonDetail, 'pg_catalog.pg_class');
  assert.is(analyzeSql('DELETE FROM a').reasonDetail, 'DeleteStmt');
});

test('functions are listed once each, in order, with the schema as written', () => {
  const a = analyzeSql('SELECT lower(x), app.f(lower(y)), count(*) FILTER (WHERE g(x)) OVER (PARTITION BY h(x)) FROM t');
  assert.equal(names(a.functions), ['lower', 'app.f', 'count', 'g', 'h']);
});

test('tables are listed once each even when named several times', () => {
  assert.equal(names(analyzeSql('SELECT * FROM a JOIN a b ON true WHERE x IN (SELECT x FROM a)').tablesRead), ['a']);
  assert.equal(names(analyzeSql('SELECT * FROM a, public.a').tablesRead), ['a', 'public.a']);
});

test('session changes say what changes', () => {
  const change = (sql: string) => analyzeSql(sql).sessionChanges;
  assert.equal(change('SET search_path = a, "B"'), [{ action: 'set', setting: 'search_path', local: false }]);
  assert.equal(change('SET LOCAL statement_timeout = 0'), [{ action: 'set', setting: 'statement_timeout', local: true }]);
  assert.equal(change('SET TIME ZONE \'UTC\''), [{ action: 'set', setting: 'timezone', local: false }]);
  assert.equal(change('SET NAMES \'UTF8\''), [{ action: 'set', setting: 'client_encoding', local: false }]);
  assert.equal(change('SET ROLE bob'), [{ action: 'set', setting: 'role', local: false }]);
  assert.equal(change('RESET ROLE'), [{ action: 'reset', setting: 'role', local: false }]);
  assert.equal(change('SET SESSION AUTHORIZATION bob'), [{ action: 'set', setting: 'session_authorization', local: false }]);
  assert.equal(change('SET DateStyle TO DEFAULT'), [{ action: 'reset', setting: 'datestyle', local: false }]);
  assert.equal(change('RESET ALL'), [{ action: 'reset-all', setting: null, local: false }]);
  assert.equal(change('DISCARD ALL'), [{ action: 'discard', setting: 'all', local: false }]);
  assert.equal(change('DISCARD TEMP'), [{ action: 'discard', setting: 'temp', local: false }]);
  assert.equal(change('SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY'), [{ action: 'set', setting: 'session characteristics', local: false }]);
  assert.equal(change('SELECT set_config(\'Search_Path\', \'a\', true)'), [{ action: 'set', setting: 'search_path', local: true }]);
  assert.equal(change('SELECT pg_catalog.set_config($1, $2, $3)'), [{ action: 'set', setting: null, local: false }]);
  assert.equal(change('UPDATE a SET x = set_config(\'app.user\', \'1\', false)'), [{ action: 'set', setting: 'app.user', local: false }]);
  assert.equal(change('SELECT app.set_config(\'a\', \'b\', false)'), []);
  assert.equal(change('SELECT 1'), []);
});

test('transaction statements name their action', () => {
  const action = (sql: string) => analyzeSql(sql).statements[0]!.transaction;
  assert.is(action('BEGIN'), 'begin');
  assert.is(action('START TRANSACTION'), 'start');
  assert.is(action('ABORT'), 'rollback');
  assert.is(action('ROLLBACK TO s'), 'rollback_to');
  assert.is(action('PREPARE TRANSACTION \'x\''), 'prepare');
  assert.is(action('COMMIT PREPARED \'x\''), 'commit_prepared');
  assert.is(action('SELECT 1'), undefined);
});

test('BEGIN / START TRANSACTION READ ONLY is told apart; READ WRITE anywhere in the options is not', () => {
  const readOnly = (sql: string) => analyzeSql(sql).statements[0]!.readOnly === true;
  assert.ok(readOnly('BEGIN READ ONLY'));
  assert.ok(readOnly('begin transaction isolation level repeatable read, read only, deferrable'));
  assert.ok(readOnly('START TRANSACTION READ ONLY'));
  assert.not.ok(readOnly('BEGIN'));
  assert.not.ok(readOnly('BEGIN READ WRITE'));
  assert.not.ok(readOnly('BEGIN READ ONLY READ WRITE'), 'PostgreSQL lets the last option win');
  assert.not.ok(readOnly('BEGIN READ WRITE, READ ONLY'), 'conflicting options count as not read-only');
  assert.not.ok(readOnly('SET TRANSACTION READ ONLY'), 'only the statement that opens the block counts');
  assert.not.ok(readOnly('SELECT 1'));
  assert.is(analyzeSql('BEGIN READ ONLY').kind, 'transaction');
});

test('analyses are frozen: a cached analysis cannot be changed by one of its users', () => {
  const a = analyzeSql('SELECT * FROM a');
  assert.throws(() => { (a as { cacheable: boolean }).cacheable = false; });
  assert.throws(() => { (a.tablesRead as QualifiedName[]).push({ schema: null, name: 'x' }); });
  assert.throws(() => { (a.tablesRead[0] as { name: string }).name = 'x'; });
  assert.throws(() => { (a.statements[0] as { kind: string }).kind = 'write'; });
});

test('fuzz: any text gets an analysis; unknown means wide invalidation; cacheable means one plain read', () => {
  const sqlish = fc.array(fc.constantFrom(
    'SELECT', 'FROM', 'a', 'b.c', '"Q"', 'WHERE', 'x', '=', '$1', '(', ')', ',', ';', 'UNION', 'WITH', 'AS',
    'INSERT', 'INTO', 'VALUES', 'UPDATE', 'SET', 'DELETE', 'now()', 'FOR', 'UPDATE', '*', '1', "'now'", '--',
  ), { maxLength: 12 }).map((words) => words.join(' '));
  fc.assert(fc.property(fc.oneof(fc.string(), sqlish), (text) => {
    const a = analyzeSql(text);
    if (a.kind === 'unknown') assert.ok(a.writesUnlisted && !a.cacheable);
    if (a.cacheable) {
      assert.is(a.kind, 'read');
      assert.is(a.statements.length, 1);
      assert.is(a.statements[0]!.command, 'SelectStmt');
      assert.is(a.tablesWritten.length, 0);
    }
    if (a.kind === 'write') assert.ok(a.tablesWritten.length > 0 || a.writesUnlisted);
  }), { numRuns: 2000 });
});

test.run();
