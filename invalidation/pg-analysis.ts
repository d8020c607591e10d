// What one SQL text does, as the real PostgreSQL parser (libpg-query) sees it: its kind, whether its
// result may be cached, the tables it reads and writes, the functions it calls. Pure: text in,
// frozen analysis out. The parser must be loaded first (see loadPgParser); cache the results per
// text (pg-classifier.ts) so this runs once per distinct statement text.

import { hasSqlDetails, loadModule, parseSync } from 'libpg-query';
import type { ValueDependency } from './pg-builtins.js';
import { analyzeStatement, NameSet } from './pg-statement.js';
import { widestKind, type CommonNotCacheableReason, type CommonTransactionAction, type StatementKind } from './statement-facts.js';

export type { StatementKind };

/**
 * A table or function name as written, after the parser's case folding (unquoted names are lower
 * case, quoted ones exact). schema is null when the text left it to the search_path; the probe
 * (pg-probe.ts) has the server resolve such names. A database qualifier (db.schema.t) is dropped:
 * PostgreSQL only accepts the current database there.
 */
export interface QualifiedName {
  readonly schema: string | null;
  readonly name: string;
}

/** A SQL value function (CURRENT_TIMESTAMP, CURRENT_USER, ...) the statement uses. */
export interface ValueFunctionUse {
  readonly name: string;
  /** 'time' forbids caching; 'session' values (role, user, database, schema) are part of the cache key. */
  readonly dependsOn: ValueDependency;
}

/**
 * A change to session state: SET/RESET (including SET ROLE -> setting 'role', SET SESSION
 * AUTHORIZATION -> 'session_authorization', SET TIME ZONE -> 'timezone', SET NAMES ->
 * 'client_encoding'), DISCARD (setting = what is discarded) and set_config() calls. setting is null
 * when every setting may have changed (RESET ALL) or the name is not a constant.
 */
export interface SessionChange {
  readonly action: 'set' | 'reset' | 'reset-all' | 'discard';
  readonly setting: string | null;
  /** SET LOCAL / set_config(..., true): reverts at the end of the transaction. */
  readonly local: boolean;
}

/**
 * CommonNotCacheableReason as PostgreSQL meets them (parse-error: the parser's message in
 * reasonDetail; select-into: SELECT INTO / CREATE TABLE AS; unstable-function: random(),
 * nextval(), pg_backend_pid(), set_config(), ...; system-catalog: pg_catalog,
 * information_schema, statistics views, temporary schemas), and its own.
 */
export type NotCacheableReason =
  | CommonNotCacheableReason
  | 'copy'               // COPY ... TO streams a result outside the query protocol
  | 'data-modifying-cte' // WITH x AS (INSERT/UPDATE/DELETE/MERGE ...)
  | 'tablesample';       // TABLESAMPLE without REPEATABLE returns a different sample each time

export type TransactionAction = CommonTransactionAction | 'prepare' | 'commit_prepared' | 'rollback_prepared';

export interface StatementFacts {
  readonly kind: StatementKind;
  /**
   * True when the text allows caching its result. The caller must still look every entry of
   * `functions` up in pg_proc (volatility) and check the remaining run-time conditions
   * (no transaction block, complete result, size limit).
   */
  readonly cacheable: boolean;
  readonly reasonNotCacheable?: NotCacheableReason;
  /** What triggered the reason: the function, the locking strength, the parser's message, ... */
  readonly reasonDetail?: string;
  /** Tables, views and other relations read (CTE names excluded), in order of appearance. */
  readonly tablesRead: readonly QualifiedName[];
  /** Relations written; for DDL the relations it names (informative: DDL invalidates wide). */
  readonly tablesWritten: readonly QualifiedName[];
  /**
   * The statement may change data or schema beyond tablesWritten (DDL, CALL, DO, EXECUTE,
   * COMMIT PREPARED, unparsable text): invalidate the whole database when it commits.
   */
  readonly writesUnlisted: boolean;
  /**
   * The statement changes what every database of the server sees (roles and memberships, ALTER
   * SYSTEM, database and tablespace settings and privileges): invalidate every database.
   */
  readonly serverWide: boolean;
  /** Functions called (explicitly or through SQL syntax such as EXTRACT -> pg_catalog.extract). */
  readonly functions: readonly QualifiedName[];
  readonly valueFunctions: readonly ValueFunctionUse[];
  /** Non-empty whenever the statement may change session state, whatever its kind. */
  readonly sessionChanges: readonly SessionChange[];
}

