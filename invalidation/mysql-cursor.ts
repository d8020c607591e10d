// The cursor a MySQL statement is walked with, and the facts the walk collects: tables read and
// written, functions, session changes, the first reason not to cache. Backtracking (attempt)
// rewinds both. The grammar itself is in mysql-query.ts.

import { Tok, type Token, type Tokens } from './mysql-lexer.js';
import { isSystemDatabase, settingAffectsResults } from './mysql-builtins.js';
import type { MysqlNotCacheableReason, MysqlQualifiedName, MysqlSessionChange } from './mysql-analysis.js';

/** The statement uses syntax this analyzer does not follow. */
export class NotUnderstood extends Error {
  readonly code = 'MYSQL_NOT_UNDERSTOOD';
  constructor(message: string) {
    super(message);
    this.name = 'NotUnderstood';
  }
}

const EMPTY: readonly never[] = Object.freeze([]);

/** A frozen copy of `items`; one shared frozen array for every empty list. */
export function frozenList<T>(items: readonly T[]): readonly T[] {
  return items.length === 0 ? EMPTY : Object.freeze([...items]);
}

/** Qualified names in order of first appearance, without duplicates. */
export class NameList {
  readonly #keys = new Set<string>();
  readonly #names: MysqlQualifiedName[] = [];

  get size(): number {
    return this.#names.length;
  }

