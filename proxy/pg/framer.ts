// Cuts a PostgreSQL byte stream into whole messages without copying when a message lies inside one
// chunk. Startup-phase packets are untyped (length + payload); after startup every message is typed
// (code + length + payload). Pure: bytes in, message boundaries out.

export interface FrameSink {
  /** One whole message: `code` (0 for untyped packets) and its bytes buf[start, end) incl. header. */
  message(code: number, buf: Buffer, start: number, end: number): void;
}

export type FrameError =
  | { kind: 'too-short'; length: number }
  | { kind: 'too-long'; length: number; limit: number };

export class Framer {
  /** Typed messages carry a one-byte code before the length. */
  private typed = false;
  private limit: number;
  private readonly header = Buffer.alloc(5);
  private headerFilled = 0;
  /** A message being assembled across chunks, and how much of it is filled. */
  private pending: Buffer | null = null;
  private pendingFilled = 0;

  constructor(private readonly typedLimit: number, untypedLimit: number) {
    this.limit = untypedLimit;
  }

  /** Switches to typed messages; takes effect at the next message boundary, even within a chunk. */
  startTyped(): void {
    this.typed = true;
    this.limit = this.typedLimit;
  }

  get isTyped(): boolean {
    return this.typed;
  }

  /** True when the stream stopped in the middle of a message. */
  get hasPartial(): boolean {
    return this.headerFilled > 0 || this.pending !== null;
  }

  feed(chunk: Buffer, sink: FrameSink): FrameError | null {
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      if (this.pending !== null) {
        const need = this.pending.length - this.pendingFilled;
        const take = Math.min(need, len - pos);
        chunk.copy(this.pending, this.pendingFilled, pos, pos + take);
        this.pendingFilled += take;
        pos += take;
        if (take === need) {
          const whole = this.pending;
          this.pending = null;
          this.pendingFilled = 0;
          sink.message(this.typed ? whole[0]! : 0, whole, 0, whole.length);
        }
        continue;
      }
      const headerSize = this.typed ? 5 : 4;
      if (this.headerFilled === 0 && len - pos >= headerSize) {
        // Fast path: the header is inside this chunk.
        const code = this.typed ? chunk[pos]! : 0;
        const length = chunk.readInt32BE(pos + headerSize - 4);
        const err = this.check(length);
        if (err) return err;
        const total = length + headerSize - 4;
        if (len - pos >= total) {
          sink.message(code, chunk, pos, pos + total);
          pos += total;
        } else {
          this.pending = Buffer.allocUnsafe(total);
          chunk.copy(this.pending, 0, pos, len);
          this.pendingFilled = len - pos;
          pos = len;
        }
        continue;
      }
      // The header itself is split across chunks.
      const take = Math.min(headerSize - this.headerFilled, len - pos);
      chunk.copy(this.header, this.headerFilled, pos, pos + take);
      this.headerFilled += take;
      pos += take;
      if (this.headerFilled < headerSize) continue;
      const length = this.header.readInt32BE(headerSize - 4);
      const err = this.check(length);
      if (err) return err;
      this.headerFilled = 0;
      const total = length + headerSize - 4;
      const whole = Buffer.allocUnsafe(total);
      this.header.copy(whole, 0, 0, headerSize);
      if (total === headerSize) {
        sink.message(this.typed ? whole[0]! : 0, whole, 0, total);
      } else {
        this.pending = whole;
        this.pendingFilled = headerSize;
      }
    }
    return null;
  }

  private check(length: number): FrameError | null {
    // Untyped packets count their 4-byte length and carry at least a 4-byte code.
    const min = this.typed ? 4 : 8;
    if (length < min) return { kind: 'too-short', length };
    if (length > this.limit) return { kind: 'too-long', length, limit: this.limit };
    return null;
  }
}
