// The walk over one MySQL statement's tokens as deep as caching needs: query expressions (WITH,
// UNION, VALUES, TABLE), table references (joins, derived tables, JSON_TABLE, index hints,
// partitions, system time), and expressions only as far as subqueries, function calls and
// variables. Whatever does not fit the grammar followed here throws NotUnderstood, which the
// statement turns into kind 'unknown': a reference to a table is never silently skipped.

import { Tok, type Token } from './mysql-lexer.js';
import { builtinHazard, isBuiltinFunction, SEQUENCE_WRITERS, TIME_KEYWORDS } from './mysql-builtins.js';
import { StatementCursor } from './mysql-cursor.js';
import type { MysqlQualifiedName } from './mysql-analysis.js';

/** A base table named in a table list, with the alias the statement gives it. */
export interface TableFactor {
  readonly database: string | null;
  readonly name: string;
  readonly alias: string | null;
}

// Words that end an expression at its own nesting level: clause keywords and join keywords.
const EXPRESSION_STOPS: ReadonlySet<string> = new Set([
  'FROM', 'WHERE', 'GROUP', 'HAVING', 'WINDOW', 'ORDER', 'LIMIT', 'OFFSET', 'FETCH', 'PROCEDURE', 'INTO',
  'FOR', 'LOCK', 'UNION', 'EXCEPT', 'INTERSECT', 'ON', 'USING', 'JOIN', 'INNER', 'CROSS', 'LEFT', 'RIGHT',
  'NATURAL', 'STRAIGHT_JOIN', 'SET', 'RETURNING', 'AS',
]);

// Words followed by '(' that are operators, clauses or type names, not function calls.
const NOT_FUNCTIONS: ReadonlySet<string> = new Set([
  'IN', 'EXISTS', 'ANY', 'SOME', 'ALL', 'AND', 'OR', 'NOT', 'XOR', 'IS', 'LIKE', 'REGEXP', 'RLIKE', 'BETWEEN',
  'CASE', 'WHEN', 'THEN', 'ELSE', 'END', 'ON', 'USING', 'AS', 'OVER', 'AGAINST', 'ROW', 'WHERE', 'HAVING', 'BY',
  'DISTINCT', 'DISTINCTROW', 'COLLATE', 'DIV', 'NULL', 'FROM', 'FOR', 'TO', 'OF', 'PARTITION', 'ORDER',
  'COLUMNS', 'PATH', 'NESTED', 'ORDINALITY', 'EMPTY', 'ERROR', 'ESCAPE', 'SEPARATOR', 'UNION', 'EXCEPT',
  'INTERSECT', 'KEY', 'PRIMARY', 'INDEX', 'LIMIT', 'RETURNING', 'SET', 'RECURSIVE', 'LATERAL', 'DUAL', 'INTO',
  'ROWS', 'RANGE', 'GROUPS', 'PRECEDING', 'FOLLOWING', 'UNBOUNDED', 'CURRENT', 'SIGNED', 'UNSIGNED', 'DECIMAL',
  'DEC', 'NUMERIC', 'FLOAT', 'DOUBLE', 'REAL', 'INT', 'INTEGER', 'BIGINT', 'SMALLINT', 'TINYINT', 'MEDIUMINT',
  'VARCHAR', 'NCHAR', 'NVARCHAR', 'VARBINARY', 'DATETIME', 'ARRAY', 'FIXED', 'BOOL', 'BOOLEAN', 'BIT', 'ENUM',
  'TEXT', 'BLOB', 'JSON', 'LEADING', 'TRAILING', 'BOTH', 'UNKNOWN', 'TRUE', 'FALSE', 'MEMBER', 'SOUNDS',
  'WINDOW', 'GROUP', 'ELSEIF', 'RETURN', 'DO', 'UPDATE', 'ASC', 'DESC', 'ROLLUP', 'ONLY', 'TIES', 'FIRST',
  'NEXT', 'LOCKED', 'NOWAIT', 'SHARE', 'MODE', 'OUTFILE', 'DUMPFILE', 'WITH', 'SELECT', 'VALUES', 'TABLE',
]);

const QUERY_STARTS: ReadonlySet<string> = new Set(['SELECT', 'WITH', 'VALUES', 'TABLE']);

/** A statement's cursor with the grammar of queries, table lists and expressions. */
export class StatementParser extends StatementCursor {
  // --- expressions ----------------------------------------------------------------------------

