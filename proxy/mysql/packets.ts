// Cuts a MySQL byte stream into whole logical packets. A packet is a 3-byte little-endian payload
// length and a 1-byte sequence id; a payload of exactly 0xFFFFFF bytes continues in the next packet
// (sequence id + 1) until one shorter than that, possibly empty, ends it. A logical packet that lies
// inside one chunk is handed on as a view into that chunk, headers included, without copying; one
// that spans chunks is assembled in a PartialMessage, whose bytes come from the shared budget.
// Pure: bytes in, packet boundaries out. Also the few payload readers the codecs share.
import { MAX_PACKET_PAYLOAD } from './codes.js';
import type { BufferBudget } from '../buffer-budget.js';
import { PartialMessage } from '../partial-message.js';
import { SplitHeader } from '../split-header.js';

export interface PacketSink {
  /**
   * One whole logical packet: buf[start, end) holds its physical packets, headers included.
   * `seq` is the sequence id of its first physical packet, `lastSeq` that of its last.
   */
  packet(buf: Buffer, start: number, end: number, seq: number, lastSeq: number, payloadLength: number): void;
}

export type PacketError =
  | { kind: 'too-long'; length: number; limit: number }
  | { kind: 'out-of-order'; expected: number; got: number }
  /** Holding the rest of a `length`-byte packet would pass the budget's `limit` (`held` already held). */
  | { kind: 'over-budget'; length: number; held: number; limit: number };

export class PacketFramer {
  private readonly header = new SplitHeader(4);
  /** The physical packet being assembled across chunks. */
  private readonly partial: PartialMessage;
  /** Physical packets of a logical packet that continues (each 0xFFFFFF long), held in the budget. */
  private parts: Buffer[] = [];
  private partsPayload = 0;
  private partsHeld = 0;
  private firstSeq = 0;
  private lastSeq = 0;
  /** A sink asked to end the feed after the current packet (stopAfterMessage). */
  private stopping = false;
  /** The bytes of the chunk after the packet a sink stopped at (copied); null when none. */
  rest: Buffer | null = null;

  /** Split packets take their bytes from `budget`. */
  constructor(private limit: number, private readonly budget: BufferBudget) {
    this.partial = new PartialMessage(budget);
  }

  /** Changes the size limit from the next logical packet on (e.g. after login). */
  setLimit(limit: number): void {
    this.limit = limit;
  }

  /** True when the stream stopped in the middle of a logical packet. */
  get hasPartial(): boolean {
    return this.header.pending || this.partial.active || this.parts.length > 0;
  }

  /** Drops a packet that arrived in part (the session ended), giving its bytes back to the budget. */
  discardPartial(): void {
    this.header.discard();
    this.partial.discard();
    this.dropParts();
  }

  /**
   * Ends the current feed once the sink returns: what follows in the chunk is not the protocol's
   * (a TLS handshake after SSLRequest) and is left in `rest`.
   */
  stopAfterMessage(): void {
    this.stopping = true;
  }

  /** `chunk` may be reused once this returns (read-buffer.ts): what is kept longer is copied. */
  feed(chunk: Buffer, sink: PacketSink): PacketError | null {
    let pos = 0;
    const len = chunk.length;
    this.rest = null;
    while (pos < len) {
      if (this.stopping) break;
      if (this.partial.active) {
        const take = Math.min(this.partial.missing, len - pos);
        // (The logical packet's length counts payloads: without this physical packet's header.)
        if (!this.partial.append(chunk, pos, pos + take)) return this.overBudget(this.partsPayload + this.partial.size - 4);
        pos += take;
        if (this.partial.missing > 0) continue;
        const whole = this.partial.finish();
        const err = this.physical(whole, 0, whole.length, sink, true);
        if (err) return err;
        continue;
      }
      const next = this.header.read(chunk, pos, 4);
      if (next < 0) break;
      pos = next;
      const { buf: h, at } = this.header;
      const payload = h.readUIntLE(at, 3);
      const seq = h[at + 3]!;
      // Where the physical packet starts in this chunk; -1 when its header came in pieces.
      const start = this.header.gathered ? -1 : at;
      const err = this.check(payload, seq);
      if (err) return err;
      if (start >= 0 && len - pos >= payload) {
        pos += payload;
        const err = this.physical(chunk, start, pos, sink, false);
        if (err) return err;
        continue;
      }
      // The packet goes on in later chunks (or only its header came, split): assemble it.
      const begun = start >= 0 ? this.partial.start(4 + payload, chunk, start, len) : this.partial.start(4 + payload, h, 0, 4);
      if (!begun) return this.overBudget(this.partsPayload + payload);
      if (start >= 0) pos = len;
      if (this.partial.missing === 0) {
        const whole = this.partial.finish();
        const err = this.physical(whole, 0, whole.length, sink, true);
        if (err) return err;
      }
    }
    if (this.stopping) {
      this.stopping = false;
      if (pos < len) this.rest = Buffer.from(chunk.subarray(pos));
    }
    return null;
  }

  private check(payload: number, seq: number): PacketError | null {
    if (this.parts.length > 0) {
      const expected = (this.lastSeq + 1) & 0xff;
      if (seq !== expected) return { kind: 'out-of-order', expected, got: seq };
    }
    const total = this.partsPayload + payload;
    if (total > this.limit) return { kind: 'too-long', length: total, limit: this.limit };
    return null;
  }

  private overBudget(length: number): PacketError {
    return { kind: 'over-budget', length, held: this.budget.used, limit: this.budget.limit };
  }

