import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { judge, parseArgs, parseJobs, parseUvuSummary, phaseOf, selectFiles, timeoutFromSource, UsageError } from './run-tests.js';

// What uvu 0.5 prints with FORCE_COLOR=1 for one passing, one failing and one skipped test.
const COLOURED = [
  '\x1b[90m• \x1b[39m\x1b[31m✘ \x1b[39m\x1b[31m  (1 / 2)',
  '\x1b[39m',
  '  \x1b[1m\x1b[41m FAIL \x1b[22m\x1b[49m \x1b[2m"\x1b[22m\x1b[31m\x1b[1mb\x1b[39m\x1b[22m\x1b[2m"\x1b[22m',
  '    Expected values to be strictly equal:',
  '',
  '  Total:     2\x1b[31m',
  '  Passed:    1\x1b[39m',
  '  Skipped:   \x1b[33m1\x1b[39m',
  '  Duration:  2.17ms',
  '',
].join('\n');

test('parseUvuSummary reads the counts through ANSI colours', () => {
  assert.equal(parseUvuSummary(COLOURED), { total: 2, passed: 1, skipped: 1 });
});

test('parseUvuSummary reads plain output and takes the last block', () => {
  const plain = '  Total:     1\n  Passed:    1\n  Skipped:   0\n\nmore\n  Total:     7\n  Passed:    5\n  Skipped:   2\n  Duration:  1ms\n';
  assert.equal(parseUvuSummary(plain), { total: 7, passed: 5, skipped: 2 });
});

test('parseUvuSummary is null without a complete summary', () => {
  assert.is(parseUvuSummary(''), null);
  assert.is(parseUvuSummary('Error: boom\n    at x (file.js:1:1)\n'), null);
  assert.is(parseUvuSummary('  Total:     2\n'), null);
  assert.is(parseUvuSummary('log: Total: 3 Passed: 3 Skipped: 0\n'), null);
});

test('timeoutFromSource finds the comment in the leading comment block only', () => {
  assert.is(timeoutFromSource('// test-timeout: 300\nimport x from "y";\n'), 300);
  assert.is(timeoutFromSource('// Tests the framer.\n//\n// test-timeout:45\n\nimport x from "y";\n'), 45);
  assert.is(timeoutFromSource('import x from "y";\n// test-timeout: 300\n'), undefined);
  assert.is(timeoutFromSource('// test-timeout: soon\n'), undefined);
  assert.is(timeoutFromSource(''), undefined);
});

test('phaseOf puts only files under e2e/ in the e2e phase', () => {
  assert.is(phaseOf('e2e/pg-startup.test.js'), 'e2e');
  assert.is(phaseOf('proxy/pg/framer.test.js'), 'unit');
  assert.is(phaseOf('cache/e2e-like.test.js'), 'unit');
});

test('parseArgs and selectFiles pick by phase and by substring', () => {
  const files = ['cache/store.test.js', 'e2e/pg-startup.test.js', 'e2e/mysql.test.js', 'proxy/pg/framer.test.js'];
  assert.equal(selectFiles(files, parseArgs([])), files);
  assert.equal(selectFiles(files, parseArgs(['--only', 'e2e'])), ['e2e/pg-startup.test.js', 'e2e/mysql.test.js']);
  assert.equal(selectFiles(files, parseArgs(['--only', 'unit', 'pg'])), ['proxy/pg/framer.test.js']);
  assert.equal(selectFiles(files, parseArgs(['store', 'mysql'])), ['cache/store.test.js', 'e2e/mysql.test.js']);
  assert.throws(() => parseArgs(['--only', 'everything']), (err: unknown) => err instanceof UsageError);
  assert.throws(() => parseArgs(['--bail']), (err: unknown) => err instanceof UsageError);
});

test('parseJobs defaults to 2 and rejects nonsense', () => {
  assert.is(parseJobs(undefined), 2);
  assert.is(parseJobs(''), 2);
  assert.is(parseJobs('4'), 4);
  for (const bad of ['0', '-1', '1.5', 'two']) {
    assert.throws(() => parseJobs(bad), (err: unknown) => err instanceof UsageError, bad);
  }
});

const clean = { exitCode: 0, signal: null, timedOutAfterS: null };

test('judge counts the failures in uvu summary', () => {
  assert.equal(judge({ ...clean, summary: { total: 3, passed: 3, skipped: 1 } }), { passed: 3, failed: 0, skipped: 1, problem: '' });
  assert.equal(judge({ ...clean, exitCode: 1, summary: { total: 3, passed: 1, skipped: 0 } }), { passed: 1, failed: 2, skipped: 0, problem: '' });
});

test('judge fails a file whose before hook threw although uvu exited 0, and says what happened', () => {
  const hook = judge({ ...clean, summary: { total: 4, passed: 0, skipped: 0 } });
  assert.is(hook.failed, 4);
  assert.match(hook.problem, /before or after hook threw/);
});

test('judge counts a crash, a missing summary and a timeout as at least one failure', () => {
  const crash = judge({ ...clean, exitCode: 1, summary: null });
  assert.equal([crash.failed, crash.problem], [1, 'exited with code 1, no uvu summary']);
  const silent = judge({ ...clean, summary: null });
  assert.is(silent.failed, 1);
  assert.match(silent.problem, 'without a uvu summary');
  const hung = judge({ ...clean, exitCode: null, signal: 'SIGKILL', timedOutAfterS: 120, summary: { total: 5, passed: 5, skipped: 0 } });
  assert.equal([hung.passed, hung.failed, hung.problem], [5, 1, 'timed out after 120 s, killed']);
  const errorAfterSummary = judge({ ...clean, exitCode: 7, summary: { total: 2, passed: 2, skipped: 0 } });
  assert.equal([errorAfterSummary.failed, errorAfterSummary.problem], [1, 'exited with code 7']);
});

test.run();