  /** An expression up to a comma, a closing parenthesis or a clause keyword at this level. */
  expression(): void {
    for (;;) {
      const type = this.typeAt();
      if (type === Tok.End || type === Tok.Semicolon || type === Tok.RParen || type === Tok.Comma) return;
      if (type === Tok.Word) {
        const upper = this.tokens.upper(this.pos);
        if (EXPRESSION_STOPS.has(upper) && !((upper === 'LEFT' || upper === 'RIGHT') && this.typeAt(1) === Tok.LParen)) return;
      }
      if (this.isOp('}')) return;
      this.scanOne();
    }
  }

  expressionList(): void {
    do this.expression(); while (this.accept(Tok.Comma));
  }

  /** A parenthesized subquery, or an expression list of any depth. */
  group(): void {
    this.expect(Tok.LParen, '(');
    const first = this.peek();
    if (first.type === Tok.Word && QUERY_STARTS.has(first.upper)) {
      if (first.upper !== 'VALUES') {
        this.subqueryRest();
        return;
      }
      // VALUES(x) is also the ON DUPLICATE KEY UPDATE function: try the table value constructor first
      if (this.attempt(() => this.subqueryRest())) return;
    }
    for (;;) {
      const type = this.typeAt();
      if (type === Tok.RParen) {
        this.pos++;
        return;
      }
      if (type === Tok.End || type === Tok.Semicolon) this.fail('unbalanced parentheses');
      this.scanOne();
    }
  }

  /** One element of an expression: a group, a word (maybe a function call), a variable, an operator. */
  private scanOne(): void {
    const type = this.typeAt();
    if (type === Tok.LParen) this.group();
    else if (type === Tok.Word || type === Tok.QuotedIdent) this.word();
    else if (type === Tok.UserVariable || type === Tok.SystemVariable) this.token();
    else if (this.isOp('{')) this.braces();
    else this.pos++;
  }

  private subqueryRest(): void {
    this.queryExpression();
    this.expect(Tok.RParen, ')');
  }

  /** ODBC escapes: {d '2024-01-01'}, {fn NOW()}, {oj ...} in an expression. */
  private braces(): void {
    this.advance();
    this.expression();
    this.expectOp('}');
  }

  /** Variables and other single tokens inside expressions. */
  private token(): void {
    const t = this.advance();
    if (t.type === Tok.UserVariable) {
      this.hazardFound('variable', this.text.slice(t.start, t.end));
      if (this.isOp(':=')) this.sessionChange('user-variable', userVariableName(this.text.slice(t.start, t.end)));
    } else if (t.type === Tok.SystemVariable) {
      this.hazardFound('variable', this.text.slice(t.start, t.end));
    }
  }

  /** A word inside an expression: a column, a keyword or a function call. */
  word(): void {
    const t = this.peek();
    if (t.type === Tok.Word && this.keywordInExpression(t)) return;
    this.advance();
    const parts = [t.name];
    while (this.peek().type === Tok.Dot && (this.peek(1).type === Tok.Word || this.peek(1).type === Tok.QuotedIdent)) {
      this.advance();
      parts.push(this.advance().name);
    }
    if (this.peek().type !== Tok.LParen) return;
    if (parts.length === 1 && t.type === Tok.Word && NOT_FUNCTIONS.has(t.upper)) return;
    if (parts.length > 2) this.fail('a function name with more than two parts');
    const database = parts.length === 2 ? this.tableName(parts[0]!) : null;
    this.functionCall(database, parts[parts.length - 1]!.toLowerCase(), t.type === Tok.QuotedIdent || parts.length === 2);
  }

  /** Keywords with a meaning of their own inside an expression; true when consumed. */
  private keywordInExpression(t: Token): boolean {
    if (t.upper === 'SELECT' || t.upper === 'TABLE') this.fail(`${t.upper} inside an expression`);
    if (t.upper === 'WITH') {
      if (!this.isWord('ROLLUP', 1) && !this.isWord('TIES', 1)) this.fail('WITH inside an expression');
      this.pos += 2;
      return true;
    }
    if ((t.upper === 'NEXT' || t.upper === 'PREVIOUS') && this.isWord('VALUE', 1) && this.isWord('FOR', 2)) {
      this.pos += 3;
      this.sequenceCall(t.upper === 'NEXT' ? 'nextval' : 'lastval', this.qualifiedName());
      return true;
    }
    if (TIME_KEYWORDS.has(t.upper) && this.peek(1).type !== Tok.LParen) {
      this.advance();
      this.functions.add(null, t.upper.toLowerCase());
      this.hazardFound('time-dependent', t.upper);
      return true;
    }
    return false;
  }

