import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SplitHeader } from './split-header.js';

const HEADER = Buffer.from([0x51, 0, 0, 0, 9]);

test('a header inside the chunk is read in place', () => {
  const h = new SplitHeader(5);
  const chunk = Buffer.concat([Buffer.from('xy'), HEADER, Buffer.from('body')]);
  assert.is(h.read(chunk, 2, 5), 7);
  assert.ok(h.buf === chunk);
  assert.is(h.at, 2);
  assert.not.ok(h.gathered);
  assert.not.ok(h.pending);
});

test('a header cut anywhere is gathered across chunks, and the same bytes come out', () => {
  for (let cut = 1; cut < HEADER.length; cut++) {
    for (let second = cut + 1; second <= HEADER.length; second++) {
      const h = new SplitHeader(5);
      const pieces = [HEADER.subarray(0, cut), HEADER.subarray(cut, second), Buffer.concat([HEADER.subarray(second), Buffer.from('rest')])];
      assert.is(h.read(pieces[0]!, 0, 5), -1, `cut ${cut}`);
      assert.ok(h.pending);
      if (second < HEADER.length) {
        assert.is(h.read(pieces[1]!, 0, 5), -1);
        assert.is(h.read(pieces[2]!, 0, 5), HEADER.length - second);
      } else {
        assert.is(h.read(pieces[1]!, 0, 5), second - cut);
      }
      assert.ok(h.gathered);
      assert.not.ok(h.pending);
      assert.equal(h.buf.subarray(h.at, h.at + 5), HEADER);
    }
  }
});

test('a smaller header than the capacity, and discard() forgets a partial one', () => {
  const h = new SplitHeader(5);
  assert.is(h.read(Buffer.from([1, 2]), 0, 4), -1);
  h.discard();
  assert.not.ok(h.pending);
  assert.is(h.read(Buffer.from([5, 6, 7, 8, 9]), 1, 4), 5);
  assert.equal(h.buf.subarray(h.at, h.at + 4), Buffer.from([6, 7, 8, 9]));
  assert.is(h.read(Buffer.from([5, 6, 7]), 1, 4), -1);
  assert.is(h.read(Buffer.from([1, 2, 3]), 0, 4), 2);
  assert.equal(h.buf.subarray(h.at, h.at + 4), Buffer.from([6, 7, 1, 2]));
});

test.run();