  /** One whole physical packet buf[start, end); `owned`: buf is the framer's own (not the chunk). */
  private physical(buf: Buffer, start: number, end: number, sink: PacketSink, owned: boolean): PacketError | null {
    const payload = end - start - 4;
    const seq = buf[start + 3]!;
    if (this.parts.length === 0) this.firstSeq = seq;
    this.lastSeq = seq;
    if (payload === MAX_PACKET_PAYLOAD) {
      // Kept past this chunk, which may be reused: a copy unless assembled in a buffer of our own.
      // Either way it is held until the logical packet ends, so it counts in the budget again.
      const part = owned ? buf : Buffer.from(buf.subarray(start, end));
      if (!this.budget.take(part.length)) return this.overBudget(this.partsPayload + payload);
      this.parts.push(part);
      this.partsPayload += payload;
      this.partsHeld += part.length;
      return null;
    }
    if (this.parts.length === 0) {
      sink.packet(buf, start, end, seq, seq, payload);
      return null;
    }
    this.parts.push(buf.subarray(start, end));
    const whole = Buffer.concat(this.parts);
    const total = this.partsPayload + payload;
    this.dropParts();
    sink.packet(whole, 0, whole.length, this.firstSeq, seq, total);
    return null;
  }

  private dropParts(): void {
    this.budget.give(this.partsHeld);
    this.parts = [];
    this.partsPayload = 0;
    this.partsHeld = 0;
  }
}

/**
 * The text after the command byte of the logical packet buf[start, end) (COM_QUERY, COM_STMT_PREPARE,
 * COM_INIT_DB), UTF-8. Decoded in place for a packet of one piece: this runs for every statement,
 * and payloadOf's view of the payload would be made only to be decoded.
 */
export function commandText(buf: Buffer, start: number, end: number): string {
  const first = buf[start]! | (buf[start + 1]! << 8) | (buf[start + 2]! << 16);
  if (first < MAX_PACKET_PAYLOAD) return buf.toString('utf8', start + 5, start + 4 + first);
  return payloadOf(buf, start, end).toString('utf8', 1);
}

/** The payload of the logical packet buf[start, end): headers removed (copies only when split). */
export function payloadOf(buf: Buffer, start: number, end: number): Buffer {
  const first = buf.readUIntLE(start, 3);
  if (first < MAX_PACKET_PAYLOAD) return buf.subarray(start + 4, start + 4 + first);
  const pieces: Buffer[] = [];
  let pos = start;
  while (pos < end) {
    const n = buf.readUIntLE(pos, 3);
    pieces.push(buf.subarray(pos + 4, pos + 4 + n));
    pos += 4 + n;
  }
  return Buffer.concat(pieces);
}

/** Wraps `payload` in physical packets starting at sequence id `seq` (split at 0xFFFFFF bytes). */
export function encodePacket(payload: Buffer, seq: number): Buffer {
  const count = Math.floor(payload.length / MAX_PACKET_PAYLOAD) + 1;
  const out = Buffer.allocUnsafe(payload.length + 4 * count);
  let pos = 0;
  let from = 0;
  for (let i = 0; i < count; i++) {
    const n = Math.min(MAX_PACKET_PAYLOAD, payload.length - from);
    out.writeUIntLE(n, pos, 3);
    out[pos + 3] = (seq + i) & 0xff;
    payload.copy(out, pos + 4, from, from + n);
    pos += 4 + n;
    from += n;
  }
  return out;
}

/** A cursor over one payload; a read past the end throws MalformedPacketError. */
export class PayloadReader {
  constructor(readonly buf: Buffer, public pos: number, readonly end: number) {}

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number): void {
    if (this.pos + n > this.end) throw new MalformedPacketError(`packet ends after ${this.end - this.pos} of ${n} expected bytes`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  /** A length-encoded integer; 0xFB (NULL) reads as -1. Values above 2^53 lose precision (never needed). */
  lenenc(): number {
    const first = this.u8();
    if (first < 0xfb) return first;
    if (first === 0xfb) return -1;
    if (first === 0xfc) return this.u16();
    if (first === 0xfd) {
      this.need(3);
      const v = this.buf.readUIntLE(this.pos, 3);
      this.pos += 3;
      return v;
    }
    if (first === 0xfe) {
      this.need(8);
      const v = Number(this.buf.readBigUInt64LE(this.pos));
      this.pos += 8;
      return v;
    }
    throw new MalformedPacketError('invalid length-encoded integer 0xff');
  }

  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }

  /** A NUL-terminated string; a missing NUL is malformed. */
  cstring(): string {
    const nul = this.buf.indexOf(0, this.pos);
    if (nul < 0 || nul >= this.end) throw new MalformedPacketError('string without terminating NUL');
    const v = this.buf.toString('utf8', this.pos, nul);
    this.pos = nul + 1;
    return v;
  }

  /** A NUL-terminated string, or the rest of the payload when the NUL is missing (lenient servers). */
  cstringOrRest(): string {
    let nul = this.buf.indexOf(0, this.pos);
    if (nul < 0 || nul >= this.end) nul = this.end;
    const v = this.buf.toString('utf8', this.pos, nul);
    this.pos = Math.min(nul + 1, this.end);
    return v;
  }

  lenencBytes(): Buffer {
    const n = this.lenenc();
    return n < 0 ? Buffer.alloc(0) : this.bytes(n);
  }

  lenencString(): string {
    return this.lenencBytes().toString('utf8');
  }

  rest(): Buffer {
    const v = this.buf.subarray(this.pos, this.end);
    this.pos = this.end;
    return v;
  }
}

export class MalformedPacketError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedPacketError';
  }
}
