// The MySQL probe against the real MariaDB: what it says about table types, temporary tables,
// stored functions and the tables whose writes fan out decides what may be cached and which
// writes invalidate wide, so each answer is checked on a real catalog.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mysql from 'mysql2/promise';
import { connectMySql, DIRECT_MYSQL, uniqueName } from '../e2e/support/mysql-direct.js';
import { analyzeMysql } from './mysql-analysis.js';
import { buildMySqlProbeSql, MYSQL_KEYED_VARIABLES, mySqlCheckVerdict, MySqlProbeError, mysqlProbeFailureIsPassing, readMySqlProbeRow, type MySqlProbeResult } from './mysql-probe.js';

const db = uniqueName('sc_myprobe');
const other = `${db}_other`;
let c: mysql.Connection;

/** The probe's row as the relay sees it: text values, NULL as null. */
async function probeRow(sql: string, withFanOut = true): Promise<(string | null)[]> {
  const [rows] = await c.query({ sql: buildMySqlProbeSql(analyzeMysql(sql), true, withFanOut), rowsAsArray: true });
  const list = rows as unknown[][];
  assert.is(list.length, 1);
  return list[0]!.map((v) => (v === null ? null : Buffer.isBuffer(v) ? v.toString('utf8') : String(v)));
}

async function probe(sql: string): Promise<MySqlProbeResult> {
  return readMySqlProbeRow(await probeRow(sql), analyzeMysql(sql));
}

/** Why the probe forbids caching `sql` (a read the text allows), or null. */
async function verdict(sql: string): Promise<string | null> {
  const analysis = analyzeMysql(sql);
  assert.ok(analysis.cacheable, `the text of ${sql} allows caching`);
  return mySqlCheckVerdict(analysis, (await probe(sql)).checks);
}

test.before(async () => {
  const setup = await connectMySql(DIRECT_MYSQL.port);
  try {
    await setup.query(`CREATE DATABASE \`${db}\``);
    await setup.query(`CREATE DATABASE \`${other}\``);
  } finally {
    await setup.end();
  }
  c = await connectMySql(DIRECT_MYSQL.port, { database: db, multipleStatements: true });
  await c.query(`
    CREATE TABLE plain (id int PRIMARY KEY, v int);
    CREATE TABLE \`we'ird "name\` (id int);
    CREATE VIEW plain_view AS SELECT * FROM plain;
    CREATE TABLE parent (id int PRIMARY KEY) ENGINE=InnoDB;
    CREATE TABLE child (id int PRIMARY KEY, parent_id int, FOREIGN KEY (parent_id) REFERENCES parent(id) ON DELETE CASCADE) ENGINE=InnoDB;
    CREATE TABLE strict_parent (id int PRIMARY KEY) ENGINE=InnoDB;
    CREATE TABLE strict_child (id int, parent_id int, FOREIGN KEY (parent_id) REFERENCES strict_parent(id)) ENGINE=InnoDB;
    CREATE TABLE audited (id int);
    CREATE TABLE audit_log (id int);
    CREATE TRIGGER audited_insert AFTER INSERT ON audited FOR EACH ROW INSERT INTO audit_log VALUES (NEW.id);
    CREATE TABLE versioned (id int) WITH SYSTEM VERSIONING;
    CREATE SEQUENCE seq;
    CREATE FUNCTION pure_double(x int) RETURNS int DETERMINISTIC NO SQL RETURN x * 2;
    CREATE FUNCTION contains_sql(x int) RETURNS int DETERMINISTIC CONTAINS SQL RETURN x + 1;
    CREATE FUNCTION reads_plain() RETURNS int DETERMINISTIC READS SQL DATA RETURN (SELECT count(*) FROM plain);
    CREATE FUNCTION not_deterministic(x int) RETURNS int NOT DETERMINISTIC NO SQL RETURN x;
    CREATE TABLE \`${other}\`.elsewhere (id int);
    CREATE TEMPORARY TABLE temp_only (id int);
  `);
});

test.after(async () => {
  await c?.end();
  const cleanup = await connectMySql(DIRECT_MYSQL.port);
  try {
    await cleanup.query(`DROP DATABASE IF EXISTS \`${db}\``);
    await cleanup.query(`DROP DATABASE IF EXISTS \`${other}\``);
  } finally {
    await cleanup.end();
  }
});

