import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { seededRandom, zipfCdf, zipfSampler } from './zipf.js';

test('the same seed gives the same sequence, another seed another one, always in [0, 1)', () => {
  const a = seededRandom(7);
  const b = seededRandom(7);
  const c = seededRandom(8);
  const xs = Array.from({ length: 1000 }, () => a());
  assert.equal(Array.from({ length: 1000 }, () => b()), xs);
  assert.not.equal(Array.from({ length: 1000 }, () => c()), xs);
  assert.ok(xs.every((x) => x >= 0 && x < 1));
});

test('the cumulative weights rise to exactly 1 and key k weighs 1/k^s', () => {
  const cdf = zipfCdf(4, 1);
  const total = 1 + 1 / 2 + 1 / 3 + 1 / 4;
  assert.ok(Math.abs(cdf[0]! - 1 / total) < 1e-12);
  assert.ok(Math.abs(cdf[1]! - cdf[0]! - 1 / 2 / total) < 1e-12);
  assert.is(cdf[3], 1);
});

test('draws stay in 1..n and follow the weights: key 1 about twice as often as key 2 with s = 1', () => {
  const n = 100;
  const draw = zipfSampler(zipfCdf(n, 1), seededRandom(1));
  const counts = new Array<number>(n + 1).fill(0);
  for (let i = 0; i < 200_000; i++) counts[draw()]!++;
  assert.is(counts[0], 0);
  assert.is(counts.reduce((s, x) => s + x, 0), 200_000);
  const ratio = counts[1]! / counts[2]!;
  assert.ok(ratio > 1.9 && ratio < 2.1, `key 1 / key 2 = ${ratio}`);
  assert.ok(counts[n]! > 0, 'the coldest key is drawn too');
});

test('the boundaries: u = 0 draws key 1, u just below 1 draws key n', () => {
  const cdf = zipfCdf(10, 0.99);
  assert.is(zipfSampler(cdf, () => 0)(), 1);
  assert.is(zipfSampler(cdf, () => 0.9999999999)(), 10);
});

test.run();
