import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import {
  analyzeMysql, type MysqlAnalysisOptions, type MysqlNotCacheableReason, type MysqlQualifiedName,
  type MysqlStatementAnalysis, type StatementKind,
} from './mysql-analysis.js';

const names = (list: readonly MysqlQualifiedName[]): string[] =>
  list.map((q) => (q.database === null ? q.name : `${q.database}.${q.name}`));

interface Expected {
  kind: StatementKind;
  cacheable?: boolean;
  reason?: MysqlNotCacheableReason;
  read?: string[];
  written?: string[];
  functions?: string[];
  routines?: string[];
  writesUnlisted?: boolean;
}

/** One table row: SQL text and what the analysis must say about it. Unlisted fields must be empty/false. */
function expectAnalysis(sql: string, expected: Expected, options?: MysqlAnalysisOptions): MysqlStatementAnalysis {
  const a = analyzeMysql(sql, options);
  const label = `${sql} →`;
  assert.is(a.kind, expected.kind, `${label} kind (${a.reasonDetail ?? ''})`);
  assert.is(a.cacheable, expected.cacheable ?? false, `${label} cacheable (${a.reasonNotCacheable}: ${a.reasonDetail})`);
  if (!a.cacheable) assert.ok(a.reasonNotCacheable, `${label} a reason is given when not cacheable`);
  if (expected.reason) assert.is(a.reasonNotCacheable, expected.reason, `${label} reason (${a.reasonDetail})`);
  assert.equal(names(a.tablesRead), expected.read ?? [], `${label} tablesRead`);
  assert.equal(names(a.tablesWritten), expected.written ?? [], `${label} tablesWritten`);
  if (expected.functions) assert.equal(names(a.functions), expected.functions, `${label} functions`);
  assert.equal(names(a.routines), expected.routines ?? [], `${label} routines`);
  assert.is(a.writesUnlisted, expected.writesUnlisted ?? false, `${label} writesUnlisted`);
  return a;
}

