import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { mysqlStatementShape } from './mysql-shape.js';
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

test('strings, quoted names, comments, hex and bit literals and executable-comment versions are copied verbatim', () => {
  const cases = [
    "SELECT 'a 1 b', \"col 2\", `t 3` FROM t",
    "SELECT 'it\\'s 5', 'x''6' FROM t",
    'SELECT x -- 99 bottles\nFROM t',
    'SELECT x # 99 bottles\nFROM t',
    'SELECT /* 1 2 3 */ x FROM t',
    'SELECT /*+ MAX_EXECUTION_TIME(1000) */ x FROM t',
    "SELECT 0x1F, 0b101, X'0F', B'01', N'7', _utf8mb4'8' FROM t",
    '/*!40101 SET NAMES utf8 */',
    'SELECT * FROM t /*M!100100 WHERE 0 */',
    'SELECT * FROM t1abc JOIN 2t ON 1abc.x = 0',
    'SELECT @`5`, @\'6\' FROM t',
  ];
  for (const c of cases) assert.is(mysqlStatementShape(c), c, c);
});

test('numbers inside executable comments are code and become 0, the version stays', () => {
  assert.is(mysqlStatementShape('SELECT * FROM t /*!50000 LIMIT 10 */'), 'SELECT * FROM t /*!50000 LIMIT 0 */');
});

test('numbers glued to names are left alone', () => {
  assert.is(mysqlStatementShape('SELECT 12abc, 1e, 1.5abc, t.5 FROM t'), 'SELECT 12abc, 1e, 1.5abc, t.0 FROM t');
});

test('the dialect decides where strings end', () => {
  // NO_BACKSLASH_ESCAPES: the string is 'a\' and 5 is code
  assert.is(mysqlStatementShape("SELECT 'a\\', 5, '", { noBackslashEscapes: true }), "SELECT 'a\\', 0, '");
  assert.is(mysqlStatementShape("SELECT 'a\\', 5, 'x'"), "SELECT 'a\\', 5, 'x'");
  // ANSI_QUOTES: "5" is a name either way
  assert.is(mysqlStatementShape('SELECT "5", 6 FROM t', { ansiQuotes: true }), 'SELECT "5", 0 FROM t');
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
];

test('the shape has the same analysis as the text', () => {
  for (const text of SAME_ANALYSIS) {
    const shape = mysqlStatementShape(text);
    assert.is.not(shape, text, `${text} has numbers`);
    assert.equal(facts(analyzeMysql(shape)), facts(analyzeMysql(text)), text);
  }
});

const token = fc.constantFrom(
  'SELECT', 'FROM', 't', 'WHERE', ' ', '1', '2.5', '.5', '1e5', '7abc', '0x1F', "'x'", "'1'", '"q"', '`5`', '?', '@v',
  '--', '-- c\n', '#c\n', '/*c*/', '/*!40101', '*/', '/*M!100100', '.', ',', 'e', '-', '+', "'\\''", '\\', '(', ')', ';',
  'LIMIT', 'id', '=', 'IN', 'JOIN', 'ON', 'FOR', 'UPDATE',
);

test('property: shapes never throw, are idempotent and keep the analysis', () => {
  fc.assert(fc.property(fc.array(token, { maxLength: 30 }), fc.constantFrom('', ' '), fc.boolean(), (tokens, sep, nbe) => {
    const text = tokens.join(sep);
    const dialect = { noBackslashEscapes: nbe };
    const shape = mysqlStatementShape(text, dialect);
    assert.is(mysqlStatementShape(shape, dialect), shape, `idempotent: ${JSON.stringify(text)}`);
    assert.equal(facts(analyzeMysql(shape, dialect)), facts(analyzeMysql(text, dialect)), JSON.stringify(text));
  }), { numRuns: 5000 });
});

test.run();
