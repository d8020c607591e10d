// What one MySQL/MariaDB statement text does: its kind, whether its result may be cached, the
// tables it reads and writes, the functions it calls and the session state it changes. The same
// facts as pg-analysis.ts gives for PostgreSQL, so the cache treats both protocols alike. Pure:
// text in, frozen analysis out; cache the results per text (mysql-classifier.ts).
//
// A hand-written analyzer over MySQL's lexical rules (mysql-lexer.ts) rather than a general SQL
// parser: node-sql-parser 5.4 rejects index hints, LOCK IN SHARE MODE, STRAIGHT_JOIN, DELETE ...
// USING, SET NAMES and XA, reports CTE names as tables and multi-table DELETE targets wrongly, and
// takes 0.3-1.7 ms per statement. This one walks the statement only as deep as tables, functions,
// variables and clauses need, and calls anything it does not follow 'unknown' (never "no tables").

import { widestKind, type CommonNotCacheableReason, type CommonTransactionAction, type StatementKind } from './statement-facts.js';
import { MysqlLexError, tokenize, type MysqlDialect } from './mysql-lexer.js';
import { frozenList, NameList } from './mysql-cursor.js';
import { analyzeStatement, ANY_CHANGES } from './mysql-statement.js';
import { statementEnd } from './mysql-split.js';

export type { StatementKind, MysqlDialect };

/** Flags of the session and server that change how a text is read. */
export interface MysqlAnalysisOptions extends MysqlDialect {
  /** lower_case_table_names 1 or 2: database and table names compare in lower case; report them so. */
  readonly lowerCaseTableNames?: boolean;
}

/**
 * A table or function name as written (backticks removed). database is null when the text left it
 * to the session's current database. Table and database names keep their case (they are
 * case-sensitive on Linux) unless lowerCaseTableNames is set; function names are lower case.
 */
export interface MysqlQualifiedName {
  readonly database: string | null;
  readonly name: string;
}

/**
 * A change to session state:
 * - variable: a system variable (setting = its lower-case name; global = SET GLOBAL/PERSIST, which
 *   leaves the current session's value alone);
 * - user-variable: @name was assigned (SET @x, SELECT @x := ..., SELECT ... INTO @x);
 * - database: USE (setting = the database);
 * - role: SET ROLE (setting = the role, null for NONE/DEFAULT);
 * - temporary-table: CREATE/DROP TEMPORARY TABLE (setting = the table): this session's name now
 *   resolves to a table only it sees;
 * - any: not known what changed (CALL, EXECUTE, compound statements, text not understood).
 * affectsResults is false only for changes known to alter no query result (timeouts, logging,
 * autocommit, user variables, whose readers are never cached).
 */
export interface MysqlSessionChange {
  readonly action: 'variable' | 'user-variable' | 'database' | 'role' | 'temporary-table' | 'any';
  readonly setting: string | null;
  readonly global: boolean;
  readonly affectsResults: boolean;
}

/**
 * CommonNotCacheableReason as MySQL meets them (explain: EXPLAIN / ANALYZE / DESCRIBE /
 * PROCEDURE ANALYSE; select-into: SELECT ... INTO @var / OUTFILE / DUMPFILE; locking-clause: FOR
 * UPDATE, FOR SHARE, LOCK IN SHARE MODE; time-dependent: NOW(), CURRENT_TIMESTAMP,
 * UNIX_TIMESTAMP(), ...; unstable-function: RAND(), UUID(), LAST_INSERT_ID(), GET_LOCK(),
 * SQL_CALC_FOUND_ROWS, ...; system-catalog: information_schema, mysql, performance_schema, sys),
 * and its own.
 */
export type MysqlNotCacheableReason =
  | CommonNotCacheableReason
  | 'variable';          // reads or assigns @user or @@system variables

export type MysqlTransactionAction =
  | CommonTransactionAction
  | 'xa_start' | 'xa_end' | 'xa_prepare' | 'xa_commit' | 'xa_rollback' | 'xa_recover';

export interface MysqlStatementFacts {
  readonly kind: StatementKind;
  /**
   * True when the text allows caching its result. The caller must still check `routines` in
   * information_schema.ROUTINES, the current database (not a system database, no temporary table
   * of this session under a read name) and the run-time conditions (no transaction, complete result).
   */
  readonly cacheable: boolean;
  readonly reasonNotCacheable?: MysqlNotCacheableReason;
  /** What triggered the reason: the function, the clause, what was not understood, ... */
  readonly reasonDetail?: string;
  /** Tables and views read (CTE names excluded), in order of appearance, without duplicates. */
  readonly tablesRead: readonly MysqlQualifiedName[];
  /**
   * Tables written (bump on commit). Multi-table UPDATE: every table of its table list (not only
   * those its SET assigns). Multi-table DELETE: the deleted-from tables, resolved through aliases
   * (all tables of the list when a target does not resolve). DDL: the tables it names.
   */
  readonly tablesWritten: readonly MysqlQualifiedName[];
  /**
   * The statement may change data beyond tablesWritten, in any database: invalidate everything
   * cached from this server on commit (DDL, GRANT, CALL, EXECUTE, stored function calls, XA
   * COMMIT, text not understood).
   */
  readonly writesUnlisted: boolean;
  /** Functions called, lower case (time keywords such as CURRENT_DATE included). */
  readonly functions: readonly MysqlQualifiedName[];
  /**
   * The calls in `functions` that are not built-ins: stored functions or loadable UDFs (and the
   * procedure of a CALL). A read may be cached only if each is found in information_schema.ROUTINES
   * with IS_DETERMINISTIC = 'YES' and SQL_DATA_ACCESS 'NO SQL' or 'CONTAINS SQL'.
   */
  readonly routines: readonly MysqlQualifiedName[];
  /** Non-empty whenever the statement may change session state, whatever its kind. */
  readonly sessionChanges: readonly MysqlSessionChange[];
}

