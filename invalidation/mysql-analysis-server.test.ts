// The MySQL analysis checked against MariaDB itself, three ways, on a corpus of statements:
// - tables: every table in the statement's EXPLAIN FORMAT=JSON plan is one the analysis reports
//   (and, unless a case says otherwise, the analysis reports no other table);
// - read vs write: a statement the analysis calls a read runs inside START TRANSACTION READ ONLY;
//   one it calls a write fails there with error 1792 (ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION);
// - effects: run inside a transaction that is rolled back, a statement changes only tables the
//   analysis reports as written (or it says writesUnlisted).
// Cases avoid what the optimizer prunes (constant-false filters, MIN/MAX on indexes) and views,
// triggers and foreign keys (the catalog resolves those, not the text).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { analyzeMysql, type MysqlStatementAnalysis } from './mysql-analysis.js';
import { serverDialect, Tok, tokenize } from './mysql-lexer.js';

const db = `inv_${process.pid}_${randomBytes(4).toString('hex')}`;
const db2 = `${db}_2`;
const ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION = 1792;
let conn: mysql.Connection;

interface Case {
  sql: string;
  /** EXPLAIN cannot take this statement (or shows nothing of use). */
  noExplain?: boolean;
  /** The analysis may report more tables than the plan shows (only the inclusion is checked). */
  superset?: boolean;
  /** Plan entries that are not tables (table functions). */
  notTables?: string[];
  /** The plan names a table by its alias: alias -> table. */
  aliases?: Record<string, string>;
}

