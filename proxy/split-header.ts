// A message header (4 or 5 bytes) that may arrive split across reads. The four stream readers
// (pg/framer.ts, pg/backend-scanner.ts, mysql/packets.ts, mysql/server-scanner.ts) read theirs
// through this: a header inside the chunk is read in place; one cut by a chunk's end is gathered
// in a small buffer of its own until its last byte arrives. Nothing is allocated per message.

export class SplitHeader {
  /** After read() returned a position: the whole header is buf[at, at + size), until the next read(). */
  buf: Buffer;
  at = 0;
  private readonly own: Buffer;
  private filled = 0;

  /** `capacity`: the largest header size read() is asked for. */
  constructor(capacity: number) {
    this.own = Buffer.alloc(capacity);
    this.buf = this.own;
  }

  /** Part of a header has arrived, the rest has not. */
  get pending(): boolean {
    return this.filled > 0;
  }

  /** True when the last header came in pieces: buf is the header's own (a later read() reuses it), not the chunk. */
  get gathered(): boolean {
    return this.buf === this.own;
  }

  /** Forgets a header that arrived in part (the stream ended). */
  discard(): void {
    this.filled = 0;
  }

  /**
   * Reads the `size`-byte header that starts at chunk[pos] (or continues there, when `pending`).
   * Returns the position just after it, with buf/at set; or -1 when the chunk ended first: its
   * bytes are kept and the rest comes with the next chunk.
   */
  read(chunk: Buffer, pos: number, size: number): number {
    if (this.filled === 0 && chunk.length - pos >= size) {
      this.buf = chunk;
      this.at = pos;
      return pos + size;
    }
    const take = Math.min(size - this.filled, chunk.length - pos);
    chunk.copy(this.own, this.filled, pos, pos + take);
    this.filled += take;
    if (this.filled < size) return -1;
    this.filled = 0;
    this.buf = this.own;
    this.at = 0;
    return pos + take;
  }
}
