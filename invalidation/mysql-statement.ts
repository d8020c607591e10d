// What one MySQL/MariaDB statement does: the dispatch on its leading keyword (statement forms of
// MySQL 8 and MariaDB 10.11), reads, writes and plans here; DDL in mysql-ddl.ts, SET and transaction
// control in mysql-session.ts, the grammar of queries and table lists in mysql-query.ts.

import { Tok, type Tokens } from './mysql-lexer.js';
import { frozenList, NotUnderstood } from './mysql-cursor.js';
import { StatementParser, userVariableName, type TableFactor } from './mysql-query.js';
import { create, alter, drop, rename } from './mysql-ddl.js';
import { acceptCharacterSet, set, transaction } from './mysql-session.js';
import type {
  MysqlAnalysisOptions, MysqlNotCacheableReason, MysqlQualifiedName, MysqlSessionChange, MysqlStatementPart,
  MysqlTransactionAction, StatementKind,
} from './mysql-analysis.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** What the dispatch learned about a statement beyond the facts the parser collected. */
export interface Outcome {
  readonly command: string;
  readonly kind: StatementKind;
  readonly reason?: MysqlNotCacheableReason;
  readonly detail?: string;
  readonly transaction?: MysqlTransactionAction;
}

const ANY_CHANGE: MysqlSessionChange = Object.freeze({ action: 'any', setting: null, global: false, affectsResults: true });
/** Anything may have changed: for texts and statements the analysis cannot follow. */
export const ANY_CHANGES: readonly MysqlSessionChange[] = Object.freeze([ANY_CHANGE]);

/** Analyzes tokens [start, end) of `text` (one statement, without its semicolon). Never throws NotUnderstood. */
export function analyzeStatement(
  text: string, tokens: Tokens, start: number, end: number, options: MysqlAnalysisOptions,
): MysqlStatementPart {
  const p = new StatementParser(text, tokens, start, end, options.lowerCaseTableNames === true);
  try {
    // the walk recurses once per level of parentheses: bound it before it can exhaust the stack
    if (nestingDepth(text, tokens, start, end) > MAX_NESTING) p.fail(`parentheses nested deeper than ${MAX_NESTING}`);
    const outcome = statement(p);
    if (!p.atEnd()) p.fail('unexpected text after the statement');
    return finish(p, outcome);
  } catch (err) {
    if (!(err instanceof NotUnderstood)) throw err;
    const first = tokens.at(start);
    const none = frozenList<MysqlQualifiedName>([]);
    return Object.freeze({
      command: first.type === Tok.Word ? first.upper : '', kind: 'unknown', cacheable: false,
      reasonNotCacheable: 'parse-error', reasonDetail: err.message, tablesRead: none, tablesWritten: none,
      writesUnlisted: true, functions: none, routines: none, sessionChanges: ANY_CHANGES,
    });
  }
}

const MAX_NESTING = 200;
// SET STATEMENT ... FOR, EXPLAIN ANALYZE and ANALYZE wrap a statement; more than a few is no real text
const MAX_WRAPPED = 4;

/** The deepest nesting of parentheses and ODBC braces. */
function nestingDepth(text: string, tokens: Tokens, start: number, end: number): number {
  let depth = 0;
  let max = 0;
  for (let i = start; i < end; i++) {
    const type = tokens.type(i);
    const c = type === Tok.Operator && tokens.end(i) - tokens.start(i) === 1 ? text[tokens.start(i)] : '';
    if (type === Tok.LParen || c === '{') depth++;
    else if (type === Tok.RParen || c === '}') depth--;
    if (depth > max) max = depth;
  }
  return max;
}

function finish(p: StatementParser, outcome: Outcome): MysqlStatementPart {
  const { command, kind } = outcome;
  const cacheable = kind === 'read' && outcome.reason === undefined && p.hazard === null;
  const reason = outcome.reason ?? (kind !== 'read' ? 'not-a-read' : p.hazard?.reason);
  const detail = outcome.reason !== undefined ? outcome.detail : kind !== 'read' ? command : p.hazard?.detail;
  const part: Mutable<MysqlStatementPart> = {
    command, kind, cacheable, tablesRead: p.read.list(), tablesWritten: p.written.list(), writesUnlisted: p.writesUnlisted,
    functions: p.functions.list(), routines: p.routines.list(), sessionChanges: frozenList(p.sessionChanges),
  };
  if (!cacheable) {
    part.reasonNotCacheable = reason;
    part.reasonDetail = detail;
  }
  if (outcome.transaction) part.transaction = outcome.transaction;
  return Object.freeze(part);
}

