// Where one statement of a multi-statement text ends.

import { Tok, type Tokens } from './mysql-lexer.js';
import { NotUnderstood } from './mysql-cursor.js';
import { StatementParser } from './mysql-query.js';
import { objectWord } from './mysql-ddl.js';

const COMPOUND_STARTS = new Set(['IF', 'CASE', 'WHILE', 'LOOP', 'REPEAT', 'DECLARE', 'FOR']);
const ROUTINE_OBJECTS = new Set(['PROCEDURE', 'FUNCTION', 'TRIGGER', 'EVENT', 'PACKAGE']);

/**
 * Index of the token that ends the statement starting at tokens[start]: its semicolon or the End
 * token. A stored program body (CREATE PROCEDURE ... BEGIN ...; ...; END) and a compound statement
 * (BEGIN NOT ATOMIC ... END, IF ... END IF) contain semicolons of their own.
 */
export function statementEnd(text: string, tokens: Tokens, start: number): number {
  if (isCompoundStart(text, tokens, start)) return compoundEnd(tokens, start);
  let i = start;
  while (tokens.type(i) !== Tok.Semicolon && tokens.type(i) !== Tok.End) i++;
  return i;
}

function isCompoundStart(text: string, tokens: Tokens, start: number): boolean {
  const last = tokens.count - 1;
  const type = tokens.type(start);
  const upper = tokens.upper(start);
  const next = Math.min(start + 1, last);
  if (upper === 'BEGIN') return tokens.upper(next) === 'NOT';
  if (COMPOUND_STARTS.has(upper)) return true;
  if ((type === Tok.Word || type === Tok.QuotedIdent) && tokens.type(next) === Tok.Operator
    && text.slice(tokens.start(next), tokens.end(next)) === ':') return true;
  if (upper !== 'CREATE' && upper !== 'ALTER') return false;
  const p = new StatementParser(text, tokens, start + 1, last, false);
  try {
    return ROUTINE_OBJECTS.has(objectWord(p).object);
  } catch (err) {
    if (err instanceof NotUnderstood) return false;
    throw err;
  }
}

// BEGIN ... END and CASE ... END [CASE] nest; END IF, END LOOP, END WHILE, END REPEAT and END FOR
// close blocks that need no counting. A text whose blocks never close is one statement to its end.
function compoundEnd(tokens: Tokens, start: number): number {
  let depth = 0;
  for (let i = start; ; i++) {
    const type = tokens.type(i);
    if (type === Tok.End || (type === Tok.Semicolon && depth === 0)) return i;
    const upper = tokens.upper(i);
    if (upper === 'BEGIN' || upper === 'CASE') depth++;
    else if (upper === 'END') {
      const next = tokens.upper(i + 1);
      if (['IF', 'LOOP', 'WHILE', 'REPEAT', 'FOR'].includes(next)) i++;
      else depth = Math.max(0, depth - 1);
      if (next === 'CASE') i++;
    }
  }
}
