import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { statementShape } from './pg-shape.js';
import { analyzeSql, loadPgParser } from './pg-analysis.js';

test('numbers become 0, identifiers and parameters stay', () => {
  assert.is(statementShape('SELECT abalance FROM pgbench_accounts WHERE aid = 4217;'), 'SELECT abalance FROM pgbench_accounts WHERE aid = 0;');
  assert.is(statementShape('SELECT t1.c2, $1 FROM t1 LIMIT 10 OFFSET 2.5e3'), 'SELECT t1.c2, $1 FROM t1 LIMIT 0 OFFSET 0');
  assert.is(statementShape('SELECT -1.5, .5, 1_000'), 'SELECT -0, 0, 0');
});

test('texts without other numbers than 0 are returned as they are', () => {
  const text = 'SELECT * FROM t WHERE x = 0';
  assert.is(statementShape(text), text);
});

test('strings, quoted identifiers, dollar quotes and comments are copied verbatim', () => {
  const cases = [
    "SELECT 'a 1 b', \"col 2\" FROM t",
    "SELECT E'it\\'s 5' FROM t",
    'SELECT $$ 42 $$, $q$ 7 $$ 8 $q$',
    'SELECT x -- 99 bottles\nFROM t',
    'SELECT /* 1 /* 2 */ 3 */ x FROM t',
    "SELECT 'now'::timestamptz",
  ];
  for (const c of cases) assert.is(statementShape(c), c);
});

test('numbers glued to identifiers are left alone', () => {
  assert.is(statementShape('SELECT 0x1F, 12abc FROM t'), 'SELECT 0x1F, 12abc FROM t');
});

test('the shape has the same analysis as the text (tables, functions, kind)', async () => {
  await loadPgParser();
  const texts = [
    'SELECT abalance FROM pgbench_accounts WHERE aid = 4217',
    'UPDATE pgbench_accounts SET abalance = abalance + -3 WHERE aid = 17',
    "SELECT * FROM orders o JOIN items i ON i.oid = o.id WHERE o.id IN (1, 2, 3) AND i.sku = 'x9'",
    'SELECT round(1.2345, 2), generate_series(1, 10)',
    'INSERT INTO t(a, b) VALUES (1, 2.5), (3, 4e2) ON CONFLICT (a) DO UPDATE SET b = 7',
  ];
  for (const t of texts) {
    const a = analyzeSql(t);
    const s = analyzeSql(statementShape(t));
    assert.equal(
      { kind: s.kind, cacheable: s.cacheable, read: s.tablesRead, written: s.tablesWritten, functions: s.functions },
      { kind: a.kind, cacheable: a.cacheable, read: a.tablesRead, written: a.tablesWritten, functions: a.functions },
      t,
    );
  }
});

const token = fc.constantFrom('SELECT', ' ', '1', '2.5', "'x'", '"q"', '$1', '$$a$$', '--c\n', '/*c*/', 't1', '.', ',', 'e', '-', "E'\\''", '$');

test('property: shapes of arbitrary character soups never throw', () => {
  fc.assert(fc.property(fc.array(token, { maxLength: 30 }), (tokens) => typeof statementShape(tokens.join('')) === 'string'));
});

test('property: the shape of a shape is itself (tokens as SQL separates them)', () => {
  fc.assert(
    fc.property(fc.array(token, { maxLength: 30 }), (tokens) => {
      const shape = statementShape(tokens.join(' '));
      return statementShape(shape) === shape;
    }),
  );
});

test.run();