test('plain tables (and system-versioned ones) may be cached; views, sequences, temporary and missing tables not', async () => {
  assert.is(await verdict('SELECT * FROM plain'), null);
  assert.is(await verdict('SELECT * FROM versioned'), null);
  assert.is(await verdict('SELECT * FROM `we\'ird "name`'), null);
  assert.is(await verdict(`SELECT * FROM \`${other}\`.elsewhere JOIN plain ON true`), null);
  assert.is(await verdict('SELECT * FROM plain_view'), 'view');
  assert.is(await verdict('SELECT * FROM seq'), 'table-type');
  assert.is(await verdict('SELECT * FROM temp_only'), 'unknown-table');
  assert.is(await verdict('SELECT * FROM no_such_table'), 'unknown-table');
  assert.is(await verdict(`SELECT * FROM \`${other}\`.plain`), 'unknown-table');
});

test('each table read gets its TABLE_TYPE, in the statement order', async () => {
  const result = await probe(`SELECT * FROM plain JOIN plain_view ON true JOIN \`${other}\`.elsewhere ON true JOIN temp_only ON true`);
  assert.equal(result.checks, ['BASE TABLE', 'VIEW', 'BASE TABLE', null]);
  assert.is(result.database, db);
});

test('stored functions: only deterministic ones that read no data may be cached', async () => {
  assert.is(await verdict('SELECT pure_double(v) FROM plain'), null);
  assert.is(await verdict('SELECT contains_sql(v) FROM plain'), null);
  assert.is(await verdict('SELECT reads_plain()'), 'user-function');
  assert.is(await verdict('SELECT not_deterministic(1)'), 'user-function');
  assert.is(await verdict('SELECT no_such_function(1)'), 'user-function');
  const result = await probe('SELECT pure_double(v), reads_plain() FROM plain');
  assert.equal(result.checks, ['BASE TABLE', 'YES:NO SQL', 'YES:READS SQL DATA']);
});

test('fan-out: tables with triggers, views and parents of cascading foreign keys; not those of restricting ones', async () => {
  const { fanOut } = await probe('SELECT 1');
  assert.ok(fanOut !== null);
  assert.equal([...fanOut].sort(), ['audited', 'parent', 'plain_view']);
});

test('a probe without the fan-out reads the same context and checks, and an unknown fan-out', async () => {
  const sql = 'SELECT * FROM plain JOIN audited USING (id)';
  const analysis = analyzeMysql(sql);
  const without = readMySqlProbeRow(await probeRow(sql, false), analysis);
  const full = await probe(sql);
  assert.is(without.fanOut, null);
  assert.ok(full.fanOut !== null);
  assert.equal({ ...without, fanOut: null }, { ...full, fanOut: null });
});

test('the fan-out never opens information_schema\'s own tables (MariaDB 10.11 crashed doing so under load)', async () => {
  // Looking for cascading foreign keys whose parent is in this database scans every database,
  // information_schema included (and a session whose database is information_schema scans it for
  // triggers and views too): each of its tables was opened as a nested schema table, with a
  // temporary table each, and a failure there crashed MariaDB 10.11.19 (SIGSEGV in
  // Create_tmp_table::cleanup_on_failure, seen three times on the shared server and on private ones).
  const [[{ n: schemaTables }]] = await c.query<mysql.RowDataPacket[]>(
    "SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'information_schema'") as unknown as [[{ n: number }]];
  for (const database of [db, 'information_schema']) {
    const session = await connectMySql(DIRECT_MYSQL.port, { database });
    try {
      const created = async (): Promise<number> => {
        const [rows] = await session.query<mysql.RowDataPacket[]>("SHOW SESSION STATUS LIKE 'Created_tmp_tables'");
        return Number(rows[0]!.Value);
      };
      const before = await created();
      const [rows] = await session.query({ sql: buildMySqlProbeSql(analyzeMysql('SELECT v FROM plain WHERE id = 1'), true), rowsAsArray: true });
      const made = (await created()) - before;
      assert.ok(made < schemaTables, `with ${database} current, the probe created ${made} temporary tables; information_schema has ${schemaTables} tables`);
      if (database === 'information_schema') assert.is((rows as unknown[][])[0]![5], '0:', 'information_schema fans out nowhere');
    } finally {
      await session.end();
    }
  }
});

test('the tables written are looked up after the reads and functions', async () => {
  const sql = 'INSERT INTO audited SELECT pure_double(id) FROM plain';
  const analysis = analyzeMysql(sql);
  assert.equal(analysis.tablesWritten.map((t) => t.name), ['audited']);
  const result = await probe(sql);
  assert.equal(result.checks, ['BASE TABLE', 'YES:NO SQL', 'BASE TABLE']);
});