const cases: [string, Expected][] = [
  // plain reads
  ['SELECT 1', { kind: 'read', cacheable: true }],
  ['select 1 from dual', { kind: 'read', cacheable: true }],
  ['SELECT c FROM sbtest1 WHERE id = ?', { kind: 'read', cacheable: true, read: ['sbtest1'] }],
  ['SELECT * FROM `db`.`t` WHERE a = ?', { kind: 'read', cacheable: true, read: ['db.t'] }],
  ['SELECT * FROM db.t1, t2 AS x, `we ird`.`na``me` y', { kind: 'read', cacheable: true, read: ['db.t1', 't2', 'we ird.na`me'] }],
  ['SELECT * FROM Orders JOIN orders ON 1', { kind: 'read', cacheable: true, read: ['Orders', 'orders'] }],
  ['SELECT * FROM 1t JOIN t$2 ON 1 JOIN über ON 1', { kind: 'read', cacheable: true, read: ['1t', 't$2', 'über'] }],
  ['SELECT t.* FROM t', { kind: 'read', cacheable: true, read: ['t'] }],
  ['SELECT a, b AS c, d e, "str" AS f, \'x\' g FROM t', { kind: 'read', cacheable: true, read: ['t'] }],
  ['SELECT DISTINCT HIGH_PRIORITY STRAIGHT_JOIN SQL_NO_CACHE SQL_BIG_RESULT a FROM t', { kind: 'read', cacheable: true, read: ['t'] }],
  ['SELECT * FROM t WHERE a = 1 GROUP BY b WITH ROLLUP HAVING count(*) > 1 ORDER BY 1 DESC LIMIT 10 OFFSET 5', { kind: 'read', cacheable: true, read: ['t'], functions: ['count'] }],
  ['SELECT * FROM t LIMIT 5, 10', { kind: 'read', cacheable: true, read: ['t'] }],
  ['SELECT * FROM t ORDER BY a OFFSET 1 ROWS FETCH FIRST 2 ROWS WITH TIES', { kind: 'read', cacheable: true, read: ['t'] }],
  ['SELECT * FROM t LIMIT ROWS EXAMINED 100', { kind: 'read', cacheable: true, read: ['t'] }],
  ['SELECT a FROM t WINDOW w AS (PARTITION BY b ORDER BY c)', { kind: 'read', cacheable: true, read: ['t'] }],
  ['SELECT row_number() OVER (PARTITION BY a ORDER BY b ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM t', { kind: 'read', cacheable: true, read: ['t'], functions: ['row_number'] }],
  // index hints, partitions, system time
  ['SELECT * FROM t USE INDEX (i) WHERE a = 1', { kind: 'read', cacheable: true, read: ['t'] }],
  ['SELECT * FROM t AS x FORCE INDEX FOR JOIN (PRIMARY), IGNORE KEY FOR ORDER BY (k1, k2) JOIN u USE INDEX () ON 1', { kind: 'read', cacheable: true, read: ['t', 'u'] }],
  ['SELECT * FROM t IGNORE INDEX FOR GROUP BY (i), u', { kind: 'read', cacheable: true, read: ['t', 'u'] }],
  ['SELECT * FROM t PARTITION (p0, p1) x WHERE 1', { kind: 'read', cacheable: true, read: ['t'] }],
  ["SELECT * FROM t FOR SYSTEM_TIME AS OF TIMESTAMP '2020-01-01 00:00:00' AS h", { kind: 'read', cacheable: true, read: ['t'] }],
  ["SELECT * FROM t FOR SYSTEM_TIME BETWEEN '2020-01-01' AND '2021-01-01' JOIN u ON 1", { kind: 'read', cacheable: true, read: ['t', 'u'] }],
  ['SELECT * FROM t FOR SYSTEM_TIME ALL', { kind: 'read', cacheable: true, read: ['t'] }],
  ['SELECT * FROM t FOR SYSTEM_TIME AS OF CURRENT_TIMESTAMP - INTERVAL 1 DAY', { kind: 'read', reason: 'time-dependent', read: ['t'] }],
  // joins
  ['SELECT * FROM a INNER JOIN b ON a.id = b.id CROSS JOIN c LEFT OUTER JOIN d USING (id) RIGHT JOIN e ON 1', { kind: 'read', cacheable: true, read: ['a', 'b', 'c', 'd', 'e'] }],
  ['SELECT * FROM a NATURAL JOIN b NATURAL LEFT OUTER JOIN c NATURAL RIGHT JOIN d STRAIGHT_JOIN e ON 1', { kind: 'read', cacheable: true, read: ['a', 'b', 'c', 'd', 'e'] }],
  ['SELECT * FROM a JOIN b JOIN c ON b.x = c.x ON a.y = b.y', { kind: 'read', cacheable: true, read: ['a', 'b', 'c'] }],
  ['SELECT * FROM (a, b) JOIN (c LEFT JOIN (d JOIN e ON 1) ON 1) ON 1', { kind: 'read', cacheable: true, read: ['a', 'b', 'c', 'd', 'e'] }],
  ['SELECT * FROM { OJ a LEFT OUTER JOIN b ON a.x = b.x }', { kind: 'read', cacheable: true, read: ['a', 'b'] }],
  ['SELECT * FROM a full JOIN b ON 1', { kind: 'read', cacheable: true, read: ['a', 'b'] }],
  ['SELECT * FROM a LEFT JOIN b ON LEFT(a.x, 1) = RIGHT(b.y, 1)', { kind: 'read', cacheable: true, read: ['a', 'b'], functions: ['left', 'right'] }],
  // subqueries and derived tables
  ['SELECT * FROM a WHERE x IN (SELECT y FROM b) AND EXISTS (SELECT 1 FROM c WHERE c.z = a.z)', { kind: 'read', cacheable: true, read: ['a', 'b', 'c'] }],
  ['SELECT (SELECT max(y) FROM b) AS m, x FROM a', { kind: 'read', cacheable: true, read: ['b', 'a'], functions: ['max'] }],
  ['SELECT * FROM (SELECT * FROM a) AS s JOIN (SELECT * FROM b UNION SELECT * FROM c) u ON 1', { kind: 'read', cacheable: true, read: ['a', 'b', 'c'] }],
  ['SELECT * FROM ((SELECT 1 AS x FROM a) UNION (SELECT 2 FROM b)) AS d', { kind: 'read', cacheable: true, read: ['a', 'b'] }],
  ['SELECT * FROM ((SELECT x FROM a) AS d JOIN b ON 1)', { kind: 'read', cacheable: true, read: ['a', 'b'] }],
  ['SELECT * FROM a, LATERAL (SELECT * FROM b WHERE b.id = a.id) AS l', { kind: 'read', cacheable: true, read: ['a', 'b'] }],
  ['SELECT * FROM (SELECT 1) d (x)', { kind: 'read', cacheable: true }],
  ['SELECT * FROM a WHERE x = ANY (SELECT y FROM b) OR x > ALL (SELECT z FROM c) OR x < SOME (SELECT w FROM d)', { kind: 'read', cacheable: true, read: ['a', 'b', 'c', 'd'] }],
  ['SELECT * FROM a WHERE (x, y) IN ((SELECT 1, 2 FROM b))', { kind: 'read', cacheable: true, read: ['a', 'b'] }],
  ['SELECT * FROM a WHERE x IN ((SELECT 1 FROM b) UNION (SELECT 2 FROM c))', { kind: 'read', cacheable: true, read: ['a', 'b', 'c'] }],
  ['SELECT CASE WHEN x THEN (SELECT 1 FROM b) ELSE 2 END FROM c', { kind: 'read', cacheable: true, read: ['b', 'c'] }],
  ['SELECT * FROM a GROUP BY x HAVING count(*) > (SELECT count(*) FROM b) ORDER BY (SELECT 1 FROM c LIMIT 1)', { kind: 'read', cacheable: true, read: ['a', 'b', 'c'] }],
  ['SELECT COALESCE((SELECT a FROM t1 LIMIT 1), (SELECT b FROM t2 LIMIT 1))', { kind: 'read', cacheable: true, read: ['t1', 't2'] }],
  ['SELECT * FROM a WHERE x IN (VALUES (1), (2))', { kind: 'read', cacheable: true, read: ['a'] }],
  // set operations, VALUES, TABLE, parentheses
  ['SELECT x FROM a UNION SELECT x FROM b UNION ALL SELECT x FROM c', { kind: 'read', cacheable: true, read: ['a', 'b', 'c'] }],
  ['SELECT x FROM a EXCEPT SELECT x FROM b INTERSECT SELECT x FROM c', { kind: 'read', cacheable: true, read: ['a', 'b', 'c'] }],
  ['(SELECT x FROM a ORDER BY x LIMIT 1) UNION DISTINCT (SELECT x FROM b) ORDER BY 1 LIMIT 2', { kind: 'read', cacheable: true, read: ['a', 'b'] }],
  ['((SELECT 1))', { kind: 'read', cacheable: true }],
  ['VALUES (1, 2), (3, 4)', { kind: 'read', cacheable: true }],
  ['VALUES ROW(1, 2), ROW(3, 4) ORDER BY 1', { kind: 'read', cacheable: true }],
  ['TABLE t', { kind: 'read', cacheable: true, read: ['t'] }],
  ['TABLE db.t ORDER BY a LIMIT 3', { kind: 'read', cacheable: true, read: ['db.t'] }],
  // CTEs: names are not tables
  ['WITH t AS (SELECT * FROM u) SELECT * FROM t', { kind: 'read', cacheable: true, read: ['u'] }],
  ['WITH a AS (SELECT * FROM b) SELECT * FROM a JOIN c ON 1', { kind: 'read', cacheable: true, read: ['b', 'c'] }],
  ['WITH t AS (SELECT * FROM t) SELECT * FROM t', { kind: 'read', cacheable: true, read: ['t'] }],
  ['WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 5) SELECT * FROM c', { kind: 'read', cacheable: true }],
  ['WITH RECURSIVE t(n) AS (SELECT id FROM nodes UNION ALL SELECT p.id FROM nodes p JOIN t ON p.parent = t.n) SELECT * FROM t', { kind: 'read', cacheable: true, read: ['nodes'] }],
  // a forward reference is a CTE on MariaDB, maybe a table on MySQL: reported as a table
  ['WITH RECURSIVE a AS (SELECT 1 AS x UNION SELECT x + 1 FROM b WHERE x < 3), b AS (SELECT x FROM a) SELECT * FROM a', { kind: 'read', cacheable: true, read: ['b'] }],
  ['WITH t AS (SELECT 1) SELECT * FROM db.t', { kind: 'read', cacheable: true, read: ['db.t'] }],
  ['WITH a AS (SELECT * FROM x), b AS (SELECT * FROM a) SELECT * FROM b', { kind: 'read', cacheable: true, read: ['x'] }],
  ['WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a', { kind: 'read', cacheable: true, read: ['b'] }],
  ['SELECT * FROM (WITH t AS (SELECT * FROM u) SELECT * FROM t) s JOIN t ON 1', { kind: 'read', cacheable: true, read: ['u', 't'] }],
  ['WITH t AS (SELECT 1 AS x) SELECT * FROM a WHERE x IN (SELECT x FROM t)', { kind: 'read', cacheable: true, read: ['a'] }],
  ['WITH t AS (SELECT 1 AS x) (SELECT x FROM t) UNION (SELECT x FROM u)', { kind: 'read', cacheable: true, read: ['u'] }],
  ['WITH T AS (SELECT 1) SELECT * FROM t', { kind: 'read', cacheable: true, read: ['t'] }],
  ['WITH RECURSIVE c AS (SELECT 1 AS n UNION SELECT n + 1 FROM c) CYCLE n RESTRICT SELECT * FROM c', { kind: 'read', cacheable: true }],
  // functions
  ["SELECT concat(a, 'x'), upper(b), IFNULL(c, 0), CAST(d AS DECIMAL(10, 2)), CONVERT(e USING utf8mb4) FROM t", { kind: 'read', cacheable: true, read: ['t'], functions: ['concat', 'upper', 'ifnull', 'cast', 'convert'] }],
  ["SELECT EXTRACT(YEAR FROM d), TRIM(LEADING 'x' FROM s), SUBSTRING(s FROM 2 FOR 3), POSITION('a' IN s) FROM t", { kind: 'read', cacheable: true, read: ['t'], functions: ['extract', 'trim', 'substring', 'position'] }],
  ["SELECT DATE_ADD(d, INTERVAL 1 DAY), d + INTERVAL 2 HOUR, DATE_FORMAT(d, '%Y') FROM t", { kind: 'read', cacheable: true, read: ['t'], functions: ['date_add', 'date_format'] }],
  ["SELECT * FROM t WHERE MATCH (a, b) AGAINST ('x' IN BOOLEAN MODE)", { kind: 'read', cacheable: true, read: ['t'], functions: ['match'] }],
  ["SELECT GROUP_CONCAT(DISTINCT a ORDER BY b SEPARATOR ','), COUNT(*), COUNT(DISTINCT c) FROM t", { kind: 'read', cacheable: true, read: ['t'], functions: ['group_concat', 'count'] }],
  ["SELECT JSON_EXTRACT(j, '$.a'), j->'$.b', j->>'$.c', JSON_VALUE(j, '$.d' DEFAULT 1 ON EMPTY) FROM t", { kind: 'read', cacheable: true, read: ['t'], functions: ['json_extract', 'json_value'] }],
  ["SELECT * FROM JSON_TABLE('[1,2]', '$[*]' COLUMNS (id FOR ORDINALITY, x INT PATH '$', NESTED PATH '$' COLUMNS (y VARCHAR(10) PATH '$'))) AS jt JOIN t ON 1", { kind: 'read', cacheable: true, read: ['t'], functions: ['json_table'] }],
  ['SELECT IF(a, b, c), ROW(1, 2) = ROW(a, b), a MOD 2, DEFAULT(a), VALUES(a) FROM t', { kind: 'read', cacheable: true, read: ['t'], functions: ['if', 'default'] }],
  ["SELECT {fn CONCAT(a, 'b')}, {d '2024-01-01'} FROM t", { kind: 'read', cacheable: true, read: ['t'], functions: ['concat'] }],
  ['SELECT CURRENT_USER, CURRENT_USER(), USER(), DATABASE(), VERSION()', { kind: 'read', cacheable: true, functions: ['current_user', 'user', 'database', 'version'] }],
  ['SELECT UNIX_TIMESTAMP(d), FROM_UNIXTIME(1), CONVERT_TZ(d, \'+00:00\', \'+01:00\') FROM t', { kind: 'read', cacheable: true, read: ['t'] }],
  ['SELECT ST_AsText(ST_GeomFromText(\'POINT(1 1)\')), MBRContains(a, b) FROM t', { kind: 'read', cacheable: true, read: ['t'] }],
  // non-deterministic built-ins
  ['SELECT NOW()', { kind: 'read', reason: 'time-dependent', functions: ['now'] }],
  ['SELECT * FROM t WHERE d > CURDATE()', { kind: 'read', reason: 'time-dependent', read: ['t'] }],
  ['SELECT * FROM t WHERE d > CURRENT_DATE', { kind: 'read', reason: 'time-dependent', read: ['t'], functions: ['current_date'] }],
  ['SELECT CURRENT_TIMESTAMP, LOCALTIME, UTC_TIMESTAMP', { kind: 'read', reason: 'time-dependent' }],
  ['SELECT CURRENT_TIMESTAMP(3)', { kind: 'read', reason: 'time-dependent', functions: ['current_timestamp'] }],
  ['SELECT SYSDATE(), CURTIME(), UTC_DATE()', { kind: 'read', reason: 'time-dependent' }],
  ['SELECT UNIX_TIMESTAMP()', { kind: 'read', reason: 'time-dependent' }],
  ['SELECT RAND()', { kind: 'read', reason: 'unstable-function' }],
  ['SELECT * FROM t ORDER BY RAND() LIMIT 1', { kind: 'read', reason: 'unstable-function', read: ['t'] }],
  ['SELECT UUID(), UUID_SHORT()', { kind: 'read', reason: 'unstable-function' }],
  ['SELECT CONNECTION_ID()', { kind: 'read', reason: 'unstable-function' }],
  ['SELECT LAST_INSERT_ID()', { kind: 'read', reason: 'unstable-function' }],
  ['SELECT FOUND_ROWS()', { kind: 'read', reason: 'unstable-function' }],
  ['SELECT ROW_COUNT()', { kind: 'read', reason: 'unstable-function' }],
  ["SELECT GET_LOCK('x', 1)", { kind: 'read', reason: 'unstable-function' }],
  ['SELECT SLEEP(1) FROM t', { kind: 'read', reason: 'unstable-function', read: ['t'] }],
  ["SELECT LOAD_FILE('/etc/passwd')", { kind: 'read', reason: 'unstable-function' }],
  ['SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 10', { kind: 'read', reason: 'unstable-function', read: ['t'] }],
  ['SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE d < NOW())', { kind: 'read', reason: 'time-dependent', read: ['t', 'u'] }],
  ['SELECT LASTVAL(s), PREVIOUS VALUE FOR s', { kind: 'read', reason: 'unstable-function', read: ['s'] }],
  // stored functions: listed as routines, may write anything
  ['SELECT f(1) FROM t', { kind: 'read', cacheable: true, read: ['t'], functions: ['f'], routines: ['f'], writesUnlisted: true }],
  ['SELECT app.Price(a), `my fn`(b) FROM t', { kind: 'read', cacheable: true, read: ['t'], functions: ['app.price', 'my fn'], routines: ['app.price', 'my fn'], writesUnlisted: true }],
  ['SELECT db.now()', { kind: 'read', cacheable: true, functions: ['db.now'], routines: ['db.now'], writesUnlisted: true }],
  ['SELECT * FROM t WHERE x = my_func (1)', { kind: 'read', cacheable: true, read: ['t'], routines: ['my_func'], writesUnlisted: true }],
  // variables
  ['SELECT @x', { kind: 'read', reason: 'variable' }],
  ['SELECT * FROM t WHERE a = @`weird name`', { kind: 'read', reason: 'variable', read: ['t'] }],
  ['SELECT @@version_comment LIMIT 1', { kind: 'read', reason: 'variable' }],
  ['SELECT @@session.sql_mode, @@GLOBAL.time_zone', { kind: 'read', reason: 'variable' }],
  ['SELECT @rn := @rn + 1 AS n, t.* FROM t', { kind: 'session', reason: 'not-a-read', read: ['t'] }],
  // locking, INTO, PROCEDURE
  ['SELECT * FROM t WHERE id = 1 FOR UPDATE', { kind: 'read', reason: 'locking-clause', read: ['t'] }],
  ['SELECT * FROM t FOR UPDATE OF t SKIP LOCKED', { kind: 'read', reason: 'locking-clause', read: ['t'] }],
  ['SELECT * FROM t FOR UPDATE NOWAIT', { kind: 'read', reason: 'locking-clause', read: ['t'] }],
  ['SELECT * FROM t FOR UPDATE WAIT 5', { kind: 'read', reason: 'locking-clause', read: ['t'] }],
  ['SELECT * FROM t FOR SHARE', { kind: 'read', reason: 'locking-clause', read: ['t'] }],
  ['SELECT * FROM t LOCK IN SHARE MODE', { kind: 'read', reason: 'locking-clause', read: ['t'] }],
  ['SELECT * FROM t WHERE x IN (SELECT y FROM u FOR UPDATE)', { kind: 'read', reason: 'locking-clause', read: ['t', 'u'] }],
  ['SELECT a INTO @v FROM t LIMIT 1', { kind: 'session', reason: 'select-into', read: ['t'] }],
  ['SELECT a, b FROM t LIMIT 1 INTO @x, @y', { kind: 'session', reason: 'select-into', read: ['t'] }],
  ["SELECT * FROM t INTO OUTFILE '/tmp/x' CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' LINES TERMINATED BY '\\n'", { kind: 'other', reason: 'select-into', read: ['t'] }],
  ["SELECT a FROM t INTO DUMPFILE '/tmp/y'", { kind: 'other', reason: 'select-into', read: ['t'] }],
  ['SELECT * FROM t PROCEDURE ANALYSE()', { kind: 'read', reason: 'explain', read: ['t'] }],
  // system databases
  ["SELECT * FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'x'", { kind: 'read', reason: 'system-catalog', read: ['information_schema.TABLES'] }],
  ['SELECT * FROM mysql.user', { kind: 'read', reason: 'system-catalog', read: ['mysql.user'] }],
  ['SELECT * FROM PERFORMANCE_SCHEMA.threads', { kind: 'read', reason: 'system-catalog', read: ['PERFORMANCE_SCHEMA.threads'] }],
  ['SELECT * FROM t WHERE x IN (SELECT 1 FROM sys.version)', { kind: 'read', reason: 'system-catalog', read: ['t', 'sys.version'] }],
  // comments and executable comments
  ['SELECT /* FROM hidden */ a -- FROM hidden2\n FROM t # FROM hidden3', { kind: 'read', cacheable: true, read: ['t'] }],
  ['SELECT 5--1 FROM t', { kind: 'read', cacheable: true, read: ['t'] }],
  ['SELECT /*!40001 SQL_NO_CACHE */ * FROM t', { kind: 'read', cacheable: true, read: ['t'] }],
  ['SELECT * FROM t /*!50000 , u */', { kind: 'read', cacheable: true, read: ['t', 'u'] }],
  ['SELECT * FROM t /*M!100100 JOIN u ON 1 */', { kind: 'read', cacheable: true, read: ['t', 'u'] }],
  ['SELECT * FROM t /*! FOR UPDATE */', { kind: 'read', reason: 'locking-clause', read: ['t'] }],
  ['SELECT /*+ MAX_EXECUTION_TIME(1000) */ * FROM t', { kind: 'read', cacheable: true, read: ['t'] }],
  ["SELECT 'FROM x', \"JOIN y\", 'it''s', 'a\\'b FROM z' FROM t", { kind: 'read', cacheable: true, read: ['t'] }],
  ["SELECT _utf8mb4'x' COLLATE utf8mb4_bin, N'y', X'0F', B'01', 0x1F, 0b01 FROM t", { kind: 'read', cacheable: true, read: ['t'] }],
  // INSERT / REPLACE
  ['INSERT INTO t VALUES (1)', { kind: 'write', reason: 'not-a-read', written: ['t'] }],
  ['INSERT LOW_PRIORITY IGNORE t (a, b) VALUE (1, 2), (3, 4)', { kind: 'write', written: ['t'] }],
  ['INSERT INTO db.t SET a = 1, b = (SELECT max(b) FROM u)', { kind: 'write', written: ['db.t'], read: ['u'] }],
  ['INSERT INTO t (a) SELECT x FROM u JOIN v USING (id)', { kind: 'write', written: ['t'], read: ['u', 'v'] }],
  ['INSERT INTO t (a) SELECT x FROM u ON DUPLICATE KEY UPDATE a = VALUES(a)', { kind: 'write', written: ['t'], read: ['u'] }],
  ['INSERT INTO t VALUES (1, 2) ON DUPLICATE KEY UPDATE b = b + 1', { kind: 'write', written: ['t'] }],
  ['INSERT INTO t VALUES (1, 2) AS new (x, y) ON DUPLICATE KEY UPDATE b = new.y', { kind: 'write', written: ['t'] }],
  ['INSERT INTO t (SELECT * FROM u)', { kind: 'write', written: ['t'], read: ['u'] }],
  ['INSERT INTO t WITH c AS (SELECT 1) SELECT * FROM c', { kind: 'write', written: ['t'] }],
  ['INSERT INTO t SELECT * FROM t', { kind: 'write', written: ['t'], read: ['t'] }],
  ['INSERT INTO t TABLE u', { kind: 'write', written: ['t'], read: ['u'] }],
  ['INSERT INTO t PARTITION (p1) VALUES (1)', { kind: 'write', written: ['t'] }],
  ['INSERT INTO t VALUES (1) RETURNING id, a AS b', { kind: 'write', written: ['t'] }],
  ['INSERT INTO t (a) VALUES (NOW())', { kind: 'write', reason: 'not-a-read', written: ['t'], functions: ['now'] }],
  ['INSERT INTO t VALUES (NEXT VALUE FOR s)', { kind: 'write', written: ['t', 's'] }],
  ['REPLACE INTO t VALUES (1)', { kind: 'write', written: ['t'] }],
  ['REPLACE t SELECT * FROM u', { kind: 'write', written: ['t'], read: ['u'] }],
  ['INSERT INTO t VALUES (f(1))', { kind: 'write', written: ['t'], routines: ['f'], writesUnlisted: true }],
  ['INSERT INTO mysql.time_zone_name VALUES (1)', { kind: 'write', written: ['mysql.time_zone_name'], writesUnlisted: true }],
  // UPDATE
  ['UPDATE t SET a = 1 WHERE id = 2', { kind: 'write', written: ['t'] }],
  ['UPDATE LOW_PRIORITY IGNORE db.t AS x SET x.a = 1 ORDER BY id LIMIT 10', { kind: 'write', written: ['db.t'] }],
  ['UPDATE t SET a = (SELECT max(b) FROM u) WHERE id IN (SELECT id FROM v)', { kind: 'write', written: ['t'], read: ['u', 'v'] }],
  ['UPDATE a JOIN b ON a.id = b.id SET a.x = b.y', { kind: 'write', written: ['a', 'b'] }],
  ['UPDATE a, b SET a.x = b.y WHERE a.id = b.id', { kind: 'write', written: ['a', 'b'] }],
  ['UPDATE a JOIN (SELECT id FROM c) d ON a.id = d.id SET a.x = 1', { kind: 'write', written: ['a'], read: ['c'] }],
  ['WITH d AS (SELECT id FROM c) UPDATE a JOIN d ON a.id = d.id SET a.x = 1', { kind: 'write', written: ['a'], read: ['c'] }],
  ['UPDATE t SET a = 1 WHERE b = @x', { kind: 'write', written: ['t'] }],
  // DELETE
  ['DELETE FROM t WHERE id = 1', { kind: 'write', written: ['t'] }],
  ['DELETE LOW_PRIORITY QUICK IGNORE FROM db.t WHERE id = 1 ORDER BY id LIMIT 1', { kind: 'write', written: ['db.t'] }],
  ['DELETE FROM t AS x WHERE x.id IN (SELECT id FROM u)', { kind: 'write', written: ['t'], read: ['u'] }],
  ['DELETE FROM t PARTITION (p0) WHERE 1', { kind: 'write', written: ['t'] }],
  ['DELETE FROM t WHERE id = 1 RETURNING *', { kind: 'write', written: ['t'] }],
  ['DELETE a, b FROM a JOIN b ON a.id = b.id JOIN c ON c.id = a.id', { kind: 'write', written: ['a', 'b'], read: ['c'] }],
  ['DELETE a FROM a JOIN b ON a.id = b.id', { kind: 'write', written: ['a'], read: ['b'] }],
  ['DELETE x.* FROM t1 AS x JOIN t2 y ON x.id = y.id', { kind: 'write', written: ['t1'], read: ['t2'] }],
  ['DELETE y FROM t1 AS x JOIN t2 y ON x.id = y.id', { kind: 'write', read: ['t1'], written: ['t2'] }],
  ['DELETE FROM a USING a JOIN b ON a.id = b.id WHERE b.x = 1', { kind: 'write', written: ['a'], read: ['b'] }],
  ['DELETE FROM x.*, y USING t1 AS x, t2 AS y, t3 WHERE 1', { kind: 'write', written: ['t1', 't2'], read: ['t3'] }],
  ['DELETE db.a FROM db.a JOIN b', { kind: 'write', written: ['db.a'], read: ['b'] }],
  ['DELETE nope FROM a JOIN b', { kind: 'write', written: ['a', 'b'] }],
  ['DELETE a FROM a JOIN (SELECT id FROM c) d ON a.id = d.id', { kind: 'write', written: ['a'], read: ['c'] }],
  // LOAD DATA, TRUNCATE, REPAIR
  ["LOAD DATA INFILE '/tmp/x' INTO TABLE t", { kind: 'write', written: ['t'] }],
  ["LOAD DATA LOCAL INFILE 'x.csv' REPLACE INTO TABLE db.t CHARACTER SET utf8 FIELDS TERMINATED BY ',' ENCLOSED BY '\"' LINES TERMINATED BY '\\n' IGNORE 1 LINES (a, @b) SET c = @b * 2", { kind: 'write', written: ['db.t'] }],
  ["LOAD XML LOCAL INFILE 'x.xml' INTO TABLE t ROWS IDENTIFIED BY '<row>'", { kind: 'write', written: ['t'] }],
  ['TRUNCATE t', { kind: 'write', written: ['t'] }],
  ['TRUNCATE TABLE db.t', { kind: 'write', written: ['db.t'] }],
  ['REPAIR TABLE a, b QUICK', { kind: 'write', written: ['a', 'b'] }],
  // CALL and DO
  ['CALL p(1, (SELECT max(id) FROM a))', { kind: 'other', read: ['a'], functions: ['p', 'max'], routines: ['p'], writesUnlisted: true }],
  ['CALL app.Archive', { kind: 'other', functions: ['app.archive'], routines: ['app.archive'], writesUnlisted: true }],
  ["DO GET_LOCK('x', 0)", { kind: 'other', reason: 'not-a-read' }],
  ['DO (SELECT count(*) FROM t)', { kind: 'other', read: ['t'] }],
  // DDL
  ['CREATE TABLE t (id INT PRIMARY KEY, d DATETIME DEFAULT CURRENT_TIMESTAMP, KEY k (id))', { kind: 'ddl', written: ['t'], writesUnlisted: true }],
  ['CREATE TABLE IF NOT EXISTS db.t LIKE db.u', { kind: 'ddl', written: ['db.t'], writesUnlisted: true }],
  ['CREATE TABLE t AS SELECT * FROM u', { kind: 'ddl', written: ['t'], read: ['u'], writesUnlisted: true }],
  ['CREATE TABLE t (a INT) ENGINE=InnoDB IGNORE SELECT a FROM u', { kind: 'ddl', written: ['t'], read: ['u'], writesUnlisted: true }],
  ['CREATE OR REPLACE TABLE t (a INT) WITH SYSTEM VERSIONING', { kind: 'ddl', written: ['t'], writesUnlisted: true }],
  ['CREATE TEMPORARY TABLE tmp (a INT)', { kind: 'session', written: ['tmp'] }],
  ['CREATE TEMPORARY TABLE tmp SELECT * FROM u', { kind: 'session', written: ['tmp'], read: ['u'] }],
  ['CREATE OR REPLACE ALGORITHM=MERGE DEFINER=`root`@`%` SQL SECURITY INVOKER VIEW v AS SELECT * FROM t WITH CHECK OPTION', { kind: 'ddl', written: ['v'], read: ['t'], writesUnlisted: true }],
  ['CREATE VIEW v (a) AS SELECT x FROM t JOIN u ON 1', { kind: 'ddl', written: ['v'], read: ['t', 'u'], writesUnlisted: true }],
  ['CREATE UNIQUE INDEX i USING BTREE ON t (a)', { kind: 'ddl', written: ['t'], writesUnlisted: true }],
  ['CREATE SEQUENCE s START WITH 1', { kind: 'ddl', written: ['s'], writesUnlisted: true }],
  ['CREATE DEFINER=root@localhost TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1', { kind: 'ddl', written: ['t'], writesUnlisted: true }],
  ['CREATE DATABASE d', { kind: 'ddl', writesUnlisted: true }],
  ['CREATE USER u IDENTIFIED BY \'p\'', { kind: 'ddl', writesUnlisted: true }],
  ['CREATE PROCEDURE p() BEGIN SELECT 1; UPDATE t SET a = 1; END', { kind: 'ddl', writesUnlisted: true }],
  ['CREATE FUNCTION f(x INT) RETURNS INT DETERMINISTIC RETURN x + 1', { kind: 'ddl', writesUnlisted: true }],
  ['ALTER TABLE t ADD COLUMN b INT, ALGORITHM=INPLACE', { kind: 'ddl', written: ['t'], writesUnlisted: true }],
  ['ALTER TABLE t RENAME TO u', { kind: 'ddl', written: ['t', 'u'], writesUnlisted: true }],
  ['ALTER TABLE t RENAME COLUMN a TO b', { kind: 'ddl', written: ['t'], writesUnlisted: true }],
  ['ALTER ONLINE IGNORE TABLE db.t ENGINE=InnoDB', { kind: 'ddl', written: ['db.t'], writesUnlisted: true }],
  ['ALTER VIEW v AS SELECT 1', { kind: 'ddl', written: ['v'], writesUnlisted: true }],
  ['DROP TABLE IF EXISTS a, db.b CASCADE', { kind: 'ddl', written: ['a', 'db.b'], writesUnlisted: true }],
  ['DROP TEMPORARY TABLE IF EXISTS tmp', { kind: 'session', written: ['tmp'] }],
  ['DROP VIEW v', { kind: 'ddl', written: ['v'], writesUnlisted: true }],
  ['DROP INDEX i ON t', { kind: 'ddl', written: ['t'], writesUnlisted: true }],
  ['DROP DATABASE IF EXISTS d', { kind: 'ddl', writesUnlisted: true }],
  ['RENAME TABLE a TO b, db.c TO db.d', { kind: 'ddl', written: ['a', 'b', 'db.c', 'db.d'], writesUnlisted: true }],
  ["GRANT SELECT ON db.* TO 'u'@'%'", { kind: 'ddl', writesUnlisted: true }],
  ['REVOKE ALL PRIVILEGES ON *.* FROM u', { kind: 'ddl', writesUnlisted: true }],
  ['FLUSH PRIVILEGES', { kind: 'ddl', writesUnlisted: true }],
  ["SET PASSWORD FOR u = PASSWORD('x')", { kind: 'ddl', writesUnlisted: true }],
  // accounts and roles are server-wide: writesUnlisted drops every entry of every database
  ["DROP USER IF EXISTS 'u'@'%'", { kind: 'ddl', writesUnlisted: true }],
  ["ALTER USER 'u'@'%' ACCOUNT LOCK", { kind: 'ddl', writesUnlisted: true }],
  ["RENAME USER 'u'@'%' TO 'v'@'%'", { kind: 'ddl', writesUnlisted: true }],
  ['CREATE ROLE grp', { kind: 'ddl', writesUnlisted: true }],
  ['DROP ROLE grp', { kind: 'ddl', writesUnlisted: true }],
  ["GRANT grp TO 'u'@'%'", { kind: 'ddl', writesUnlisted: true }],
  ["REVOKE grp FROM 'u'@'%'", { kind: 'ddl', writesUnlisted: true }],
  ["SET DEFAULT ROLE grp FOR 'u'@'%'", { kind: 'ddl', writesUnlisted: true }],
  ["BINLOG 'AAAA'", { kind: 'write', writesUnlisted: true }],
  // plans and maintenance
  ['EXPLAIN SELECT * FROM t', { kind: 'other', reason: 'explain' }],
  ['EXPLAIN FORMAT=JSON DELETE FROM t', { kind: 'other', reason: 'explain' }],
  ['EXPLAIN EXTENDED SELECT * FROM t', { kind: 'other', reason: 'explain' }],
  ['DESCRIBE t', { kind: 'other', reason: 'explain' }],
  ['DESC SELECT 1', { kind: 'other', reason: 'explain' }],
  ['EXPLAIN ANALYZE SELECT * FROM t', { kind: 'read', reason: 'explain', read: ['t'] }],
  ['ANALYZE SELECT * FROM t', { kind: 'read', reason: 'explain', read: ['t'] }],
  ['ANALYZE FORMAT=JSON UPDATE t SET a = 1', { kind: 'write', reason: 'explain', written: ['t'] }],
  ['ANALYZE DELETE FROM t WHERE id IN (SELECT id FROM u)', { kind: 'write', reason: 'explain', written: ['t'], read: ['u'] }],
  ['ANALYZE TABLE t', { kind: 'other' }],
  ['ANALYZE NO_WRITE_TO_BINLOG TABLE t PERSISTENT FOR ALL', { kind: 'other' }],
  ['OPTIMIZE TABLE t', { kind: 'other' }],
  ['CHECK TABLE t EXTENDED', { kind: 'other' }],
  ['CHECKSUM TABLE t', { kind: 'other' }],
  ['SHOW TABLES', { kind: 'other', reason: 'not-a-read' }],
  ["SHOW VARIABLES LIKE 'sql_mode'", { kind: 'other' }],
  ['SHOW CREATE TABLE t', { kind: 'other' }],
  ['HELP \'SELECT\'', { kind: 'other' }],
  // transactions
  ['BEGIN', { kind: 'transaction' }],
  ['BEGIN WORK', { kind: 'transaction' }],
  ['START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT', { kind: 'transaction' }],
  ['COMMIT', { kind: 'transaction' }],
  ['COMMIT WORK AND NO CHAIN NO RELEASE', { kind: 'transaction' }],
  ['ROLLBACK', { kind: 'transaction' }],
  ['ROLLBACK WORK TO SAVEPOINT sp1', { kind: 'transaction' }],
  ['SAVEPOINT sp1', { kind: 'transaction' }],
  ['RELEASE SAVEPOINT sp1', { kind: 'transaction' }],
  ["XA START 'x'", { kind: 'transaction' }],
  ["XA END 'x'", { kind: 'transaction' }],
  ["XA PREPARE 'x'", { kind: 'transaction' }],
  ["XA COMMIT 'x' ONE PHASE", { kind: 'transaction', writesUnlisted: true }],
  ["XA ROLLBACK 'x'", { kind: 'transaction' }],
  ['XA RECOVER', { kind: 'transaction' }],
  ['LOCK TABLES t READ, u WRITE', { kind: 'other' }],
  ['UNLOCK TABLES', { kind: 'other' }],
  // session
  ['SET NAMES utf8mb4', { kind: 'session' }],
  ["SET NAMES 'utf8mb4' COLLATE 'utf8mb4_unicode_ci'", { kind: 'session' }],
  ['SET CHARACTER SET utf8', { kind: 'session' }],
  ["SET time_zone = '+00:00'", { kind: 'session' }],
  ["SET SESSION sql_mode = 'ANSI_QUOTES'", { kind: 'session' }],
  ['SET autocommit = 0', { kind: 'session' }],
  ['SET @@autocommit := ON', { kind: 'session' }],
  ['SET @x = (SELECT max(id) FROM t)', { kind: 'session', read: ['t'] }],
  ['SET GLOBAL max_connections = 100', { kind: 'session' }],
  ['SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', { kind: 'session' }],
  ['SET TRANSACTION READ ONLY', { kind: 'session' }],
  ['SET ROLE admin', { kind: 'session' }],
  ['SET DEFAULT ROLE admin FOR u', { kind: 'ddl', writesUnlisted: true }],
  ['SET STATEMENT max_statement_time = 10 FOR SELECT * FROM t', { kind: 'read', cacheable: true, read: ['t'] }],
  ['SET STATEMENT sql_mode = \'\' FOR UPDATE t SET a = 1', { kind: 'write', written: ['t'] }],
  ['USE db', { kind: 'session' }],
  ['USE `my db`', { kind: 'session' }],
  ['PREPARE s FROM \'DELETE FROM t\'', { kind: 'other' }],
  ['EXECUTE s USING @a', { kind: 'other', writesUnlisted: true }],
  ['DEALLOCATE PREPARE s', { kind: 'other' }],
  ['DROP PREPARE s', { kind: 'other' }],
  ['KILL QUERY 42', { kind: 'other' }],
  ['HANDLER t OPEN', { kind: 'other' }],
  // sequences
  ['SELECT NEXTVAL(s)', { kind: 'write', written: ['s'] }],
  ['SELECT NEXT VALUE FOR db.s', { kind: 'write', written: ['db.s'] }],
  ['SELECT SETVAL(s, 100)', { kind: 'write', written: ['s'] }],
  // not understood: do not cache, invalidate wide
  ['SELEC * FROM t', { kind: 'unknown', reason: 'parse-error', writesUnlisted: true }],
  ['SELECT * FROM t WHERE (a = 1', { kind: 'unknown', reason: 'parse-error', writesUnlisted: true }],
  ["SELECT 'unterminated", { kind: 'unknown', reason: 'parse-error', writesUnlisted: true }],
  ['SELECT * FROM t /* unterminated', { kind: 'unknown', reason: 'parse-error', writesUnlisted: true }],
  ['SELECT * FROM select', { kind: 'unknown', reason: 'parse-error', writesUnlisted: true }],
  ['SELECT * FROM t garbage garbage', { kind: 'unknown', writesUnlisted: true }],
  ['BEGIN NOT ATOMIC UPDATE t SET a = 1; SELECT 1; END', { kind: 'unknown', writesUnlisted: true }],
  ['IF 1 THEN DELETE FROM t; END IF', { kind: 'unknown', writesUnlisted: true }],
  ['lbl: LOOP LEAVE lbl; END LOOP', { kind: 'unknown', writesUnlisted: true }],
  ['FROBNICATE t', { kind: 'unknown', writesUnlisted: true }],
];

