// Where the bytes of the server's replies go, for both relays: relayed to the client, relayed and
// captured for a fill, or dropped (the reply to the proxy's own probe). Each relay tells the router
// where a new route starts in the current chunk; contiguous bytes of one route go out in one write,
// and a capture past the entry limit is dropped.

/** What a request awaiting its reply is, as far as routing its reply goes. */
export const enum Kind {
  /** Relayed as is. */
  Forward,
  /** Relayed and captured: the result may be stored. */
  Fill,
  /** The proxy's own probe: the reply is read and swallowed. */
  Probe,
}

export const enum Route {
  Forward,
  Capture,
  Drop,
}

/** A fill's copy of its reply so far. */
export interface Capture {
  parts: Buffer[];
  size: number;
  /** The reply cannot be stored (too large, an error, a notice...): capturing stops. */
  poisoned: boolean;
}

export class ReplyRouter {
  private chunk: Buffer | null = null;
  /** Where the bytes not yet written of the current route start in the chunk. */
  private start = 0;
  private route = Route.Forward;
  private target: Capture | null = null;

  constructor(
    private readonly toClient: (bytes: Buffer) => void,
    /** Read at each capture: a config reload may change it. */
    private readonly maxEntryBytes: () => number,
  ) {}

  /** A chunk from the server; the route in force goes on from the previous chunk. */
  begin(chunk: Buffer): void {
    this.chunk = chunk;
    this.start = 0;
  }

  /** From chunk position `pos` on, bytes take `route`; `target` is the fill a Capture feeds. */
  switchTo(route: Route, target: Capture | null, pos: number): void {
    if (route === this.route && target === this.target) return;
    this.flush(pos);
    this.route = route;
    this.target = target;
  }

  /** Writes the chunk's bytes up to `pos` now (before a cached reply whose turn comes there). */
  writeUpTo(pos: number): void {
    this.flush(pos);
  }

  /** The rest of the chunk goes its route; the chunk may be reused after this (read-buffer.ts). */
  end(): void {
    this.flush(this.chunk!.length);
    this.chunk = null;
  }

  /** Relays (and captures) the bytes of the current route up to `pos` of the chunk. */
  private flush(pos: number): void {
    const chunk = this.chunk!;
    if (pos > this.start && this.route !== Route.Drop) {
      const bytes = this.start === 0 && pos === chunk.length ? chunk : chunk.subarray(this.start, pos);
      const target = this.target;
      if (this.route === Route.Capture && target !== null && !target.poisoned) {
        target.size += bytes.length;
        if (target.size > this.maxEntryBytes()) {
          target.poisoned = true;
          target.parts = [];
        } else {
          target.parts.push(ownCopy(bytes)); // the chunk is a reused read buffer
        }
      }
      this.toClient(bytes);
    }
    this.start = pos;
  }
}

/** A copy with a backing store of its own (not a slice of Node's shared pool the store would copy again). */
function ownCopy(bytes: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(copy);
  return copy;
}
