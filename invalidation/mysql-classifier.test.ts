import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MysqlClassifier } from './mysql-classifier.js';
import { mysqlStatementShape } from './mysql-shape.js';

test('a repeated text is answered from the map with the same analysis object', () => {
  const classifier = new MysqlClassifier();
  const first = classifier.classify('SELECT c FROM sbtest1 WHERE id = ?');
  assert.is(first.kind, 'read');
  assert.equal(classifier.stats(), { hits: 0, misses: 1, entries: 1, textLength: 34, tooLong: 0 });
  assert.is(classifier.classify('SELECT c FROM sbtest1 WHERE id = ?'), first);
  assert.is(classifier.classify('SELECT c FROM sbtest1 WHERE id = ?'), first);
  assert.equal(classifier.stats(), { hits: 2, misses: 1, entries: 1, textLength: 34, tooLong: 0 });
});

test('texts are keyed exactly: case, spacing and comments make a different entry', () => {
  const classifier = new MysqlClassifier();
  for (const text of ['SELECT 1', 'select 1', 'SELECT  1', 'SELECT 1 -- x', 'SELECT 1']) classifier.classify(text);
  assert.equal(classifier.stats().misses, 4);
  assert.equal(classifier.stats().hits, 1);
});

test('with shapes, texts that differ only in numbers share one analysis', () => {
  const classifier = new MysqlClassifier();
  const a = classifier.classify(mysqlStatementShape('SELECT c FROM sbtest1 WHERE id = 17', classifier.dialect));
  const b = classifier.classify(mysqlStatementShape('SELECT c FROM sbtest1 WHERE id = 4242', classifier.dialect));
  assert.is(a, b);
  assert.equal(classifier.stats(), { hits: 1, misses: 1, entries: 1, textLength: 34, tooLong: 0 });
});

test('texts not understood are remembered too: garbage is not analyzed twice', () => {
  const classifier = new MysqlClassifier();
  const bad = classifier.classify('SELEC * FRO a');
  assert.is(bad.kind, 'unknown');
  assert.is(classifier.classify('SELEC * FRO a'), bad);
  assert.equal(classifier.stats().hits, 1);
});

test('the dialect is the classifier\'s: the same text reads differently under ANSI_QUOTES', () => {
  const plain = new MysqlClassifier();
  const ansi = new MysqlClassifier({ dialect: { ansiQuotes: true } });
  assert.is(plain.classify('SELECT * FROM "t"').kind, 'unknown');
  assert.equal(ansi.classify('SELECT * FROM "t"').tablesRead, [{ database: null, name: 't' }]);
  assert.ok(Object.isFrozen(ansi.dialect));
});

test('least recently used texts are evicted beyond maxEntries', () => {
  const classifier = new MysqlClassifier({ maxEntries: 2 });
  classifier.classify('SELECT 1'); // miss
  classifier.classify('SELECT 2'); // miss
  classifier.classify('SELECT 1'); // hit: now 2 is the least recently used
  classifier.classify('SELECT 3'); // miss, evicts 2
  assert.equal(classifier.stats().entries, 2);
  classifier.classify('SELECT 1'); // hit
  classifier.classify('SELECT 2'); // miss again, evicts 3
  classifier.classify('SELECT 1'); // hit
  assert.equal(classifier.stats(), { hits: 3, misses: 4, entries: 2, textLength: 16, tooLong: 0 });
});

test('the remembered text length is bounded; over-long texts are analyzed but not kept', () => {
  const classifier = new MysqlClassifier({ maxTextLength: 100, maxTotalTextLength: 250 });
  const long = `SELECT 1 AS \`${'x'.repeat(200)}\``;
  assert.is(classifier.classify(long).kind, 'read');
  assert.is(classifier.classify(long).kind, 'read');
  assert.equal(classifier.stats(), { hits: 0, misses: 2, entries: 0, textLength: 0, tooLong: 2 });

  const texts = [0, 1, 2, 3].map((i) => `SELECT ${i} AS \`${'y'.repeat(80)}\``); // 94 chars each
  texts.forEach((text) => classifier.classify(text));
  const stats = classifier.stats();
  assert.is(stats.entries, 2);
  assert.is(stats.textLength, 188);
  classifier.classify(texts[3]!);
  assert.is(classifier.stats().hits, 1);
});

test('options must be positive integers', () => {
  for (const bad of [{ maxEntries: 0 }, { maxEntries: 1.5 }, { maxTextLength: -1 }, { maxTotalTextLength: Number.NaN }]) {
    assert.throws(() => new MysqlClassifier(bad), (err: unknown) => err instanceof RangeError, JSON.stringify(bad));
  }
});

test.run();