for (const [sql, expected] of cases) {
  test(sql.replaceAll('\n', ' ').slice(0, 100), () => {
    expectAnalysis(sql, expected);
  });
}

test('the corpus covers each rule with many statements', () => {
  assert.ok(cases.length >= 150, `${cases.length} cases`);
});

// --- multi-statement texts -------------------------------------------------------------------------

test('several statements: widest kind, union of facts, never cacheable', () => {
  const a = expectAnalysis('BEGIN; UPDATE a SET x = 1; SELECT * FROM b; COMMIT', {
    kind: 'write', reason: 'several-statements', read: ['b'], written: ['a'],
  });
  assert.equal(a.statements.map((s) => s.kind), ['transaction', 'write', 'read', 'transaction']);
  assert.equal(a.statements.map((s) => s.transaction), ['begin', undefined, undefined, 'commit']);
  assert.is(a.statements[2]!.cacheable, true);
  const ddl = expectAnalysis('INSERT INTO a VALUES (1); CREATE INDEX i ON b (x)', {
    kind: 'ddl', reason: 'several-statements', written: ['a', 'b'], writesUnlisted: true,
  });
  assert.is(ddl.reasonDetail, 'write, ddl');
  expectAnalysis('SELECT 1; SELECT 2;', { kind: 'read', reason: 'several-statements' });
  expectAnalysis('DELETE FROM t; SELECT (', { kind: 'unknown', reason: 'several-statements', written: ['t'], writesUnlisted: true });
});

