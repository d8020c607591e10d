import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PgClassifier } from './pg-classifier.js';

test('a repeated text is answered from the map with the same analysis object', async () => {
  const classifier = await PgClassifier.create();
  const first = classifier.classify('SELECT * FROM a WHERE id = $1');
  assert.is(first.kind, 'read');
  assert.equal(classifier.stats(), { hits: 0, misses: 1, entries: 1, textLength: 29, tooLong: 0 });
  assert.is(classifier.classify('SELECT * FROM a WHERE id = $1'), first);
  assert.is(classifier.classify('SELECT * FROM a WHERE id = $1'), first);
  assert.equal(classifier.stats(), { hits: 2, misses: 1, entries: 1, textLength: 29, tooLong: 0 });
});

test('texts are keyed exactly: case, spacing and comments make a different entry', async () => {
  const classifier = await PgClassifier.create();
  for (const text of ['SELECT 1', 'select 1', 'SELECT  1', 'SELECT 1 -- x', 'SELECT 1']) classifier.classify(text);
  assert.equal(classifier.stats().misses, 4);
  assert.equal(classifier.stats().hits, 1);
});

test('parse failures are remembered too: garbage is not parsed twice', async () => {
  const classifier = await PgClassifier.create();
  const bad = classifier.classify('SELEC * FRO a');
  assert.is(bad.kind, 'unknown');
  assert.is(classifier.classify('SELEC * FRO a'), bad);
  assert.equal(classifier.stats().hits, 1);
});

test('least recently used texts are evicted beyond maxEntries', async () => {
  const classifier = await PgClassifier.create({ maxEntries: 2 });
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

test('the remembered text length is bounded; over-long texts are analyzed but not kept', async () => {
  const classifier = await PgClassifier.create({ maxTextLength: 100, maxTotalTextLength: 250 });
  const long = `SELECT 1 AS "${'x'.repeat(200)}"`;
  assert.is(classifier.classify(long).kind, 'read');
  assert.is(classifier.classify(long).kind, 'read');
  assert.equal(classifier.stats(), { hits: 0, misses: 2, entries: 0, textLength: 0, tooLong: 2 });

  const texts = [0, 1, 2, 3].map((i) => `SELECT ${i} AS "${'y'.repeat(80)}"`); // 94 chars each
  texts.forEach((text) => classifier.classify(text));
  const stats = classifier.stats();
  assert.is(stats.entries, 2);
  assert.is(stats.textLength, 188);
  classifier.classify(texts[3]!);
  assert.is(classifier.stats().hits, 1);
});

test('options must be positive integers', async () => {
  for (const bad of [{ maxEntries: 0 }, { maxEntries: 1.5 }, { maxTextLength: -1 }, { maxTotalTextLength: Number.NaN }]) {
    await PgClassifier.create(bad).then(
      () => assert.unreachable(`accepted ${JSON.stringify(bad)}`),
      (err: unknown) => assert.instance(err, RangeError));
  }
});

test.run();
