import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { widestKind } from './statement-facts.js';

test('several statements take the kind that demands the widest reaction', () => {
  assert.is(widestKind(['read', 'read']), 'read');
  assert.is(widestKind(['read', 'other']), 'other');
  assert.is(widestKind(['transaction', 'read', 'write', 'transaction']), 'write');
  assert.is(widestKind(['session', 'write']), 'write');
  assert.is(widestKind(['write', 'ddl', 'session']), 'ddl');
  assert.is(widestKind(['ddl', 'unknown', 'read']), 'unknown');
  assert.is(widestKind(['transaction', 'session']), 'session');
});

test.run();