test('a semicolon inside a string, a comment or a quoted name does not split', () => {
  const a = expectAnalysis("SELECT ';' AS `;`, \";\" FROM t -- ;\n", { kind: 'read', cacheable: true, read: ['t'] });
  assert.is(a.statements.length, 1);
});

test('empty texts and lone semicolons are empty', () => {
  for (const text of ['', '   ', ';', ' ; ; ', '-- only a comment', '/* x */']) {
    const a = analyzeMysql(text);
    assert.is(a.reasonNotCacheable, 'empty', JSON.stringify(text));
    assert.is(a.statements.length, 0);
  }
});

test('a stored program body keeps its semicolons; what follows it is a statement of its own', () => {
  const a = analyzeMysql('CREATE PROCEDURE p() BEGIN DECLARE x INT; IF x THEN SELECT CASE WHEN 1 THEN 2 END; END IF; END; SELECT * FROM t');
  assert.equal(a.statements.map((s) => [s.command, s.kind]), [['CREATE PROCEDURE', 'ddl'], ['SELECT', 'read']]);
  const trigger = analyzeMysql('CREATE TRIGGER tr AFTER UPDATE ON t FOR EACH ROW BEGIN UPDATE u SET n = n + 1; END; USE other');
  assert.equal(trigger.statements.map((s) => s.command), ['CREATE TRIGGER', 'USE']);
  assert.equal(names(trigger.tablesWritten), ['t']);
  const noBody = analyzeMysql('CREATE FUNCTION f() RETURNS INT RETURN 1; DELETE FROM t');
  assert.equal(noBody.statements.map((s) => s.command), ['CREATE FUNCTION', 'DELETE']);
  // a table called event is not an event
  assert.equal(analyzeMysql('CREATE TABLE event (id INT); INSERT INTO event VALUES (1)').statements.map((s) => s.command), ['CREATE TABLE', 'INSERT']);
});

