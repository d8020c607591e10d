import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { deflateSync, inflateSync } from 'node:zlib';
import {
  COMPRESSED_HEADER_LENGTH, CompressedPacketReader, CompressedPacketWriter, MAX_COMPRESSED_PAYLOAD, MIN_COMPRESS_LENGTH,
  type CompressionError,
} from './compression.js';
import { encodePacket } from './packets.js';

/** One compressed packet as a server or client writes it by hand. */
function frame(plain: Buffer, seq: number, compress: boolean): Buffer {
  const payload = compress ? deflateSync(plain) : plain;
  const header = Buffer.alloc(COMPRESSED_HEADER_LENGTH);
  header.writeUIntLE(payload.length, 0, 3);
  header[3] = seq;
  header.writeUIntLE(compress ? plain.length : 0, 4, 3);
  return Buffer.concat([header, payload]);
}

interface Read {
  plain: Buffer;
  seqs: number[];
  error: CompressionError | null;
}

function readAll(reader: CompressedPacketReader, stream: Buffer, cuts: readonly number[]): Read {
  const pieces: Buffer[] = [];
  const seqs: number[] = [];
  let prev = 0;
  for (const c of [...cuts, stream.length]) {
    // The chunk is reused once feed returns (as a socket's read buffer is): views must not outlive it.
    const chunk = Buffer.from(stream.subarray(prev, c));
    const error = reader.feed(chunk, (plain, seq) => {
      pieces.push(Buffer.from(plain));
      seqs.push(seq);
    });
    chunk.fill(0xee);
    if (error !== null) return { plain: Buffer.concat(pieces), seqs, error };
    prev = c;
  }
  return { plain: Buffer.concat(pieces), seqs, error: null };
}

const commands = Buffer.concat([encodePacket(Buffer.from('\x03SELECT 1'), 0), encodePacket(Buffer.from(`\x03SELECT '${'x'.repeat(300)}'`), 0)]);

test('compressed and uncompressed packets give back the plain stream and their sequence ids', () => {
  const stream = Buffer.concat([frame(commands.subarray(0, 20), 0, false), frame(commands.subarray(20), 1, true)]);
  const read = readAll(new CompressedPacketReader(), stream, []);
  assert.is(read.error, null);
  assert.ok(read.plain.equals(commands));
  assert.equal(read.seqs, [0, 1]);
});

test('a stream cut at every byte position (and pairs of positions) gives back the same bytes', () => {
  const stream = Buffer.concat([frame(commands.subarray(0, 9), 0, false), frame(commands.subarray(9), 1, true), frame(Buffer.alloc(0), 2, false)]);
  for (let cut = 1; cut < stream.length; cut++) {
    for (const second of [cut + 1, cut + 7, stream.length]) {
      if (second <= cut || second > stream.length) continue;
      const reader = new CompressedPacketReader();
      const read = readAll(reader, stream, second < stream.length ? [cut, second] : [cut]);
      assert.is(read.error, null, `cut at ${cut}/${second}`);
      assert.ok(read.plain.equals(commands), `cut at ${cut}/${second}`);
      assert.equal(read.seqs, [0, 1, 2]);
      assert.not.ok(reader.hasPartial);
    }
  }
});

test('the stream stopped inside a header or a payload is partial', () => {
  const stream = frame(commands, 0, true);
  for (const at of [3, COMPRESSED_HEADER_LENGTH, stream.length - 1]) {
    const reader = new CompressedPacketReader();
    assert.is(reader.feed(stream.subarray(0, at), () => assert.unreachable('nothing whole yet')), null);
    assert.ok(reader.hasPartial, `stopped at ${at}`);
  }
});

