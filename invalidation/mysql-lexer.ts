// MySQL/MariaDB lexical rules: a scanner that walks a statement text token by token without
// allocating (used as is by mysql-shape.ts), and tokenize(), which collects the tokens the
// analysis needs. Both share one set of rules, so a shape and its text always split alike.
//
// Rules followed (MySQL 8 / MariaDB 10.11 manuals, "Comments", "String Literals", "Identifiers"):
// `ident` with `` doubled; '...' and "..." strings with '' / "" doubled and backslash escapes unless
// NO_BACKSLASH_ESCAPES; "..." is an identifier under ANSI_QUOTES; `-- ` needs whitespace or a
// control character after the dashes; `#` to end of line; /* */ does not nest; /*! ... */ and
// /*M! ... */ (optionally with a version number) are executable comments whose content is code;
// identifiers may start with a digit unless they are all digits.
//
// Executable comments, as checked on MariaDB 10.11: a comment that runs is lexed like any code (a
// comment or a quoted */ inside it does not end it); one that does not run ends at the first */.
// With the server's version known, /*!NNNNN[N] and /*M!NNNNNN run exactly when the server runs
// them: /*M! on MariaDB only; up to six version digits; MariaDB runs five-digit versions only below
// 50700 in /*! (MySQL 5.7 and later specific code), other versions up to its own. Without the
// version every executable comment counts as code, and a comment or a quoted */ inside one makes
// the text unreadable (the two readings would differ).

/** Server and session facts that change how a text splits into tokens. */
export interface MysqlDialect {
  /** sql_mode NO_BACKSLASH_ESCAPES: a backslash in a string is an ordinary character. */
  readonly noBackslashEscapes?: boolean;
  /** sql_mode ANSI_QUOTES: "x" is an identifier, not a string. */
  readonly ansiQuotes?: boolean;
  /** The server's version as major * 10000 + minor * 100 + patch (see serverDialect). */
  readonly serverVersion?: number;
  /** The server is MariaDB (runs /*M! comments). */
  readonly mariadb?: boolean;
}

/**
 * The dialect facts of a server version string as the handshake carries it, e.g.
 * '8.0.36' or '5.5.5-10.11.19-MariaDB-0+deb12u1' (MariaDB before 11 prefixes 5.5.5-).
 */
export function serverDialect(version: string): Pick<MysqlDialect, 'serverVersion' | 'mariadb'> {
  const mariadb = /mariadb/i.test(version);
  const m = /^(?:5\.5\.5-)?(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!m) return { mariadb };
  return { serverVersion: Number(m[1]) * 10000 + Number(m[2]) * 100 + Number(m[3]), mariadb };
}

export const enum Tok {
  Word,          // unquoted identifier or keyword
  QuotedIdent,   // `x`, or "x" under ANSI_QUOTES
  String,        // 'x', "x", N'x', X'0F', B'01'
  Number,        // 12, 1.5, .5, 1e-3
  HexNumber,     // 0x1F, 0b101
  UserVariable,  // @x, @'x', @`x`
  SystemVariable, // @@x, @@session.x
  Placeholder,   // ?
  LParen,
  RParen,
  Comma,
  Semicolon,
  Dot,
  Operator,      // anything else: = < <=> := -> ...
  Comment,       // -- x, # x, /* x */ (also /*+ hints */)
  ExecOpen,      // /*!40101 or /*M!100100: what follows up to ExecClose is code
  ExecClose,     // the */ that ends an executable comment
  Error,         // unterminated string, quoted identifier or comment
  End,
}

const enum Ch {
  Tab = 0x09, Newline = 0x0a, Space = 0x20, Bang = 0x21, DoubleQuote = 0x22, Hash = 0x23, Dollar = 0x24,
  Quote = 0x27, LParen = 0x28, RParen = 0x29, Star = 0x2a, Plus = 0x2b, Comma = 0x2c, Minus = 0x2d, Dot = 0x2e,
  Slash = 0x2f, Zero = 0x30, One = 0x31, Nine = 0x39, Colon = 0x3a, Semicolon = 0x3b, Lt = 0x3c, Eq = 0x3d, Gt = 0x3e,
  Question = 0x3f, At = 0x40, UpperM = 0x4d, Backslash = 0x5c, Underscore = 0x5f, Backtick = 0x60, Pipe = 0x7c, Amp = 0x26,
}

