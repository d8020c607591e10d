import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LITERAL_WORKLOADS, formatLiteralTable, literalGoal, medianSeconds, relayCpuSeconds, type LiteralRun } from './literal-workloads.js';

const run = (workload: string, target: LiteralRun['target'], batches: number[], relayCpu?: number): LiteralRun =>
  ({ workload, target, batches, relayCpu });

test('no two statements of a workload, or of two runs, are the same text', () => {
  for (const w of LITERAL_WORKLOADS) {
    const texts = new Set([1, 2].flatMap((r) => [0, 1, 2].map((i) => w.statement(r, i))));
    assert.is(texts.size, 6, w.key);
  }
});

test('a cell is the median batch over all its runs; the relay CPU the mean of its runs', () => {
  const runs = [run('strings', 'sidecache', [3, 1, 100], 0.25), run('strings', 'sidecache', [2], 0.75), run('strings', 'direct', [1])];
  assert.is(medianSeconds(runs, 'strings', 'sidecache'), 2.5);
  assert.is(medianSeconds(runs, 'strings', 'passthrough'), undefined);
  assert.is(relayCpuSeconds(runs, 'strings', 'sidecache'), 0.5);
  assert.is(relayCpuSeconds(runs, 'strings', 'direct'), undefined);
});

test('the goal compares sidecache with the relay alone on new string literals', () => {
  const relay = run('strings', 'passthrough', [100e-6]);
  assert.match(literalGoal([relay, run('strings', 'sidecache', [110e-6])]), /1\.10x PASS$/);
  assert.match(literalGoal([relay, run('strings', 'sidecache', [130e-6])]), /1\.30x MISS$/);
  assert.match(literalGoal([relay]), /not measured$/);
  const table = formatLiteralTable([relay, run('strings', 'sidecache', [130e-6], 50e-6), run('strings', 'direct', [65e-6])],
    ['direct', 'passthrough', 'sidecache']);
  assert.match(table, /strings\s+65\s+100\s+130\s+1\.30x\s+2\.00x\s+1\.54x\s+-\s+50/);
});

test.run();