test('the context: a keyed variable changes it, an unkeyed one does not; sql_mode is read', async () => {
  const before = await probe('SELECT * FROM plain');
  await c.query("SET SESSION sql_mode = 'ANSI_QUOTES,STRICT_TRANS_TABLES'");
  const ansi = await probe('SELECT * FROM plain');
  assert.is(ansi.sqlMode, 'ANSI_QUOTES,STRICT_TRANS_TABLES');
  assert.is.not(ansi.contextText, before.contextText);
  await c.query("SET SESSION time_zone = '+03:00'");
  const zoned = await probe('SELECT * FROM plain');
  assert.is.not(zoned.contextText, ansi.contextText);
  assert.ok(MYSQL_KEYED_VARIABLES.has('time_zone'));
  await c.query('SET SESSION net_read_timeout = 45');
  assert.not.ok(MYSQL_KEYED_VARIABLES.has('net_read_timeout'));
  assert.is((await probe('SELECT * FROM plain')).contextText, zoned.contextText);
  await c.query(`USE \`${other}\``);
  const moved = await probe('SELECT * FROM elsewhere');
  assert.is(moved.database, other);
  assert.is.not(moved.contextText, zoned.contextText);
  await c.query(`USE \`${db}\``);
});

test('a MySQL-only keyed variable is not asked of MariaDB, nor a MariaDB-only one of MySQL', () => {
  const analysis = analyzeMysql('SELECT 1');
  assert.match(buildMySqlProbeSql(analysis, true), /system_versioning_asof/);
  assert.not.match(buildMySqlProbeSql(analysis, true), /block_encryption_mode/);
  assert.match(buildMySqlProbeSql(analysis, false), /block_encryption_mode/);
  assert.not.match(buildMySqlProbeSql(analysis, false), /system_versioning_asof/);
});

test('a row of the wrong shape is refused; a truncated fan-out list reads as unknown', async () => {
  const analysis = analyzeMysql('SELECT * FROM plain');
  const row = await probeRow('SELECT * FROM plain');
  assert.is(row.length, 7);
  assert.throws(() => readMySqlProbeRow(row.slice(0, 6), analysis), (err: unknown) => err instanceof MySqlProbeError && /6 columns, expected 7/.test(err.message));
  const hex = (s: string): string => Buffer.from(s).toString('hex').toUpperCase();
  assert.equal(readMySqlProbeRow(row.map((v, i) => (i === 5 ? `2:${hex('a')},${hex('b')}` : v)), analysis).fanOut, new Set(['a', 'b']));
  assert.is(readMySqlProbeRow(row.map((v, i) => (i === 5 ? `3:${hex('a')},${hex('b')}` : v)), analysis).fanOut, null);
  assert.equal(readMySqlProbeRow(row.map((v, i) => (i === 5 ? '0:' : v)), analysis).fanOut, new Set());
  assert.is(readMySqlProbeRow(row.map((v, i) => (i === 5 ? null : v)), analysis).fanOut, null);
});

/** Probes sent under a 1 µs max_statement_time until one is interrupted. */
const PROBE_TRIES = 20;

test('a probe failing for a passing reason is tried again later; one that cannot work is not', async () => {
  // Interrupted, timed out, a lock, out of memory or disk: says nothing of the session.
  for (const code of [1317, 1969, 3024, 1205, 1213, 1037, 1041, 1021, 1114]) assert.ok(mysqlProbeFailureIsPassing(code), `${code} passes`);
  // No such table or column, a privilege, a syntax error, the server going away: retrying changes nothing.
  for (const code of [1146, 1054, 1142, 1044, 1064, 1053, 0]) assert.not.ok(mysqlProbeFailureIsPassing(code), `${code} does not pass`);
  // What MariaDB answers the probe under a session's max_statement_time (a pooled connection's).
  const timed = await connectMySql(DIRECT_MYSQL.port, { database: db });
  try {
    await timed.query('SET SESSION max_statement_time = 0.000001');
    // The server's timer may fire only after a quick probe ended (seen under load): a few tries.
    let err: { errno?: number } | null = null;
    for (let i = 0; i < PROBE_TRIES && err === null; i++) {
      err = await timed.query(buildMySqlProbeSql(analyzeMysql('SELECT * FROM plain'), true)).then(() => null, (e: { errno?: number }) => e);
    }
    assert.ok(err !== null, `the probe is interrupted (in ${PROBE_TRIES} tries)`);
    assert.is(err.errno, 1969);
    assert.ok(mysqlProbeFailureIsPassing(err.errno!));
  } finally {
    await timed.end();
  }
});

test.run();