  private functionCall(database: string | null, name: string, qualifiedOrQuoted: boolean): void {
    if (!qualifiedOrQuoted && isBuiltinFunction(name)) {
      if (SEQUENCE_WRITERS.has(name) || name === 'lastval') {
        const at = this.pos;
        this.advance();
        const sequence = this.qualifiedName();
        this.pos = at;
        this.sequenceCall(name, sequence);
      } else {
        this.functions.add(null, name);
        const hazard = builtinHazard(name, this.peek(1).type === Tok.RParen ? 0 : 1);
        if (hazard !== null) this.hazardFound(hazard, `${name.toUpperCase()}()`);
      }
    } else {
      // a stored function or a loadable UDF: it may read and write any table (MySQL does not
      // enforce the READS/MODIFIES SQL DATA declarations)
      this.functions.add(database, name);
      this.routines.add(database, name);
      this.writesUnlisted = true;
    }
    this.group();
  }

  /** NEXTVAL/SETVAL (and NEXT VALUE FOR) advance a sequence; LASTVAL reads the session's last value. */
  private sequenceCall(name: string, sequence: MysqlQualifiedName): void {
    this.functions.add(null, name);
    this.hazardFound('unstable-function', `${name.toUpperCase()}()`);
    if (SEQUENCE_WRITERS.has(name)) this.writeTable(sequence);
    else this.readTable(sequence);
  }

  // --- queries --------------------------------------------------------------------------------

  /** [WITH ...] term { UNION|EXCEPT|INTERSECT term } [ORDER BY ...] [LIMIT ...] [INTO ...] [locking]. */
  queryExpression(): void {
    const depth = this.ctes.length;
    if (this.isWord('WITH')) this.withClause();
    this.queryBody();
    this.ctes.length = depth;
  }

  /** The part of a query expression after its WITH clause (the WITH scope stays open). */
  queryBody(): void {
    this.queryTerm();
    while (this.acceptWord('UNION', 'EXCEPT', 'INTERSECT') !== null) {
      this.acceptWord('ALL', 'DISTINCT');
      this.queryTerm();
    }
    this.clauses();
  }

  private queryTerm(): void {
    const t = this.peek();
    if (t.type === Tok.LParen) {
      this.advance();
      this.queryExpression();
      this.expect(Tok.RParen, ')');
      this.clauses();
      return;
    }
    switch (t.type === Tok.Word ? t.upper : '') {
      case 'SELECT': this.select(); return;
      case 'VALUES':
        this.advance();
        do {
          this.acceptWord('ROW');
          this.group();
        } while (this.accept(Tok.Comma));
        this.clauses();
        return;
      case 'TABLE':
        this.advance();
        this.readTable(this.qualifiedName());
        this.clauses();
        return;
    }
    this.fail('expected SELECT, VALUES, TABLE or (');
  }

  /**
   * WITH [RECURSIVE] name [(columns)] AS (query) [CYCLE ... RESTRICT], ... — opens a CTE scope. A
   * body sees the CTEs before it, and with RECURSIVE itself too. A later name is read as a table:
   * MariaDB lets RECURSIVE bodies refer forward (mutual recursion), MySQL may not; reporting the
   * name as a table is right for one and only too wide for the other.
   */
  withClause(): void {
    this.expectWord('WITH');
    const recursive = this.acceptWord('RECURSIVE') !== null;
    const scope: string[] = [];
    this.ctes.push(scope);
    do {
      const name = this.tableName(this.identifier());
      if (this.peek().type === Tok.LParen) this.skipGroup();
      this.expectWord('AS');
      if (recursive) scope.push(name);
      this.expect(Tok.LParen, '(');
      this.queryExpression();
      this.expect(Tok.RParen, ')');
      if (this.acceptWord('CYCLE') !== null) {
        while (this.acceptWord('RESTRICT') === null) {
          if (this.atEnd()) this.fail('expected RESTRICT');
          this.advance();
        }
      }
      if (!recursive) scope.push(name);
    } while (this.accept(Tok.Comma));
  }