// --- details ------------------------------------------------------------------------------------------

test('session changes say what changed', () => {
  const changes = (sql: string): string[] => analyzeMysql(sql).sessionChanges.map((c) =>
    `${c.action}:${c.setting}${c.global ? ':global' : ''}${c.affectsResults ? '' : ':harmless'}`);
  assert.equal(changes('SET NAMES utf8mb4'), ['variable:character_set_client', 'variable:character_set_connection', 'variable:character_set_results', 'variable:collation_connection']);
  assert.equal(changes("SET time_zone = '+00:00', autocommit = 1, @x := 2"), ['variable:time_zone', 'variable:autocommit:harmless', 'user-variable:x:harmless']);
  assert.equal(changes("SET @@SESSION.sql_mode = 'ANSI', @@global.wait_timeout = 5, PERSIST max_connections = 10, LOCAL lc_time_names = 'de_DE'"),
    ['variable:sql_mode', 'variable:wait_timeout:global:harmless', 'variable:max_connections:global', 'variable:lc_time_names']);
  // The access mode refuses writes and changes no read; the isolation level changes what reads see.
  assert.equal(changes('SET GLOBAL TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE'), ['variable:transaction_isolation:global', 'variable:transaction_read_only:global:harmless']);
  assert.equal(changes('SET SESSION TRANSACTION READ ONLY'), ['variable:transaction_read_only:harmless']);
  assert.equal(changes('SET @@tx_read_only = 1, transaction_isolation = \'READ-UNCOMMITTED\''), ['variable:tx_read_only:harmless', 'variable:transaction_isolation']);
  assert.equal(changes('USE `Sales`'), ['database:Sales']);
  assert.equal(changes('SET ROLE NONE'), ['role:null']);
  assert.equal(changes("SET ROLE 'admin'"), ['role:admin']);
  assert.equal(changes('CREATE TEMPORARY TABLE tmp (a INT)'), ['temporary-table:tmp']);
  assert.equal(changes('DROP TEMPORARY TABLE a, b'), ['temporary-table:a', 'temporary-table:b']);
  assert.equal(changes('SELECT a INTO @v FROM t'), ['user-variable:v:harmless']);
  assert.equal(changes("SELECT @`odd name` := 1, @'q''x' := 2"), ['user-variable:odd name:harmless', "user-variable:q'x:harmless"]);
  assert.equal(changes('CALL p()'), ['any:null']);
  assert.equal(changes('EXECUTE s'), ['any:null']);
  assert.equal(changes('NONSENSE'), ['any:null']);
  assert.equal(changes("SELECT 'unterminated"), ['any:null']);
  assert.equal(changes('SELECT * FROM t'), []);
  assert.equal(changes('SET STATEMENT sql_mode = \'\' FOR SELECT 1'), []);
});

