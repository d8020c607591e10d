import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { prettyMessage } from './log.js';

test('the pretty line is the message and the fields as key=value, quoted only when needed', () => {
  const line = prettyMessage({
    level: 40, time: '2026-01-01T00:00:00.000Z', msg: 'slow query',
    protocol: 'postgres', durationMs: 301.5, fingerprint: null, sample: 'SELECT pg_sleep(0.3)',
    applied: ['cache-ttl', 'rules'], ok: true, skipped: undefined,
  }, 'msg');
  assert.is(line, 'slow query protocol=postgres durationMs=301.5 fingerprint=null sample="SELECT pg_sleep(0.3)" applied=["cache-ttl","rules"] ok=true');
});

test('values that could be misread are JSON-quoted', () => {
  assert.is(prettyMessage({ msg: 'x', a: '', b: 'k=v', c: 'say "hi"', d: 'two\nlines' }, 'msg'), 'x a="" b="k=v" c="say \\"hi\\"" d="two\\nlines"');
});

test.run();