  private select(): void {
    this.expectWord('SELECT');
    for (;;) {
      const modifier = this.acceptWord('ALL', 'DISTINCT', 'DISTINCTROW', 'HIGH_PRIORITY', 'STRAIGHT_JOIN',
        'SQL_SMALL_RESULT', 'SQL_BIG_RESULT', 'SQL_BUFFER_RESULT', 'SQL_CACHE', 'SQL_NO_CACHE', 'SQL_CALC_FOUND_ROWS');
      if (modifier === null) break;
      // the server remembers the row count for FOUND_ROWS(); a cached answer would not
      if (modifier === 'SQL_CALC_FOUND_ROWS') this.hazardFound('unstable-function', modifier);
    }
    do {
      this.expression();
      if (this.isWord('AS')) this.alias();
    } while (this.accept(Tok.Comma));
    this.clauses();
  }

  /** The clauses after a select list (and after a set operation or a parenthesized query), in any order. */
  private clauses(): void {
    for (;;) {
      const t = this.peek();
      switch (t.type === Tok.Word ? t.upper : '') {
        case 'INTO': this.intoClause(); break;
        case 'FROM':
          this.advance();
          if (this.acceptWord('DUAL') === null) this.tableReferences((table) => this.readTable(table));
          break;
        case 'WHERE': case 'HAVING': case 'LIMIT': case 'OFFSET': case 'FETCH':
          this.advance();
          this.expressionList();
          break;
        case 'GROUP': case 'ORDER':
          this.advance();
          this.expectWord('BY');
          this.expressionList();
          break;
        case 'WINDOW':
          this.advance();
          do {
            this.identifier();
            this.expectWord('AS');
            this.group();
          } while (this.accept(Tok.Comma));
          break;
        case 'PROCEDURE': // PROCEDURE ANALYSE(): describes the result instead of returning it
          this.advance();
          this.hazardFound('explain', 'PROCEDURE ANALYSE');
          this.qualifiedName();
          this.skipGroup();
          break;
        case 'FOR':
          if (!this.isWord('UPDATE', 1) && !this.isWord('SHARE', 1)) return;
          this.hazardFound('locking-clause', `FOR ${this.peek(1).upper}`);
          this.pos += 2;
          if (this.acceptWord('OF') !== null) do this.qualifiedName(); while (this.accept(Tok.Comma));
          if (this.acceptWord('SKIP') !== null) this.expectWord('LOCKED');
          else if (this.acceptWord('NOWAIT') === null && this.acceptWord('WAIT') !== null) this.expect(Tok.Number, 'a number');
          break;
        case 'LOCK':
          this.advance();
          this.expectWord('IN');
          this.expectWord('SHARE');
          this.expectWord('MODE');
          this.hazardFound('locking-clause', 'LOCK IN SHARE MODE');
          break;
        default:
          return;
      }
    }
  }

  private intoClause(): void {
    this.expectWord('INTO');
    this.hazardFound('select-into', 'INTO');
    if (this.acceptWord('OUTFILE', 'DUMPFILE') !== null) {
      this.into = 'file';
      this.expect(Tok.String, 'a file name');
      // CHARACTER SET x, FIELDS TERMINATED BY ..., LINES ...
      do this.expression(); while (this.acceptWord('SET') !== null);
      return;
    }
    this.into ??= 'variables';
    do {
      const t = this.peek();
      if (t.type === Tok.UserVariable) {
        this.advance();
        this.sessionChange('user-variable', userVariableName(this.text.slice(t.start, t.end)));
      } else {
        this.identifier(); // a local variable of a stored program
      }
    } while (this.accept(Tok.Comma));
  }

  // --- table references -----------------------------------------------------------------------

  /**
   * A table list (FROM, UPDATE, DELETE ... USING): the base tables named directly in it, each also
   * passed to `onTable` as soon as it is read, so tables are recorded in order of appearance.
   */
  tableReferences(onTable?: (table: TableFactor) => void): TableFactor[] {
    const factors: TableFactor[] = [];
    const push = (f: TableFactor): void => {
      factors.push(f);
      onTable?.(f);
    };
    do this.tableReference(push); while (this.accept(Tok.Comma));
    return factors;
  }

