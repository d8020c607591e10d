import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { measureRedisCeiling, parseRedisCsv, RedisBenchmarkError } from './redis.js';
import { canConnect, freePort } from './relay-process.js';

const CSV = `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"GET","90497.73","0.052","0.016","0.047","0.079","0.119","4.215"
`;

test('reads rps and p50 of the GET row by the header names', () => {
  assert.equal(parseRedisCsv(CSV), { rps: 90497.73, p50Ms: 0.047 });
});

test('output without a GET row is an error that shows the output', () => {
  assert.throws(() => parseRedisCsv('Could not connect to Redis at 127.0.0.1:6399\n'),
    (err: unknown) => err instanceof RedisBenchmarkError && /Could not connect/.test(err.message));
});

test('a port nothing listens on is skipped with a reason instead of hanging', async () => {
  const outcome = await measureRedisCeiling({ host: '127.0.0.1', port: await freePort(), clients: 2, requests: 100, timeoutMs: 10_000 });
  assert.ok('skipped' in outcome);
});

// Redis is not among the servers `make test` starts; where it does not run, this is skipped.
const redisUp = await canConnect(6379);
(redisUp ? test : test.skip)('measures the local Redis', async () => {
  const outcome = await measureRedisCeiling({ host: '127.0.0.1', port: 6379, clients: 2, requests: 2000, timeoutMs: 30_000 });
  if (!('measured' in outcome)) throw new Error(`Redis was reachable a moment ago: ${outcome.skipped}`);
  assert.ok(outcome.measured.rps > 0);
  assert.ok(outcome.measured.p50Ms > 0);
  assert.match(outcome.measured.command, '-t get -c 2 -n 2000');
});

test.run();
