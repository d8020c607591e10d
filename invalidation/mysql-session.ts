// SET, USE-like session statements and transaction control: what each changes in the session.

import { Tok } from './mysql-lexer.js';
import { userVariableName, type StatementParser } from './mysql-query.js';
import type { MysqlTransactionAction } from './mysql-analysis.js';
import type { Outcome } from './mysql-statement.js';

const SCOPES = ['GLOBAL', 'SESSION', 'LOCAL', 'PERSIST', 'PERSIST_ONLY'];

/** SET ...; `statement` analyzes the statement of SET STATEMENT ... FOR. */
export function set(p: StatementParser, statement: (p: StatementParser) => Outcome): Outcome {
  p.expectWord('SET');
  if (p.acceptWord('STATEMENT') !== null) {
    // SET STATEMENT var = value, ... FOR statement: the settings last for that statement only and
    // are part of its text, so of its cache key
    do {
      p.identifier(true);
      p.expectOp('=');
      setValue(p);
    } while (p.accept(Tok.Comma));
    p.expectWord('FOR');
    return statement(p);
  }
  const scoped = SCOPES.includes(p.peek().upper) && p.isWord('TRANSACTION', 1);
  if (p.isWord('TRANSACTION') || scoped) return setTransaction(p);
  if (p.isWord('PASSWORD') || (p.isWord('DEFAULT') && p.isWord('ROLE', 1))) { // privileges
    p.skipRest();
    p.writesUnlisted = true;
    return { command: 'SET', kind: 'ddl' };
  }
  if (p.acceptWord('ROLE') !== null) {
    const role = p.peek();
    p.skipRest();
    const none = role.type === Tok.Word && (role.upper === 'NONE' || role.upper === 'DEFAULT');
    p.sessionChange('role', none ? null : role.type === Tok.String ? p.text.slice(role.start + 1, role.end - 1) : role.name);
    return { command: 'SET ROLE', kind: 'session' };
  }
  do assignment(p); while (p.accept(Tok.Comma));
  return { command: 'SET', kind: 'session' };
}

function assignment(p: StatementParser): void {
  const t = p.peek();
  if (p.acceptWord('NAMES', 'CHARSET') !== null || acceptCharacterSet(p)) {
    p.advance(); // the character set, or DEFAULT
    if (p.acceptWord('COLLATE') !== null) p.advance();
    p.charsetChange();
    return;
  }
  if (t.type === Tok.UserVariable) {
    p.advance();
    p.expectOp('=', ':=');
    setValue(p);
    p.sessionChange('user-variable', userVariableName(p.text.slice(t.start, t.end)));
    return;
  }
  let scope = 'session';
  let setting: string;
  if (t.type === Tok.SystemVariable) {
    p.advance();
    const parts = p.text.slice(t.start + 2, t.end).toLowerCase().split('.');
    if (parts.length > 1 && SCOPES.includes(parts[0]!.toUpperCase())) scope = parts.shift()!;
    setting = parts.join('.');
  } else {
    scope = p.acceptWord(...SCOPES)?.toLowerCase() ?? scope;
    const names = [p.identifier(true)];
    while (p.peek().type === Tok.Dot) {
      p.advance();
      names.push(p.identifier(true));
    }
    setting = names.join('.').toLowerCase();
  }
  p.expectOp('=', ':=');
  setValue(p);
  p.sessionChange('variable', setting, scope === 'global' || scope === 'persist' || scope === 'persist_only');
}

/** A SET value: an expression, or ON (a clause keyword elsewhere). */
function setValue(p: StatementParser): void {
  p.acceptWord('ON');
  p.expression();
}

/** CHARACTER SET (two words), as in SET CHARACTER SET x and LOAD DATA ... CHARACTER SET x. */
export function acceptCharacterSet(p: StatementParser): boolean {
  if (!p.isWord('CHARACTER') || !p.isWord('SET', 1)) return false;
  p.pos += 2;
  return true;
}

/** SET [GLOBAL|SESSION] TRANSACTION ISOLATION LEVEL ... | READ ONLY | READ WRITE */
function setTransaction(p: StatementParser): Outcome {
  const global = p.acceptWord('GLOBAL') !== null;
  p.acceptWord('SESSION', 'LOCAL');
  p.expectWord('TRANSACTION');
  let isolation = false;
  let access = false;
  while (!p.atEnd()) {
    const t = p.advance();
    if (t.upper === 'ISOLATION') isolation = true;
    else if (t.upper === 'READ' && (p.isWord('ONLY') || p.isWord('WRITE'))) access = true;
  }
  if (isolation) p.sessionChange('variable', 'transaction_isolation', global);
  if (access) p.sessionChange('variable', 'transaction_read_only', global);
  return { command: 'SET TRANSACTION', kind: 'session' };
}

export function transaction(p: StatementParser): Outcome {
  const word = p.advance().upper;
  let action: MysqlTransactionAction;
  switch (word) {
    case 'BEGIN':
      if (p.isWord('NOT')) p.fail('compound statement');
      action = 'begin';
      break;
    case 'START':
      if (!p.isWord('TRANSACTION')) { // START SLAVE, START REPLICA, ...
        p.skipRest();
        return { command: 'START', kind: 'other' };
      }
      action = 'start';
      break;
    case 'COMMIT': action = 'commit'; break;
    case 'ROLLBACK':
      p.acceptWord('WORK');
      action = p.isWord('TO') ? 'rollback_to' : 'rollback';
      break;
    case 'SAVEPOINT': action = 'savepoint'; break;
    case 'RELEASE':
      p.expectWord('SAVEPOINT');
      action = 'release';
      break;
    default: { // XA
      const xa: Record<string, MysqlTransactionAction> = {
        START: 'xa_start', BEGIN: 'xa_start', END: 'xa_end', PREPARE: 'xa_prepare', COMMIT: 'xa_commit',
        ROLLBACK: 'xa_rollback', RECOVER: 'xa_recover',
      };
      action = xa[p.peek().upper] ?? p.fail('expected an XA command');
      // XA COMMIT may commit a transaction prepared earlier, even by another connection
      if (action === 'xa_commit') p.writesUnlisted = true;
    }
  }
  p.skipRest();
  return { command: word, kind: 'transaction', transaction: action };
}

