import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { BufferBudget } from '../buffer-budget.js';
import { Framer, type FrameSink } from './framer.js';
import { typedMessage as typed } from './test-messages.js';

function untyped(code: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const m = Buffer.alloc(8 + body.length);
  m.writeInt32BE(8 + body.length, 0);
  m.writeInt32BE(code, 4);
  body.copy(m, 8);
  return m;
}

/** A budget that never refuses, for tests about framing alone. */
const unlimited = (): BufferBudget => new BufferBudget(Infinity);

function collect(): { sink: FrameSink; got: { code: number; bytes: Buffer }[] } {
  const got: { code: number; bytes: Buffer }[] = [];
  return { got, sink: { message: (code, buf, start, end) => got.push({ code, bytes: Buffer.from(buf.subarray(start, end)) }) } };
}

function feedInPieces(framer: Framer, stream: Buffer, cuts: number[], sink: FrameSink): void {
  let prev = 0;
  for (const c of [...cuts, stream.length]) {
    assert.is(framer.feed(stream.subarray(prev, c), sink), null);
    prev = c;
  }
}

test('whole typed messages in one chunk are cut at their boundaries', () => {
  const msgs = [typed('Q', 'SELECT 1\0'), typed('S', ''), typed('X', '')];
  const f = new Framer(10000, unlimited());
  f.startTyped(1 << 20);
  const { sink, got } = collect();
  assert.is(f.feed(Buffer.concat(msgs), sink), null);
  assert.equal(got.map((g) => String.fromCharCode(g.code)), ['Q', 'S', 'X']);
  got.forEach((g, i) => assert.ok(g.bytes.equals(msgs[i]!)));
  assert.not.ok(f.hasPartial);
});

test('a stream cut at every byte position yields the same messages', () => {
  const msgs = [typed('P', 'stmt\0SELECT $1\0\0\0'), typed('B', Buffer.alloc(300, 7)), typed('S', '')];
  const stream = Buffer.concat(msgs);
  for (let cut = 1; cut < stream.length; cut++) {
    for (const second of [cut + 1, cut + 3, stream.length]) {
      if (second <= cut || second > stream.length) continue;
      const f = new Framer(10000, unlimited());
      f.startTyped(1 << 20);
      const { sink, got } = collect();
      feedInPieces(f, stream, second < stream.length ? [cut, second] : [cut], sink);
      assert.is(got.length, msgs.length, `cut at ${cut}/${second}`);
      got.forEach((g, i) => assert.ok(g.bytes.equals(msgs[i]!), `cut at ${cut}, message ${i}`));
      assert.not.ok(f.hasPartial);
    }
  }
});

test('startup packet then typed messages in the same chunk switch mode at the boundary', () => {
  const startup = untyped(196608, Buffer.from('user\0bob\0\0'));
  const query = typed('Q', 'SELECT 1\0');
  const f = new Framer(10000, unlimited());
  const got: string[] = [];
  f.feed(Buffer.concat([startup, query]), {
    message: (code, buf, start, end) => {
      got.push(`${code}:${end - start}`);
      if (code === 0) f.startTyped(1 << 20);
    },
  });
  assert.equal(got, [`0:${startup.length}`, `${'Q'.charCodeAt(0)}:${query.length}`]);
});

test('a length over the limit is refused before any byte of the body is buffered', () => {
  const f = new Framer(10000, unlimited());
  f.startTyped(1000);
  const header = Buffer.from([0x51, 0, 0, 0x10, 0]); // 'Q', length 4096
  const err = f.feed(header, collect().sink);
  assert.equal(err, { kind: 'too-long', length: 4096, limit: 1000 });
});

test('a length below the header size is refused, also when the header is split', () => {
  const f = new Framer(10000, unlimited());
  f.startTyped(1000);
  assert.is(f.feed(Buffer.from([0x51, 0, 0]), collect().sink), null);
  assert.ok(f.hasPartial);
  assert.equal(f.feed(Buffer.from([0, 3]), collect().sink), { kind: 'too-short', length: 3 });
  const g = new Framer(10000, unlimited());
  assert.equal(g.feed(Buffer.from([0, 0, 0, 4, 1, 2, 3, 4]), collect().sink), { kind: 'too-short', length: 4 });
});

test('an absurd startup length (garbage before startup) is refused', () => {
  const f = new Framer(10000, unlimited());
  assert.equal(f.feed(Buffer.from('GET / HTTP/1.1\r\n'), collect().sink), { kind: 'too-long', length: 0x47455420, limit: 10000 });
});

test('a message of only a header (Sync) split across chunks', () => {
  const f = new Framer(10000, unlimited());
  f.startTyped(1000);
  const { sink, got } = collect();
  feedInPieces(f, typed('S', ''), [1, 2, 3, 4], sink);
  assert.is(got.length, 1);
  assert.is(got[0]!.code, 0x53);
});

