// Follows message boundaries in what the server sends so the session can read the few messages it
// needs (ReadyForQuery, ParameterStatus, ...) while the bytes themselves are relayed chunk by chunk.
// Bodies of other messages (DataRow, CopyData) are skipped, never buffered: a row of any size costs
// nothing here. Pure: bytes in, selected messages out.

export interface BackendSink {
  /** A watched message: its code and body bytes buf[start, end) (header excluded). */
  message(code: number, buf: Buffer, start: number, end: number): void;
}

export class BackendScanner {
  private readonly watched = new Uint8Array(256);
  private readonly header = Buffer.alloc(5);
  private headerFilled = 0;
  private code = 0;
  /** Body bytes of the current message still to come (skipped or assembled). */
  private remaining = 0;
  private body: Buffer | null = null;
  private bodyFilled = 0;

  constructor(watchedCodes: readonly number[]) {
    for (const c of watchedCodes) this.watched[c] = 1;
  }

  /** True between messages: a message of the proxy's own may be inserted here. */
  get atBoundary(): boolean {
    return this.headerFilled === 0 && this.remaining === 0;
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
      let bodyLength: number;
      if (this.headerFilled === 0 && len - pos >= 5) {
        this.code = chunk[pos]!;
        bodyLength = chunk.readInt32BE(pos + 1) - 4;
        pos += 5;
      } else {
        const take = Math.min(5 - this.headerFilled, len - pos);
        chunk.copy(this.header, this.headerFilled, pos, pos + take);
        this.headerFilled += take;
        pos += take;
        if (this.headerFilled < 5) continue;
        this.headerFilled = 0;
        this.code = this.header[0]!;
        bodyLength = this.header.readInt32BE(1) - 4;
      }
      if (bodyLength < 0) bodyLength = 0; // a broken server; keep following, the client will complain
      const watched = this.watched[this.code] === 1;
      if (len - pos >= bodyLength) {
        if (watched) sink.message(this.code, chunk, pos, pos + bodyLength);
        pos += bodyLength;
      } else {
        this.remaining = bodyLength;
        if (watched) {
          this.body = Buffer.allocUnsafe(bodyLength);
          this.bodyFilled = 0;
        }
      }
    }
  }
}
