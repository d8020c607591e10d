import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from './options.js';
import { formatHopStarted, formatRtt, hopPlan, parseRtt, summarizeRtt } from './rtt.js';

test('--rtt reads ms and µs; nonsense, zero and out-of-range values are usage errors', () => {
  assert.is(parseRtt('1ms'), 1000);
  assert.is(parseRtt('0.4ms'), 400);
  assert.is(parseRtt('400us'), 400);
  assert.is(parseRtt('250µs'), 250);
  assert.is(parseRtt(' 2.5 ms '), 2500);
  for (const bad of ['1', 'ms', '0ms', '-1ms', '1s', '10us', '200ms', '1e3us', '']) {
    assert.throws(() => parseRtt(bad), (e: Error) => e instanceof UsageError && e.message.startsWith('--rtt'), bad);
  }
});

test('the delay each way is half the round trip', () => {
  assert.is(hopPlan(1, 1000).oneWayUs, 500);
  assert.is(hopPlan(1, 401).oneWayUs, 201);
});

test('the hop plan: interface names fit IFNAMSIZ, both ends share one /30, pids get distinct subnets', () => {
  const seen = new Set<string>();
  for (const pid of [1, 2, 63, 64, 4095, 16383, 16384 + 7, 4_194_303, 99_999_999]) {
    const p = hopPlan(pid, 1000);
    assert.ok(p.hostInterface.length <= 15 && p.namespaceInterface.length <= 15, p.hostInterface);
    assert.is.not(p.hostInterface, p.namespaceInterface);
    const host = p.hostAddress.split('.').map(Number);
    const inside = p.namespaceAddress.split('.').map(Number);
    assert.equal(host.slice(0, 3), inside.slice(0, 3));
    assert.is(host[3]! % 4, 1); // .1 and .2 of an aligned /30: neither the network nor the broadcast address
    assert.is(inside[3]!, host[3]! + 1);
    assert.ok(host.every((o) => o >= 0 && o <= 255));
    if (pid < 16384) {
      assert.not.ok(seen.has(p.hostAddress), `subnet reused for pid ${pid}`);
      seen.add(p.hostAddress);
    }
  }
  assert.is(hopPlan(42, 1000).namespace, 'sidecache-bench-42');
});

test('RTT summaries use nearest-rank percentiles; no samples, no summary', () => {
  const s = summarizeRtt([1300, 1000, 1100, 1200, 5000, 1050, 1150, 1250, 1020, 1080])!;
  assert.equal({ count: s.count, min: s.minUs, p50: s.p50Us, p90: s.p90Us, max: s.maxUs }, { count: 10, min: 1000, p50: 1100, p90: 1300, max: 5000 });
  assert.is(s.avgUs, 1515);
  assert.equal(summarizeRtt([700]), { count: 1, minUs: 700, p50Us: 700, p90Us: 700, avgUs: 700, maxUs: 700 });
  assert.is(summarizeRtt([]), undefined);
  assert.is(formatRtt(summarizeRtt([1000, 1200])), 'p50 1.00 ms (min 1.00, avg 1.10, p90 1.20, n 2)');
  assert.is(formatRtt(undefined), 'not measured');
});

test('the line printed once the hop is up names the addresses, the delay each way and the idle RTT', () => {
  const line = formatHopStarted(hopPlan(4242, 1000), summarizeRtt([1100, 1200]));
  assert.match(line, /^hop 10\.213\.\d+\.\d+ -> 10\.213\.\d+\.\d+ \(namespace sidecache-bench-4242\), 500 µs each way; measured RTT idle: p50 1\.10 ms/);
  assert.match(formatHopStarted(hopPlan(4242, 1000), undefined), /idle: not measured$/);
});

test.run();
