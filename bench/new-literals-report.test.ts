import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { evaluateNewLiterals, formatNewLiterals, type NewLiteralsRun, type NewLiteralsTarget } from './new-literals-report.js';

function run(workload: string, target: NewLiteralsTarget, seconds: number, extra: Partial<NewLiteralsRun> = {}): NewLiteralsRun {
  return { workload, target, statements: 1000, seconds, serverSelects: 1000, proxyCpuSeconds: undefined, misses: undefined, ...extra };
}

test('the goal compares the fastest sidecache batch with the fastest relay batch', () => {
  const runs = [run('literal', 'relay', 1.0), run('literal', 'relay', 0.5), run('literal', 'sidecache', 0.9), run('literal', 'sidecache', 0.6)];
  const [result] = evaluateNewLiterals(['literal'], runs);
  assert.is(result!.verdict, 'PASS');
  assert.is(result!.measured, '1.20x');
  assert.is(evaluateNewLiterals(['literal'], [run('literal', 'relay', 0.5), run('literal', 'sidecache', 0.61)])[0]!.verdict, 'MISS');
  assert.is(evaluateNewLiterals(['literal'], [run('literal', 'relay', 0.5)])[0]!.verdict, 'not measured');
});

test('the table shows selects and proxy CPU per statement, and sidecache\'s misses', () => {
  const runs = [
    run('literal', 'direct', 0.2),
    run('literal', 'relay', 0.3, { proxyCpuSeconds: 0.07 }),
    run('literal', 'sidecache', 0.33, { serverSelects: 2000, proxyCpuSeconds: 0.12, misses: 1000 }),
  ];
  const table = formatNewLiterals(['literal'], runs);
  const row = table.split('\n')[2]!.trim().split(/\s+/);
  assert.equal(row, ['literal', '1000', '0.200', '1.00', '0.300', '1.00', '70', '0.330', '2.00', '120', '1000', '1.10x']);
});

test.run();
