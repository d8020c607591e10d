// Cuts a PostgreSQL byte stream into whole messages without copying when a message lies inside one
// chunk. Startup-phase packets are untyped (length + payload); after startup every message is typed
// (code + length + payload). A message that spans chunks is assembled in a PartialMessage, whose
// bytes come from the shared budget. Pure: bytes in, message boundaries out.
import type { BufferBudget } from '../buffer-budget.js';
import { PartialMessage } from '../partial-message.js';
import { SplitHeader } from '../split-header.js';

export interface FrameSink {
  /** One whole message: `code` (0 for untyped packets) and its bytes buf[start, end) incl. header. */
  message(code: number, buf: Buffer, start: number, end: number): void;
}

export type FrameError =
  | { kind: 'too-short'; length: number }
  | { kind: 'too-long'; length: number; limit: number }
  /** Holding the rest of a `length`-byte message would pass the budget's `limit` (`held` already held). */
  | { kind: 'over-budget'; length: number; held: number; limit: number };

export class Framer {
  /** Typed messages carry a one-byte code before the length. */
  private typed = false;
  private readonly header = new SplitHeader(5);
  /** A message being assembled across chunks. */
  private readonly partial: PartialMessage;
  /** A sink asked to end the feed after the current message (stopAfterMessage). */
  private stopping = false;
  /** The bytes of the chunk after the message a sink stopped at (copied); null when none. */
  rest: Buffer | null = null;

  /** `limit`: the largest startup packet; split messages take their bytes from `budget`. */
  constructor(private limit: number, private readonly budget: BufferBudget) {
    this.partial = new PartialMessage(budget);
  }

  /** Switches to typed messages of at most `limit` bytes; takes effect at the next message boundary, even within a chunk. */
  startTyped(limit: number): void {
    this.typed = true;
    this.limit = limit;
  }

  /** Changes the size limit from the next message on (e.g. after login). */
  setLimit(limit: number): void {
    this.limit = limit;
  }

  get isTyped(): boolean {
    return this.typed;
  }

  /** True when the stream stopped in the middle of a message. */
  get hasPartial(): boolean {
    return this.header.pending || this.partial.active;
  }

  /** Drops a message that arrived in part (the session ended), giving its bytes back to the budget. */
  discardPartial(): void {
    this.header.discard();
    this.partial.discard();
  }

  /**
   * Ends the current feed once the sink returns: what follows in the chunk is not the protocol's
   * (a TLS handshake after SSLRequest) and is left in `rest`.
   */
  stopAfterMessage(): void {
    this.stopping = true;
  }

  feed(chunk: Buffer, sink: FrameSink): FrameError | null {
    let pos = 0;
    const len = chunk.length;
    this.rest = null;
    while (pos < len) {
      if (this.stopping) break;
      if (this.partial.active) {
        const take = Math.min(this.partial.missing, len - pos);
        if (!this.partial.append(chunk, pos, pos + take)) return this.overBudget(this.partial.size);
        pos += take;
        if (this.partial.missing === 0) {
          const whole = this.partial.finish();
          sink.message(this.typed ? whole[0]! : 0, whole, 0, whole.length);
        }
        continue;
      }
      const headerSize = this.typed ? 5 : 4;
      const next = this.header.read(chunk, pos, headerSize);
      if (next < 0) break;
      const { buf: h, at } = this.header;
      const code = this.typed ? h[at]! : 0;
      const length = h.readInt32BE(at + headerSize - 4);
      const err = this.check(length);
      if (err) return err;
      const total = length + headerSize - 4;
      if (!this.header.gathered) {
        // The header was inside this chunk: so is the whole message, or its first part.
        if (len - at >= total) {
          sink.message(code, chunk, at, at + total);
          pos = at + total;
        } else {
          if (!this.partial.start(total, chunk, at, len)) return this.overBudget(total);
          pos = len;
        }
        continue;
      }
      pos = next;
      if (total === headerSize) {
        // A copy: the sink may keep the message (a queued write) past the next header.
        sink.message(code, Buffer.from(h.subarray(0, total)), 0, total);
      } else if (!this.partial.start(total, h, 0, headerSize)) {
        return this.overBudget(total);
      }
    }
    if (this.stopping) {
      this.stopping = false;
      if (pos < len) this.rest = Buffer.from(chunk.subarray(pos));
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

  private overBudget(length: number): FrameError {
    return { kind: 'over-budget', length, held: this.budget.used, limit: this.budget.limit };
  }
}
