import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { READY_IDLE, READY_IN_BLOCK, endsIdle, readyAsIdle, withoutReady } from './stored-reply.js';
import { typedMessage } from './test-messages.js';

const row = typedMessage('D', Buffer.from([0, 1, 0, 0, 0, 1, 0x31]));
const complete = typedMessage('C', 'SELECT 1\0');

test('a stored reply ends idle; without its ReadyForQuery it can be sent before the in-block one', () => {
  const reply = Buffer.concat([row, complete, READY_IDLE]);
  assert.ok(endsIdle(reply));
  assert.not.ok(endsIdle(Buffer.concat([row, complete, READY_IN_BLOCK])));
  assert.not.ok(endsIdle(Buffer.from([0x5a])), 'shorter than a ReadyForQuery');
  assert.equal(Buffer.concat([withoutReady(reply), READY_IN_BLOCK]), Buffer.concat([row, complete, READY_IN_BLOCK]));
});

test('a reply filled inside a block is stored as idle, in its own last part', () => {
  const parts = [Buffer.from(row), Buffer.concat([complete, READY_IN_BLOCK])];
  assert.ok(readyAsIdle(parts));
  assert.ok(endsIdle(Buffer.concat(parts)));
});

test('a reply whose last part does not end with a whole ReadyForQuery T is refused', () => {
  assert.not.ok(readyAsIdle([]));
  assert.not.ok(readyAsIdle([Buffer.concat([row, complete, READY_IDLE])]), "already 'I' is not a block's reply");
  const split = [Buffer.concat([row, complete, READY_IN_BLOCK.subarray(0, 3)]), Buffer.from(READY_IN_BLOCK.subarray(3))];
  assert.not.ok(readyAsIdle(split), 'the message split across parts');
});

test.run();
