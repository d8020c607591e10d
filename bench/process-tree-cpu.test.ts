import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { processCpuSeconds } from './process-cpu.js';
import { parseParentPid, processTreeCpuSeconds } from './process-tree-cpu.js';

test('the parent pid is read after the command name, even one with spaces and parentheses', () => {
  assert.is(parseParentPid('4242 (pgpool: wait (x)) S 17 2 3 0 -1'), 17);
});

test('a tree counts the CPU of children the root process alone does not show', async () => {
  // The child burns about half a second of CPU, then waits to be killed so it is still alive when counted.
  const child = spawn(process.execPath, ['-e', 'const end = Date.now() + 500; while (Date.now() < end); setInterval(() => {}, 1000);'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    await new Promise((r) => setTimeout(r, 900));
    const own = (await processCpuSeconds(process.pid))!;
    const tree = (await processTreeCpuSeconds(process.pid))!;
    assert.ok(tree - own >= 0.2, `tree ${tree} s, own ${own} s`);
  } finally {
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
  assert.is(await processTreeCpuSeconds(2 ** 30), undefined);
});

test.run();
