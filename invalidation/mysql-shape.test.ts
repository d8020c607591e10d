import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { mysqlStatementSample, mysqlStatementShape } from './mysql-shape.js';
import { analyzeMysql, type MysqlStatementAnalysis } from './mysql-analysis.js';

test('numbers become 0; names, placeholders and variables stay', () => {
  assert.is(mysqlStatementShape('SELECT c FROM sbtest1 WHERE id = 4217;'), 'SELECT c FROM sbtest1 WHERE id = 0;');
  assert.is(mysqlStatementShape('SELECT t1.c2, ? FROM t1 LIMIT 10 OFFSET 2.5e3'), 'SELECT t1.c2, ? FROM t1 LIMIT 0 OFFSET 0');
  assert.is(mysqlStatementShape('SELECT -1.5, .5, 1e+5, 7. FROM t'), 'SELECT -0, .0, 0, 0 FROM t');
  assert.is(mysqlStatementShape('SELECT @v1, @@max_allowed_packet, 5--3'), 'SELECT @v1, @@max_allowed_packet, 0--0');
  assert.is(mysqlStatementShape('UPDATE t SET a = a + 3 WHERE id IN (1, 2, 3) LIMIT 9'), 'UPDATE t SET a = a + 0 WHERE id IN (0, 0, 0) LIMIT 0');
});

test('texts without other numbers than 0 are returned as they are (the same string)', () => {
  const text = 'SELECT * FROM t WHERE x = 0';
  assert.is(mysqlStatementShape(text), text);
});

test('strings become empty strings of their kind: prefixes, introducers and typed literals stay', () => {
  assert.is(mysqlStatementShape("SELECT 'c17' AS a"), "SELECT '' AS a");
  assert.is(mysqlStatementShape('SELECT "abc", \'it\\\'s\', \'x\'\'y\' FROM t'), 'SELECT "", \'\', \'\' FROM t');
  assert.is(mysqlStatementShape("SELECT N'7', n'8', X'0F', b'01', _utf8mb4'x', _latin1 'y' COLLATE latin1_bin"),
    "SELECT N'', n'', X'', b'', _utf8mb4'', _latin1 '' COLLATE latin1_bin");
  assert.is(mysqlStatementShape("SELECT DATE '2024-01-31', TIME'10:00', TIMESTAMP '2024-01-31 10:00:00', {d '2024-01-31'}"),
    "SELECT DATE '', TIME'', TIMESTAMP '', {d ''}");
  assert.is(mysqlStatementShape('SELECT 0x1F, 0b101, 0x0 FROM t'), 'SELECT 0x0, 0b0, 0x0 FROM t');
});

test('strings that name something stay: aliases after AS, roles after ROLE', () => {
  const cases = [
    "SELECT a AS 'my alias' FROM t",
    "DELETE x FROM t AS 'x' JOIN u ON u.id = t.id",
    'SELECT a as /* c */ "b" FROM t',
    "SET ROLE 'admin'",
  ];
  for (const c of cases) assert.is(mysqlStatementShape(c), c, c);
  assert.is(mysqlStatementShape("SELECT 'v' AS 'n', 'w' FROM t"), "SELECT '' AS 'n', '' FROM t");
});

test('quoted names, comments, placeholders, variables and executable-comment versions are copied verbatim', () => {
  const cases = [
    "SELECT `t 3`, `it's`, `a``b` FROM t",
    'SELECT x -- 99 \'bottles\'\nFROM t',
    "SELECT x # 99 'bottles'\nFROM t",
    "SELECT /* 1 '2' 3 */ x FROM t",
    'SELECT /*+ MAX_EXECUTION_TIME(1000) */ x FROM t',
    '/*!40101 SET NAMES utf8 */',
    'SELECT * FROM t /*M!100100 WHERE 0 */',
    'SELECT * FROM t1abc JOIN 2t ON 1abc.x = 0',
    "SELECT @`5`, @'6', @@sql_mode, ? FROM t",
    "SELECT '', \"\", N'', X'' FROM t",
  ];
  for (const c of cases) assert.is(mysqlStatementShape(c), c, c);
});