/** One statement of a text. command names it in upper case, e.g. 'SELECT', 'CREATE TABLE', 'XA'. */
export interface MysqlStatementPart extends MysqlStatementFacts {
  readonly command: string;
  readonly transaction?: MysqlTransactionAction;
}

/** A whole text: the facts of its single statement, or the union over several (never cacheable). */
export interface MysqlStatementAnalysis extends MysqlStatementFacts {
  readonly statements: readonly MysqlStatementPart[];
}

const NONE = frozenList<never>([]);

const EMPTY: MysqlStatementAnalysis = Object.freeze({
  kind: 'other', cacheable: false, reasonNotCacheable: 'empty', statements: NONE,
  tablesRead: NONE, tablesWritten: NONE, writesUnlisted: false, functions: NONE, routines: NONE, sessionChanges: NONE,
});

/** Analyzes one statement text (what a COM_QUERY or COM_STMT_PREPARE carries). Never throws. */
export function analyzeMysql(text: string, options: MysqlAnalysisOptions = {}): MysqlStatementAnalysis {
  let tokens;
  try {
    tokens = tokenize(text, options);
  } catch (err) {
    if (err instanceof MysqlLexError) return unknownText(err.message);
    throw err;
  }
  const parts: MysqlStatementPart[] = [];
  let start = 0;
  const last = tokens.count - 1; // the End token
  while (start < last) {
    const end = statementEnd(text, tokens, start);
    if (end > start) parts.push(analyzeStatement(text, tokens, start, end, options));
    start = end + 1;
  }
  if (parts.length === 0) return EMPTY;
  if (parts.length === 1) return single(parts[0]!);
  return combine(parts);
}

function unknownText(message: string): MysqlStatementAnalysis {
  return Object.freeze({
    kind: 'unknown', cacheable: false, reasonNotCacheable: 'parse-error', reasonDetail: message, statements: NONE,
    tablesRead: NONE, tablesWritten: NONE, writesUnlisted: true, functions: NONE, routines: NONE, sessionChanges: ANY_CHANGES,
  });
}

// The part's lists are frozen already; the analysis shares them.
function single(part: MysqlStatementPart): MysqlStatementAnalysis {
  const analysis: { -readonly [K in keyof MysqlStatementAnalysis]: MysqlStatementAnalysis[K] } = {
    kind: part.kind, cacheable: part.cacheable, tablesRead: part.tablesRead, tablesWritten: part.tablesWritten,
    writesUnlisted: part.writesUnlisted, functions: part.functions, routines: part.routines,
    sessionChanges: part.sessionChanges, statements: Object.freeze([part]),
  };
  if (!part.cacheable) {
    analysis.reasonNotCacheable = part.reasonNotCacheable;
    analysis.reasonDetail = part.reasonDetail;
  }
  return Object.freeze(analysis);
}

function combine(parts: readonly MysqlStatementPart[]): MysqlStatementAnalysis {
  const read = new NameList();
  const written = new NameList();
  const functions = new NameList();
  const routines = new NameList();
  const sessionChanges: MysqlSessionChange[] = [];
  let writesUnlisted = false;
  for (const part of parts) {
    part.tablesRead.forEach((t) => read.add(t.database, t.name));
    part.tablesWritten.forEach((t) => written.add(t.database, t.name));
    part.functions.forEach((f) => functions.add(f.database, f.name));
    part.routines.forEach((f) => routines.add(f.database, f.name));
    sessionChanges.push(...part.sessionChanges);
    writesUnlisted ||= part.writesUnlisted;
  }
  // analyses are shared by every session through the classifier cache: make accidental mutation fail
  return Object.freeze({
    kind: widestKind(parts.map((p) => p.kind)),
    cacheable: false,
    reasonNotCacheable: 'several-statements',
    reasonDetail: parts.map((p) => p.kind).join(', '),
    tablesRead: read.list(),
    tablesWritten: written.list(),
    writesUnlisted,
    functions: functions.list(),
    routines: routines.list(),
    sessionChanges: frozenList(sessionChanges),
    statements: frozenList(parts),
  });
}