function isDigit(c: number): boolean {
  return c >= Ch.Zero && c <= Ch.Nine;
}

/** Characters of an unquoted identifier (MySQL: [0-9a-zA-Z$_] and U+0080 and above). */
export function isIdentChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || isDigit(c) || c === Ch.Underscore || c === Ch.Dollar || c >= 0x80;
}

function isHexDigit(c: number): boolean {
  return isDigit(c) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}

/**
 * A cursor over a text: next() moves to the following token and sets type/start/end. Whitespace
 * is skipped; comments and executable-comment markers are reported (callers may skip them).
 */
export class MysqlScanner {
  type: Tok = Tok.End;
  start = 0;
  end = 0;
  #inExecComment = false;
  // the server's version is known, so an executable comment entered is one the server runs
  readonly #execCertain: boolean;
  readonly #text: string;
  readonly #backslashEscapes: boolean;
  readonly #ansiQuotes: boolean;
  readonly #serverVersion: number | undefined;
  readonly #mariadb: boolean;

  constructor(text: string, dialect: MysqlDialect = {}) {
    this.#text = text;
    this.#backslashEscapes = !dialect.noBackslashEscapes;
    this.#ansiQuotes = dialect.ansiQuotes === true;
    this.#serverVersion = dialect.serverVersion;
    this.#mariadb = dialect.mariadb === true;
    this.#execCertain = dialect.serverVersion !== undefined;
  }

  next(): Tok {
    const text = this.#text;
    const n = text.length;
    let i = this.end;
    while (i < n && text.charCodeAt(i) <= Ch.Space) i++;
    this.start = i;
    if (i >= n) return this.#set(Tok.End, n);
    const c = text.charCodeAt(i);
    const c1 = i + 1 < n ? text.charCodeAt(i + 1) : 0;
    switch (c) {
      case Ch.Quote: return this.#quoted(i + 1, Ch.Quote, Tok.String, this.#backslashEscapes);
      case Ch.DoubleQuote:
        return this.#ansiQuotes ? this.#quoted(i + 1, Ch.DoubleQuote, Tok.QuotedIdent, false)
          : this.#quoted(i + 1, Ch.DoubleQuote, Tok.String, this.#backslashEscapes);
      case Ch.Backtick: return this.#quoted(i + 1, Ch.Backtick, Tok.QuotedIdent, false);
      case Ch.Hash: return this.#lineComment(i);
      case Ch.Minus:
        if (c1 === Ch.Minus && (i + 2 >= n || text.charCodeAt(i + 2) <= Ch.Space)) return this.#lineComment(i);
        if (c1 === Ch.Gt) return this.#set(Tok.Operator, text.charCodeAt(i + 2) === Ch.Gt ? i + 3 : i + 2); // -> ->>
        return this.#set(Tok.Operator, i + 1);
      case Ch.Slash:
        if (c1 === Ch.Star) return this.#blockComment(i);
        return this.#set(Tok.Operator, i + 1);
      case Ch.Star:
        if (c1 === Ch.Slash && this.#inExecComment) {
          this.#inExecComment = false;
          return this.#set(Tok.ExecClose, i + 2);
        }
        return this.#set(Tok.Operator, i + 1);
      case Ch.LParen: return this.#set(Tok.LParen, i + 1);
      case Ch.RParen: return this.#set(Tok.RParen, i + 1);
      case Ch.Comma: return this.#set(Tok.Comma, i + 1);
      case Ch.Semicolon: return this.#set(Tok.Semicolon, i + 1);
      case Ch.Question: return this.#set(Tok.Placeholder, i + 1);
      case Ch.At: return this.#variable(i);
      case Ch.Dot:
        if (isDigit(c1) && !this.#followsName(i)) return this.#number(i);
        return this.#set(Tok.Dot, i + 1);
      case Ch.Colon: return this.#set(Tok.Operator, c1 === Ch.Eq ? i + 2 : i + 1);
      case Ch.Lt:
        if (c1 === Ch.Eq) return this.#set(Tok.Operator, text.charCodeAt(i + 2) === Ch.Gt ? i + 3 : i + 2); // <= <=>
        return this.#set(Tok.Operator, c1 === Ch.Gt || c1 === Ch.Lt ? i + 2 : i + 1);
      case Ch.Gt: return this.#set(Tok.Operator, c1 === Ch.Eq || c1 === Ch.Gt ? i + 2 : i + 1);
      case Ch.Bang: return this.#set(Tok.Operator, c1 === Ch.Eq ? i + 2 : i + 1);
      case Ch.Pipe: return this.#set(Tok.Operator, c1 === Ch.Pipe ? i + 2 : i + 1);
      case Ch.Amp: return this.#set(Tok.Operator, c1 === Ch.Amp ? i + 2 : i + 1);
    }
    if (isIdentChar(c)) return this.#wordOrNumber(i);
    return this.#set(Tok.Operator, i + 1);
  }

  #set(type: Tok, end: number): Tok {
    this.type = type;
    this.end = end;
    return type;
  }