function statement(p: StatementParser): Outcome {
  if (++p.statementDepth > MAX_WRAPPED) p.fail(`statements wrapped more than ${MAX_WRAPPED} deep`);
  const t = p.peek();
  if (t.type === Tok.LParen) return query(p, 'SELECT');
  if (t.type !== Tok.Word) p.fail('expected a statement');
  switch (t.upper) {
    case 'SELECT': case 'VALUES': case 'TABLE': return query(p, t.upper);
    case 'WITH': return withStatement(p);
    case 'INSERT': case 'REPLACE': return insert(p);
    case 'UPDATE': return update(p);
    case 'DELETE': return deleteStatement(p);
    case 'LOAD': return load(p);
    case 'TRUNCATE':
      p.advance();
      p.acceptWord('TABLE');
      p.writeTable(p.qualifiedName());
      p.skipRest(); // WAIT n / NOWAIT
      return { command: 'TRUNCATE', kind: 'write' };
    case 'CALL': return call(p);
    case 'DO':
      p.advance();
      p.expressionList();
      return { command: 'DO', kind: 'other' };
    case 'SET': return set(p, statement);
    case 'USE':
      p.advance();
      p.sessionChange('database', p.tableName(p.identifier(true)));
      return { command: 'USE', kind: 'session' };
    case 'BEGIN': case 'START': case 'COMMIT': case 'ROLLBACK': case 'SAVEPOINT': case 'RELEASE': case 'XA':
      return transaction(p);
    case 'EXPLAIN': case 'DESCRIBE': case 'DESC': return explain(p);
    case 'ANALYZE': return analyze(p);
    case 'REPAIR': return repair(p);
    case 'CREATE': return create(p);
    case 'ALTER': return alter(p);
    case 'DROP': return drop(p);
    case 'RENAME': return rename(p);
    case 'GRANT': case 'REVOKE': case 'FLUSH': case 'INSTALL': case 'UNINSTALL':
      return wide(p, 'ddl');
    case 'BINLOG': // replays row events from a binary log: any table
      return wide(p, 'write');
    case 'EXECUTE': // a prepared statement's text is not known here
      p.skipRest();
      p.writesUnlisted = true;
      p.sessionChanges.push(...ANY_CHANGES);
      return { command: 'EXECUTE', kind: 'other' };
    case 'SHOW': case 'HELP': case 'HANDLER': case 'LOCK': case 'UNLOCK': case 'PREPARE': case 'DEALLOCATE':
    case 'KILL': case 'SHUTDOWN': case 'RESET': case 'PURGE': case 'CHANGE': case 'STOP': case 'CACHE':
    case 'SIGNAL': case 'RESIGNAL': case 'GET': case 'BACKUP': case 'RESTART': case 'CHECK': case 'CHECKSUM':
    case 'OPTIMIZE':
      p.skipRest();
      return { command: t.upper, kind: 'other' };
  }
  return p.fail(`${t.upper} is not a statement this analysis follows`);
}

// --- reads ------------------------------------------------------------------------------------

function query(p: StatementParser, command: string): Outcome {
  p.queryExpression();
  return queryOutcome(p, command);
}

function queryOutcome(p: StatementParser, command: string): Outcome {
  if (p.into === 'file') return { command, kind: 'other', reason: 'select-into', detail: 'INTO OUTFILE' };
  if (p.into === 'variables') return { command, kind: 'session', reason: 'select-into', detail: 'INTO variables' };
  if (p.written.size > 0) return { command, kind: 'write' }; // NEXTVAL(), SETVAL()
  if (p.sessionChanges.length > 0) return { command, kind: 'session' }; // @x := ...
  return { command, kind: 'read' };
}

/** WITH ... SELECT, and MySQL 8's WITH ... UPDATE / WITH ... DELETE. */
function withStatement(p: StatementParser): Outcome {
  p.withClause();
  if (p.isWord('UPDATE')) return update(p);
  if (p.isWord('DELETE')) return deleteStatement(p);
  p.queryBody();
  return queryOutcome(p, 'SELECT');
}

// --- writes -----------------------------------------------------------------------------------

/**
 * The rest of a write: expressions separated by commas and by the given keywords. 'AS' introduces
 * an alias with optional column names (INSERT ... VALUES (...) AS new(a, b)).
 */
function tail(p: StatementParser, keywords: readonly string[]): void {
  for (;;) {
    p.expression();
    if (p.atEnd()) return;
    if (p.accept(Tok.Comma)) continue;
    const keyword = p.acceptWord(...keywords);
    if (keyword === null) p.fail('unexpected text in the statement');
    if (keyword === 'AS') {
      p.identifier(true);
      if (p.peek().type === Tok.LParen) p.skipGroup();
    }
  }
}