test('the sample marks every literal the shape empties with ?, whatever its value', () => {
  assert.is(mysqlStatementSample('SELECT SLEEP(2)'), 'SELECT SLEEP(?)');
  assert.is(mysqlStatementSample("SELECT c FROM t WHERE id IN (0, 17, .5) AND name = 'bob' AND b = X'0F' AND h = 0x1F LIMIT 10"),
    'SELECT c FROM t WHERE id IN (?, ?, ?) AND name = ? AND b = ? AND h = ? LIMIT ?');
  assert.is(mysqlStatementSample("SELECT a AS 'n', ? FROM t -- 'kept'\n"), "SELECT a AS 'n', ? FROM t -- 'kept'\n");
  const texts = ["SELECT * FROM t WHERE a = 'x' AND b = 5", "SELECT * FROM t WHERE a = '' AND b = 0"];
  assert.is(mysqlStatementSample(texts[0]!), mysqlStatementSample(texts[1]!));
  assert.is(mysqlStatementSample(texts[0]!), mysqlStatementSample(mysqlStatementShape(texts[0]!)));
});

test('numbers inside executable comments are code and become 0, the version stays', () => {
  assert.is(mysqlStatementShape('SELECT * FROM t /*!50000 LIMIT 10 */'), 'SELECT * FROM t /*!50000 LIMIT 0 */');
});

test('numbers glued to names are left alone', () => {
  assert.is(mysqlStatementShape('SELECT 12abc, 1e, 1.5abc, t.5 FROM t'), 'SELECT 12abc, 1e, 1.5abc, t.0 FROM t');
});

test('the dialect decides where strings end', () => {
  // NO_BACKSLASH_ESCAPES: the string is 'a\' and 5 is code
  assert.is(mysqlStatementShape("SELECT 'a\\', 5", { noBackslashEscapes: true }), "SELECT '', 0");
  // with backslash escapes the string never ends: an unreadable text stays as it is
  assert.is(mysqlStatementShape("SELECT 'a\\', 5"), "SELECT 'a\\', 5");
  // ANSI_QUOTES: "5" is a name, not a string
  assert.is(mysqlStatementShape('SELECT "5", 6, \'7\' FROM "t"', { ansiQuotes: true }), 'SELECT "5", 0, \'\' FROM "t"');
  assert.is(mysqlStatementShape('SELECT "5", 6, \'7\' FROM t'), 'SELECT "", 0, \'\' FROM t');
});

function facts(a: MysqlStatementAnalysis): unknown {
  return {
    kind: a.kind, cacheable: a.cacheable, reason: a.reasonNotCacheable, read: a.tablesRead, written: a.tablesWritten,
    functions: a.functions, routines: a.routines, unlisted: a.writesUnlisted, session: a.sessionChanges,
    statements: a.statements.map((s) => [s.command, s.kind, s.transaction]),
  };
}

