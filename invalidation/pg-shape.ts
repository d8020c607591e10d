// The shape of a statement text: the text with its numeric literals replaced by 0 and its string
// literals by empty ones ('', E'', B'', X'', N''). Texts that differ only in literal values
// (`... WHERE aid = 17` vs `... WHERE aid = 42`, `... WHERE v = 'a'` vs `'b'`) read and write the
// same tables and call the same functions, so they share one analysis: the parser runs once per
// shape, not once per text. What a literal's value can change is kept: a string naming a time
// ('now', 'today', ... : 'now'::timestamptz is the current time, see TIME_LITERALS) stays as it
// is, so do U&'' strings and E'' strings with a backslash (an escape may spell 'now'), strings
// continued on the next line ('no'<newline>'w' is 'now'), dollar quotes, quoted identifiers and
// comments. Anything unusual is left alone: a shape is only ever a cache key for the analysis,
// never sent to a server; texts whose analysis may depend on a literal (set_config('app.tenant',
// ...)) or whose shape the parser rejects (U&'..' UESCAPE '!' with the '!' emptied) are analysed
// as they are (PgCache.info).
//
// Assumes standard_conforming_strings = on (the parser does too); sessions without it are not
// analysed at all (see the session's classification).

/** Literal values that date/time input reads as a moment (some relative to now): kept in the shape. */
const TIME_WORDS = /now|today|tomorrow|yesterday|epoch|infinity/i;

const enum Ch {
  Quote = 0x27, // '
  DoubleQuote = 0x22, // "
  Dollar = 0x24, // $
  Minus = 0x2d, // -
  Slash = 0x2f, // /
  Star = 0x2a, // *
  Dot = 0x2e, // .
  Backslash = 0x5c, // \
  Newline = 0x0a,
  Ampersand = 0x26, // &
  Zero = 0x30,
  Nine = 0x39,
  Underscore = 0x5f,
}

function isDigit(c: number): boolean {
  return c >= Ch.Zero && c <= Ch.Nine;
}

function isIdentChar(c: number): boolean {
  return c >= 0x80 || CLASSES[c] === Class.Word || CLASSES[c] === Class.Digit || c === Ch.Dollar;
}

/**
 * What an ASCII character starts, for the scan's first test (from 0x80 on: a word): most
 * characters of a statement are letters and spaces, which one table look-up settles instead of
 * the chain of tests the rarer starts (quotes, comments, numbers) need.
 */
const enum Class {
  /** Spaces, operators, punctuation: stepped over. */
  Other,
  /** A letter or underscore: a keyword or identifier runs on to its end. */
  Word,
  Digit,
  /** A quote, a minus, a slash, a dollar or a dot: may start a literal, a comment or a number. */
  Special,
}

const CLASSES = ((): Uint8Array => {
  const classes = new Uint8Array(128);
  for (let c = 0x41; c <= 0x5a; c++) classes[c] = Class.Word;
  for (let c = 0x61; c <= 0x7a; c++) classes[c] = Class.Word;
  classes[Ch.Underscore] = Class.Word;
  for (let c = Ch.Zero; c <= Ch.Nine; c++) classes[c] = Class.Digit;
  for (const c of [Ch.Quote, Ch.DoubleQuote, Ch.Minus, Ch.Slash, Ch.Dollar, Ch.Dot]) classes[c] = Class.Special;
  return classes;
})();

/** Where the identifier characters from `i` on end. */
function identEnd(text: string, i: number, n: number): number {
  while (i < n && isIdentChar(text.charCodeAt(i))) i++;
  return i;
}

/** Returns the shape of `text`; the same string object when there is nothing to replace. */
export function statementShape(text: string): string {
  const n = text.length;
  let out: string | null = null;
  let copiedUpTo = 0;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    const cls = c >= 0x80 ? Class.Word : CLASSES[c]!;
    if (cls === Class.Other) {
      i++;
    } else if (cls === Class.Word) {
      i = identEnd(text, i + 1, n);
    } else if (c === Ch.Quote) {
      const end = stringLiteralsEnd(text, i);
      if (end > 0) {
        if (end - i > 2) {
          out = (out ?? '') + text.slice(copiedUpTo, i) + "''";
          copiedUpTo = end;
        }
        i = end;
      } else {
        i = -end;
      }
    } else if (c === Ch.DoubleQuote) {
      i = skipQuoted(text, i + 1, Ch.DoubleQuote, false);
    } else if (c === Ch.Minus && text.charCodeAt(i + 1) === Ch.Minus) {
      const end = text.indexOf('\n', i);
      i = end < 0 ? n : end + 1;
    } else if (c === Ch.Slash && text.charCodeAt(i + 1) === Ch.Star) {
      i = skipBlockComment(text, i + 2);
    } else if (c === Ch.Dollar && (i === 0 || !isIdentChar(text.charCodeAt(i - 1)))) {
      i = skipDollarQuoted(text, i);
    } else if ((cls === Class.Digit || (c === Ch.Dot && isDigit(text.charCodeAt(i + 1)))) && (i === 0 || !isIdentChar(text.charCodeAt(i - 1)))) {
      const end = numberEnd(text, i);
      if (end > 0 && !(end - i === 1 && c === Ch.Zero)) {
        out = (out ?? '') + text.slice(copiedUpTo, i) + '0';
        copiedUpTo = end;
      }
      i = identEnd(text, end > 0 ? end : i + 1, n);
    } else if (isIdentChar(c)) {
      i = identEnd(text, i + 1, n);
    } else {
      i++;
    }
  }
  if (out === null) return text;
  return out + text.slice(copiedUpTo);
}