const corpus: Case[] = [
  // reads
  { sql: 'SELECT * FROM a' },
  { sql: 'SELECT a.x FROM a JOIN b ON a.id = b.id LEFT JOIN c ON c.id = b.id' },
  { sql: 'SELECT * FROM a, b WHERE a.id = b.id' },
  { sql: 'SELECT * FROM a NATURAL JOIN b' },
  { sql: 'SELECT * FROM a STRAIGHT_JOIN b ON a.id = b.id' },
  { sql: 'SELECT * FROM a USE INDEX (ix) JOIN b IGNORE INDEX FOR JOIN (ix) ON a.x = b.x, c FORCE KEY (ix)' },
  { sql: 'SELECT * FROM a WHERE x IN (SELECT x FROM b) AND EXISTS (SELECT 1 FROM c WHERE c.id = a.id)' },
  { sql: 'SELECT (SELECT sum(x) FROM b WHERE b.id = a.id) FROM a' },
  { sql: 'SELECT * FROM (SELECT id, count(*) n FROM a GROUP BY id) d JOIN b ON b.id = d.id' },
  { sql: 'SELECT x FROM a UNION SELECT x FROM b UNION ALL SELECT x FROM c' },
  { sql: '(SELECT x FROM a ORDER BY x LIMIT 2) UNION (SELECT x FROM b) ORDER BY 1' },
  { sql: 'SELECT x FROM a EXCEPT SELECT x FROM b' },
  { sql: 'SELECT x FROM a INTERSECT SELECT x FROM c' },
  { sql: 'WITH t AS (SELECT id, count(*) n FROM u GROUP BY id) SELECT * FROM t JOIN a ON a.id = t.id' },
  { sql: 'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r' },
  { sql: 'WITH RECURSIVE r AS (SELECT id, x FROM nodes WHERE x = 0 UNION ALL SELECT n.id, n.x FROM nodes n JOIN r ON n.x = r.id) SELECT * FROM r', aliases: { n: 'nodes' } },
  { sql: 'WITH a AS (SELECT * FROM b) SELECT * FROM a' },
  { sql: 'WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a' },
  { sql: 'WITH RECURSIVE r1 AS (SELECT 1 AS x UNION SELECT x + 1 FROM b WHERE x < 3), b AS (SELECT x FROM r1) SELECT * FROM r1', superset: true },
  { sql: 'WITH t AS (SELECT * FROM t) SELECT * FROM t' },
  { sql: 'SELECT * FROM `Orders` o JOIN orders p ON o.id = p.id', aliases: { o: 'Orders', p: 'orders' } },
  { sql: `SELECT * FROM ${db2}.x2 JOIN a ON a.id = x2.id` },
  { sql: 'SELECT * FROM a WHERE x = ANY (SELECT x FROM b) OR x > ALL (SELECT x FROM c)' },
  { sql: 'SELECT * FROM a LEFT JOIN (b JOIN c ON b.id = c.id) ON a.id = b.id' },
  { sql: "SELECT * FROM JSON_TABLE('[1,2]', '$[*]' COLUMNS (v INT PATH '$')) jt JOIN a ON a.id = jt.v", notTables: ['jt'] },
  { sql: 'SELECT * FROM hist FOR SYSTEM_TIME ALL' },
  { sql: "SELECT * FROM hist FOR SYSTEM_TIME AS OF TIMESTAMP '2030-01-01 00:00:00' h JOIN a ON a.id = h.id", aliases: { h: 'hist' } },
  { sql: 'SELECT * FROM a WHERE x IN (VALUES (1), (2))' },
  { sql: 'VALUES (1, 2), (3, 4)', noExplain: true },
  { sql: 'SELECT * FROM a /*!50000 JOIN b ON a.id = b.id */' },
  { sql: 'SELECT * FROM a /*M!100100 JOIN c ON a.id = c.id */' },
  { sql: 'SELECT * FROM a -- JOIN b\n JOIN c ON a.id = c.id # JOIN u' },
  { sql: 'SELECT SQL_NO_CACHE HIGH_PRIORITY DISTINCT x FROM a' },
  { sql: 'SELECT id, x FROM a GROUP BY id, x WITH ROLLUP' },
  { sql: 'SELECT x, row_number() OVER w FROM a WINDOW w AS (ORDER BY x)' },
  { sql: 'SELECT * FROM a WHERE x = (SELECT x FROM b WHERE b.id = a.id LIMIT 1)' },
  { sql: 'SELECT NOW(), a.* FROM a' },
  { sql: 'SELECT @@sql_mode, @undefined_var' },
  { sql: 'SELECT * FROM a FOR UPDATE' },
  { sql: 'SELECT * FROM a LOCK IN SHARE MODE' },
  { sql: 'SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()' },
  { sql: 'SELECT * FROM a WHERE id IN (SELECT id FROM b UNION SELECT id FROM c)' },
  { sql: 'SELECT * FROM a WHERE (id, x) IN (SELECT id, x FROM b)' },
  { sql: 'SELECT DISTINCT a.id FROM a JOIN b USING (id) JOIN c USING (id)' },
  { sql: 'SELECT * FROM { OJ a LEFT OUTER JOIN b ON a.id = b.id }' },
  { sql: 'SELECT * FROM parted PARTITION (p0) WHERE x > 0' },
  { sql: 'SELECT * FROM a AS `select` JOIN b AS `from` ON `select`.id = `from`.id', aliases: { select: 'a', from: 'b' } },
  { sql: 'SET STATEMENT max_statement_time = 10 FOR SELECT * FROM a', noExplain: true },
  { sql: 'SELECT * FROM a WHERE x > 1 LIMIT ROWS EXAMINED 100' },
  { sql: 'SELECT * FROM a WHERE a.id IN (SELECT b.id FROM b WHERE b.x IN (SELECT c.x FROM c))' },
  { sql: 'SELECT * FROM (SELECT * FROM (SELECT * FROM a) d1) d2' },
  { sql: "SELECT CONCAT(x, 'a'), IFNULL(x, 0), CAST(x AS DECIMAL(10, 2)), DATE_ADD('2020-01-01', INTERVAL x DAY) FROM a" },
  { sql: 'SELECT LASTVAL(s)', noExplain: true },
  { sql: 'ANALYZE SELECT * FROM a', noExplain: true },
  { sql: 'SELECT count(*) FROM a WHERE x BETWEEN 1 AND 3 ORDER BY 1 LIMIT 1 OFFSET 0' },
  { sql: 'SELECT * FROM a ORDER BY x FETCH FIRST 2 ROWS WITH TIES' },
  // writes
  { sql: 'INSERT INTO a VALUES (10, 10)' },
  { sql: 'INSERT INTO a (id, x) SELECT id, x FROM b' },
  { sql: 'INSERT INTO a SELECT * FROM a' },
  { sql: 'INSERT INTO a VALUES (1, 1) ON DUPLICATE KEY UPDATE x = VALUES(x) + 1' },
  { sql: 'INSERT INTO a SET id = 11, x = (SELECT sum(x) FROM b)' },
  { sql: 'INSERT INTO a VALUES (12, 12), (13, 13) RETURNING id, x AS y' },
  { sql: 'INSERT INTO a VALUES (NEXT VALUE FOR s, 1)', superset: true }, // the plan omits the sequence
  { sql: 'REPLACE INTO a VALUES (14, 14)' },
  { sql: 'REPLACE a SELECT id, x FROM c' },
  { sql: 'UPDATE a SET x = x + 1 WHERE id = 1' },
  { sql: 'UPDATE a JOIN b ON a.id = b.id SET a.x = b.x' },
  { sql: 'UPDATE a, b SET a.x = 1, b.x = 2 WHERE a.id = b.id' },
  { sql: 'UPDATE a SET x = (SELECT sum(x) FROM b) WHERE id IN (SELECT id FROM c)' },
  { sql: 'UPDATE a JOIN (SELECT id FROM c GROUP BY id) d ON a.id = d.id SET a.x = 0' },
  { sql: 'UPDATE `Orders` SET x = 1' },
  { sql: `UPDATE ${db2}.x2 SET x = 5` },
  { sql: 'DELETE FROM a WHERE id = 1' },
  { sql: 'DELETE a FROM a JOIN b ON a.id = b.id WHERE b.x = 2' },
  { sql: 'DELETE a, b FROM a JOIN b ON a.id = b.id JOIN c ON c.id = a.id WHERE c.x = 3' },
  { sql: 'DELETE FROM x USING a AS x JOIN b AS y ON x.id = y.id WHERE y.x = 2', aliases: { x: 'a', y: 'b' } },
  { sql: 'DELETE y FROM a AS x JOIN b AS y ON x.id = y.id WHERE x.x = 3', aliases: { x: 'a', y: 'b' } },
  { sql: 'DELETE FROM a WHERE id IN (SELECT id FROM b)' },
  { sql: 'DELETE FROM a ORDER BY id LIMIT 1' },
  { sql: 'DELETE FROM a WHERE id = 2 RETURNING id, x' },
  { sql: `DELETE ${db2}.x2 FROM ${db2}.x2 JOIN a ON a.id = x2.id` },
  { sql: 'SELECT NEXTVAL(s)', superset: true },
  { sql: 'ANALYZE UPDATE a SET x = 7 WHERE id = 3', noExplain: true },
  { sql: "SET STATEMENT sql_mode = '' FOR UPDATE a SET x = 9 WHERE id = 4", noExplain: true },
  { sql: 'SELECT fw() FROM a', noExplain: true }, // a stored function that writes `log`
  { sql: 'CALL pw()', noExplain: true },
  { sql: 'DO (SELECT count(*) FROM a)', noExplain: true },
  { sql: 'EXPLAIN UPDATE a SET x = 8', noExplain: true },
];

