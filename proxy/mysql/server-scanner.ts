// Follows logical packet boundaries in what the server sends, so the reply tracker can tell where a
// reply ends and read the few small packets it needs (OK, EOF, ERR, column counts), while the bytes
// themselves are relayed in the chunks they arrived in. Rows are skipped, never buffered: a row of
// any size costs nothing here. Pure: bytes in, packet events out.
import { MAX_PACKET_PAYLOAD } from './codes.js';
import { SplitHeader } from '../split-header.js';

export interface ServerPacketSink {
  /**
   * A logical packet starts. `first` is its first payload byte (-1 for an empty payload),
   * `length` the payload length of its first physical packet (MAX_PACKET_PAYLOAD when it
   * continues). Returns whether `body` should be called with the whole payload.
   */
  begin(first: number, seq: number, length: number): boolean;
  /** The payload of a packet `begin` asked for: buf[start, end), headers removed. */
  body(buf: Buffer, start: number, end: number): void;
  /**
   * The logical packet is complete (after `body` when that was asked for). Returning true stops
   * `feed` right after this packet, so the caller can act at that boundary.
   */
  end(): boolean | void;
}

export class ServerScanner {
  private readonly header = new SplitHeader(4);
  /** Payload bytes of the current physical packet still to come. */
  private remaining = 0;
  /** Length of the current physical packet's payload. */
  private physicalLength = 0;
  /** The current logical packet continues in another physical packet. */
  private continuing = false;
  /** `begin` is due when the first payload byte arrives. */
  private needFirst = false;
  private seq = 0;
  private wanted = false;
  private parts: Buffer[] = [];
  /** Sequence id of the latest physical packet header seen. */
  lastSeq = 0;

  /** True between logical packets: a packet of the proxy's own may be inserted here. */
  get atBoundary(): boolean {
    return !this.header.pending && this.remaining === 0 && !this.continuing;
  }

  /**
   * Reads chunk[from, ...) and returns where it stopped: the chunk's end, or just after a packet
   * whose `end` returned true. `chunk` may be reused once this returns (read-buffer.ts): nothing
   * keeps a view of it.
   */
  feed(chunk: Buffer, sink: ServerPacketSink, from = 0): number {
    let pos = from;
    const len = chunk.length;
    while (pos < len) {
      if (this.remaining > 0) {
        if (this.needFirst) {
          this.needFirst = false;
          this.wanted = sink.begin(chunk[pos]!, this.seq, this.physicalLength);
        }
        const take = Math.min(this.remaining, len - pos);
        const ends = take === this.remaining && this.physicalLength !== MAX_PACKET_PAYLOAD;
        if (this.wanted && ends && this.parts.length === 0) {
          // The common case: the whole packet lies in this chunk, read in place.
          this.remaining = 0;
          this.wanted = false;
          this.continuing = false;
          sink.body(chunk, pos, pos + take);
          pos += take;
          if (sink.end() === true) return pos;
          continue;
        }
        // A packet split across chunks is kept as copies: the chunk may be reused.
        if (this.wanted) this.parts.push(Buffer.from(chunk.subarray(pos, pos + take)));
        this.remaining -= take;
        pos += take;
        if (this.remaining === 0 && this.physicalDone(sink)) return pos;
        continue;
      }
      const next = this.header.read(chunk, pos, 4);
      if (next < 0) break;
      pos = next;
      const h = this.header.buf;
      const at = this.header.at;
      // By hand rather than readUIntLE(at, 3): this runs for every row of every reply.
      const length = h[at]! | (h[at + 1]! << 8) | (h[at + 2]! << 16);
      const seq = h[at + 3]!;
      this.lastSeq = seq;
      this.physicalLength = length;
      this.remaining = length;
      if (!this.continuing) {
        this.seq = seq;
        this.needFirst = true;
      }
      if (length === 0) {
        if (this.needFirst) {
          this.needFirst = false;
          this.wanted = sink.begin(-1, seq, 0);
        }
        if (this.physicalDone(sink)) return pos;
      }
    }
    return len;
  }

  /** Returns what the sink's `end` did: true to stop. */
  private physicalDone(sink: ServerPacketSink): boolean {
    if (this.physicalLength === MAX_PACKET_PAYLOAD) {
      this.continuing = true;
      return false;
    }
    this.continuing = false;
    if (this.wanted) {
      const parts = this.parts;
      this.parts = [];
      this.wanted = false;
      const body = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      sink.body(body, 0, body.length);
    }
    return sink.end() === true;
  }
}