/** INSERT/REPLACE [INTO] t [PARTITION (...)] [(columns)] {VALUES ... | SET ... | query} [AS ...] [ON DUPLICATE KEY UPDATE ...] [RETURNING ...]. */
function insert(p: StatementParser): Outcome {
  const command = p.advance().upper;
  while (p.acceptWord('LOW_PRIORITY', 'DELAYED', 'HIGH_PRIORITY', 'IGNORE') !== null);
  p.acceptWord('INTO');
  p.writeTable(p.qualifiedName());
  if (p.acceptWord('PARTITION') !== null) p.skipGroup();
  if (p.peek().type === Tok.LParen) p.group(); // the column list, or a parenthesized query
  if (p.acceptWord('VALUES', 'VALUE', 'SET') === null) {
    const t = p.peek();
    if (t.type === Tok.LParen || (t.type === Tok.Word && (t.upper === 'SELECT' || t.upper === 'WITH' || t.upper === 'TABLE'))) {
      p.queryExpression();
    }
  }
  tail(p, ['AS', 'ON', 'RETURNING']);
  return { command, kind: 'write' };
}

/**
 * UPDATE [LOW_PRIORITY] [IGNORE] tables SET ... — every table of a multi-table UPDATE counts as
 * written: which ones its SET assigns depends on column names the text need not qualify.
 */
function update(p: StatementParser): Outcome {
  p.expectWord('UPDATE');
  while (p.acceptWord('LOW_PRIORITY', 'IGNORE') !== null);
  p.tableReferences((table) => p.writeTable(table));
  p.expectWord('SET');
  tail(p, ['WHERE', 'ORDER', 'LIMIT']);
  return { command: 'UPDATE', kind: 'write' };
}

/**
 * DELETE FROM t ... (one table), DELETE t1, t2 FROM tables ..., DELETE FROM t1, t2 USING tables ...
 * The targets of the multi-table forms name tables of the list by alias or name.
 */
function deleteStatement(p: StatementParser): Outcome {
  p.expectWord('DELETE');
  while (p.acceptWord('LOW_PRIORITY', 'QUICK', 'IGNORE') !== null);
  if (p.acceptWord('FROM') !== null) {
    const targets = deleteTargets(p);
    if (p.acceptWord('USING') !== null) {
      deletedTables(p, targets, p.tableReferences());
    } else {
      if (targets.length !== 1) p.fail('several tables without USING');
      p.writeTable(targets[0]!);
      if (p.acceptWord('PARTITION') !== null) p.skipGroup();
      p.alias();
      if (p.isWord('FOR') && p.isWord('PORTION', 1)) { // MariaDB application-time periods
        p.pos += 2;
        p.expectWord('OF');
        p.identifier();
        p.expectWord('FROM');
        p.expression();
      }
    }
  } else {
    const targets = deleteTargets(p);
    p.expectWord('FROM');
    deletedTables(p, targets, p.tableReferences());
  }
  tail(p, ['WHERE', 'ORDER', 'LIMIT', 'RETURNING', 'AS']);
  return { command: 'DELETE', kind: 'write' };
}

function deleteTargets(p: StatementParser): MysqlQualifiedName[] {
  const targets: MysqlQualifiedName[] = [];
  do {
    targets.push(p.qualifiedName());
    if (p.peek().type === Tok.Dot && p.isOp('*', 1)) p.pos += 2; // t.*
  } while (p.accept(Tok.Comma));
  return targets;
}

/** Marks the tables the targets name as written and the rest of the list as read. */
function deletedTables(p: StatementParser, targets: readonly MysqlQualifiedName[], factors: readonly TableFactor[]): void {
  const deleted = new Set<TableFactor>();
  for (const target of targets) {
    const matches = factors.filter((f) => namesTarget(f, target));
    // a target we cannot resolve: every table of the list may lose rows
    if (matches.length === 0) factors.forEach((f) => deleted.add(f));
    matches.forEach((f) => deleted.add(f));
  }
  for (const f of factors) {
    const table = { database: f.database, name: f.name };
    if (deleted.has(f)) p.writeTable(table);
    else p.readTable(table);
  }
}

// Aliases compare case-insensitively here even where the server does not: matching too much only
// invalidates more.
function namesTarget(factor: TableFactor, target: MysqlQualifiedName): boolean {
  const same = (a: string | null, b: string): boolean => a !== null && a.toLowerCase() === b.toLowerCase();
  if (target.database === null && same(factor.alias, target.name)) return true;
  if (factor.alias !== null && target.database === null) return false;
  return same(factor.name, target.name) && (target.database === null || factor.database === null || same(factor.database, target.database));
}