const key = (name: string): string => name;

test.before(async () => {
  conn = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', multipleStatements: true });
  await conn.query(`CREATE DATABASE ${db}; CREATE DATABASE ${db2}; USE ${db}`);
  const rows = '(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)';
  for (const t of ['a', 'b', 'c', 'd', 'e', 't', 'u', 'v', '`Orders`', 'orders', 'log']) {
    await conn.query(`CREATE TABLE ${t} (id INT, x INT, KEY ix (x)); INSERT INTO ${t} VALUES ${rows}`);
  }
  await conn.query(`CREATE TABLE nodes (id INT, x INT); INSERT INTO nodes VALUES (1, 0), (2, 1), (3, 2), (4, 1);
    CREATE TABLE ${db2}.x2 (id INT, x INT); INSERT INTO ${db2}.x2 VALUES ${rows};
    CREATE TABLE hist (id INT, x INT) WITH SYSTEM VERSIONING; INSERT INTO hist VALUES ${rows};
    CREATE TABLE parted (id INT, x INT) PARTITION BY HASH (id) PARTITIONS 2; INSERT INTO parted VALUES ${rows};
    CREATE SEQUENCE s;`);
  await conn.query('CREATE FUNCTION fw() RETURNS INT MODIFIES SQL DATA BEGIN INSERT INTO log VALUES (9, 9); RETURN 1; END');
  await conn.query('CREATE PROCEDURE pw() MODIFIES SQL DATA UPDATE e SET x = x + 1');
});