const SAME_ANALYSIS = [
  'SELECT c FROM sbtest1 WHERE id = 4217',
  'SELECT c FROM sbtest1 WHERE id BETWEEN 10 AND 109 ORDER BY c',
  'SELECT SUM(k) FROM sbtest3 WHERE id BETWEEN 5 AND 104',
  'UPDATE sbtest1 SET k = k + 1 WHERE id = 77',
  "UPDATE sbtest1 SET c = '12-34' WHERE id = 5",
  "INSERT INTO sbtest1 (id, k, c, pad) VALUES (123, 456, '7', '8')",
  'DELETE FROM sbtest1 WHERE id = 9',
  "SELECT * FROM orders o JOIN items i ON i.oid = o.id WHERE o.id IN (1, 2, 3) AND i.sku = 'x9'",
  'SELECT ROUND(1.2345, 2), RAND(7), DATE_ADD(d, INTERVAL 3 DAY) FROM t LIMIT 5, 10',
  'SELECT * FROM t FOR UPDATE WAIT 5',
  'SET STATEMENT max_statement_time = 10 FOR SELECT * FROM t',
  'SET SESSION wait_timeout = 28800, autocommit = 1',
  "XA COMMIT 'x', 'y', 1",
  'SELECT * FROM t /*!50000 LIMIT 10 */; SELECT 2',
  'WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 100) SELECT * FROM c',
  'KILL 42',
  "SELECT c FROM t WHERE name = 'bob' AND d > DATE '2024-01-01' AND j->>'$.a' LIKE 'x%' ESCAPE '!'",
  "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_bin'",
  "SET SESSION sql_mode = 'ANSI_QUOTES', time_zone = '+00:00'",
  "SELECT * INTO OUTFILE '/tmp/x' FROM t",
  "LOAD DATA LOCAL INFILE '/tmp/f' INTO TABLE t FIELDS TERMINATED BY ','",
  "DELETE x FROM t AS x JOIN u ON u.id = x.id WHERE u.name = 'old'",
  "PREPARE s FROM 'DELETE FROM t'",
  "SELECT * FROM t FOR SYSTEM_TIME AS OF TIMESTAMP '2024-01-01 00:00:00'",
  "INSERT INTO t VALUES (X'0F', 0x1F, b'1', N'x', _utf8mb4'y', 'a' 'b')",
  "CREATE USER 'u'@'h' IDENTIFIED BY 'p'",
  "GRANT SELECT ON t TO 'u'@'%'",
  "CALL p('x')",
  "SELECT GET_LOCK('x', 10), CONVERT('x' USING latin1), CAST('1' AS SIGNED) FROM t",
  "SELECT a AS 'b', 'c' FROM t AS 'u'",
  "DELETE x FROM t AS 'x' JOIN u ON u.id = x.id WHERE u.name = 'old'",
];

test('the shape has the same analysis as the text', () => {
  for (const text of SAME_ANALYSIS) {
    const shape = mysqlStatementShape(text);
    assert.is.not(shape, text, `${text} has literals`);
    assert.equal(facts(analyzeMysql(shape)), facts(analyzeMysql(text)), text);
  }
});

const token = fc.constantFrom(
  'SELECT', 'FROM', 't', 'WHERE', ' ', '1', '2.5', '.5', '1e5', '7abc', '0x1F', '0b1', "'x'", "'1'", "''", '"q"', '""', '`5`',
  "N'n'", "X'0F'", "b'1'", '_utf8mb4', 'DATE', "'", '"', '?', '@v', "@'u'",
  '--', '-- c\n', '#c\n', '/*c*/', '/*!40101', '*/', '/*M!100100', '.', ',', 'e', '-', '+', "'\\''", '\\', '(', ')', ';',
  'LIMIT', 'id', '=', 'IN', 'JOIN', 'ON', 'FOR', 'UPDATE', 'AS', 'SET', 'ROLE', 'DELETE', 'x', 'u',
);

test('property: shapes never throw, are idempotent, keep the analysis and share one sample', () => {
  fc.assert(fc.property(fc.array(token, { maxLength: 30 }), fc.constantFrom('', ' '), fc.boolean(), fc.boolean(), (tokens, sep, nbe, ansi) => {
    const text = tokens.join(sep);
    const dialect = { noBackslashEscapes: nbe, ansiQuotes: ansi };
    const shape = mysqlStatementShape(text, dialect);
    assert.is(mysqlStatementShape(shape, dialect), shape, `idempotent: ${JSON.stringify(text)}`);
    assert.equal(facts(analyzeMysql(shape, dialect)), facts(analyzeMysql(text, dialect)), JSON.stringify(text));
    assert.is(mysqlStatementSample(shape, dialect), mysqlStatementSample(text, dialect), `sample: ${JSON.stringify(text)}`);
  }), { numRuns: 5000 });
});

test.run();