  /** A '.' right after a name or `)` separates (t.5 is column 5 of t), elsewhere it starts a number (.5). */
  #followsName(i: number): boolean {
    const prev = i > 0 ? this.#text.charCodeAt(i - 1) : 0;
    return isIdentChar(prev) || prev === Ch.Backtick || prev === Ch.RParen || prev === Ch.DoubleQuote;
  }

  #quoted(i: number, quote: number, type: Tok, backslashEscapes: boolean): Tok {
    const text = this.#text;
    const n = text.length;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (backslashEscapes && c === Ch.Backslash) {
        i += 2;
      } else if (c === quote) {
        if (text.charCodeAt(i + 1) !== quote) {
          if (this.#inExecComment && !this.#execCertain && text.slice(this.start, i).includes('*/')) return this.#set(Tok.Error, n);
          return this.#set(type, i + 1);
        }
        i += 2;
      } else {
        i++;
      }
    }
    return this.#set(Tok.Error, n);
  }

  #lineComment(i: number): Tok {
    if (this.#inExecComment && !this.#execCertain) return this.#set(Tok.Error, this.#text.length);
    const end = this.#text.indexOf('\n', i);
    return this.#set(Tok.Comment, end < 0 ? this.#text.length : end + 1);
  }

  #blockComment(i: number): Tok {
    const text = this.#text;
    // /*!version or /*M!version: the comment's content is executed by the server
    const bang = text.charCodeAt(i + 2) === Ch.Bang ? i + 3
      : text.charCodeAt(i + 2) === Ch.UpperM && text.charCodeAt(i + 3) === Ch.Bang ? i + 4 : -1;
    if (bang > 0) {
      // nesting an executable comment or a comment inside one has no reliable meaning
      if (this.#inExecComment) return this.#set(Tok.Error, text.length);
      let j = bang;
      while (j < text.length && j - bang < 6 && isDigit(text.charCodeAt(j))) j++;
      if (!this.#runsExecComment(bang === i + 4, text.slice(bang, j))) return this.#plainComment(i);
      this.#inExecComment = true;
      return this.#set(Tok.ExecOpen, j);
    }
    if (this.#inExecComment && !this.#execCertain) return this.#set(Tok.Error, text.length);
    return this.#plainComment(i);
  }

  /** Whether the server runs an executable comment; true when its version is not known. */
  #runsExecComment(mariadbOnly: boolean, version: string): boolean {
    if (this.#serverVersion === undefined) return true;
    if (mariadbOnly && !this.#mariadb) return false;
    if (version.length === 0) return true;
    if (this.#mariadb && !mariadbOnly && version.length === 5) return Number(version) < 50700;
    return Number(version) <= this.#serverVersion;
  }

  #plainComment(i: number): Tok {
    const text = this.#text;
    const close = text.indexOf('*/', i + 2);
    return close < 0 ? this.#set(Tok.Error, text.length) : this.#set(Tok.Comment, close + 2);
  }

  #variable(i: number): Tok {
    const text = this.#text;
    if (text.charCodeAt(i + 1) === Ch.At) {
      // @@name, @@session.name, @@global.name
      let j = i + 2;
      while (j < text.length && isIdentChar(text.charCodeAt(j))) j++;
      if (text.charCodeAt(j) === Ch.Dot && isIdentChar(text.charCodeAt(j + 1))) {
        j++;
        while (j < text.length && isIdentChar(text.charCodeAt(j))) j++;
      }
      return this.#set(j > i + 2 ? Tok.SystemVariable : Tok.Operator, j);
    }
    const c1 = text.charCodeAt(i + 1);
    if (c1 === Ch.Quote || c1 === Ch.DoubleQuote || c1 === Ch.Backtick) {
      return this.#quoted(i + 2, c1, Tok.UserVariable, c1 !== Ch.Backtick && this.#backslashEscapes);
    }
    let j = i + 1;
    // user variable names may also contain '.' (@a.b is one variable)
    while (j < text.length && (isIdentChar(text.charCodeAt(j)) || text.charCodeAt(j) === Ch.Dot)) j++;
    return this.#set(j > i + 1 ? Tok.UserVariable : Tok.Operator, j);
  }

  #wordOrNumber(i: number): Tok {
    const text = this.#text;
    const n = text.length;
    const c = text.charCodeAt(i);
    // N'x' (national), X'0F' (hex), B'01' (bit) string literals
    const lower = c | 0x20;
    if ((lower === 0x6e || lower === 0x78 || lower === 0x62) && text.charCodeAt(i + 1) === Ch.Quote) {
      return this.#quoted(i + 2, Ch.Quote, Tok.String, lower === 0x6e && this.#backslashEscapes);
    }
    let j = i;
    while (j < n && isIdentChar(text.charCodeAt(j))) j++;
    if (!isDigit(c)) return this.#set(Tok.Word, j);
    // a run that starts with a digit: a number, or an identifier such as 1abc
    if (c === Ch.Zero && j - i > 2) {
      const kind = text.charCodeAt(i + 1);
      if (kind === 0x78 && allMatch(text, i + 2, j, isHexDigit)) return this.#set(Tok.HexNumber, j); // 0x1F
      if (kind === 0x62 && allMatch(text, i + 2, j, (d) => d === Ch.Zero || d === Ch.One)) return this.#set(Tok.HexNumber, j); // 0b101
    }
    let digits = i;
    while (digits < j && isDigit(text.charCodeAt(digits))) digits++;
    if (digits === j) return this.#number(i);
    // 1e5 and 1e+5 are numbers; 1e, 1ea are identifiers
    if ((text.charCodeAt(digits) | 0x20) === 0x65) {
      if (digits + 1 < j && allMatch(text, digits + 1, j, isDigit)) return this.#set(Tok.Number, j);
      const sign = text.charCodeAt(digits + 1);
      if (digits + 1 === j && (sign === Ch.Plus || sign === Ch.Minus) && isDigit(text.charCodeAt(digits + 2))) return this.#number(i);
    }
    return this.#set(Tok.Word, j);
  }

  /** A decimal number starting at i (digits, optional fraction, optional exponent). */
  #number(i: number): Tok {
    const text = this.#text;
    const n = text.length;
    while (i < n && isDigit(text.charCodeAt(i))) i++;
    if (text.charCodeAt(i) === Ch.Dot) {
      i++;
      while (i < n && isDigit(text.charCodeAt(i))) i++;
    }
    if ((text.charCodeAt(i) | 0x20) === 0x65) {
      let j = i + 1;
      if (text.charCodeAt(j) === Ch.Plus || text.charCodeAt(j) === Ch.Minus) j++;
      if (isDigit(text.charCodeAt(j))) {
        i = j;
        while (i < n && isDigit(text.charCodeAt(i))) i++;
      }
    }
    return this.#set(Tok.Number, i);
  }
}

