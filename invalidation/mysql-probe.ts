// The MySQL probe: one small query the proxy sends on a client's own upstream connection (its reply
// is swallowed) to learn what the analysis of a text cannot know: who the session is (database,
// users, role and the variables that change results or their bytes), which tables of the current
// database fan their writes out to others (triggers, views, cascading foreign keys), what each
// table named is (TABLE_TYPE) and whether each stored function called is deterministic and reads
// no data. It runs in the client's own session, so it sees what the client's statement will see.
// Pure: SQL text out, a row of text values in, a verdict from them; proxy/mysql/mysql-cache.ts
// keeps what it learns per context. The PostgreSQL counterpart is pg-probe.ts.
import type { MysqlQualifiedName, MysqlStatementAnalysis } from './mysql-analysis.js';

/**
 * Session variables that change a result or its bytes, read by the probe into the context.
 * Setting any other variable that may change results makes the session private.
 */
const KEYED_VARIABLES = [
  'character_set_client', 'character_set_connection', 'character_set_results', 'collation_connection',
  'character_set_database', 'collation_database', 'time_zone', 'sql_mode', 'div_precision_increment',
  'lc_time_names', 'group_concat_max_len', 'default_week_format', 'sql_select_limit', 'max_sort_length',
  'sql_auto_is_null',
] as const;
/** Each server has some of its own; the other would fail the probe on them. */
const KEYED_MARIADB_VARIABLES = ['system_versioning_asof'] as const;
const KEYED_MYSQL_VARIABLES = ['block_encryption_mode'] as const;
/** Every variable the probe reads on either server: a SET of one of these makes the context stale, not private. */
export const MYSQL_KEYED_VARIABLES: ReadonlySet<string> = new Set<string>([...KEYED_VARIABLES, ...KEYED_MARIADB_VARIABLES, ...KEYED_MYSQL_VARIABLES]);
/** Schemas of the server's own, not of files: no trigger, view or foreign key lives there. */
const VIRTUAL_SCHEMAS = "'information_schema', 'performance_schema'";
/** Table types whose rows change only through writes the proxy sees (views are resolved later, not cached). */
const CACHEABLE_TABLE_TYPES: ReadonlySet<string> = new Set(['BASE TABLE', 'SYSTEM VERSIONED']);

/** The probe's row: DATABASE(), CURRENT_USER(), USER(), CURRENT_ROLE(), the keyed variables, fan-out, then the checks. */
const SETTINGS_COLUMN = 4;
const FAN_OUT_COLUMN = 5;
const FIRST_CHECK_COLUMN = 6;

/** The probe's row, read. */
export interface MySqlProbeResult {
  readonly database: string | null;
  /** The identity and settings part of the context key. */
  readonly contextText: string;
  readonly sqlMode: string;
  /** Tables of the current database whose writes reach other tables (triggers, cascading foreign keys); null = unknown. */
  readonly fanOut: ReadonlySet<string> | null;
  /**
   * Per statement check, in the statement's order: each table read's TABLE_TYPE, each stored
   * function's `IS_DETERMINISTIC:SQL_DATA_ACCESS`, each table written's TABLE_TYPE; null where the
   * catalog has none (a temporary table, a missing one, a built-in function).
   */
  readonly checks: readonly (string | null)[];
}

/** The probe's row does not have the shape its SQL asked for. */
export class MySqlProbeError extends Error {
  override name = 'MySqlProbeError';
}

/**
 * The session's context as the probe's first columns read it: DATABASE(), CURRENT_USER(), USER(),
 * CURRENT_ROLE() and the keyed variables. The identity check ends with them too, so a session
 * that adopted an earlier session's context at login sees whether its own still is that one.
 */
export function mySqlContextColumns(mariadb: boolean): string[] {
  const variables = [...KEYED_VARIABLES, ...(mariadb ? KEYED_MARIADB_VARIABLES : KEYED_MYSQL_VARIABLES)];
  return [
    'DATABASE()', 'CURRENT_USER()', 'USER()', 'CURRENT_ROLE()',
    // CONCAT_WS skips NULLs (character_set_results may be NULL): mark them so positions hold.
    `CONCAT_WS(X'00', ${variables.map((v) => `IFNULL(@@SESSION.${v}, X'01')`).join(', ')})`,
  ];
}

/** The context text of mySqlContextColumns' values (MySqlProbeResult.contextText). */
export function mySqlContextText(values: readonly (string | null)[]): string {
  return values.map((v) => v ?? '\u0001').join('\u0000');
}

