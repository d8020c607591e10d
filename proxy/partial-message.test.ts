import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BufferBudget } from './buffer-budget.js';
import { PartialMessage } from './partial-message.js';

const KiB = 1024;

test('the buffer grows with what arrived, by doubling, never past the announced size; finish gives it all back', () => {
  const budget = new BufferBudget(1 << 20);
  const m = new PartialMessage(budget);
  const message = Buffer.alloc(100 * KiB);
  for (let i = 0; i < message.length; i++) message[i] = i % 251;
  assert.ok(m.start(message.length, message, 0, 10));
  assert.is(budget.used, 16 * KiB, 'one read\'s worth first, not the announced 100 KiB');
  const held: number[] = [];
  for (let pos = 10; pos < message.length; pos += 8 * KiB) {
    assert.ok(m.append(message, pos, Math.min(pos + 8 * KiB, message.length)));
    held.push(budget.used);
  }
  assert.equal([...new Set(held)], [16 * KiB, 32 * KiB, 64 * KiB, 100 * KiB]);
  assert.is(m.missing, 0);
  assert.is(m.size, message.length);
  const whole = m.finish();
  assert.ok(whole.equals(message));
  assert.is(budget.used, 0);
  assert.not.ok(m.active);
});

test('a start the budget cannot hold holds nothing', () => {
  const budget = new BufferBudget(10 * KiB);
  const m = new PartialMessage(budget);
  assert.not.ok(m.start(64 * KiB, Buffer.alloc(5), 0, 5));
  assert.not.ok(m.active);
  assert.is(budget.used, 0);
  // A message smaller than a read's worth takes only its own size.
  assert.ok(m.start(8 * KiB, Buffer.alloc(5), 0, 5));
  assert.is(budget.used, 8 * KiB);
});

test('a growth the budget cannot hold is refused; what is held stays until discard gives it back', () => {
  const budget = new BufferBudget(40 * KiB);
  const other = new PartialMessage(budget);
  assert.ok(other.start(10 * KiB, Buffer.alloc(1), 0, 1));
  const m = new PartialMessage(budget);
  const bytes = Buffer.alloc(16 * KiB, 7);
  assert.ok(m.start(1 << 20, bytes, 0, bytes.length));
  assert.is(budget.used, 26 * KiB);
  assert.not.ok(m.append(bytes, 0, 1), '16 KiB more (32 KiB for this message) would make 42 KiB');
  assert.is(budget.used, 26 * KiB);
  m.discard();
  assert.is(budget.used, 10 * KiB);
  m.discard();
  assert.is(budget.used, 10 * KiB, 'a second discard gives nothing back twice');
  assert.ok(m.start(1 << 20, bytes, 0, bytes.length), 'the freed bytes serve the next message');
});

test('a lowered limit refuses new bytes but leaves what is held', () => {
  const budget = new BufferBudget(1 << 20);
  assert.ok(budget.take(100));
  budget.limit = 50;
  assert.not.ok(budget.take(1));
  assert.is(budget.used, 100);
  budget.give(100);
  assert.ok(budget.take(50));
});

test.run();