function allMatch(text: string, from: number, to: number, test: (c: number) => boolean): boolean {
  for (let k = from; k < to; k++) if (!test(text.charCodeAt(k))) return false;
  return true;
}

/** A view of one token. `upper` is set for words (keyword matching); `name` for identifiers. */
export interface Token {
  readonly type: Tok;
  readonly start: number;
  readonly end: number;
  /** Words: the word in upper case; other tokens: the empty string. */
  readonly upper: string;
  /** Words and quoted identifiers: the identifier as the server sees it (quotes removed). */
  readonly name: string;
}

/** Thrown when a text cannot be split into tokens (unterminated quote or comment). */
export class MysqlLexError extends Error {
  readonly code = 'MYSQL_LEX_ERROR';
  constructor(message: string, readonly position: number) {
    super(message);
    this.name = 'MysqlLexError';
  }
}

/**
 * The code tokens of a text, kept as parallel typed arrays: a bulk INSERT has hundreds of thousands
 * of tokens, and an object kept per token costs more than scanning them. Only words and quoted
 * names carry strings. The last token is End.
 */
export class Tokens {
  count = 0;
  #types = new Uint8Array(64);
  #starts = new Int32Array(64);
  #ends = new Int32Array(64);
  readonly #uppers = new Map<number, string>();
  readonly #names = new Map<number, string>();