/**
 * The string literal whose opening quote is at `quote`: its end when its value may be replaced,
 * or minus the end of what must stay as it is (the literal, or a run of literals continued on the
 * following lines).
 */
function stringLiteralsEnd(text: string, quote: number): number {
  const prefix = literalPrefix(text, quote);
  let end = skipQuoted(text, quote + 1, Ch.Quote, prefix === 'E');
  const body = text.slice(quote + 1, end - 1);
  let keep = prefix === 'U&' || (prefix === 'E' && body.includes('\\')) || TIME_WORDS.test(body);
  for (let next = continuation(text, end); next > 0; next = continuation(text, end)) {
    keep = true;
    end = skipQuoted(text, next + 1, Ch.Quote, prefix === 'E');
  }
  return keep ? -end : end;
}

/** What stands before a string's opening quote: E (escapes), U& (Unicode escapes), another letter (B, X, N) or nothing. */
function literalPrefix(text: string, quote: number): 'E' | 'U&' | 'other' | '' {
  const before = (at: number): number => (at >= 0 ? text.charCodeAt(at) : 0);
  const standsAlone = (at: number): boolean => at < 0 || !isIdentChar(before(at));
  const c = before(quote - 1) | 0x20;
  if (c === 0x65 && standsAlone(quote - 2)) return 'E';
  if ((c === 0x62 || c === 0x78 || c === 0x6e) && standsAlone(quote - 2)) return 'other';
  if (before(quote - 1) === Ch.Ampersand && (before(quote - 2) | 0x20) === 0x75 && standsAlone(quote - 3)) return 'U&';
  return '';
}

/**
 * Where a string literal ending at `end` continues: the quote of the next one, when only
 * whitespace and comments with a newline stand between them (the lexer joins them), else -1.
 */
function continuation(text: string, end: number): number {
  let newline = false;
  let i = end;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === Ch.Newline || c === 0x0d) {
      newline = true;
      i++;
    } else if (c === 0x20 || c === 0x09 || c === 0x0c) {
      i++;
    } else if (c === Ch.Minus && text.charCodeAt(i + 1) === Ch.Minus) {
      const lineEnd = text.indexOf('\n', i);
      i = lineEnd < 0 ? n : lineEnd;
    } else if (c === Ch.Slash && text.charCodeAt(i + 1) === Ch.Star) {
      i = skipBlockComment(text, i + 2);
    } else {
      break;
    }
  }
  return newline && text.charCodeAt(i) === Ch.Quote ? i : -1;
}

/** End of a numeric literal starting at `start`, or -1 when it runs into an identifier (0x1F, 1abc). */
function numberEnd(text: string, start: number): number {
  let i = start;
  const n = text.length;
  while (i < n && (isDigit(text.charCodeAt(i)) || text.charCodeAt(i) === Ch.Underscore)) i++;
  if (i < n && text.charCodeAt(i) === Ch.Dot && text.charCodeAt(i + 1) !== Ch.Dot) {
    i++;
    while (i < n && (isDigit(text.charCodeAt(i)) || text.charCodeAt(i) === Ch.Underscore)) i++;
  }
  if (i < n && (text.charCodeAt(i) | 0x20) === 0x65) {
    let j = i + 1;
    if (text[j] === '+' || text[j] === '-') j++;
    if (j < n && isDigit(text.charCodeAt(j))) {
      i = j;
      while (i < n && isDigit(text.charCodeAt(i))) i++;
    }
  }
  if (i < n && isIdentChar(text.charCodeAt(i))) return -1;
  return i;
}

function skipQuoted(text: string, i: number, quote: number, backslashEscapes: boolean): number {
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (backslashEscapes && c === Ch.Backslash) {
      i += 2;
    } else if (c === quote) {
      if (text.charCodeAt(i + 1) === quote) i += 2;
      else return i + 1;
    } else {
      i++;
    }
  }
  return n;
}

function skipBlockComment(text: string, i: number): number {
  // PostgreSQL block comments nest.
  let depth = 1;
  const n = text.length;
  while (i < n && depth > 0) {
    if (text.charCodeAt(i) === Ch.Slash && text.charCodeAt(i + 1) === Ch.Star) {
      depth++;
      i += 2;
    } else if (text.charCodeAt(i) === Ch.Star && text.charCodeAt(i + 1) === Ch.Slash) {
      depth--;
      i += 2;
    } else {
      i++;
    }
  }
  return i;
}

/** `$tag$ ... $tag$`; a `$` that opens no dollar quote (e.g. the parameter `$1`) is stepped over. */
function skipDollarQuoted(text: string, i: number): number {
  const m = /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(text.slice(i, i + 64));
  if (!m) {
    i++;
    while (i < text.length && isDigit(text.charCodeAt(i))) i++;
    return i;
  }
  const close = text.indexOf(m[0], i + m[0].length);
  return close < 0 ? text.length : close + m[0].length;
}