/**
 * The probe for a statement: one row of the session's context (database, users, role, keyed
 * variables), the current database's fan-out tables, then one column per table read (its
 * TABLE_TYPE), per stored function called (determinism and data access) and per table written
 * (its TABLE_TYPE). Names travel as hex literals so neither sql_mode nor the character set can
 * change how they read. `withFanOut` false leaves the fan-out out (NULL, read as unknown): the
 * caller knows it already for this catalog generation, and its search opens every table of every
 * database on the server (see below), which a server with many schemas pays at each probe.
 */
export function buildMySqlProbeSql(analysis: MysqlStatementAnalysis, mariadb: boolean, withFanOut = true): string {
  const columns = [...mySqlContextColumns(mariadb), withFanOut ? fanOutColumn(mariadb) : 'NULL'];
  for (const t of analysis.tablesRead) columns.push(tableTypeColumn(t));
  for (const r of analysis.routines) {
    columns.push(`(SELECT CONCAT(IS_DETERMINISTIC, ':', SQL_DATA_ACCESS) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${schemaOf(r)} AND ROUTINE_NAME = ${literal(r.name)} AND ROUTINE_TYPE = 'FUNCTION' LIMIT 1)`);
  }
  for (const t of analysis.tablesWritten) columns.push(tableTypeColumn(t));
  return `SELECT ${columns.join(', ')}`;
}

/**
 * The fan-out column: the tables of the current database whose writes reach other tables
 * (triggers, cascading foreign keys, updatable views), invalidated wide, as `count:hex,hex`; the
 * count tells a truncated list. NULL (unknown) unless this login sees the whole database's
 * catalog: see fanOutVisible. information_schema and performance_schema hold no trigger, view or
 * foreign key, and scanning them opens each of their tables as a nested schema table (see below).
 */
function fanOutColumn(mariadb: boolean): string {
  return `IF(DATABASE() IN (${VIRTUAL_SCHEMAS}), '0:', IF(${fanOutVisible(mariadb)}, (SELECT CONCAT(COUNT(DISTINCT t), ':', IFNULL(GROUP_CONCAT(DISTINCT HEX(t)), '')) FROM (`
    + 'SELECT EVENT_OBJECT_TABLE AS t FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = DATABASE() UNION '
    + 'SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE() UNION '
    // The child of such a key may be in any database, so this scans them all (only the child's
    // schema is a lookup key). The two virtual schemas hold no foreign key, and the condition on
    // CONSTRAINT_SCHEMA is checked before a table is opened: without it MariaDB opened each of
    // information_schema's own ~80 tables as a nested schema table, a temporary table each, and
    // MariaDB 10.11.19 crashed (SIGSEGV) when one of those failed under load.
    + `SELECT REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE UNIQUE_CONSTRAINT_SCHEMA = DATABASE() AND CONSTRAINT_SCHEMA NOT IN (${VIRTUAL_SCHEMAS}) AND (DELETE_RULE NOT IN ('RESTRICT', 'NO ACTION') OR UPDATE_RULE NOT IN ('RESTRICT', 'NO ACTION'))`
    + ') f), NULL))';
}

/**
 * Server errors a probe (or the identity check) may meet that say nothing about whether it can
 * work in this session: it was interrupted, timed out, waited on a lock, or the server ran short
 * of memory or disk. Such a failure is tried again later; any other means the probe cannot work.
 */
const PASSING_ERRORS: ReadonlySet<number> = new Set([
  1317, // ER_QUERY_INTERRUPTED: KILL QUERY, a client's cancel
  1969, // ER_STATEMENT_TIMEOUT (MariaDB): max_statement_time exceeded
  3024, // ER_QUERY_TIMEOUT (MySQL): max_execution_time exceeded
  1205, // ER_LOCK_WAIT_TIMEOUT
  1213, // ER_LOCK_DEADLOCK
  1037, // ER_OUTOFMEMORY
  1038, // ER_OUT_OF_SORTMEMORY
  1041, // ER_OUT_OF_RESOURCES
  1028, // ER_FILSORT_ABORT: sort aborted (killed, or out of memory or disk)
  1004, // ER_CANT_CREATE_FILE: an internal temporary table's file
  1021, // ER_DISK_FULL
  1026, // ER_ERROR_ON_WRITE
  1114, // ER_RECORD_FILE_FULL: an internal temporary table is full (tmp_table_size, disk)
]);