test('a split message holds budget for what arrived only, and gives it back when whole', () => {
  const budget = new BufferBudget(1 << 20);
  const f = new Framer(10000, budget);
  f.startTyped(1 << 20);
  const message = typed('Q', Buffer.alloc(200 * 1024, 0x61));
  const { sink, got } = collect();
  assert.is(f.feed(message.subarray(0, 1000), sink), null);
  assert.is(budget.used, 16 * 1024, 'not the 200 KiB the header announced');
  assert.is(f.feed(message.subarray(1000, 150 * 1024), sink), null);
  assert.ok(budget.used >= 150 * 1024 && budget.used <= message.length);
  assert.is(f.feed(message.subarray(150 * 1024), sink), null);
  assert.is(got.length, 1);
  assert.ok(got[0]!.bytes.equals(message));
  assert.is(budget.used, 0);
});

test('a message the budget cannot hold is refused naming its size, what is held and the limit', () => {
  const budget = new BufferBudget(64 * 1024);
  const other = new Framer(10000, budget);
  other.startTyped(1 << 20);
  assert.is(other.feed(typed('Q', Buffer.alloc(40 * 1024)).subarray(0, 20 * 1024), collect().sink), null);
  assert.is(budget.used, 20 * 1024);
  const f = new Framer(10000, budget);
  f.startTyped(1 << 20);
  const message = typed('Q', Buffer.alloc(100 * 1024));
  assert.is(f.feed(message.subarray(0, 10 * 1024), collect().sink), null);
  assert.is(f.feed(message.subarray(10 * 1024, 20 * 1024), collect().sink), null);
  assert.is(budget.used, (20 + 32) * 1024);
  // 40 KiB would need a 64 KiB buffer: 32 KiB more than the limit leaves.
  assert.equal(f.feed(message.subarray(20 * 1024, 40 * 1024), collect().sink), { kind: 'over-budget', length: message.length, held: 52 * 1024, limit: 64 * 1024 });
  f.discardPartial();
  other.discardPartial();
  assert.is(budget.used, 0);
  assert.not.ok(f.hasPartial || other.hasPartial);
  // Refused at the first bytes too, when even those do not fit.
  const tight = new BufferBudget(1000);
  const g = new Framer(10000, tight);
  g.startTyped(1 << 20);
  assert.equal(g.feed(message.subarray(0, 2000), collect().sink), { kind: 'over-budget', length: message.length, held: 0, limit: 1000 });
  assert.is(tight.used, 0);
});

test('setLimit applies from the next message (the limit rises after login)', () => {
  const f = new Framer(10000, unlimited());
  f.startTyped(1000);
  const big = typed('Q', Buffer.alloc(2000));
  assert.equal(f.feed(big, collect().sink), { kind: 'too-long', length: 2004, limit: 1000 });
  const g = new Framer(10000, unlimited());
  g.startTyped(1000);
  g.setLimit(4096);
  const { sink, got } = collect();
  assert.is(g.feed(big, sink), null);
  assert.is(got.length, 1);
});

test('property: any split of any message sequence yields exactly the messages sent', () => {
  const message = fc.tuple(fc.integer({ min: 0x20, max: 0x7e }), fc.uint8Array({ maxLength: 200 }))
    .map(([code, body]) => typed(String.fromCharCode(code), Buffer.from(body)));
  fc.assert(
    fc.property(fc.array(message, { minLength: 1, maxLength: 20 }), fc.array(fc.nat(), { maxLength: 10 }), (msgs, rawCuts) => {
      const stream = Buffer.concat(msgs);
      const cuts = [...new Set(rawCuts.map((c) => c % stream.length))].filter((c) => c > 0).sort((a, b) => a - b);
      const budget = unlimited();
      const f = new Framer(10000, budget);
      f.startTyped(1 << 20);
      const { sink, got } = collect();
      feedInPieces(f, stream, cuts, sink);
      return got.length === msgs.length && got.every((g, i) => g.bytes.equals(msgs[i]!)) && !f.hasPartial && budget.used === 0;
    }),
  );
});

test('property: random bytes never throw, they frame or are refused', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, isTyped) => {
      const f = new Framer(10000, unlimited());
      if (isTyped) f.startTyped(4096);
      f.feed(Buffer.from(bytes), collect().sink);
      return true;
    }),
  );
});

test('a sink can stop the feed after SSLRequest: the TLS bytes after it are left in rest, however the chunks are cut', () => {
  const ssl = untyped(80877103);
  const hello = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);
  const stream = Buffer.concat([ssl, hello]);
  for (let cut = 1; cut < stream.length; cut++) {
    const framer = new Framer(10000, unlimited());
    const got: Buffer[] = [];
    const sink: FrameSink = { message: (_code, buf, start, end) => { got.push(Buffer.from(buf.subarray(start, end))); framer.stopAfterMessage(); } };
    let rest: Buffer | null = null;
    for (const piece of [stream.subarray(0, cut), stream.subarray(cut)]) {
      if (got.length > 0) {
        rest = Buffer.concat([rest ?? Buffer.alloc(0), piece]); // after the stop the caller owns the bytes
        continue;
      }
      assert.is(framer.feed(piece, sink), null);
      rest = framer.rest;
    }
    assert.equal(got, [ssl], `cut at ${cut}`);
    assert.ok((rest ?? Buffer.alloc(0)).equals(hello), `cut at ${cut}`);
  }
});

test.run();