  constructor(readonly text: string) {}

  type(i: number): Tok {
    return this.#types[i]!;
  }

  start(i: number): number {
    return this.#starts[i]!;
  }

  end(i: number): number {
    return this.#ends[i]!;
  }

  /** The upper-case word at i, or '' when token i is not a word. */
  upper(i: number): string {
    return this.#uppers.get(i) ?? '';
  }

  /** The identifier at i (word or quoted name), or ''. */
  name(i: number): string {
    return this.#names.get(i) ?? '';
  }

  /** A short-lived view of token i. */
  at(i: number): Token {
    return { type: this.type(i), start: this.start(i), end: this.end(i), upper: this.upper(i), name: this.name(i) };
  }

  push(type: Tok, start: number, end: number): void {
    const i = this.count;
    if (i === this.#types.length) {
      this.#types = grow(this.#types, new Uint8Array(i * 2));
      this.#starts = grow(this.#starts, new Int32Array(i * 2));
      this.#ends = grow(this.#ends, new Int32Array(i * 2));
    }
    this.#types[i] = type;
    this.#starts[i] = start;
    this.#ends[i] = end;
    if (type === Tok.Word) {
      const name = this.text.slice(start, end);
      this.#names.set(i, name);
      this.#uppers.set(i, name.toUpperCase());
    } else if (type === Tok.QuotedIdent) {
      const quote = this.text[start]!;
      this.#names.set(i, this.text.slice(start + 1, end - 1).replaceAll(quote + quote, quote));
    }
    this.count = i + 1;
  }
}

function grow<T extends Uint8Array | Int32Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

/**
 * The code tokens of a text: comments dropped, executable comments opened (their content is
 * code), ending with one End token.
 */
export function tokenize(text: string, dialect: MysqlDialect = {}): Tokens {
  const scanner = new MysqlScanner(text, dialect);
  const tokens = new Tokens(text);
  for (;;) {
    const type = scanner.next();
    if (type === Tok.Comment || type === Tok.ExecOpen || type === Tok.ExecClose) continue;
    if (type === Tok.Error) throw new MysqlLexError('unterminated quote or comment', scanner.start);
    tokens.push(type, scanner.start, scanner.end);
    if (type === Tok.End) return tokens;
  }
}