/** Does a probe that failed with server error `code` (an ERR packet's error number) try again later? */
export function mysqlProbeFailureIsPassing(code: number): boolean {
  return PASSING_ERRORS.has(code);
}

/** Reads the probe's row for `analysis` (text protocol values, NULL as null). */
export function readMySqlProbeRow(row: readonly (string | null)[], analysis: MysqlStatementAnalysis): MySqlProbeResult {
  const { tablesRead, routines, tablesWritten } = analysis;
  const expected = FIRST_CHECK_COLUMN + tablesRead.length + routines.length + tablesWritten.length;
  if (row.length !== expected) throw new MySqlProbeError(`probe returned ${row.length} columns, expected ${expected}`);
  const settings = row[SETTINGS_COLUMN] ?? '';
  const sqlMode = settings.split('\u0000')[KEYED_VARIABLES.indexOf('sql_mode')] ?? '';
  return {
    database: row[0] ?? null,
    contextText: mySqlContextText(row.slice(0, SETTINGS_COLUMN + 1)),
    sqlMode,
    fanOut: readFanOut(row[FAN_OUT_COLUMN] ?? null),
    checks: row.slice(FIRST_CHECK_COLUMN),
  };
}

/**
 * Why the catalog forbids caching a statement the text allows, from its checks (as in
 * MySqlProbeResult.checks; those of the tables written may be absent): the first table read that
 * is unknown (temporary or missing) or not a plain table, then the first stored function that is
 * not deterministic or reads data. Null: cacheable.
 */
/** Why the catalog makes a read not cacheable (bypass reasons of the same names). */
export type MySqlCatalogVerdict = 'unknown-table' | 'view' | 'table-type' | 'user-function';

export function mySqlCheckVerdict(analysis: MysqlStatementAnalysis, checks: readonly (string | null)[]): MySqlCatalogVerdict | null {
  for (let i = 0; i < analysis.tablesRead.length; i++) {
    const type = checks[i] ?? null;
    if (type === null) return 'unknown-table';
    if (!CACHEABLE_TABLE_TYPES.has(type)) return type === 'VIEW' ? 'view' : 'table-type';
  }
  for (let i = 0; i < analysis.routines.length; i++) {
    const flags = checks[analysis.tablesRead.length + i] ?? null;
    if (flags !== 'YES:NO SQL' && flags !== 'YES:CONTAINS SQL') return 'user-function';
  }
  return null;
}

/**
 * Does this login see every trigger, cascading foreign key and view of the current database?
 * information_schema shows a foreign key only to a login with a privilege on its child table, and
 * MySQL shows a trigger only to TRIGGER holders: a login granted table by table would learn a
 * fan-out with holes, and a write through it would leave another login's cached reads stale. Only
 * a global or database-wide SELECT (plus TRIGGER on MySQL) granted to the login itself counts;
 * privileges through roles are not looked at (unknown: writes are invalidated wide).
 */
function fanOutVisible(mariadb: boolean): string {
  const grantee = "CONCAT(CHAR(39), SUBSTRING_INDEX(CURRENT_USER(), '@', 1), CHAR(39, 64, 39), SUBSTRING_INDEX(CURRENT_USER(), '@', -1), CHAR(39))";
  const needed = mariadb ? ['SELECT'] : ['SELECT', 'TRIGGER'];
  return needed.map((privilege) => `EXISTS (SELECT 1 FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ${grantee} AND PRIVILEGE_TYPE = '${privilege}' `
    + `UNION ALL SELECT 1 FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = ${grantee} AND TABLE_SCHEMA = DATABASE() AND PRIVILEGE_TYPE = '${privilege}')`).join(' AND ');
}

function readFanOut(value: string | null): ReadonlySet<string> | null {
  if (value === null) return null;
  const colon = value.indexOf(':');
  const count = Number(value.slice(0, colon));
  const list = value.slice(colon + 1);
  const names = list === '' ? [] : list.split(',').map((hex) => Buffer.from(hex, 'hex').toString('utf8'));
  // GROUP_CONCAT stops at group_concat_max_len: a short list means names are missing.
  return names.length === count ? new Set(names) : null;
}

function literal(name: string): string {
  return `CONVERT(X'${Buffer.from(name, 'utf8').toString('hex')}' USING utf8mb4)`;
}

function tableTypeColumn(t: MysqlQualifiedName): string {
  return `(SELECT TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${schemaOf(t)} AND TABLE_NAME = ${literal(t.name)})`;
}

function schemaOf(name: MysqlQualifiedName): string {
  return name.database === null ? 'DATABASE()' : literal(name.database);
}