/** LOAD DATA|XML [LOW_PRIORITY|CONCURRENT] [LOCAL] INFILE 'f' [REPLACE|IGNORE] INTO TABLE t ... */
function load(p: StatementParser): Outcome {
  p.advance();
  if (p.acceptWord('INDEX') !== null) { // LOAD INDEX INTO CACHE
    p.skipRest();
    return { command: 'LOAD INDEX', kind: 'other' };
  }
  const what = p.acceptWord('DATA', 'XML') ?? p.fail('expected DATA or XML');
  p.acceptWord('LOW_PRIORITY', 'CONCURRENT');
  p.acceptWord('LOCAL');
  p.expectWord('INFILE');
  p.expect(Tok.String, 'a file name');
  p.acceptWord('REPLACE', 'IGNORE');
  p.expectWord('INTO');
  p.expectWord('TABLE');
  p.writeTable(p.qualifiedName());
  // format options and the column list, then SET col = expr, ...
  while (!p.atEnd() && !p.isWord('SET')) {
    if (acceptCharacterSet(p)) continue;
    if (p.peek().type !== Tok.LParen) p.advance();
    else {
      const from = p.pos;
      p.skipGroup();
      for (let i = from; i < p.pos; i++) {
        // (a, @b): each row assigns the user variable
        if (p.tokens.type(i) === Tok.UserVariable) {
          p.sessionChange('user-variable', userVariableName(p.text.slice(p.tokens.start(i), p.tokens.end(i))));
        }
      }
    }
  }
  if (p.acceptWord('SET') !== null) p.expressionList();
  return { command: `LOAD ${what}`, kind: 'write' };
}

/** CALL p(...): what a procedure reads, writes or sets is not visible in the text. */
function call(p: StatementParser): Outcome {
  p.advance();
  const procedure = p.qualifiedName();
  const name = procedure.name.toLowerCase();
  p.functions.add(procedure.database, name);
  p.routines.add(procedure.database, name);
  if (p.peek().type === Tok.LParen) p.group();
  p.writesUnlisted = true;
  p.sessionChanges.push(...ANY_CHANGES);
  return { command: 'CALL', kind: 'other' };
}

function repair(p: StatementParser): Outcome {
  p.advance();
  p.acceptWord('NO_WRITE_TO_BINLOG', 'LOCAL');
  if (p.acceptWord('TABLE', 'TABLES') === null) {
    p.skipRest();
    return { command: 'REPAIR', kind: 'other' };
  }
  // a repair may drop rows it cannot read back
  do p.writeTable(p.qualifiedName()); while (p.accept(Tok.Comma));
  p.skipRest();
  return { command: 'REPAIR TABLE', kind: 'write' };
}

function wide(p: StatementParser, kind: StatementKind, command = p.peek().upper): Outcome {
  p.skipRest();
  p.writesUnlisted = true;
  return { command, kind };
}

// --- plans --------------------------------------------------------------------------------------

const EXECUTABLE = ['SELECT', 'WITH', 'VALUES', 'TABLE', 'INSERT', 'REPLACE', 'UPDATE', 'DELETE'];

/** EXPLAIN/DESCRIBE: a plan (nothing runs), except EXPLAIN ANALYZE, which runs the statement. */
function explain(p: StatementParser): Outcome {
  const command = p.advance().upper;
  let analyze = false;
  for (;;) {
    if (p.acceptWord('EXTENDED', 'PARTITIONS') !== null) continue;
    if (p.acceptWord('ANALYZE') !== null) analyze = true;
    else if (p.acceptWord('FORMAT') !== null) {
      p.expectOp('=');
      p.advance();
    } else break;
  }
  const next = p.peek();
  if (analyze && (next.type === Tok.LParen || EXECUTABLE.includes(next.upper))) return executed(p, `${command} ANALYZE`);
  p.skipRest();
  return { command, kind: 'other', reason: 'explain', detail: command };
}

/** MariaDB's ANALYZE statement runs the statement and reports its plan; ANALYZE TABLE updates statistics. */
function analyze(p: StatementParser): Outcome {
  p.advance();
  if (p.acceptWord('TABLE', 'TABLES', 'NO_WRITE_TO_BINLOG', 'LOCAL') !== null) {
    p.skipRest();
    return { command: 'ANALYZE TABLE', kind: 'other' };
  }
  if (p.acceptWord('FORMAT') !== null) {
    p.expectOp('=');
    p.advance();
  }
  return executed(p, 'ANALYZE');
}

function executed(p: StatementParser, detail: string): Outcome {
  const inner = statement(p);
  return { ...inner, reason: 'explain', detail };
}

