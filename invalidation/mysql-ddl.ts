// DDL: CREATE, ALTER, DROP and RENAME. Any DDL invalidates everything (writesUnlisted); the tables
// it names are reported too, and the tables a CREATE TABLE ... SELECT or a view reads.

import { Tok } from './mysql-lexer.js';
import type { StatementParser } from './mysql-query.js';
import type { MysqlQualifiedName } from './mysql-analysis.js';
import type { Outcome } from './mysql-statement.js';

/** The words between CREATE/ALTER and the kind of object; returns the object word. */
export function objectWord(p: StatementParser): { object: string; temporary: boolean } {
  let temporary = false;
  for (;;) {
    if (p.acceptWord('OR') !== null) p.expectWord('REPLACE');
    else if (p.acceptWord('DEFINER') !== null) {
      p.expectOp('=');
      if (p.acceptWord('CURRENT_USER') !== null) {
        if (p.peek().type === Tok.LParen) p.skipGroup();
      } else {
        p.advance(); // user
        if (p.peek().type === Tok.UserVariable) p.advance(); // @host
      }
    } else if (p.acceptWord('ALGORITHM') !== null) {
      p.expectOp('=');
      p.advance();
    } else if (p.acceptWord('SQL') !== null) {
      p.expectWord('SECURITY');
      p.advance();
    } else if (p.acceptWord('TEMPORARY') !== null) temporary = true;
    else if (p.acceptWord('AGGREGATE', 'UNIQUE', 'FULLTEXT', 'SPATIAL', 'ONLINE', 'OFFLINE', 'IGNORE',
      'EDITIONABLE', 'NONEDITIONABLE') === null) break;
  }
  const t = p.advance();
  if (t.type !== Tok.Word) p.fail('expected the kind of object');
  return { object: t.upper, temporary };
}

function ifExists(p: StatementParser, not: boolean): void {
  if (p.acceptWord('IF') === null) return;
  if (not) p.expectWord('NOT');
  p.expectWord('EXISTS');
}

export function create(p: StatementParser): Outcome {
  p.advance();
  const { object, temporary } = objectWord(p);
  switch (object) {
    case 'TABLE': {
      ifExists(p, true);
      const table = p.qualifiedName();
      p.writeTable(table);
      // CREATE TABLE ... [AS] SELECT reads; anything else here only shapes the new table
      if (!p.attempt(() => createTableRest(p))) p.skipRest();
      if (temporary) {
        p.sessionChange('temporary-table', table.name);
        return { command: 'CREATE TEMPORARY TABLE', kind: 'session' };
      }
      break;
    }
    case 'VIEW':
      ifExists(p, true);
      p.writeTable(p.qualifiedName());
      if (p.peek().type === Tok.LParen) p.skipGroup();
      p.expectWord('AS');
      if (!p.attempt(() => viewQuery(p))) p.skipRest();
      break;
    case 'INDEX':
      ifExists(p, true);
      p.identifier(true);
      while (!p.atEnd() && !p.isWord('ON')) p.advance(); // USING BTREE
      p.expectWord('ON');
      p.writeTable(p.qualifiedName());
      break;
    case 'SEQUENCE':
      ifExists(p, true);
      p.writeTable(p.qualifiedName());
      break;
    case 'TRIGGER':
      ifExists(p, true);
      p.qualifiedName();
      while (!p.atEnd() && !p.isWord('ON')) p.advance(); // BEFORE|AFTER INSERT|UPDATE|DELETE
      p.expectWord('ON');
      p.writeTable(p.qualifiedName());
      break;
  }
  p.skipRest();
  p.writesUnlisted = true;
  return { command: `CREATE ${object}`, kind: 'ddl' };
}

function createTableRest(p: StatementParser): void {
  while (!p.atEnd()) {
    const t = p.peek();
    if (t.type === Tok.LParen) {
      const inner = p.peek(1);
      if (inner.type === Tok.Word && (inner.upper === 'SELECT' || inner.upper === 'WITH')) p.group();
      else p.skipGroup();
    } else if (t.type === Tok.Word && (t.upper === 'SELECT' || (t.upper === 'WITH' && !p.isWord('SYSTEM', 1)))) {
      p.queryExpression();
    } else {
      p.advance();
    }
  }
}

function viewQuery(p: StatementParser): void {
  p.queryExpression();
  if (p.acceptWord('WITH') !== null) {
    p.acceptWord('CASCADED', 'LOCAL');
    p.expectWord('CHECK');
    p.expectWord('OPTION');
  }
  if (!p.atEnd()) p.fail('unexpected text after the view');
}

export function alter(p: StatementParser): Outcome {
  p.advance();
  const { object } = objectWord(p);
  if (object === 'TABLE' || object === 'VIEW' || object === 'SEQUENCE') {
    ifExists(p, false);
    p.writeTable(p.qualifiedName());
    // ALTER TABLE t RENAME [TO|AS] u: the new name changes too
    let depth = 0;
    while (object === 'TABLE' && !p.atEnd()) {
      const t = p.advance();
      if (t.type === Tok.LParen) depth++;
      else if (t.type === Tok.RParen) depth--;
      else if (depth === 0 && t.upper === 'RENAME' && !['COLUMN', 'INDEX', 'KEY'].includes(p.peek().upper)) {
        p.acceptWord('TO', 'AS');
        p.writeTable(p.qualifiedName());
      }
    }
  }
  p.skipRest();
  p.writesUnlisted = true;
  return { command: `ALTER ${object}`, kind: 'ddl' };
}

export function drop(p: StatementParser): Outcome {
  p.advance();
  if (p.acceptWord('PREPARE') !== null) {
    p.skipRest();
    return { command: 'DEALLOCATE', kind: 'other' };
  }
  const temporary = p.acceptWord('TEMPORARY') !== null;
  const object = p.advance().upper;
  if (['TABLE', 'TABLES', 'VIEW', 'SEQUENCE'].includes(object)) {
    ifExists(p, false);
    const tables: MysqlQualifiedName[] = [];
    do tables.push(p.qualifiedName()); while (p.accept(Tok.Comma));
    tables.forEach((t) => p.writeTable(t));
    if (temporary) {
      p.skipRest();
      tables.forEach((t) => p.sessionChange('temporary-table', t.name));
      return { command: 'DROP TEMPORARY TABLE', kind: 'session' };
    }
  } else if (object === 'INDEX') {
    p.acceptWord('ONLINE', 'OFFLINE');
    ifExists(p, false);
    p.identifier(true);
    p.expectWord('ON');
    p.writeTable(p.qualifiedName());
  }
  p.skipRest();
  p.writesUnlisted = true;
  return { command: `DROP ${object}`, kind: 'ddl' };
}

export function rename(p: StatementParser): Outcome {
  p.advance();
  if (p.acceptWord('TABLE', 'TABLES') !== null) {
    do {
      p.writeTable(p.qualifiedName());
      p.expectWord('TO');
      p.writeTable(p.qualifiedName());
    } while (p.accept(Tok.Comma));
  }
  p.skipRest();
  p.writesUnlisted = true;
  return { command: 'RENAME', kind: 'ddl' };
}

