// The direct channel between the workers of one proxy (docs/workers.md, "Invalidations between
// workers"). Each worker listens on a Unix socket in a private directory the primary made; a worker
// that starts connects to every worker that joined before it (the primary lets one join at a time
// and names them), and each such connection then carries invalidations both ways: the publisher
// sends one line, the other worker applies it and answers on the same connection. Two messages per
// write and no third process: through the primary it took four, and waking the primary twice per
// write cost ~80 µs of CPU per pgbench TPC-B transaction (of ~490 for the whole proxy).
//
// The framing is one JSON object per line: the messages are small, few (one per write) and between
// processes of the same build, so a hand-written codec would buy nothing measurable.
import net from 'node:net';
import type { Protocol } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/log.js';
import type { OutputGate } from '../proxy/output-hold.js';
import type { Invalidation } from '../proxy/result-cache.js';
import type { PeerAddress, StreamUp } from './messages.js';

/**
 * A worker that has not applied an invalidation (or answered a joining worker) by then is stuck:
 * an event loop blocked that long is no working proxy. It is killed, so the write waiting for it
 * is acknowledged without leaving a worker that could still answer from the stale entry.
 */
export const APPLY_DEADLINE_MS = 5000;
/** How often invalidations waiting for answers are checked against the deadline. */
const SWEEP_MS = 1000;

type PeerMessage =
  /** A joining worker introduces itself to one that joined before it. */
  | { t: 'hello'; slot: number; pid: number }
  /** The answer: invalidations flow both ways from now on; `fences` from the change streams' follower. */
  | { t: 'welcome'; slot: number; pid: number; fences: StreamUp[] | null }
  /** An invalidation to apply, with the follower's stream states first when they changed. */
  | { t: 'inv'; id: number; protocol: Protocol; invalidation: Invalidation; fences?: StreamUp[] }
  /** Invalidation `id` of the receiver is applied here. */
  | { t: 'ack'; id: number };

/** What the mesh needs of its worker. */
export interface PeerHandler {
  /** Applies another worker's invalidation; the answer goes when this returns. */
  apply(protocol: Protocol, invalidation: Invalidation): void;
  /** Takes the change streams' states as the worker that follows them reports them. */
  mirror(fences: StreamUp[]): void;
  /** This worker's change streams' states for a worker that joins, when it follows them; else null. */
  currentFences(): StreamUp[] | null;
  /** The connection to worker `slot` ended: that process is gone. */
  peerLost(slot: number): void;
}

interface Link {
  readonly socket: net.Socket;
  /** Known once the hello or welcome arrived. */
  slot: number;
  pid: number;
  /** The end of the last chunk that did not end a line. */
  partial: string;
}

interface Pending {
  readonly gate: OutputGate | null;
  readonly waiting: Set<Link>;
  readonly sentAt: number;
  killed: boolean;
}

export class PeerMesh {
  private readonly server: net.Server;
  /** Workers invalidations go to (introduced in either direction). */
  private readonly links = new Set<Link>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private sweep: NodeJS.Timeout | null = null;

  constructor(private readonly slot: number, private readonly handler: PeerHandler, private readonly log: Logger) {
    this.server = net.createServer((socket) => this.accepted(socket));
  }

