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

test('string literals become empty, whatever their prefix; a quote in one is no end', () => {
  const cases: [string, string][] = [
    ["SELECT id FROM t WHERE v = 'v17'", "SELECT id FROM t WHERE v = ''"],
    ["SELECT 'it''s', 'a 1 b' FROM t", "SELECT '', '' FROM t"],
    ["SELECT E'tab', e'x' FROM t", "SELECT E'', e'' FROM t"],
    ["SELECT B'0101', X'1F', N'abc', b'1'", "SELECT B'', X'', N'', b''"],
    ["INSERT INTO t VALUES ('a', '2026-01-01'::date, timestamp '2026-01-01 10:00', interval '1 day')",
      "INSERT INTO t VALUES ('', ''::date, timestamp '', interval '')"],
    ["SELECT * FROM t WHERE v IN ('a', 'b') AND w = ''", "SELECT * FROM t WHERE v IN ('', '') AND w = ''"],
  ];
  for (const [text, shape] of cases) assert.is(statementShape(text), shape, text);
});

test('literals naming a time stay: \'now\', \'today\', \'tomorrow\', \'yesterday\', \'epoch\', \'infinity\', in any case or form', () => {
  const kept = [
    "SELECT 'now'::timestamptz",
    "SELECT timestamp 'now', date 'today', 'tomorrow'::date, 'yesterday'::date",
    "SELECT * FROM t WHERE at > 'NOW'",
    "SELECT * FROM t WHERE at > ' Today '",
    "SELECT 'today 10:00'::timestamp",
    "SELECT 'epoch'::timestamptz, '-infinity'::date, 'Infinity'::timestamp",
    "SELECT CAST('now' AS timestamptz)",
  ];
  for (const text of kept) assert.is(statementShape(text), text);
  assert.is(statementShape("SELECT 'now'::timestamptz, 'x'"), "SELECT 'now'::timestamptz, ''");
});

test('escape strings with a backslash and U& strings stay (an escape may spell a time); continued strings stay', () => {
  const kept = [
    "SELECT E'it\\'s 5' FROM t",
    "SELECT E'\\x6eow'::timestamptz",
    "SELECT U&'d\\0061t', U&'\\006Eow'::timestamptz",
    "SELECT 'no'\n'w'::timestamptz",
    "SELECT 'no' -- c\n  'w'::timestamptz",
    "SELECT 'a'\r\n'b', 'c'\n\n'd'",
  ];
  for (const text of kept) assert.is(statementShape(text), text, text);
  assert.is(statementShape("SELECT 'a' 'b'"), "SELECT '' ''", 'on one line two strings are two (a syntax error either way)');
});

test('dollar quotes, quoted identifiers and comments are copied verbatim, quotes inside them included', () => {
  const cases = [
    'SELECT $$ 42 it\'s $$, $q$ 7 $$ \'x\' $q$',
    'SELECT "col \'2\'" FROM t',
    "SELECT x -- 99 'bottles'\nFROM t",
    "SELECT /* 1 /* 'x' */ 3 */ x FROM t",
    "DO $body$ BEGIN PERFORM set_config('app.x', 'y', false); END $body$",
  ];
  for (const c of cases) assert.is(statementShape(c), c);
  assert.is(statementShape("SELECT $$a$$, 'b', $1"), "SELECT $$a$$, '', $1");
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
    "SELECT * FROM t WHERE at > '2026-01-01'::timestamptz AND v = E'x' AND b = B'01'",
    "SELECT * FROM t WHERE at > 'now'::timestamptz",
    "SELECT * FROM t WHERE at > 'today'",
    "SELECT * FROM t WHERE at > E'\\x6eow'::timestamptz",
    "SELECT 'no'\n'w'::timestamptz FROM t",
    "UPDATE t SET v = 'x', w = lower('Y') WHERE id = 'z'",
  ];
  for (const t of texts) {
    const a = analyzeSql(t);
    const s = analyzeSql(statementShape(t));
    assert.equal(
      { kind: s.kind, cacheable: s.cacheable, reason: s.reasonNotCacheable, read: s.tablesRead, written: s.tablesWritten, functions: s.functions },
      { kind: a.kind, cacheable: a.cacheable, reason: a.reasonNotCacheable, read: a.tablesRead, written: a.tablesWritten, functions: a.functions },
      t,
    );
  }
});

const token = fc.constantFrom('SELECT', ' ', '1', '2.5', "'x'", '"q"', '$1', '$$a$$', '--c\n', '/*c*/', 't1', '.', ',', 'e', '-', "E'\\''", '$',
  "'now'", '\n', "U&'a'", "B'1'", 'b', "''", "'");

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

/** A literal as an application might inline it: any text, or one naming a time, typed or not. */
const literal = fc.oneof(
  fc.string({ maxLength: 12 }).map((v) => `'${v.replace(/'/g, "''")}'`),
  fc.string({ maxLength: 12 }).map((v) => `E'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`),
  fc.constantFrom('now', 'Today', ' tomorrow', 'yesterday', 'epoch', '-infinity', 'allballs', '2026-01-01').map((v) => `'${v}'`),
  fc.constant("E'\\x6eow'"),
  fc.integer().map(String),
);
const typed = fc.tuple(literal, fc.constantFrom('', '::timestamptz', '::date', '::text')).map(([l, t]) => l + t);

test('property: over statements with inlined literals, the shape is analysed as the text is', async () => {
  await loadPgParser();
  fc.assert(fc.property(fc.array(typed, { minLength: 1, maxLength: 4 }), fc.constantFrom('SELECT', 'UPDATE', 'INSERT'), (values, kind) => {
    const list = values.join(', ');
    const text = kind === 'SELECT' ? `SELECT id FROM t WHERE v IN (${list})`
      : kind === 'UPDATE' ? `UPDATE t SET v = coalesce(${list}) WHERE id = 1` : `INSERT INTO t VALUES (${list})`;
    const a = analyzeSql(text);
    const s = analyzeSql(statementShape(text));
    assert.equal([s.kind, s.cacheable, s.reasonNotCacheable, s.tablesRead, s.tablesWritten, s.functions],
      [a.kind, a.cacheable, a.reasonNotCacheable, a.tablesRead, a.tablesWritten, a.functions], text);
  }), { numRuns: 300 });
});

test.run();
