// The shape of a MySQL statement text: the text with its decimal number literals replaced by 0
// (.0 for those written with a leading dot).
// Texts that differ only in numbers (`... WHERE id = 17` vs `... WHERE id = 42`) read and write the
// same tables and call the same functions, so they share one analysis. The scanner is the one the
// analysis tokenizes with (mysql-lexer.ts), so strings, quoted names, comments, the version numbers
// of executable comments and hex/bit literals are left exactly as they are. A shape is only ever a
// cache key for the analysis, never sent to a server.

import { isIdentChar, MysqlScanner, Tok, type MysqlDialect } from './mysql-lexer.js';

/** Returns the shape of `text`; the same string object when there is nothing to replace. */
export function mysqlStatementShape(text: string, dialect: MysqlDialect = {}): string {
  const scanner = new MysqlScanner(text, dialect);
  let out: string[] | null = null;
  let copiedUpTo = 0;
  for (;;) {
    const type = scanner.next();
    if (type === Tok.End || type === Tok.Error) break;
    if (type !== Tok.Number) continue;
    const { start, end } = scanner;
    // .5 becomes .0: a 0 alone could join a '.' before it into a number of its own
    const zero = text.charCodeAt(start) === 0x2e ? '.0' : '0';
    if (end - start === zero.length && text.startsWith(zero, start)) continue;
    // 1.5abc scans as 1.5 then abc, but 0abc would scan as one name, and .5.5 as two numbers, but
    // 0.0 as one: leave such texts alone
    if (end < text.length && (isIdentChar(text.charCodeAt(end)) || text.charCodeAt(end) === 0x2e)) continue;
    out ??= [];
    out.push(text.slice(copiedUpTo, start), zero);
    copiedUpTo = end;
  }
  if (out === null) return text;
  out.push(text.slice(copiedUpTo));
  return out.join('');
}
