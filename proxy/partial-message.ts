// One client message arriving over several reads (both protocols' framers use it). Its buffer
// grows by doubling as bytes arrive, up to the size the header announced, and every byte of it is
// taken from the shared BufferBudget first: what the proxy holds follows what the client really
// sent, so announcing a huge message costs the client as much as sending it.
import type { BufferBudget } from './buffer-budget.js';

/** The first buffer of a message: about one read's worth (read-buffer.ts reads 16 KiB at a time). */
const FIRST_CAPACITY = 16 * 1024;

export class PartialMessage {
  private buf: Buffer | null = null;
  private filled = 0;
  private total = 0;

  constructor(private readonly budget: BufferBudget) {}

  /** A message is being assembled. */
  get active(): boolean {
    return this.buf !== null;
  }

  /** The whole message's size, header included. */
  get size(): number {
    return this.total;
  }

  /** Bytes still to come. */
  get missing(): number {
    return this.total - this.filled;
  }

  /**
   * Starts a message of `size` bytes (header included) with its first bytes src[from, to);
   * false, holding nothing, when the budget cannot take them.
   */
  start(size: number, src: Buffer, from: number, to: number): boolean {
    const capacity = Math.min(size, Math.max(FIRST_CAPACITY, to - from));
    if (!this.budget.take(capacity)) return false;
    this.buf = Buffer.allocUnsafe(capacity);
    this.total = size;
    this.filled = src.copy(this.buf, 0, from, to);
    return true;
  }

  /** Adds src[from, to), at most `missing` bytes; false when the buffer cannot grow within the budget. */
  append(src: Buffer, from: number, to: number): boolean {
    const buf = this.buf!;
    const need = this.filled + (to - from);
    if (need > buf.length) {
      const capacity = Math.min(this.total, Math.max(need, buf.length * 2));
      if (!this.budget.take(capacity - buf.length)) return false;
      const bigger = Buffer.allocUnsafe(capacity);
      buf.copy(bigger, 0, 0, this.filled);
      this.buf = bigger;
    }
    this.filled += src.copy(this.buf!, this.filled, from, to);
    return true;
  }

  /** The whole message, once `missing` is 0; its bytes go back to the budget (the caller owns it now). */
  finish(): Buffer {
    const whole = this.buf!;
    this.discard();
    return whole;
  }

  /** Drops what was assembled and gives its bytes back. */
  discard(): void {
    if (this.buf === null) return;
    this.budget.give(this.buf.length);
    this.buf = null;
    this.filled = 0;
    this.total = 0;
  }
}