test('reason details name the trigger', () => {
  assert.is(analyzeMysql('SELECT * FROM t FOR SHARE').reasonDetail, 'FOR SHARE');
  assert.is(analyzeMysql('SELECT CURRENT_DATE').reasonDetail, 'CURRENT_DATE');
  assert.is(analyzeMysql('SELECT rand()').reasonDetail, 'RAND()');
  assert.is(analyzeMysql('SELECT @@sql_mode').reasonDetail, '@@sql_mode');
  assert.is(analyzeMysql('DELETE FROM a').reasonDetail, 'DELETE');
  assert.match(analyzeMysql('SELECT * FROM t WHERE (').reasonDetail ?? '', /unbalanced|expected/);
});

test('the command and transaction action of each statement', () => {
  const part = (sql: string) => analyzeMysql(sql).statements[0]!;
  assert.is(part('select 1').command, 'SELECT');
  assert.is(part('CREATE OR REPLACE VIEW v AS SELECT 1').command, 'CREATE VIEW');
  assert.is(part('ROLLBACK TO sp').transaction, 'rollback_to');
  assert.is(part('XA BEGIN \'x\'').transaction, 'xa_start');
  assert.is(part('START TRANSACTION').transaction, 'start');
  assert.is(part('START SLAVE').kind, 'other');
});

