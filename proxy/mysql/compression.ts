// MySQL's classic compressed protocol (CLIENT_COMPRESS, zlib), as the client leg speaks it once the
// login's OK has passed: every byte either way travels in compressed packets. A compressed packet
// is a 7-byte header (3 bytes: the length of what follows on the wire; 1 byte: its compressed
// sequence id; 3 bytes: the length once inflated, 0 when the bytes follow uncompressed) and the
// payload. Its payload is any stretch of the plain packet stream: a plain packet may span several
// compressed ones and one compressed packet may hold several plain ones, so the plain stream they
// carry is framed as usual afterwards (packets.ts).
//
// Pure: bytes in, bytes out (zlib runs synchronously: a payload is at most 16 MiB, and most are a
// few kilobytes). Sequence ids: the compressed packets a side sends number on from the last one it
// received (each command from the client starts again at 0), as the server does; those received
// are not checked (the plain packets inside carry their own, which are).
import { deflateSync, inflateSync, constants } from 'node:zlib';

export const COMPRESSED_HEADER_LENGTH = 7;
/** Largest payload of one compressed packet, either length (3 bytes). */
export const MAX_COMPRESSED_PAYLOAD = 0xffffff;
/** Shorter payloads go uncompressed, as the server sends them: deflate cannot shrink them. */
export const MIN_COMPRESS_LENGTH = 50;

export type CompressionError =
  /** The payload does not inflate, or not to the length its header says. */
  | { kind: 'corrupt'; detail: string };

/**
 * Cuts a stream of compressed packets and hands on the plain bytes each carries, in order. A
 * payload sent uncompressed that lies inside one chunk is handed on as a view into it (valid until
 * the sink returns, like the chunk); everything else is a buffer of its own.
 */
export class CompressedPacketReader {
  private readonly header = Buffer.alloc(COMPRESSED_HEADER_LENGTH);
  private headerFilled = 0;
  /** The payload being assembled across chunks, how much of it is filled and its header's fields. */
  private pending: Buffer | null = null;
  private pendingFilled = 0;
  private pendingSeq = 0;
  private pendingInflated = 0;

  /** True when the stream stopped inside a compressed packet. */
  get hasPartial(): boolean {
    return this.headerFilled > 0 || this.pending !== null;
  }

  /** `sink` gets the plain bytes of each compressed packet and its sequence id; stops at the first error. */
  feed(chunk: Buffer, sink: (plain: Buffer, seq: number) => void): CompressionError | null {
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      if (this.pending !== null) {
        const take = Math.min(this.pending.length - this.pendingFilled, len - pos);
        chunk.copy(this.pending, this.pendingFilled, pos, pos + take);
        this.pendingFilled += take;
        pos += take;
        if (this.pendingFilled < this.pending.length) continue;
        const payload = this.pending;
        this.pending = null;
        const err = this.deliver(payload, this.pendingSeq, this.pendingInflated, sink);
        if (err !== null) return err;
        continue;
      }
      let wire: number;
      let seq: number;
      let inflated: number;
      if (this.headerFilled === 0 && len - pos >= COMPRESSED_HEADER_LENGTH) {
        wire = chunk.readUIntLE(pos, 3);
        seq = chunk[pos + 3]!;
        inflated = chunk.readUIntLE(pos + 4, 3);
        pos += COMPRESSED_HEADER_LENGTH;
      } else {
        const take = Math.min(COMPRESSED_HEADER_LENGTH - this.headerFilled, len - pos);
        chunk.copy(this.header, this.headerFilled, pos, pos + take);
        this.headerFilled += take;
        pos += take;
        if (this.headerFilled < COMPRESSED_HEADER_LENGTH) continue;
        this.headerFilled = 0;
        wire = this.header.readUIntLE(0, 3);
        seq = this.header[3]!;
        inflated = this.header.readUIntLE(4, 3);
      }
      if (len - pos >= wire) {
        const err = this.deliver(chunk.subarray(pos, pos + wire), seq, inflated, sink);
        if (err !== null) return err;
        pos += wire;
        continue;
      }
      this.pending = Buffer.allocUnsafe(wire);
      this.pendingFilled = 0;
      this.pendingSeq = seq;
      this.pendingInflated = inflated;
    }
    return null;
  }

  private deliver(payload: Buffer, seq: number, inflated: number, sink: (plain: Buffer, seq: number) => void): CompressionError | null {
    if (inflated === 0) {
      sink(payload, seq);
      return null;
    }
    let plain: Buffer;
    try {
      plain = inflateSync(payload, { maxOutputLength: inflated });
    } catch (err) {
      return { kind: 'corrupt', detail: (err as Error).message };
    }
    if (plain.length !== inflated) return { kind: 'corrupt', detail: `inflated to ${plain.length} bytes, the header says ${inflated}` };
    sink(plain, seq);
    return null;
  }
}

/**
 * Wraps plain bytes in compressed packets. Each call's bytes become one compressed packet (more
 * past 16 MiB), numbered on from the peer's last packet (`received`).
 */
export class CompressedPacketWriter {
  private seq = 0;

  /** The peer sent a compressed packet with this sequence id: ours continue after it. */
  received(seq: number): void {
    this.seq = (seq + 1) & 0xff;
  }

  /** `bytes` (any stretch of the plain stream) as compressed packets, in a buffer of their own. */
  wrap(bytes: Buffer): Buffer {
    const parts: Buffer[] = [];
    for (let from = 0; from < bytes.length; from += MAX_COMPRESSED_PAYLOAD) {
      const piece = bytes.subarray(from, Math.min(bytes.length, from + MAX_COMPRESSED_PAYLOAD));
      // The fastest level: a proxy compresses every reply on its way, the server only its own.
      const deflated = piece.length < MIN_COMPRESS_LENGTH ? null : deflateSync(piece, { level: constants.Z_BEST_SPEED });
      const compressed = deflated !== null && deflated.length < piece.length;
      const payload = compressed ? deflated : piece;
      const header = Buffer.allocUnsafe(COMPRESSED_HEADER_LENGTH);
      header.writeUIntLE(payload.length, 0, 3);
      header[3] = this.seq;
      header.writeUIntLE(compressed ? piece.length : 0, 4, 3);
      this.seq = (this.seq + 1) & 0xff;
      parts.push(header, payload);
    }
    return Buffer.concat(parts);
  }
}
