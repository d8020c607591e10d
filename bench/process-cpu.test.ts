import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseCpuSeconds, processCpuSeconds } from './process-cpu.js';

test('utime + stime are read after the command name, even one with spaces and parentheses', () => {
  const stat = '4242 (node (x) y) S 1 2 3 0 -1 4194304 124 0 0 0 250 50 0 0 20 0 1 0';
  assert.is(parseCpuSeconds(stat, 100), 3);
});

test('a live process has CPU time; a missing one has none', async () => {
  for (let i = 0; i < 2e7; i++) Math.sqrt(i); // burn a little CPU so the count is above zero
  const own = await processCpuSeconds(process.pid);
  assert.ok(own !== undefined && own > 0);
  assert.is(await processCpuSeconds(2 ** 30), undefined);
});

test.run();
