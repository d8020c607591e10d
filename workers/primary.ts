// The cluster primary of `--workers N` (N > 1): forks the workers, which all listen on the same
// ports (Node's cluster module: the primary accepts and hands each connection to a worker in
// turn), relays every invalidation from one worker to all others and tells the first when all
// applied it, gathers /metrics and /stats, forwards reloads and stops them all on SIGTERM. It
// serves no client itself and holds no cache. docs/workers.md has the design and its reasons.
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import type { Protocol } from '../telemetry/metrics.js';
import type { Logger } from '../telemetry/log.js';
import type { Config } from '../config/settings.js';
import { isMessage, LEAD_SLOT, SLOT_ENV, type Addresses, type StreamUp, type ToPrimary, type ToWorker, type WorkerStats } from './messages.js';

/**
 * A worker that has not applied an invalidation by then is stuck (a blocked event loop for this
 * long is no working proxy): it is killed, so the write waiting for it is acknowledged without
 * leaving a worker that could still answer from the stale entry.
 */
export const APPLY_DEADLINE_MS = 5000;
/** How long the primary waits for a gathered /stats. */
const GATHER_MS = 5000;
/** After the workers' own shutdown deadline, the primary kills what is left this much later. */
const KILL_GRACE_MS = 5000;

interface Pending {
  waiting: Set<number>;
  timer: NodeJS.Timeout;
}

interface Slot {
  worker: Worker;
  /** The channel listens (it gets invalidations and answers for them). */
  ready: boolean;
  addresses: Addresses | null;
}

export interface PrimaryOptions {
  config: Config;
  log: Logger;
  /** Called once, when every worker listens. */
  onListening(addresses: Addresses): void;
  shutdownDeadlineMs: number;
}

/** Runs until the workers are stopped; resolves with the process's exit code. */
export function runPrimary(options: PrimaryOptions): Promise<number> {
  return new Primary(options).run();
}

class Primary {
  private readonly slots = new Map<number, Slot>();
  /** Invalidations in flight, by `origin id`. */
  private readonly pending = new Map<string, Pending>();
  /** The change streams' fence as the following worker last published it. */
  private fences: StreamUp[] = [];
  private readonly aggregator = new AggregatorRegistry();
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
  private readonly cdcProtocols: Protocol[];

  constructor(private readonly options: PrimaryOptions) {
    const { config } = options;
    this.cdcProtocols = [...(config.pgCdc !== null ? ['postgres' as const] : []), ...(config.mysqlCdc !== null ? ['mysql' as const] : [])];
  }

  run(): Promise<number> {
    const { config } = this.options;
    const done = new Promise<number>((resolve) => {
      this.finish = resolve;
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
    const worker = cluster.fork({ [SLOT_ENV]: String(slot) });
    this.slots.set(slot, { worker, ready: false, addresses: null });
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
      case 'ready':
        this.slots.get(from)!.ready = true;
        if (this.fences.length > 0) this.send(from, { sc: 'fences', fences: this.fences });
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
      case 'publish':
        this.relay(from, message);
        return;
      case 'applied':
        this.applied(from, message.origin, message.id);
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

  /** Hands `message` to every other ready worker; the origin hears when all applied it. */
  private relay(origin: number, message: Extract<ToPrimary, { sc: 'publish' }>): void {
    if (message.fences !== undefined) this.fences = message.fences;
    const targets = this.readySlots().filter((slot) => slot !== origin);
    if (targets.length === 0) {
      this.send(origin, { sc: 'published', id: message.id });
      return;
    }
    const key = `${origin} ${message.id}`;
    const timer = setTimeout(() => this.overdue(key), APPLY_DEADLINE_MS);
    this.pending.set(key, { waiting: new Set(targets), timer });
    const forward: ToWorker = { sc: 'invalidation', origin, id: message.id, protocol: message.protocol, invalidation: message.invalidation };
    if (message.fences !== undefined) forward.fences = message.fences;
    for (const slot of targets) this.send(slot, forward);
  }

  private applied(by: number, origin: number, id: number): void {
    const key = `${origin} ${id}`;
    const p = this.pending.get(key);
    if (p === undefined) return;
    p.waiting.delete(by);
    if (p.waiting.size === 0) this.published(key, origin, id);
  }

  private published(key: string, origin: number, id: number): void {
    const p = this.pending.get(key);
    if (p !== undefined) clearTimeout(p.timer);
    this.pending.delete(key);
    this.send(origin, { sc: 'published', id });
  }

  private overdue(key: string): void {
    const p = this.pending.get(key);
    if (p === undefined) return;
    for (const slot of p.waiting) {
      const s = this.slots.get(slot);
      this.options.log.error({ slot, pid: s?.worker.process.pid, deadlineMs: APPLY_DEADLINE_MS }, 'workers: a worker did not apply an invalidation in time; killing it');
      s?.worker.process.kill('SIGKILL');
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
    // What it was asked to apply needs no answer now; what it published itself has no session left.
    for (const [key, p] of this.pending) {
      if (key.startsWith(`${slot} `)) {
        clearTimeout(p.timer);
        this.pending.delete(key);
      } else if (p.waiting.delete(slot) && p.waiting.size === 0) {
        const [origin, id] = key.split(' ').map(Number) as [number, number];
        this.published(key, origin, id);
      }
    }
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
    if (slot === LEAD_SLOT && this.cdcProtocols.length > 0) this.streamsLost();
    this.fork(slot);
  }

  /**
   * The change streams ran in the worker that ended: what it read last may never have been
   * published. Every worker drops the followed protocols' entries and refuses their fills until
   * the new following worker reports its streams up.
   */
  private streamsLost(): void {
    this.fences = [];
    for (const slot of this.readySlots()) {
      this.send(slot, { sc: 'fences', fences: [] });
      for (const protocol of this.cdcProtocols) {
        this.send(slot, { sc: 'invalidation', origin: 0, id: 0, protocol, invalidation: { scope: 'all', catalog: true } });
      }
    }
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
