import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { MAX_PACKET_PAYLOAD } from './codes.js';
import { BufferBudget } from '../buffer-budget.js';
import { PacketFramer, commandText, encodePacket, payloadOf, type PacketSink } from './packets.js';

interface Got {
  bytes: Buffer;
  seq: number;
  lastSeq: number;
  payloadLength: number;
}

/** A budget that never refuses, for tests about framing alone. */
const unlimited = (): BufferBudget => new BufferBudget(Infinity);

function collect(): { sink: PacketSink; got: Got[] } {
  const got: Got[] = [];
  return {
    got,
    sink: { packet: (buf, start, end, seq, lastSeq, payloadLength) => got.push({ bytes: Buffer.from(buf.subarray(start, end)), seq, lastSeq, payloadLength }) },
  };
}

function feedInPieces(framer: PacketFramer, stream: Buffer, cuts: number[], sink: PacketSink): void {
  let prev = 0;
  for (const c of [...cuts, stream.length]) {
    assert.is(framer.feed(stream.subarray(prev, c), sink), null);
    prev = c;
  }
}

test('whole packets in one chunk are cut at their boundaries, with sequence ids and lengths', () => {
  const packets = [encodePacket(Buffer.from('\x03SELECT 1'), 0), encodePacket(Buffer.alloc(0), 3), encodePacket(Buffer.from('\x0e'), 0)];
  const f = new PacketFramer(1 << 20, unlimited());
  const { sink, got } = collect();
  assert.is(f.feed(Buffer.concat(packets), sink), null);
  assert.equal(got.map((g) => [g.seq, g.payloadLength]), [[0, 9], [3, 0], [0, 1]]);
  got.forEach((g, i) => assert.ok(g.bytes.equals(packets[i]!)));
  assert.not.ok(f.hasPartial);
});

test('a stream cut at every byte position (and pairs of positions) yields the same packets', () => {
  const packets = [encodePacket(Buffer.from('\x16SELECT ?'), 0), encodePacket(Buffer.alloc(300, 7), 1), encodePacket(Buffer.alloc(0), 2)];
  const stream = Buffer.concat(packets);
  for (let cut = 1; cut < stream.length; cut++) {
    for (const second of [cut + 1, cut + 5, stream.length]) {
      if (second <= cut || second > stream.length) continue;
      const f = new PacketFramer(1 << 20, unlimited());
      const { sink, got } = collect();
      feedInPieces(f, stream, second < stream.length ? [cut, second] : [cut], sink);
      assert.is(got.length, packets.length, `cut at ${cut}/${second}`);
      got.forEach((g, i) => assert.ok(g.bytes.equals(packets[i]!), `cut at ${cut}, packet ${i}`));
    }
  }
});

test('a payload of 0xFFFFFF bytes continues: one logical packet, headers kept, payload joined', () => {
  for (const extra of [0, 1, 5000]) {
    const payload = Buffer.alloc(MAX_PACKET_PAYLOAD + extra);
    for (let i = 0; i < payload.length; i += 997) payload[i] = i & 0xff;
    const wire = encodePacket(payload, 250);
    assert.is(wire.length, payload.length + 8, 'two headers (an empty terminating packet when extra = 0)');
    for (const cuts of [[], [3], [MAX_PACKET_PAYLOAD + 2], [MAX_PACKET_PAYLOAD + 4, MAX_PACKET_PAYLOAD + 6], [100, 1 << 20, MAX_PACKET_PAYLOAD + 5]]) {
      const f = new PacketFramer(64 << 20, unlimited());
      const { sink, got } = collect();
      feedInPieces(f, wire, cuts.filter((c) => c < wire.length), sink);
      assert.is(got.length, 1);
      assert.is(got[0]!.seq, 250);
      assert.is(got[0]!.lastSeq, 251);
      assert.is(got[0]!.payloadLength, payload.length);
      assert.ok(got[0]!.bytes.equals(wire));
      assert.ok(payloadOf(got[0]!.bytes, 0, got[0]!.bytes.length).equals(payload));
    }
  }
});

test('commandText: the UTF-8 text after the command byte, in place or across the pieces of a long packet', () => {
  const text = 'SELECT \'héllo\' /* ✓ */';
  const packet = encodePacket(Buffer.concat([Buffer.from([3]), Buffer.from(text)]), 0);
  const framed = Buffer.concat([Buffer.from('junk'), packet, Buffer.from('more')]);
  assert.is(commandText(framed, 4, 4 + packet.length), text);
  assert.is(commandText(encodePacket(Buffer.from([3]), 0), 0, 5), '', 'a command byte alone');
  const long = 'x'.repeat(MAX_PACKET_PAYLOAD + 10);
  const split = encodePacket(Buffer.concat([Buffer.from([3]), Buffer.from(long)]), 0);
  assert.is(commandText(split, 0, split.length), long);
});

test('a length over the limit is refused at the header, before any byte of the body is buffered', () => {
  const f = new PacketFramer(1000, unlimited());
  assert.equal(f.feed(Buffer.from([0x00, 0x10, 0x00, 0x00]), collect().sink), { kind: 'too-long', length: 4096, limit: 1000 });
  // "GET " read as a header: a 5.5 MB packet.
  assert.equal(new PacketFramer(128 * 1024, unlimited()).feed(Buffer.from('GET / HTTP/1.1\r\n'), collect().sink), { kind: 'too-long', length: 0x544547, limit: 128 * 1024 });
});

