import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatTlsResults, type TlsCell, type TlsResults, type TlsTarget } from './tls-bench.js';

function cells(direct: number, tls: number, clear: number, cpu?: { tls: number; clear: number }): Map<TlsTarget, TlsCell> {
  const transactions = 1_000_000;
  return new Map<TlsTarget, TlsCell>([
    ['direct TLS', { bestTps: direct, transactions }],
    ['sidecache TLS', { bestTps: tls, transactions, ...(cpu === undefined ? {} : { cpuSeconds: cpu.tls }) }],
    ['sidecache cleartext client', { bestTps: clear, transactions, ...(cpu === undefined ? {} : { cpuSeconds: cpu.clear }) }],
  ]);
}

test('each hot workload gets both goals with verdicts from the best tps; -S gets none', () => {
  const results: TlsResults = new Map([
    ['hot simple', cells(20000, 31000, 38000, { tls: 17, clear: 11 })],
    ['hot prepared', cells(32000, 33000, 33500)],
    ['-S simple', cells(20000, 9000, 12000)],
  ]);
  const text = formatTlsResults(results);
  assert.match(text, /goal: hot simple hits over TLS >= 1\.5x direct TLS: 1\.55x MET/);
  assert.match(text, /goal: hot simple TLS overhead on a hit <= 25% of a cleartext hit: 23% MET \(in sidecache's own CPU per hit: 55%\)/);
  assert.match(text, /goal: hot prepared hits over TLS >= 1\.5x direct TLS: 1\.03x NOT MET/);
  assert.match(text, /goal: hot prepared TLS overhead on a hit <= 25% of a cleartext hit: 2% MET \(in sidecache's own CPU per hit: NaN%\)/);
  assert.not.match(text, /goal: -S/);
  assert.match(text, /\n  hot simple .* 17\.0 \/ 11\.0\n/);
});

test('a goal just missed is NOT MET; a missing target never counts as met', () => {
  const text = formatTlsResults(new Map([['hot simple', cells(20000, 29000, 37000)]]));
  assert.match(text, /1\.45x NOT MET/);
  assert.match(text, /28% NOT MET/);
  const missing: TlsResults = new Map([['hot simple', new Map<TlsTarget, TlsCell>([['direct TLS', { bestTps: 1000, transactions: 1 }]])]]);
  assert.match(formatTlsResults(missing), /NaNx NOT MET/);
  assert.match(formatTlsResults(missing), /NaN% NOT MET/);
});

test.run();
