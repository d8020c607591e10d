// Follows message boundaries in what the server sends so the session can route each message
// (relay, capture for the cache, or swallow a reply to its own request) and read the few bodies it
// needs, while the bytes themselves stay in the chunks they arrived in. Bodies nobody asked for
// (DataRow, CopyData) are skipped, never buffered: a row of any size costs nothing here.
// Pure: bytes in, message events out.
import { SplitHeader } from '../split-header.js';

export interface BackendSink {
  /**
   * A message starts at chunk[pos] (its code byte; the rest may come in later chunks). Returns
   * whether `message` should be called with its body.
   */
  begin(code: number, pos: number): boolean;
  /** The body of a message `begin` asked for: buf[start, end), header excluded. */
  message(code: number, buf: Buffer, start: number, end: number): void;
}

export class BackendScanner {
  private readonly header = new SplitHeader(5);
  private code = 0;
  private wanted = false;
  /** Body bytes of the current message still to come (skipped or assembled). */
  private remaining = 0;
  private body: Buffer | null = null;
  private bodyFilled = 0;

  /** True between messages: a message of the proxy's own may be inserted here. */
  get atBoundary(): boolean {
    return !this.header.pending && this.remaining === 0;
  }

  feed(chunk: Buffer, sink: BackendSink): void {
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, len - pos);
        if (this.body !== null) {
          chunk.copy(this.body, this.bodyFilled, pos, pos + take);
          this.bodyFilled += take;
        }
        this.remaining -= take;
        pos += take;
        if (this.remaining === 0 && this.body !== null) {
          const body = this.body;
          this.body = null;
          sink.message(this.code, body, 0, body.length);
        }
        continue;
      }
      if (!this.header.pending) {
        this.code = chunk[pos]!;
        this.wanted = sink.begin(this.code, pos);
      }
      const next = this.header.read(chunk, pos, 5);
      if (next < 0) break;
      pos = next;
      let bodyLength = this.header.buf.readInt32BE(this.header.at + 1) - 4;
      if (bodyLength < 0) bodyLength = 0; // a broken server; keep following, the client will complain
      if (len - pos >= bodyLength) {
        if (this.wanted) sink.message(this.code, chunk, pos, pos + bodyLength);
        pos += bodyLength;
      } else {
        this.remaining = bodyLength;
        if (this.wanted) {
          this.body = Buffer.allocUnsafe(bodyLength);
          this.bodyFilled = 0;
        }
      }
    }
  }
}
