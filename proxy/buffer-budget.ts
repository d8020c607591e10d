// The bytes held for client messages that have arrived only in part, summed over every session of
// both protocols, and the cap on that sum (--max-buffered-message-bytes). Without it, a thousand
// logged-in clients each announcing a message of --max-message-bytes could make the proxy hold
// tens of gigabytes; with it, the client whose message would pass the cap gets an out-of-memory
// error instead, and everyone else goes on.

export class BufferBudget {
  private held = 0;

  /** `limit` in bytes; a reload may change it (what is held already stays). */
  constructor(public limit: number) {}

  /** Bytes held now. */
  get used(): number {
    return this.held;
  }

  /** Takes `bytes` from the budget; false, taking nothing, when that would pass the limit. */
  take(bytes: number): boolean {
    if (this.held + bytes > this.limit) return false;
    this.held += bytes;
    return true;
  }

  give(bytes: number): void {
    this.held -= bytes;
  }
}
