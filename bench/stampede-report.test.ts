import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { stampedeTable } from './stampede-report.js';

test('one markdown row per run, executions per write, reasons listed', () => {
  const table = stampedeTable([
    { protocol: 'postgres', coalescing: false, reads: 1000, writes: 10, executions: 400, hits: 600, misses: 400, coalesced: 0, relayed: {}, p50Ms: 1.234, p99Ms: 9.5, missP99Ms: null },
    { protocol: 'postgres', coalescing: true, reads: 1000, writes: 10, executions: 12, hits: 988, misses: 12, coalesced: 380, relayed: { timeout: 2 }, p50Ms: 1, p99Ms: 5, missP99Ms: 3 },
  ]);
  const lines = table.split('\n');
  assert.is(lines.length, 4);
  assert.ok(lines[1]!.startsWith('|---|'));
  assert.ok(lines[2]!.includes('| off | 1000 | 10 | 400 | 40.0 |'), lines[2]);
  assert.ok(lines[3]!.includes('| timeout 2 |') && lines[3]!.endsWith('| 3.00 |'), lines[3]);
});

test.run();
