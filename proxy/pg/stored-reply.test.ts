import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { READY_IDLE, READY_IN_BLOCK, endsIdle, readyAsIdle, withoutDescriptions, withoutReady } from './stored-reply.js';
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

test('a described reply answers the same execution without Describe once its descriptions are cut', () => {
  const bindComplete = typedMessage('2');
  const rowDescription = typedMessage('T', Buffer.from([0, 1, 0x76, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 23, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0]));
  const parameterDescription = typedMessage('t', Buffer.from([0, 1, 0, 0, 0, 23]));
  const rest = Buffer.concat([row, complete, READY_IDLE]);
  const bare = Buffer.concat([bindComplete, rest]);
  assert.equal(withoutDescriptions(Buffer.concat([bindComplete, rowDescription, rest])), bare, 'Describe portal');
  assert.equal(withoutDescriptions(Buffer.concat([bindComplete, parameterDescription, rowDescription, rest])), bare, 'Describe statement');
  const noRows = Buffer.concat([bindComplete, typedMessage('n'), typedMessage('C', 'UPDATE 0\0'), READY_IDLE]);
  assert.equal(withoutDescriptions(noRows), Buffer.concat([bindComplete, typedMessage('C', 'UPDATE 0\0'), READY_IDLE]), 'NoData');
  assert.equal(withoutDescriptions(bare), bare, 'nothing to cut');
  assert.is(withoutDescriptions(rest), null, 'not a reply to Bind');
});

test.run();
