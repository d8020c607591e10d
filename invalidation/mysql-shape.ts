// The shape of a MySQL statement text: the text with its literals emptied. Texts that differ only
// in literal values (`... WHERE id = 17 AND name = 'bob'` vs `... WHERE id = 42 AND name = 'al'`)
// read and write the same tables and call the same functions, so they share one analysis and one
// verdict: a literal never seen before costs neither a parse nor a probe.
//
// Each literal keeps its kind, so nothing that changes how the text reads is merged: decimal
// numbers become 0 (.0 when written with a leading dot), hex and bit numbers 0x0 and 0b0, strings
// '' or "" with their prefix (N'', X'', B''; a charset introducer or a DATE/TIME/TIMESTAMP before
// one stays as written). Left exactly as they are: identifiers (`x`, and "x" under ANSI_QUOTES:
// the dialect decides), strings the analysis reads as names (an alias after AS, a role after
// ROLE), comments, executable-comment versions, placeholders and variables. The scanner is the one
// the analysis tokenizes with (mysql-lexer.ts), so a shape and its text split alike.
//
// A shape is only ever a cache key for the analysis, never sent to a server. Its sample
// (mysqlStatementSample) marks every emptied literal with `?`: what /stats and the slow-query log
// show, with no literal value in it.

import { isIdentChar, MysqlScanner, Tok, type MysqlDialect } from './mysql-lexer.js';

const enum Ch {
  DoubleQuote = 0x22, Quote = 0x27, Dot = 0x2e,
}

/** Returns the shape of `text`; the same string object when there is nothing to replace. */
export function mysqlStatementShape(text: string, dialect: MysqlDialect = {}): string {
  return rewriteLiterals(text, dialect, false);
}

/**
 * The shape with each emptied literal shown as `?` (`WHERE id = ? AND name = ?`): the same for
 * every text of one shape, and free of the values sent.
 */
export function mysqlStatementSample(text: string, dialect: MysqlDialect = {}): string {
  return rewriteLiterals(text, dialect, true);
}

function rewriteLiterals(text: string, dialect: MysqlDialect, mark: boolean): string {
  const scanner = new MysqlScanner(text, dialect);
  let out: string[] | null = null;
  let copiedUpTo = 0;
  // The code token before a string says whether it names something (AS 'alias', ROLE 'r').
  let afterNameKeyword = false;
  for (;;) {
    const type = scanner.next();
    if (type === Tok.End || type === Tok.Error) break;
    if (type === Tok.Comment || type === Tok.ExecOpen || type === Tok.ExecClose) continue;
    const { start, end } = scanner;
    const named = afterNameKeyword;
    afterNameKeyword = type === Tok.Word && isNameKeyword(text, start, end);
    let empty: string;
    if (type === Tok.Number) {
      // .5 becomes .0: a 0 alone could join a '.' before it into a number of its own
      empty = text.charCodeAt(start) === Ch.Dot ? '.0' : '0';
      // 1.5abc scans as 1.5 then abc, but 0abc would scan as one name, and .5.5 as two numbers,
      // but 0.0 as one: leave such texts alone
      if (end < text.length && (isIdentChar(text.charCodeAt(end)) || text.charCodeAt(end) === Ch.Dot)) continue;
    } else if (type === Tok.HexNumber) {
      empty = text.slice(start, start + 2) + '0';
    } else if (type === Tok.String && !named) {
      // the opening quote ends the prefix (N, X, B); the string closes with the same quote
      const open = text.charCodeAt(start) === Ch.Quote || text.charCodeAt(start) === Ch.DoubleQuote ? start : start + 1;
      empty = text.slice(start, open + 1) + text[open];
    } else {
      continue;
    }
    const replacement = mark ? '?' : empty;
    if (end - start === replacement.length && text.startsWith(replacement, start)) continue;
    out ??= [];
    out.push(text.slice(copiedUpTo, start), replacement);
    copiedUpTo = end;
  }
  if (out === null) return text;
  out.push(text.slice(copiedUpTo));
  return out.join('');
}

/** AS or ROLE, in any case: the string after it is a name (an alias, a role), not a value. */
function isNameKeyword(text: string, start: number, end: number): boolean {
  return wordIs(text, start, end, 'as') || wordIs(text, start, end, 'role');
}

/** text[start, end) is `lower` in any case (ASCII letters), compared without a copy: most words are not. */
function wordIs(text: string, start: number, end: number, lower: string): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) if ((text.charCodeAt(start + i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}