test('options: NO_BACKSLASH_ESCAPES, ANSI_QUOTES, lower_case_table_names', () => {
  // with backslash escapes the string ends at the second quote; without, at the first after the backslash
  expectAnalysis("SELECT 'a\\' FROM t", { kind: 'read', cacheable: true, read: ['t'] }, { noBackslashEscapes: true });
  expectAnalysis("SELECT 'a\\' FROM t", { kind: 'unknown', writesUnlisted: true });
  expectAnalysis("SELECT 'a\\' FROM t', b FROM u", { kind: 'read', cacheable: true, read: ['u'] });
  expectAnalysis('SELECT "a" FROM "My Table" JOIN "db"."T" ON 1', { kind: 'read', cacheable: true, read: ['My Table', 'db.T'] }, { ansiQuotes: true });
  expectAnalysis('SELECT * FROM "t"', { kind: 'unknown', writesUnlisted: true });
  expectAnalysis('SELECT * FROM Db.MyTable JOIN `Other` ON 1', { kind: 'read', cacheable: true, read: ['db.mytable', 'other'] }, { lowerCaseTableNames: true });
  expectAnalysis('WITH Cte AS (SELECT 1) SELECT * FROM cte', { kind: 'read', cacheable: true }, { lowerCaseTableNames: true });
});

