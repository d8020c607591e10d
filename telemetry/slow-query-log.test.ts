import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { loadConfig } from '../config/settings.js';
import { createMetrics } from './metrics.js';
import { QueryStats } from './query-stats.js';
import { SlowQueryLog } from './slow-query-log.js';

type Line = Record<string, unknown>;

function setup(thresholdMs: number, options?: { linesPerWindow?: number; windowMs?: number }): { lines: Line[]; stats: QueryStats; slow: SlowQueryLog } {
  const lines: Line[] = [];
  const log = pino({ base: undefined, timestamp: false }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  const stats = new QueryStats('postgres', createMetrics());
  const slow = new SlowQueryLog(log, thresholdMs, options);
  slow.watch(stats);
  return { lines, stats, slow };
}

test('a statement at or over the threshold is logged with its outcome, duration and text; one under it is not', () => {
  const { lines, stats } = setup(100);
  const q = stats.identify('abc123', 'SELECT  pg_sleep(0.3)', []);
  stats.hit(q, 0.0999);
  stats.miss(q, 0.1);
  stats.bypass(q, 'not-cacheable', 0.3004);
  stats.write(null, 0.05);
  stats.write(null, 1.5);
  assert.equal(lines, [
    { level: 40, protocol: 'postgres', outcome: 'miss', durationMs: 100, thresholdMs: 100, fingerprint: 'abc123', sample: 'SELECT pg_sleep(0.3)', msg: 'slow query' },
    { level: 40, protocol: 'postgres', outcome: 'bypass', durationMs: 300.4, thresholdMs: 100, fingerprint: 'abc123', sample: 'SELECT pg_sleep(0.3)', bypassReason: 'not-cacheable', msg: 'slow query' },
    { level: 40, protocol: 'postgres', outcome: 'write', durationMs: 1500, thresholdMs: 100, fingerprint: null, sample: null, msg: 'slow query' },
  ]);
  assert.is(stats.hits + stats.misses + stats.bypasses + stats.writes, 5, 'every statement is still counted');
});

test('threshold 0 logs nothing; a reload changes the threshold of every watched protocol', () => {
  const { lines, stats, slow } = setup(0);
  const q = stats.identify('f', 'SELECT 1', []);
  stats.miss(q, 10);
  assert.is(lines.length, 0, 'off');
  slow.applyConfig(loadConfig(['--slow-query-threshold', '200ms'], {}).config);
  stats.miss(q, 0.15);
  stats.miss(q, 0.25);
  assert.is(lines.length, 1);
  assert.is(lines[0]!.thresholdMs, 200);
  slow.applyConfig(loadConfig(['--slow-query-threshold', 'off'], {}).config);
  stats.miss(q, 10);
  assert.is(lines.length, 1, 'off again');
});

test('past the line limit slow statements are counted and reported in one line when the window ends', async () => {
  const { lines, stats } = setup(1, { linesPerWindow: 3, windowMs: 200 });
  const q = stats.identify('f', 'SELECT 1', []);
  for (let i = 0; i < 10; i++) stats.bypass(q, 'rule', 0.5);
  assert.is(lines.length, 3);
  await new Promise((r) => setTimeout(r, 300));
  assert.is(lines.length, 4);
  assert.is(lines[3]!.msg, 'slow queries not logged: too many at once');
  assert.is(lines[3]!.suppressed, 7);
  stats.bypass(q, 'rule', 0.5);
  assert.is(lines.length, 5, 'a new window logs again');
  assert.is(lines[4]!.msg, 'slow query');
});

test.run();