test.after(async () => {
  await conn.query(`DROP DATABASE IF EXISTS ${db}; DROP DATABASE IF EXISTS ${db2}`);
  await conn.end();
});

/** Table names in an EXPLAIN FORMAT=JSON plan, without derived tables and subquery materializations. */
function plannedTables(plan: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(plan)) plan.forEach((p) => plannedTables(p, into));
  else if (plan !== null && typeof plan === 'object') {
    for (const [k, v] of Object.entries(plan)) {
      if (k === 'table_name' && typeof v === 'string' && !v.startsWith('<')) into.add(v);
      plannedTables(v, into);
    }
  }
  return into;
}

const reported = (a: MysqlStatementAnalysis): Set<string> =>
  new Set([...a.tablesRead, ...a.tablesWritten].map((t) => key(t.name)));

for (const c of corpus) {
  test(`understood: ${c.sql.slice(0, 90)}`, async () => {
    const a = analyzeMysql(c.sql);
    assert.is.not(a.kind, 'unknown', `${c.sql}: ${a.reasonDetail}`);
    if (c.noExplain) return;
    const [rows] = await conn.query<mysql.RowDataPacket[]>(`EXPLAIN FORMAT=JSON ${c.sql}`);
    const planned = plannedTables(JSON.parse(Object.values(rows[0]!)[0] as string));
    for (const name of c.notTables ?? []) planned.delete(name);
    for (const [alias, table] of Object.entries(c.aliases ?? {})) {
      if (planned.delete(alias)) planned.add(table);
    }
    const mine = reported(a);
    for (const name of planned) assert.ok(mine.has(name), `${c.sql}: the plan reads ${name}, the analysis says ${[...mine]}`);
    // the plan of INSERT ... SELECT shows the source tables only
    if (/^\s*(INSERT|REPLACE)/i.test(c.sql)) a.tablesWritten.forEach((t) => planned.add(t.name));
    if (!c.superset) assert.equal([...mine].sort(), [...planned].sort(), `${c.sql}: reported vs planned`);
  });
}

test('reads run in a READ ONLY transaction; writes fail there with 1792', async () => {
  for (const c of corpus) {
    const a = analyzeMysql(c.sql);
    // locking reads take row locks, which MariaDB refuses in a read-only transaction, yet change no data
    const mustRun = a.kind === 'read' && a.routines.length === 0 && a.reasonNotCacheable !== 'locking-clause';
    const mustFail = a.kind === 'write';
    if (!mustRun && !mustFail) continue;
    await conn.query('START TRANSACTION READ ONLY');
    let errno: number | undefined;
    try {
      await conn.query(c.sql);
    } catch (err) {
      errno = (err as { errno?: number }).errno;
    } finally {
      await conn.query('ROLLBACK');
    }
    if (mustRun) assert.is(errno, undefined, `${c.sql} is called a read, MariaDB refused it in a READ ONLY transaction`);
    else assert.is(errno, ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION, `${c.sql} is called a write, yet ran in a READ ONLY transaction`);
  }
});