test('deep nesting is not understood rather than a stack overflow', () => {
  for (const text of [
    `SELECT ${'('.repeat(100_000)}1${')'.repeat(100_000)}`,
    `SELECT * FROM ${'('.repeat(50_000)}t${')'.repeat(50_000)}`,
    `SELECT ${'{fn '.repeat(50_000)}`,
    `${'ANALYZE '.repeat(50_000)}SELECT 1`,
    `${'SET STATEMENT a = 1 FOR '.repeat(20_000)}SELECT 1`,
  ]) {
    expectAnalysis(text, { kind: 'unknown', reason: 'parse-error', writesUnlisted: true });
  }
  expectAnalysis(`SELECT ${'('.repeat(150)}1${')'.repeat(150)} FROM t`, { kind: 'read', cacheable: true, read: ['t'] });
  expectAnalysis('SET STATEMENT a = 1 FOR SET STATEMENT b = 2 FOR ANALYZE SELECT * FROM t', { kind: 'read', reason: 'explain', read: ['t'] });
});

test('the analysis and everything in it is frozen', () => {
  const a = analyzeMysql('SELECT * FROM t JOIN u ON 1; UPDATE v SET x = 1');
  assert.ok(Object.isFrozen(a));
  for (const list of [a.tablesRead, a.tablesWritten, a.functions, a.routines, a.sessionChanges, a.statements]) assert.ok(Object.isFrozen(list));
  assert.ok(Object.isFrozen(a.statements[0]));
  assert.ok(Object.isFrozen(a.tablesRead[0]));
});

// --- fuzz ---------------------------------------------------------------------------------------------

const fragment = fc.constantFrom(
  'SELECT', 'FROM', 'WHERE', 'JOIN', 'ON', 'USING', 'INSERT', 'INTO', 'VALUES', 'UPDATE', 'SET', 'DELETE', 'WITH',
  'RECURSIVE', 'AS', 'UNION', 'CREATE', 'TABLE', 'PROCEDURE', 'BEGIN', 'END', 'CASE', 'IF', 'FOR', 'LOCK', 'IN',
  'SHARE', 'MODE', 'NOW()', 'RAND(', 'f(', 'db.', 't', 'u', '`q`', '`', '"', "'", "'s'", '(', ')', ',', ';', '.',
  '*', '=', ':=', '@x', '@@y', '@', '?', '1', '0x1F', '1e5', '--', '-- ', '#', '/*', '*/', '/*!', '/*!40101', '/*M!',
  '{', '}', 'OJ', 'NEXT', 'VALUE', 'LATERAL', 'JSON_TABLE', 'INDEX', 'USE', 'PARTITION', 'SYSTEM_TIME', '\\', '\n',
);

test('property: analysis never throws and always answers with a kind', () => {
  fc.assert(fc.property(fc.array(fragment, { maxLength: 40 }), fc.boolean(), fc.boolean(), (parts, nbe, ansi) => {
    const a = analyzeMysql(parts.join(' '), { noBackslashEscapes: nbe, ansiQuotes: ansi });
    return typeof a.kind === 'string' && (a.cacheable || a.reasonNotCacheable !== undefined);
  }), { numRuns: 3000 });
});

test('property: arbitrary strings never make the analysis throw', () => {
  fc.assert(fc.property(fc.string({ maxLength: 200 }), (text) => typeof analyzeMysql(text).kind === 'string'), { numRuns: 3000 });
  fc.assert(fc.property(fc.array(fragment, { maxLength: 40 }), (parts) => typeof analyzeMysql(parts.join('')).kind === 'string'), { numRuns: 3000 });
});

test('property: an understood text never reads or writes nothing while naming a table after FROM', () => {
  // a SELECT from a generated table list either is understood with every table, or is unknown
  const table = fc.constantFrom('a', 'b', 'db.c', '`d`', '(SELECT * FROM e) x');
  const join = fc.constantFrom(', ', ' JOIN ', ' LEFT JOIN ', ' NATURAL JOIN ', ' STRAIGHT_JOIN ', ' CROSS JOIN ');
  fc.assert(fc.property(table, fc.array(fc.tuple(join, table), { maxLength: 5 }), (first, rest) => {
    const sql = `SELECT * FROM ${first}${rest.map(([j, t]) => `${j}${t}${j.includes('LEFT') ? ' ON 1' : ''}`).join('')}`;
    const a = analyzeMysql(sql);
    if (a.kind === 'unknown') return true;
    const read = new Set(names(a.tablesRead));
    return [first, ...rest.map(([, t]) => t)].every((t) =>
      read.has(t.startsWith('(') ? 'e' : t.replaceAll('`', '')));
  }), { numRuns: 2000 });
});

test.run();