  add(database: string | null, name: string): void {
    const key = `${database === null ? '' : `${database}.`}\0${name}`;
    if (this.#keys.has(key)) return;
    this.#keys.add(key);
    this.#names.push(Object.freeze({ database, name }));
  }

  /** Forgets the names added after the first `size` (backtracking). */
  truncate(size: number): void {
    for (const dropped of this.#names.splice(size)) {
      this.#keys.delete(`${dropped.database === null ? '' : `${dropped.database}.`}\0${dropped.name}`);
    }
  }

  list(): readonly MysqlQualifiedName[] {
    return frozenList(this.#names);
  }
}

// MySQL/MariaDB reserved words: never a table name or an alias without quotes.
const RESERVED: ReadonlySet<string> = new Set(`
  ACCESSIBLE ADD ALL ALTER ANALYZE AND AS ASC ASENSITIVE BEFORE BETWEEN BIGINT BINARY BLOB BOTH BY CALL CASCADE
  CASE CHANGE CHAR CHARACTER CHECK COLLATE COLUMN CONDITION CONSTRAINT CONTINUE CONVERT CREATE CROSS CUBE
  CURRENT_DATE CURRENT_ROLE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER CURSOR DATABASE DATABASES DAY_HOUR
  DAY_MICROSECOND DAY_MINUTE DAY_SECOND DEC DECIMAL DECLARE DEFAULT DELAYED DELETE DESC DESCRIBE DETERMINISTIC
  DISTINCT DISTINCTROW DIV DOUBLE DROP DUAL EACH ELSE ELSEIF ENCLOSED ESCAPED EXCEPT EXISTS EXIT EXPLAIN FALSE
  FETCH FLOAT FLOAT4 FLOAT8 FOR FORCE FOREIGN FROM FULLTEXT FUNCTION GENERATED GET GRANT GROUP GROUPS HAVING
  HIGH_PRIORITY HOUR_MICROSECOND HOUR_MINUTE HOUR_SECOND IF IGNORE IN INDEX INFILE INNER INOUT INSENSITIVE
  INSERT INT INT1 INT2 INT3 INT4 INT8 INTEGER INTERSECT INTERVAL INTO IS ITERATE JOIN JSON_TABLE KEY KEYS KILL
  LATERAL LEADING LEAVE LEFT LIKE LIMIT LINEAR LINES LOAD LOCALTIME LOCALTIMESTAMP LOCK LONG LONGBLOB LONGTEXT
  LOOP LOW_PRIORITY MATCH MAXVALUE MEDIUMBLOB MEDIUMINT MEDIUMTEXT MIDDLEINT MINUTE_MICROSECOND MINUTE_SECOND
  MOD MODIFIES NATURAL NOT NO_WRITE_TO_BINLOG NULL NUMERIC OF OFFSET ON OPTIMIZE OPTION OPTIONALLY OR ORDER OUT
  OUTER OUTFILE OVER PARTITION PRECISION PRIMARY PROCEDURE PURGE RANGE READ READS READ_WRITE REAL RECURSIVE
  REFERENCES REGEXP RELEASE RENAME REPEAT REPLACE REQUIRE RESIGNAL RESTRICT RETURN RETURNING REVOKE RIGHT RLIKE
  ROW ROWS SCHEMA SCHEMAS SECOND_MICROSECOND SELECT SENSITIVE SEPARATOR SET SHOW SIGNAL SMALLINT SPATIAL
  SPECIFIC SQL SQLEXCEPTION SQLSTATE SQLWARNING SQL_BIG_RESULT SQL_CALC_FOUND_ROWS SQL_SMALL_RESULT SSL
  STARTING STORED STRAIGHT_JOIN TABLE TERMINATED THEN TINYBLOB TINYINT TINYTEXT TO TRAILING TRIGGER TRUE UNDO
  UNION UNIQUE UNLOCK UNSIGNED UPDATE USAGE USE USING UTC_DATE UTC_TIME UTC_TIMESTAMP VALUES VARBINARY VARCHAR
  VARCHARACTER VARYING VIRTUAL WHEN WHERE WHILE WINDOW WITH WRITE XOR YEAR_MONTH ZEROFILL
`.split(/\s+/).filter((w) => w.length > 0));

// The connection variables that SET NAMES and SET CHARACTER SET change.
const CHARSET_SETTINGS = ['character_set_client', 'character_set_connection', 'character_set_results', 'collation_connection'];

interface Mark {
  pos: number;
  read: number;
  written: number;
  functions: number;
  routines: number;
  sessionChanges: number;
  hazard: { reason: MysqlNotCacheableReason; detail: string } | null;
  writesUnlisted: boolean;
  ctes: number;
  into: 'variables' | 'file' | null;
}

export class StatementCursor {
  /** Index of the current token; the statement is tokens [from, to), token `to` reads as End. */
  pos: number;
  readonly read = new NameList();
  readonly written = new NameList();
  readonly functions = new NameList();
  readonly routines = new NameList();
  readonly sessionChanges: MysqlSessionChange[] = [];
  hazard: { reason: MysqlNotCacheableReason; detail: string } | null = null;
  writesUnlisted = false;
  /** SELECT ... INTO: into @variables or into a file on the server. */
  into: 'variables' | 'file' | null = null;
  /** Statements entered: SET STATEMENT ... FOR, EXPLAIN ANALYZE and ANALYZE wrap one in another. */
  statementDepth = 0;
  /** CTE names visible at the current point, innermost WITH last. */
  protected readonly ctes: string[][] = [];
  readonly #end: Token;

  constructor(
    readonly text: string, readonly tokens: Tokens, from: number, readonly to: number, readonly lowerCaseTableNames: boolean,
  ) {
    this.pos = from;
    const at = tokens.start(to);
    this.#end = { type: Tok.End, start: at, end: at, upper: '', name: '' };
  }

  // --- the cursor -----------------------------------------------------------------------------

  /** A view of the token `ahead` of the current one (End past the statement). */
  peek(ahead = 0): Token {
    const i = this.pos + ahead;
    return i >= this.to ? this.#end : this.tokens.at(i);
  }

  /** The type of the token `ahead` of the current one, without a view. */
  typeAt(ahead = 0): Tok {
    const i = this.pos + ahead;
    return i >= this.to ? Tok.End : this.tokens.type(i);
  }

  advance(): Token {
    const t = this.peek();
    if (this.pos < this.to) this.pos++;
    return t;
  }

  atEnd(): boolean {
    return this.pos >= this.to;
  }

  isWord(upper: string, ahead = 0): boolean {
    return this.typeAt(ahead) === Tok.Word && this.tokens.upper(this.pos + ahead) === upper;
  }

  isOp(op: string, ahead = 0): boolean {
    if (this.typeAt(ahead) !== Tok.Operator) return false;
    const i = this.pos + ahead;
    return this.tokens.end(i) - this.tokens.start(i) === op.length && this.text.startsWith(op, this.tokens.start(i));
  }

  /** Consumes the next token if it is one of `words`; returns it (upper case) or null. */
  acceptWord(...words: string[]): string | null {
    if (this.typeAt() !== Tok.Word) return null;
    const upper = this.tokens.upper(this.pos);
    if (!words.includes(upper)) return null;
    this.pos++;
    return upper;
  }

  expectWord(word: string): void {
    if (this.acceptWord(word) === null) this.fail(`expected ${word}`);
  }

  accept(type: Tok): boolean {
    if (this.typeAt() !== type) return false;
    this.pos++;
    return true;
  }

  expect(type: Tok, what: string): void {
    if (!this.accept(type)) this.fail(`expected ${what}`);
  }

  expectOp(...ops: string[]): void {
    if (!ops.some((op) => this.isOp(op))) this.fail(`expected ${ops.join(' or ')}`);
    this.advance();
  }

  fail(message: string): never {
    const t = this.peek();
    const near = t.type === Tok.End ? 'end of statement' : `'${this.text.slice(t.start, Math.min(t.end, t.start + 40))}'`;
    throw new NotUnderstood(`${message} near ${near}`);
  }

  /** Moves to the end of the statement without looking at the rest. */
  skipRest(): void {
    this.pos = this.to;
  }

  /** Skips a parenthesized group whose content needs no analysis (column lists, type arguments). */
  skipGroup(): void {
    this.expect(Tok.LParen, '(');
    let depth = 1;
    while (depth > 0) {
      const t = this.advance();
      if (t.type === Tok.LParen) depth++;
      else if (t.type === Tok.RParen) depth--;
      else if (t.type === Tok.End) this.fail('unbalanced parentheses');
    }
  }

  mark(): Mark {
    return {
      pos: this.pos, read: this.read.size, written: this.written.size, functions: this.functions.size,
      routines: this.routines.size, sessionChanges: this.sessionChanges.length, hazard: this.hazard,
      writesUnlisted: this.writesUnlisted, ctes: this.ctes.length, into: this.into,
    };
  }

  reset(mark: Mark): void {
    this.pos = mark.pos;
    this.read.truncate(mark.read);
    this.written.truncate(mark.written);
    this.functions.truncate(mark.functions);
    this.routines.truncate(mark.routines);
    this.sessionChanges.length = mark.sessionChanges;
    this.hazard = mark.hazard;
    this.writesUnlisted = mark.writesUnlisted;
    this.ctes.length = mark.ctes;
    this.into = mark.into;
  }

  /** Runs `attempt`; if it does not understand the text, undoes everything it did and returns false. */
  attempt(attempt: () => void): boolean {
    const mark = this.mark();
    try {
      attempt();
      return true;
    } catch (err) {
      if (!(err instanceof NotUnderstood)) throw err;
      this.reset(mark);
      return false;
    }
  }

  // --- facts ----------------------------------------------------------------------------------

  hazardFound(reason: MysqlNotCacheableReason, detail: string): void {
    this.hazard ??= { reason, detail };
  }

  sessionChange(action: MysqlSessionChange['action'], setting: string | null, global = false): void {
    const affectsResults = action === 'user-variable' ? false : action === 'variable' ? settingAffectsResults(setting) : true;
    this.sessionChanges.push(Object.freeze({ action, setting, global, affectsResults }));
  }

  tableName(name: string): string {
    return this.lowerCaseTableNames ? name.toLowerCase() : name;
  }

  /** Records a table the statement reads (unless the name is a CTE in scope). */
  readTable(table: MysqlQualifiedName): void {
    if (table.database === null && this.isCte(table.name)) return;
    if (table.database !== null && isSystemDatabase(table.database)) this.hazardFound('system-catalog', `${table.database}.${table.name}`);
    this.read.add(table.database, table.name);
  }

  writeTable(table: MysqlQualifiedName): void {
    // privilege and time zone tables change what other statements see: invalidate everything
    if (table.database !== null && isSystemDatabase(table.database)) this.writesUnlisted = true;
    this.written.add(table.database, table.name);
  }

  isCte(name: string): boolean {
    return this.ctes.some((scope) => scope.includes(name));
  }

  // --- names ----------------------------------------------------------------------------------

  /** An identifier: a quoted one, or a word that is not reserved (unless `reservedOk`, after a dot). */
  identifier(reservedOk = false): string {
    const t = this.peek();
    if (t.type === Tok.QuotedIdent || (t.type === Tok.Word && (reservedOk || !RESERVED.has(t.upper)))) {
      this.advance();
      return t.name;
    }
    return this.fail('expected a name');
  }

  /** db.name or name, with the table-name case rule applied. */
  qualifiedName(): MysqlQualifiedName {
    const first = this.identifier();
    if (this.peek().type === Tok.Dot && (this.peek(1).type === Tok.Word || this.peek(1).type === Tok.QuotedIdent)) {
      this.advance();
      const second = this.identifier(true);
      return { database: this.tableName(first), name: this.tableName(second) };
    }
    return { database: null, name: this.tableName(first) };
  }

  /** An optional alias: AS name, or a bare non-reserved word, or a quoted identifier. */
  alias(): string | null {
    if (this.acceptWord('AS') !== null) {
      const t = this.peek();
      if (t.type === Tok.String) {
        this.advance();
        return this.text.slice(t.start + 1, t.end - 1);
      }
      return this.identifier(true);
    }
    const t = this.peek();
    if (t.type === Tok.QuotedIdent || (t.type === Tok.Word && !RESERVED.has(t.upper))) {
      this.advance();
      return t.name;
    }
    return null;
  }

  /** SET NAMES / SET CHARACTER SET: the four character set variables of the connection. */
  charsetChange(): void {
    for (const setting of CHARSET_SETTINGS) this.sessionChange('variable', setting);
  }
}