test('a statement changes only the tables it is said to write', async () => {
  const [cols] = await conn.query<mysql.RowDataPacket[]>(
    `SELECT TABLE_SCHEMA s, TABLE_NAME t, GROUP_CONCAT(CONCAT('\`', COLUMN_NAME, '\`') ORDER BY ORDINAL_POSITION) c
       FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN (?, ?) GROUP BY TABLE_SCHEMA, TABLE_NAME`, [db, db2]);
  const fingerprints = async (): Promise<Map<string, string>> => {
    const parts = cols.map((r) => `SELECT '${r.t}' t, COUNT(*) n, COALESCE(SUM(CRC32(CONCAT_WS('|', ${r.c}))), 0) h FROM \`${r.s}\`.\`${r.t}\``);
    const [rows] = await conn.query<mysql.RowDataPacket[]>(parts.join(' UNION ALL '));
    return new Map(rows.map((r) => [r.t as string, `${r.n}/${r.h}`]));
  };
  let changedSomething = 0;
  for (const c of corpus) {
    const a = analyzeMysql(c.sql);
    await conn.query('START TRANSACTION');
    try {
      const before = await fingerprints();
      await conn.query(c.sql);
      const after = await fingerprints();
      const changed = [...before.keys()].filter((t) => before.get(t) !== after.get(t));
      if (changed.length > 0) changedSomething++;
      const written = new Set(a.tablesWritten.map((t) => t.name));
      for (const t of changed) {
        assert.ok(written.has(t) || a.writesUnlisted, `${c.sql} changed ${t}; the analysis says it writes ${[...written]}`);
      }
      if (a.kind === 'read' && !a.writesUnlisted) assert.equal(changed, [], `${c.sql} is called a read`);
    } finally {
      await conn.query('ROLLBACK');
    }
  }
  assert.ok(changedSomething >= 20, `the corpus exercises writes (${changedSomething})`);
});

test('executable comments run exactly when the server runs them (given its version)', async () => {
  const [[row]] = await conn.query<mysql.RowDataPacket[]>('SELECT VERSION() AS v');
  const dialect = serverDialect(row!.v as string);
  assert.ok(dialect.mariadb && dialect.serverVersion! > 100000, row!.v);
  const versions = ['', '00000', '40101', '50000', '50699', '50700', '80036', '99999', '100000', String(dialect.serverVersion),
    String(dialect.serverVersion! + 1), '999999', '9999999'];
  for (const version of versions) {
    for (const mariadbOnly of ['', 'M']) {
      const sql = `SELECT 1 /*${mariadbOnly}!${version} + 1 */ AS r`;
      const [rows] = await conn.query<mysql.RowDataPacket[]>(sql);
      const tokens = tokenize(sql, dialect);
      let numbers = 0;
      for (let i = 0; i < tokens.count; i++) if (tokens.type(i) === Tok.Number) numbers++;
      assert.is(numbers === 2, Number(rows[0]!.r) === 2, `${sql}: server answered ${rows[0]!.r}`);
    }
  }
  // a running comment is code to the end; comments and quoted */ inside it do not end it
  for (const sql of ["SELECT 1 /*!50000 + LENGTH('*/') */ AS r", 'SELECT 1 /*!50000 + 1 /* c */ + 1 */ AS r', 'SELECT 1 /*!50000 + 1 -- c\n + 1 */ AS r']) {
    const [rows] = await conn.query<mysql.RowDataPacket[]>(sql);
    assert.is(Number(rows[0]!.r), 3, sql);
    assert.is(analyzeMysql(sql, dialect).cacheable, true, sql);
  }
});

test('ANALYZE runs the statement; EXPLAIN does not', async () => {
  assert.is(analyzeMysql('ANALYZE UPDATE a SET x = 7 WHERE id = 3').kind, 'write');
  assert.is(analyzeMysql('EXPLAIN UPDATE a SET x = 8').kind, 'other');
  await conn.query('START TRANSACTION');
  try {
    await conn.query('ANALYZE UPDATE a SET x = 70 WHERE id = 3');
    await conn.query('EXPLAIN UPDATE a SET x = 80 WHERE id = 4');
    const [rows] = await conn.query<mysql.RowDataPacket[]>('SELECT id, x FROM a WHERE id IN (3, 4) ORDER BY id');
    assert.equal(rows.map((r) => r.x), [70, 4]);
  } finally {
    await conn.query('ROLLBACK');
  }
});

test.run();
