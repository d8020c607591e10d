// A TCP relay placed between sidecache and PostgreSQL (sidecache's --pg-upstream points at it) that
// can hold back what the server sends on one chosen upstream connection until the test releases it.
// This makes races deterministic: e.g. a read's reply is kept in flight while another client writes.
//
// The connection is chosen by a marker: the first connection, after `holdAfter(marker)` is called,
// whose client side sends bytes containing `marker` (a SQL comment such as `/* hold-me */` is part of
// the statement text, so it reaches the server in Query and Parse messages). From that moment every
// server->proxy byte of that connection is queued, in order, until `release()`. Everything else is
// relayed unchanged as it arrives.
//
// It also counts, over all connections, how many times clients sent a marker (`countSent`): a
// marker in a statement's text counts the times that statement reached the server, which is how
// the coalescing tests count database executions without server-wide counters. It relays any TCP
// protocol (MySQL too).
import net from 'node:net';

export interface Hold {
  /** Resolves with the number of bytes held once the server has sent at least `minBytes` of them. */
  waitHeld(minBytes?: number, timeoutMs?: number): Promise<number>;
  /**
   * Resolves once the held bytes contain `text` (e.g. a column name of the last reply of a
   * pipeline: the server answered everything before it).
   */
  waitHeldContains(text: string, timeoutMs?: number): Promise<void>;
  /** Bytes held so far. */
  readonly heldBytes: number;
  /** Whether a connection sent the marker. */
  readonly matched: boolean;
  /** Sends every held byte on, in order, and lets the connection flow freely from then on. */
  release(): void;
}

export interface HoldRelay {
  port: number;
  /** The upstream URL to give sidecache's --pg-upstream. */
  url: string;
  /** Arms a one-shot hold for the next connection whose client sends `marker`. */
  holdAfter(marker: string): Hold;
  /** From now on, counts the times any client sends `marker` to the server. */
  countSent(marker: string): SentCount;
  close(): Promise<void>;
}

export interface SentCount {
  readonly count: number;
}

export class HoldTimeoutError extends Error {
  constructor(marker: string, wanted: number, held: number, matched: boolean, timeoutMs: number) {
    super(`hold "${marker}": wanted ${wanted} held byte(s) within ${timeoutMs} ms, have ${held}` +
      (matched ? '' : ' (no connection sent the marker)'));
    this.name = 'HoldTimeoutError';
  }
}

class ArmedHold implements Hold {
  matched = false;
  heldBytes = 0;
  private released = false;
  private queue: Buffer[] = [];
  private sink: net.Socket | null = null;
  private waiters: Array<() => void> = [];
  private detach: (() => void) | null = null;

  constructor(readonly marker: string) {}

  /** Called by the relay when `sink`'s connection sent the marker; `detach` when it is released. */
  attach(sink: net.Socket, detach: () => void): void {
    this.matched = true;
    this.sink = sink;
    this.detach = detach;
  }

  /** Whether server bytes for this connection must be queued rather than written. */
  get holding(): boolean {
    return this.matched && !this.released;
  }

  push(chunk: Buffer): void {
    this.queue.push(chunk);
    this.heldBytes += chunk.length;
    for (const wake of this.waiters.splice(0)) wake();
  }

  async waitHeld(minBytes = 1, timeoutMs = 5000): Promise<number> {
    await this.waitUntil(() => this.heldBytes >= minBytes, timeoutMs,
      () => new HoldTimeoutError(this.marker, minBytes, this.heldBytes, this.matched, timeoutMs));
    return this.heldBytes;
  }

  waitHeldContains(text: string, timeoutMs = 5000): Promise<void> {
    return this.waitUntil(() => Buffer.concat(this.queue).includes(text), timeoutMs,
      () => new HoldTimeoutError(`${this.marker}" until "${text}`, this.heldBytes + 1, this.heldBytes, this.matched, timeoutMs));
  }

  /** Waits for `done()`, checked again whenever bytes are held, until `timeoutMs` has passed. */
  private async waitUntil(done: () => boolean, timeoutMs: number, timedOut: () => Error): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) throw timedOut();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    const sink = this.sink;
    const queued = this.queue;
    this.queue = [];
    if (sink && !sink.destroyed) for (const chunk of queued) sink.write(chunk);
    this.detach?.();
  }
}

export function startHoldRelay(target: { host: string; port: number }): Promise<HoldRelay> {
  const armed: ArmedHold[] = [];
  const counted: { marker: string; count: number }[] = [];
  const sockets = new Set<net.Socket>();

  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      // Either side going away ends the pair; the error itself is the peer's business.
      s.on('error', () => undefined);
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());

    let hold: ArmedHold | null = null;
    // The marker may be split across two chunks; keep enough of the previous chunk to see it.
    let tail = '';
    // The same for counting; a kept tail is shorter than any marker, so it holds no whole one.
    let countTail = '';
    client.on('data', (chunk: Buffer) => {
      if (counted.length > 0) {
        const text = countTail + chunk.toString('latin1');
        for (const c of counted) for (let i = text.indexOf(c.marker); i >= 0; i = text.indexOf(c.marker, i + c.marker.length)) c.count++;
        const keep = Math.max(0, ...counted.map((c) => c.marker.length - 1));
        countTail = keep === 0 ? '' : text.slice(-keep);
      }
      if (hold === null && armed.length > 0) {
        const text = tail + chunk.toString('latin1');
        const i = armed.findIndex((h) => text.includes(h.marker));
        if (i >= 0) {
          hold = armed.splice(i, 1)[0]!;
          // Once released, the connection may be held again by a hold armed later.
          hold.attach(client, () => {
            hold = null;
          });
        }
        const keep = Math.max(0, ...armed.map((h) => h.marker.length - 1));
        tail = keep === 0 ? '' : text.slice(-keep);
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (hold?.holding) hold.push(chunk);
      else client.write(chunk);
    });
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      resolve({
        port,
        url: `postgres://127.0.0.1:${port}`,
        holdAfter(marker: string): Hold {
          const hold = new ArmedHold(marker);
          armed.push(hold);
          return hold;
        },
        countSent(marker: string): SentCount {
          const c = { marker, count: 0 };
          counted.push(c);
          return c;
        },
        close(): Promise<void> {
          for (const s of sockets) s.destroy();
          return new Promise((done) => server.close(() => done()));
        },
      });
    });
  });
}