  /** Listens on `path`; resolves once it does. */
  listen(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(path, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  /** The number of workers invalidations go to. */
  get size(): number {
    return this.links.size;
  }

  /**
   * Connects to every worker in `peers` (those that joined before this one). Resolves once each
   * welcomed this one or is gone; one that stays silent past the deadline is killed.
   */
  join(peers: readonly PeerAddress[]): Promise<void> {
    return Promise.all(peers.map((peer) => this.connect(peer))).then(() => undefined);
  }

  /**
   * Sends `invalidation` to every other worker and holds `gate` (the output of the session whose
   * write made it) until all applied it or are gone.
   */
  publish(protocol: Protocol, invalidation: Invalidation, fences: StreamUp[] | null, gate: OutputGate | null): void {
    if (this.links.size === 0) return;
    const id = ++this.nextId;
    gate?.hold();
    this.pending.set(id, { gate, waiting: new Set(this.links), sentAt: Date.now(), killed: false });
    const line = JSON.stringify(fences === null ? { t: 'inv', id, protocol, invalidation } : { t: 'inv', id, protocol, invalidation, fences }) + '\n';
    for (const link of this.links) link.socket.write(line);
    this.sweep ??= setInterval(() => this.overdue(), SWEEP_MS).unref();
  }

  close(): void {
    this.server.close();
    for (const link of this.links) link.socket.destroy();
  }

  private accepted(socket: net.Socket): void {
    this.attach({ socket, slot: 0, pid: 0, partial: '' }, null);
  }

  private connect(peer: PeerAddress): Promise<void> {
    return new Promise((resolve) => {
      const socket = net.connect(peer.path);
      const link: Link = { socket, slot: peer.slot, pid: peer.pid, partial: '' };
      const timer = setTimeout(() => this.kill(link, 'did not answer a joining worker'), APPLY_DEADLINE_MS);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      socket.once('connect', () => this.send(link, { t: 'hello', slot: this.slot, pid: process.pid }));
      this.attach(link, done);
    });
  }

  /** Reads `link`'s lines; `welcomed` (a joining worker's own connection) runs at its welcome or end. */
  private attach(link: Link, welcomed: (() => void) | null): void {
    const { socket } = link;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      const text = link.partial + chunk;
      let start = 0;
      for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
        const message = JSON.parse(text.slice(start, end)) as PeerMessage;
        start = end + 1;
        if (message.t === 'welcome') {
          link.pid = message.pid;
          if (message.fences !== null) this.handler.mirror(message.fences);
          this.links.add(link);
          welcomed?.();
        } else {
          this.receive(link, message);
        }
      }
      link.partial = text.slice(start);
    });
    // An error is followed by 'close', where the link is dropped.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      welcomed?.();
      this.lost(link);
    });
  }

  private receive(link: Link, message: Exclude<PeerMessage, { t: 'welcome' }>): void {
    switch (message.t) {
      case 'hello':
        link.slot = message.slot;
        link.pid = message.pid;
        // Before the welcome leaves: every invalidation this worker makes from now on reaches the
        // joining one, which serves no client until every worker before it has welcomed it.
        this.links.add(link);
        this.send(link, { t: 'welcome', slot: this.slot, pid: process.pid, fences: this.handler.currentFences() });
        return;
      case 'inv':
        if (message.fences !== undefined) this.handler.mirror(message.fences);
        this.handler.apply(message.protocol, message.invalidation);
        this.send(link, { t: 'ack', id: message.id });
        return;
      case 'ack': {
        const p = this.pending.get(message.id);
        if (p !== undefined && p.waiting.delete(link) && p.waiting.size === 0) this.settle(message.id, p);
        return;
      }
    }
  }

  private send(link: Link, message: PeerMessage): void {
    link.socket.write(JSON.stringify(message) + '\n');
  }

  private settle(id: number, p: Pending): void {
    this.pending.delete(id);
    p.gate?.release();
    if (this.pending.size === 0 && this.sweep !== null) {
      clearInterval(this.sweep);
      this.sweep = null;
    }
  }

  /** The other worker is gone: what waited for its answer needs none now. */
  private lost(link: Link): void {
    if (!this.links.delete(link)) return;
    for (const [id, p] of this.pending) if (p.waiting.delete(link) && p.waiting.size === 0) this.settle(id, p);
    this.handler.peerLost(link.slot);
  }

  private overdue(): void {
    const now = Date.now();
    for (const p of this.pending.values()) {
      if (p.killed || now - p.sentAt < APPLY_DEADLINE_MS) continue;
      p.killed = true;
      for (const link of p.waiting) this.kill(link, 'did not apply an invalidation in time');
    }
  }

  /**
   * Kills a stuck worker. What waited for it is settled when its connection ends, which the kernel
   * does once the process is gone (not before: until then it could still answer from its cache);
   * the primary starts another in its place.
   */
  private kill(link: Link, what: string): void {
    this.log.error({ slot: link.slot, pid: link.pid, deadlineMs: APPLY_DEADLINE_MS }, `workers: a worker ${what}; killing it`);
    // pid 0 would signal this process's whole group; every link waited for has its peer's pid.
    if (link.pid <= 0) return;
    try {
      process.kill(link.pid, 'SIGKILL');
    } catch {
      // already gone: its connection ends
    }
  }
}