/** One statement of a text. command is the parser's node type, e.g. 'SelectStmt', 'CopyStmt'. */
export interface StatementPart extends StatementFacts {
  readonly command: string;
  readonly transaction?: TransactionAction;
  /** BEGIN / START TRANSACTION whose options make the block READ ONLY (none says READ WRITE). */
  readonly readOnly?: boolean;
}

/** A whole text: the facts of its single statement, or the union over several (never cacheable). */
export interface StatementAnalysis extends StatementFacts {
  readonly statements: readonly StatementPart[];
}

/** Loads the parser's WASM module; must resolve before analyzeSql is called. Safe to call again. */
export function loadPgParser(): Promise<void> {
  return loadModule();
}

const EMPTY: StatementAnalysis = freezeAnalysis({
  kind: 'other', cacheable: false, reasonNotCacheable: 'empty', statements: [],
  tablesRead: [], tablesWritten: [], writesUnlisted: false, serverWide: false, functions: [], valueFunctions: [], sessionChanges: [],
});

/**
 * Analyzes one SQL text (what a simple Query or a Parse message carries). Parse errors give kind
 * 'unknown'; any other parser failure (e.g. the module not loaded) is thrown.
 */
export function analyzeSql(text: string): StatementAnalysis {
  // the parser rejects an empty string outright, while PostgreSQL answers it with EmptyQueryResponse
  if (text.length === 0) return EMPTY;
  let stmts;
  try {
    stmts = parseSync(text).stmts ?? [];
  } catch (err) {
    if (hasSqlDetails(err)) return unknown(err.message);
    throw err;
  }
  if (stmts.length === 0) return EMPTY;
  const parts = stmts.map((raw) => analyzeStatement(raw.stmt));
  if (parts.length === 1) return freezeAnalysis({ ...withoutPartFields(parts[0]!), statements: parts });
  return freezeAnalysis(combine(parts));
}

function unknown(message: string): StatementAnalysis {
  return freezeAnalysis({
    kind: 'unknown', cacheable: false, reasonNotCacheable: 'parse-error', reasonDetail: message, statements: [],
    tablesRead: [], tablesWritten: [], writesUnlisted: true, serverWide: false, functions: [], valueFunctions: [], sessionChanges: [],
  });
}

function withoutPartFields(part: StatementPart): StatementFacts {
  const { command: _command, transaction: _transaction, readOnly: _readOnly, ...facts } = part;
  return facts;
}

function combine(parts: readonly StatementPart[]): StatementAnalysis {
  const read = new NameSet();
  const written = new NameSet();
  const functions = new NameSet();
  const valueFunctions = new Map<string, ValueFunctionUse>();
  const sessionChanges: SessionChange[] = [];
  let writesUnlisted = false;
  let serverWide = false;
  for (const part of parts) {
    part.tablesRead.forEach((t) => read.add(t.schema, t.name));
    part.tablesWritten.forEach((t) => written.add(t.schema, t.name));
    part.functions.forEach((f) => functions.add(f.schema, f.name));
    part.valueFunctions.forEach((v) => valueFunctions.set(v.name, v));
    sessionChanges.push(...part.sessionChanges);
    writesUnlisted ||= part.writesUnlisted;
    serverWide ||= part.serverWide;
  }
  return {
    kind: widestKind(parts.map((p) => p.kind)),
    cacheable: false,
    reasonNotCacheable: 'several-statements',
    reasonDetail: parts.map((p) => p.kind).join(', '),
    tablesRead: read.list(),
    tablesWritten: written.list(),
    writesUnlisted,
    serverWide,
    functions: functions.list(),
    valueFunctions: [...valueFunctions.values()],
    sessionChanges,
    statements: parts,
  };
}

// Analyses are shared by every session through the classifier cache: make accidental mutation fail.
function freezeAnalysis(analysis: StatementAnalysis): StatementAnalysis {
  for (const list of [analysis.tablesRead, analysis.tablesWritten, analysis.functions,
    analysis.valueFunctions, analysis.sessionChanges, analysis.statements]) {
    Object.freeze(list);
  }
  return Object.freeze(analysis);
}