test('the limit counts the whole logical packet across continuation packets', () => {
  const f = new PacketFramer(MAX_PACKET_PAYLOAD + 10, unlimited());
  const header = Buffer.from([0xff, 0xff, 0xff, 0]);
  assert.is(f.feed(Buffer.concat([header, Buffer.alloc(MAX_PACKET_PAYLOAD)]), collect().sink), null);
  assert.ok(f.hasPartial);
  assert.equal(f.feed(Buffer.from([20, 0, 0, 1]), collect().sink), { kind: 'too-long', length: MAX_PACKET_PAYLOAD + 20, limit: MAX_PACKET_PAYLOAD + 10 });
});

test('a continuation packet with the wrong sequence id is out of order', () => {
  const f = new PacketFramer(64 << 20, unlimited());
  f.feed(Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 7]), Buffer.alloc(MAX_PACKET_PAYLOAD)]), collect().sink);
  assert.equal(f.feed(Buffer.from([1, 0, 0, 9, 0]), collect().sink), { kind: 'out-of-order', expected: 8, got: 9 });
});

test('a split packet holds budget for what arrived only; continuation packets stay counted until the logical packet ends', () => {
  const budget = new BufferBudget(64 << 20);
  const f = new PacketFramer(64 << 20, budget);
  const payload = Buffer.alloc(MAX_PACKET_PAYLOAD + 1000, 0x61);
  const wire = encodePacket(payload, 0);
  const { sink, got } = collect();
  assert.is(f.feed(wire.subarray(0, 1000), sink), null);
  assert.is(budget.used, 16 * 1024, 'not the 16 MiB the header announced');
  assert.is(f.feed(wire.subarray(1000, MAX_PACKET_PAYLOAD + 4), sink), null);
  assert.is(budget.used, MAX_PACKET_PAYLOAD + 4, 'the first physical packet, held for the logical one');
  assert.is(f.feed(wire.subarray(MAX_PACKET_PAYLOAD + 4, MAX_PACKET_PAYLOAD + 10), sink), null);
  assert.is(budget.used, MAX_PACKET_PAYLOAD + 4 + 1004);
  assert.is(f.feed(wire.subarray(MAX_PACKET_PAYLOAD + 10), sink), null);
  assert.is(got.length, 1);
  assert.ok(got[0]!.bytes.equals(wire));
  assert.is(budget.used, 0);
});

test('a packet the budget cannot hold is refused naming its size, what is held and the limit; discardPartial gives all back', () => {
  const budget = new BufferBudget(MAX_PACKET_PAYLOAD + 4 + 20_000);
  const f = new PacketFramer(64 << 20, budget);
  const wire = encodePacket(Buffer.alloc(MAX_PACKET_PAYLOAD + 100_000), 0);
  assert.is(f.feed(wire.subarray(0, MAX_PACKET_PAYLOAD + 4 + 5000), collect().sink), null);
  assert.is(budget.used, MAX_PACKET_PAYLOAD + 4 + 16 * 1024, 'the first physical packet and a first buffer of 16 KiB for the next');
  assert.equal(f.feed(wire.subarray(MAX_PACKET_PAYLOAD + 4 + 5000, MAX_PACKET_PAYLOAD + 4 + 20_000), collect().sink),
    { kind: 'over-budget', length: MAX_PACKET_PAYLOAD + 100_000, held: MAX_PACKET_PAYLOAD + 4 + 16 * 1024, limit: MAX_PACKET_PAYLOAD + 4 + 20_000 });
  f.discardPartial();
  assert.is(budget.used, 0);
  assert.not.ok(f.hasPartial);
  // A whole continuation packet that arrives in one chunk is copied, and refused when the copy does not fit.
  const tight = new BufferBudget(1000);
  assert.equal(new PacketFramer(64 << 20, tight).feed(wire.subarray(0, MAX_PACKET_PAYLOAD + 4), collect().sink),
    { kind: 'over-budget', length: MAX_PACKET_PAYLOAD, held: 0, limit: 1000 });
  assert.is(tight.used, 0);
});

test('property: any split of any packet sequence yields exactly the packets sent', () => {
  const arb = fc.tuple(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 0, max: 255 })).map(([p, seq]) => encodePacket(Buffer.from(p), seq));
  fc.assert(
    fc.property(fc.array(arb, { minLength: 1, maxLength: 20 }), fc.array(fc.nat(), { maxLength: 10 }), (packets, rawCuts) => {
      const stream = Buffer.concat(packets);
      const cuts = [...new Set(rawCuts.map((c) => c % stream.length))].filter((c) => c > 0).sort((a, b) => a - b);
      const budget = unlimited();
      const f = new PacketFramer(1 << 20, budget);
      const { sink, got } = collect();
      feedInPieces(f, stream, cuts, sink);
      return got.length === packets.length && got.every((g, i) => g.bytes.equals(packets[i]!)) && !f.hasPartial && budget.used === 0;
    }),
  );
});

test('property: random bytes never throw, they frame or are refused', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      new PacketFramer(4096, unlimited()).feed(Buffer.from(bytes), collect().sink);
      return true;
    }),
  );
});

test.run();
