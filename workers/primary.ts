// The cluster primary of `--workers N` (N > 1): forks the workers, which all listen on the same
// ports (Node's cluster module: the primary accepts and hands each connection to a worker in
// turn), lets them join the direct channel between workers one at a time (workers/peer-mesh.ts:
// invalidations go from worker to worker, not through here), gathers /metrics and /stats, forwards
// reloads and stops them all on SIGTERM. It serves no client itself and holds no cache.
// docs/workers.md has the design and its reasons.
import cluster, { type Worker } from 'node:cluster';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AggregatorRegistry } from 'prom-client';
import type { Logger } from '../telemetry/log.js';
import type { Config } from '../config/settings.js';
import { isMessage, LEAD_SLOT, PEER_DIR_ENV, SLOT_ENV, type Addresses, type PeerAddress, type ToPrimary, type ToWorker, type WorkerStats } from './messages.js';
/** How long the primary waits for a gathered /stats. */
const GATHER_MS = 5000;
/** After the workers' own shutdown deadline, the primary kills what is left this much later. */
const KILL_GRACE_MS = 5000;

interface Slot {
  worker: Worker;
  /** Its IPC channel listens, and so does its socket for the other workers (`peer`). */
  ready: boolean;
  peer: string | null;
  /** Connected to every worker that joined before it: the next to join connects to it too. */
  joined: boolean;
  addresses: Addresses | null;
}

export interface PrimaryOptions {
  config: Config;
  log: Logger;
  /** Called once, when every worker listens. */
  onListening(addresses: Addresses): void;
  shutdownDeadlineMs: number;
}

/** The longest path a Unix socket may have (sun_path holds 108 bytes with the terminating NUL). */
const MAX_SOCKET_PATH_BYTES = 107;
/** The longest name of a worker's socket in the directory: slot 64, a 7-digit pid (Linux's pid_max). */
const LONGEST_SOCKET_NAME = '64-4194304.sock';

/** Runs until the workers are stopped; resolves with the process's exit code. */
export function runPrimary(options: PrimaryOptions): Promise<number> {
  let peerDir: string;
  try {
    peerDir = socketDirectory();
  } catch (err) {
    process.stderr.write(`sidecache: --workers needs a private directory for the workers' sockets: ${(err as Error).message}; set TMPDIR to a short writable directory, or pass --workers 1\n`);
    return Promise.resolve(1);
  }
  return new Primary(options, peerDir).run();
}