  private tableReference(push: (f: TableFactor) => void): void {
    if (this.isOp('{')) {
      this.advance();
      if (this.acceptWord('OJ') === null) this.fail('expected OJ');
      this.tableReference(push);
      this.expectOp('}');
      return;
    }
    this.tableFactor(push);
    for (;;) {
      if (this.joinKeyword()) {
        this.tableFactor(push);
      } else if (this.isWord('ON') && !this.isWord('DUPLICATE', 1)) {
        this.advance();
        this.expression();
      } else if (this.isWord('USING') && this.peek(1).type === Tok.LParen) {
        this.advance();
        this.skipGroup();
      } else {
        return;
      }
    }
  }

  private joinKeyword(): boolean {
    const t = this.peek();
    if (t.type !== Tok.Word) return false;
    switch (t.upper) {
      case 'JOIN': case 'STRAIGHT_JOIN':
        this.advance();
        return true;
      case 'INNER': case 'CROSS':
        this.advance();
        this.expectWord('JOIN');
        return true;
      case 'LEFT': case 'RIGHT':
        this.advance();
        this.acceptWord('OUTER');
        this.expectWord('JOIN');
        return true;
      case 'NATURAL':
        this.advance();
        if (this.acceptWord('LEFT', 'RIGHT') !== null) this.acceptWord('OUTER');
        else this.acceptWord('INNER');
        this.expectWord('JOIN');
        return true;
    }
    return false;
  }

  private tableFactor(push: (f: TableFactor) => void): void {
    const t = this.peek();
    if (t.type === Tok.Word && t.upper === 'LATERAL') {
      this.advance();
      this.derivedTable();
      return;
    }
    if (t.type === Tok.LParen) {
      // (query) alias, or a parenthesized table list such as (a JOIN b ON ...)
      if (this.attempt(() => this.derivedTable())) return;
      this.advance();
      do this.tableReference(push); while (this.accept(Tok.Comma));
      this.expect(Tok.RParen, ')');
      return;
    }
    if (t.type === Tok.Word && t.upper === 'JSON_TABLE' && this.peek(1).type === Tok.LParen) {
      this.advance();
      this.functions.add(null, 'json_table');
      this.group();
      this.alias();
      return;
    }
    const table = this.qualifiedName();
    if (this.acceptWord('PARTITION') !== null) this.skipGroup();
    if (this.isWord('FOR') && this.isWord('SYSTEM_TIME', 1)) {
      this.pos += 2;
      if (this.acceptWord('ALL') === null) {
        if (this.acceptWord('AS') !== null) this.expectWord('OF');
        else if (this.acceptWord('BETWEEN', 'FROM') === null) this.fail('expected AS OF, BETWEEN, FROM or ALL');
        this.expression();
      }
    }
    const alias = this.alias();
    // index hints, separated by blanks or by commas (a comma before anything else ends the table)
    for (;;) {
      if (this.peek().type === Tok.Comma && this.isIndexHint(1)) this.advance();
      else if (!this.isIndexHint(0)) break;
      this.advance();
      if (this.acceptWord('INDEX', 'KEY') === null) this.fail('expected INDEX or KEY');
      if (this.acceptWord('FOR') !== null && this.acceptWord('JOIN') === null) {
        if (this.acceptWord('ORDER', 'GROUP') === null) this.fail('expected JOIN, ORDER BY or GROUP BY');
        this.expectWord('BY');
      }
      this.skipGroup();
    }
    if (table.database === null && this.isCte(table.name)) return;
    push({ database: table.database, name: table.name, alias });
  }

  private isIndexHint(ahead: number): boolean {
    return (this.isWord('USE', ahead) || this.isWord('IGNORE', ahead) || this.isWord('FORCE', ahead))
      && (this.isWord('INDEX', ahead + 1) || this.isWord('KEY', ahead + 1));
  }

  private derivedTable(): void {
    this.expect(Tok.LParen, '(');
    this.queryExpression();
    this.expect(Tok.RParen, ')');
    this.alias();
    if (this.peek().type === Tok.LParen) this.skipGroup(); // column names
  }
}

/** The name of a user variable token: @x -> x, @'my var' -> my var. */
export function userVariableName(token: string): string {
  const body = token.slice(1);
  const q = body[0];
  if (q === "'" || q === '"' || q === '`') return body.slice(1, -1).replaceAll(q + q, q);
  return body;
}