test('a payload that does not inflate, or not to its declared length, is corrupt', () => {
  const garbage = frame(Buffer.from('not deflate data at all, just text'), 0, false);
  garbage.writeUIntLE(100, 4, 3); // claims to be compressed
  const bad = readAll(new CompressedPacketReader(), garbage, []);
  assert.is(bad.error?.kind, 'corrupt');
  const short = frame(commands, 0, true);
  short.writeUIntLE(commands.length + 1, 4, 3);
  assert.match(readAll(new CompressedPacketReader(), short, []).error?.detail ?? '', /inflated to \d+ bytes, the header says/);
  const long = frame(commands, 0, true);
  long.writeUIntLE(commands.length - 1, 4, 3); // more output than declared: refused, not grown
  assert.is(readAll(new CompressedPacketReader(), long, []).error?.kind, 'corrupt');
});

test('the writer leaves short payloads uncompressed and numbers on from the peer\'s last packet', () => {
  const w = new CompressedPacketWriter();
  w.received(0);
  const small = Buffer.alloc(MIN_COMPRESS_LENGTH - 1, 0x41);
  const wrapped = w.wrap(small);
  assert.is(wrapped.length, COMPRESSED_HEADER_LENGTH + small.length);
  assert.equal([wrapped.readUIntLE(0, 3), wrapped[3], wrapped.readUIntLE(4, 3)], [small.length, 1, 0]);
  const big = Buffer.alloc(10_000, 0x42);
  const next = w.wrap(big);
  assert.equal([next[3], next.readUIntLE(4, 3)], [2, big.length]);
  assert.ok(next.length < 200, 'repetitive bytes shrink');
  assert.ok(inflateSync(next.subarray(COMPRESSED_HEADER_LENGTH)).equals(big));
  w.received(255);
  assert.is(w.wrap(small)[3], 0, 'sequence ids wrap at 256');
  assert.is(w.wrap(Buffer.alloc(0)).length, 0, 'nothing to send: no packet');
});

test('the writer sends incompressible bytes as they are, and splits payloads over 16 MiB', () => {
  const random = randomBytes(4096);
  const once = new CompressedPacketWriter().wrap(random);
  assert.is(once.readUIntLE(4, 3), 0, 'not compressed: deflate would not shrink it');
  assert.ok(once.subarray(COMPRESSED_HEADER_LENGTH).equals(random));
  const huge = Buffer.alloc(MAX_COMPRESSED_PAYLOAD + 10, 0x43);
  const wrapped = new CompressedPacketWriter().wrap(huge);
  const read = readAll(new CompressedPacketReader(), wrapped, []);
  assert.equal(read.seqs, [0, 1]);
  assert.ok(read.plain.equals(huge));
});

test('property: what the writer wraps, cut anywhere, the reader gives back', () => {
  const chunk = fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0, max: 5000 }).map((n) => new Uint8Array(n).fill(n % 7)));
  fc.assert(
    fc.property(fc.array(chunk, { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { maxLength: 8 }), (chunks, rawCuts) => {
      const w = new CompressedPacketWriter();
      const stream = Buffer.concat(chunks.map((c) => w.wrap(Buffer.from(c))));
      const cuts = [...new Set(rawCuts.map((c) => c % Math.max(1, stream.length)))].filter((c) => c > 0).sort((a, b) => a - b);
      const reader = new CompressedPacketReader();
      const read = readAll(reader, stream, cuts);
      const nonEmpty = chunks.filter((c) => c.length > 0).length;
      return read.error === null && read.plain.equals(Buffer.concat(chunks)) && read.seqs.length === nonEmpty
        && read.seqs.every((s, i) => s === i) && !reader.hasPartial;
    }),
  );
});

test('property: random bytes never throw, they read or are refused', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), fc.array(fc.nat(), { maxLength: 4 }), (bytes, rawCuts) => {
      const stream = Buffer.from(bytes);
      const cuts = [...new Set(rawCuts.map((c) => c % Math.max(1, stream.length)))].filter((c) => c > 0).sort((a, b) => a - b);
      readAll(new CompressedPacketReader(), stream, cuts);
      return true;
    }),
  );
});

test.run();
