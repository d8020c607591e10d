// A request the cache holds the answer to while the session's server is not verified yet: it waits
// for the identity check (one round trip) instead of going to the server, and is taken up again
// when the check is back, or sent on first when the client sends anything else meanwhile. Both
// relays park this way; `T` is what the relay needs to take the request up again (copies).
export class ParkedRequest<T> {
  private parked: T | null = null;
  private resuming = false;

  get waiting(): boolean {
    return this.parked !== null;
  }

  /** The request being handled may park: not one being taken up again (it would wait forever). */
  get mayPark(): boolean {
    return !this.resuming;
  }

  /** Is `request` the one parked (not taken up since)? */
  holds(request: T): boolean {
    return this.parked === request;
  }

  park(request: T): void {
    this.parked = request;
  }

  /** Takes the parked request up again with `handle`, during which nothing parks. */
  resume(handle: (request: T) => void): void {
    const request = this.parked!;
    this.parked = null;
    this.resuming = true;
    try {
      handle(request);
    } finally {
      this.resuming = false;
    }
  }
}