/** A new directory only this user may enter, for the workers' sockets (workers/peer-mesh.ts). */
function socketDirectory(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sidecache-workers-'));
  if (Buffer.byteLength(path.join(dir, LONGEST_SOCKET_NAME)) > MAX_SOCKET_PATH_BYTES) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${dir} is too long a path for a Unix socket`);
  }
  return dir;
}

class Primary {
  private readonly slots = new Map<number, Slot>();
  /**
   * Workers waiting to join the others, in turn: two joining at once would each miss the other,
   * since a worker connects only to those that joined before it.
   */
  private joinQueue: number[] = [];
  private joining: number | null = null;  private readonly aggregator = new AggregatorRegistry();
  /** /stats requests in flight, by the primary's own number (requests of different workers may share theirs). */
  private readonly statsGathers = new Map<number, { stats: WorkerStats[]; waiting: Set<number>; done: () => void }>();
  private nextGather = 0;
  private started = false;
  /** A worker said why it could not start (printed once). */
  private failure: string | null = null;
  private stopping = false;
  /** 1 once a worker could not start. */
  private exitCode = 0;
  private finish: (code: number) => void = () => {};

  /** `peerDir`: the workers' sockets for each other (removed at the end). */
  constructor(private readonly options: PrimaryOptions, private readonly peerDir: string) {}

  run(): Promise<number> {
    const { config } = this.options;
    const done = new Promise<number>((resolve) => {
      this.finish = (code) => {
        rmSync(this.peerDir, { recursive: true, force: true });
        resolve(code);
      };
    });
    cluster.on('message', (worker, message: unknown) => {
      if (isMessage<ToPrimary>(message)) this.receive(this.slotOf(worker), message);
    });
    cluster.on('exit', (worker, code, signal) => this.exited(worker, code, signal));
    for (let slot = 1; slot <= config.workers; slot++) this.fork(slot);
    process.on('SIGTERM', () => this.stop('SIGTERM'));
    process.on('SIGINT', () => this.stop('SIGINT'));
    // A reload re-reads the config file in every worker.
    process.on('SIGHUP', () => this.signalAll('SIGHUP'));
    return done;
  }

  private fork(slot: number): void {
    const worker = cluster.fork({ [SLOT_ENV]: String(slot), [PEER_DIR_ENV]: this.peerDir });
    this.slots.set(slot, { worker, ready: false, peer: null, joined: false, addresses: null });
  }

  private slotOf(worker: Worker): number {
    for (const [slot, s] of this.slots) if (s.worker === worker) return slot;
    return 0;
  }

  private send(slot: number, message: ToWorker): void {
    const s = this.slots.get(slot);
    if (s !== undefined && s.worker.isConnected()) s.worker.send(message);
  }

  private readySlots(): number[] {
    return [...this.slots].filter(([, s]) => s.ready).map(([slot]) => slot);
  }

  private receive(from: number, message: ToPrimary): void {
    switch (message.sc) {
      case 'ready': {
        const s = this.slots.get(from)!;
        s.ready = true;
        s.peer = message.peer;
        this.joinQueue.push(from);
        this.nextJoin();
        return;
      }
      case 'joined':
        this.slots.get(from)!.joined = true;
        this.joining = null;
        this.nextJoin();
        return;
      case 'failed':
        if (this.failure === null) process.stderr.write(`${message.message}\n`);
        this.failure ??= message.message;
        return;
      case 'listening':
        this.slots.get(from)!.addresses = message.addresses;
        if (!this.started && [...this.slots.values()].every((s) => s.addresses !== null)) {
          this.started = true;
          this.options.onListening(message.addresses);
        }
        return;
      case 'follow':
        this.send(LEAD_SLOT, message);
        return;
      case 'gather-metrics':
        this.aggregator.clusterMetrics().then(
          (body) => this.send(from, { sc: 'metrics', id: message.id, body, error: null }),
          (err: Error) => this.send(from, { sc: 'metrics', id: message.id, body: null, error: err.message }),
        );
        return;
      case 'gather-stats':
        this.gatherStats(from, message.id, message.top);
        return;
      case 'stats': {
        const g = this.statsGathers.get(message.id);
        if (g === undefined) return;
        g.stats.push(message.stats);
        g.waiting.delete(from);
        if (g.waiting.size === 0) g.done();
        return;
      }
      case 'reloaded':
        for (const slot of this.slots.keys()) if (slot !== from) this.slots.get(slot)!.worker.process.kill('SIGHUP');
        return;
    }
  }

  /** The next waiting worker connects to every worker that joined. */
  private nextJoin(): void {
    while (this.joining === null && this.joinQueue.length > 0) {
      const slot = this.joinQueue.shift()!;
      if (this.slots.get(slot)?.ready !== true) continue;
      const peers: PeerAddress[] = [];
      for (const [other, s] of this.slots) {
        if (other !== slot && s.joined && s.peer !== null) peers.push({ slot: other, pid: s.worker.process.pid!, path: s.peer });
      }
      this.joining = slot;
      this.send(slot, { sc: 'join', peers });
    }
  }

  private gatherStats(from: number, id: number, top: number): void {
    const targets = this.readySlots();
    const gather = ++this.nextGather;
    const stats: WorkerStats[] = [];
    const done = (): void => {
      if (!this.statsGathers.delete(gather)) return;
      clearTimeout(timer);
      // Workers that did not answer in time are left out; `workers` in /stats shows which answered.
      this.send(from, { sc: 'stats', id, stats });
    };
    const timer = setTimeout(done, GATHER_MS);
    this.statsGathers.set(gather, { stats, waiting: new Set(targets), done });
    if (targets.length === 0) done();
    for (const slot of targets) this.send(slot, { sc: 'stats-request', id: gather, top });
  }

  private exited(worker: Worker, code: number | null, signal: string | null): void {
    const slot = this.slotOf(worker);
    const s = this.slots.get(slot);
    if (s === undefined) return;
    this.slots.delete(slot);
    // Its socket is gone with it: the other workers settle what waited for it themselves.
    this.joinQueue = this.joinQueue.filter((waiting) => waiting !== slot);
    if (this.joining === slot) this.joining = null;
    this.nextJoin();
    for (const g of this.statsGathers.values()) if (g.waiting.delete(slot) && g.waiting.size === 0) g.done();
    if (this.stopping) {
      if (this.slots.size === 0) this.finish(this.exitCode);
      return;
    }
    if (!this.started) {
      // A worker that cannot start says why (a taken port: through the primary, once); the others stop.
      if (this.failure === null) this.options.log.error({ slot, code, signal }, 'workers: a worker failed to start; stopping');
      this.stopping = true;
      this.exitCode = 1;
      this.signalAll('SIGTERM');
      if (this.slots.size === 0) this.finish(this.exitCode);
      return;
    }
    this.options.log.error({ slot, pid: worker.process.pid, code, signal }, 'workers: a worker ended; starting another in its place');
    this.fork(slot);
  }

  private signalAll(signal: NodeJS.Signals): void {
    for (const s of this.slots.values()) s.worker.process.kill(signal);
  }

  /** Each worker closes its listeners and lets busy sessions finish (cli/main.ts), then exits. */
  private stop(signal: string): void {
    if (this.stopping) return;
    this.stopping = true;
    this.options.log.info({ signal, workers: this.slots.size }, 'shutting down');
    if (this.slots.size === 0) {
      this.finish(0);
      return;
    }
    this.signalAll('SIGTERM');
    const timer = setTimeout(() => this.signalAll('SIGKILL'), this.options.shutdownDeadlineMs + KILL_GRACE_MS);
    timer.unref();
  }
}
