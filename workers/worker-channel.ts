// A worker's ends of its channels: to the cluster primary (workers/primary.ts), over Node's IPC,
// and to the other workers (workers/peer-mesh.ts), directly. It is an InvalidationSink of the
// worker's caches (proxy/result-cache.ts): each invalidation goes straight to every other worker,
// and the output of the session that made it is held (proxy/output-hold.ts) until all of them
// applied it. So a write's acknowledgement reaches its client only after no worker can answer from
// an entry the write made stale, and every fill a worker began before the write is refused by the
// tag-version rule (applyInvalidation bumps the tags). It also mirrors the change streams' fence
// from the worker that follows them (slot 1), answers the primary's /stats requests and asks it
// for the whole proxy's /metrics and /stats.
import { AggregatorRegistry } from 'prom-client';
import type { ChangeStreamReading } from '../telemetry/change-streams.js';
import type { Metrics, Protocol } from '../telemetry/metrics.js';
import { buildStatsReport } from '../admin/stats-report.js';
import { CDC_DOWN } from '../changes/change-fence.js';
import type { FleetReport } from '../fleet/fleet.js';
import { SERVER as MYSQL_STREAM } from '../changes/mysql/follow-mysql.js';
import type { Logger } from '../telemetry/log.js';
import { currentOutput } from '../proxy/output-hold.js';
import type { Invalidation, InvalidationSink } from '../proxy/result-cache.js';
import path from 'node:path';
import { isMessage, LEAD_SLOT, PEER_DIR_ENV, type Addresses, type StreamUp, type ToPrimary, type ToWorker, type WorkerStats } from './messages.js';
import { PeerMesh } from './peer-mesh.js';
import { mergeStatsReports, type WholeStatsReport } from './stats-merge.js';

/** What the channel needs of a protocol's cache (ResultCache fits). */
export interface ChannelCache {
  applyInvalidation(invalidation: Invalidation): number;
  suspend(reason: string): void;
  /** The fence of the worker that follows the change streams: asking starts following. */
  fence(database: string | null): string | null;
}

/** The bypass reason once the primary is gone: the other workers' writes no longer arrive. */
export const PRIMARY_LOST = 'workers-down';
/** A gathered /metrics or /stats that has not come back by then fails (the primary waits 5 s for the workers). */
const GATHER_TIMEOUT_MS = 8000;
/** A read of a database with no stream up asks the following worker at most this often. */
const FOLLOW_REQUEST_MS = 1000;

export class WorkerChannel implements InvalidationSink {
  private caches: ReadonlyMap<Protocol, ChannelCache> = new Map();
  private metrics: Metrics | null = null;
  /** The fleet's state for /stats (--redis), as this worker sees it. */
  private fleetReport: () => FleetReport | null = () => null;
  private nextId = 0;
  /** The direct connections to the other workers, which invalidations take. */
  private readonly mesh: PeerMesh;
  /** Resolves once this worker is connected to every worker that joined before it. */
  readonly joined: Promise<void>;
  private onJoined: () => void = () => {};
  /** The change streams' states as the following worker last published them, by `protocol target`. */
  private streamsUp = new Map<string, boolean>();
  /** The protocols whose streams the following worker ever reported. */
  private readonly mirroredProtocols = new Set<Protocol>();
  private readonly followAsked = new Map<string, number>();
  /** The following worker's own streams; null elsewhere. */
  private streams: ReadonlySet<ChangeStreamReading> | null = null;
  /** The states last sent (JSON); none followed at first. */
  private sentFences = '[]';
  private readonly gathers = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  private lost = false;

  constructor(readonly slot: number, private readonly log: Logger, private readonly onLost: () => void) {
    process.on('message', (message: unknown) => {
      if (isMessage<ToWorker>(message)) this.receive(message);
    });
    // The primary is gone: no connection or worker joins any more; this worker stops.
    process.on('disconnect', () => this.primaryLost());
    this.joined = new Promise((resolve) => {
      this.onJoined = resolve;
    });
    this.mesh = new PeerMesh(slot, {
      apply: (protocol, invalidation) => this.caches.get(protocol)?.applyInvalidation(invalidation),
      mirror: (fences) => this.mirror(fences),
      currentFences: () => this.streams === null ? null : this.fences(),
      peerLost: (lostSlot) => this.peerLost(lostSlot),
    }, log);
    const socket = path.join(process.env[PEER_DIR_ENV]!, `${slot}-${process.pid}.sock`);
    this.mesh.listen(socket).then(() => this.send({ sc: 'ready', peer: socket }), async (err: Error) => {
      await this.failed(`sidecache: a worker cannot listen for the other workers on ${socket}: ${err.message}`);
      process.exit(1);
    });
  }

  /**
   * The worker's caches and metrics are built: invalidations apply to them from now on, and
   * prom-client answers the primary's metric requests from this worker's registry.
   * `streams`: the change streams this worker follows (slot 1), whose fence the others mirror.
   */
  serve(caches: ReadonlyMap<Protocol, ChannelCache>, metrics: Metrics, streams: ReadonlySet<ChangeStreamReading> | null, fleet: () => FleetReport | null): void {
    this.caches = caches;
    this.metrics = metrics;
    this.fleetReport = fleet;
    this.streams = streams;
    // Constructing one installs prom-client's worker-side listener.
    new AggregatorRegistry();
    AggregatorRegistry.setRegistries([metrics.registry]);
  }

  /**
   * This worker cannot start: the primary prints `message` once for all workers (each meets the
   * same taken port) and stops. Resolves once it is sent, so the worker may exit.
   */
  failed(message: string): Promise<void> {
    return new Promise((resolve) => {
      if (this.lost || !process.connected) resolve();
      else process.send!({ sc: 'failed', message } satisfies ToPrimary, undefined, {}, () => resolve());
    });
  }

  listening(addresses: Addresses): void {
    this.send({ sc: 'listening', addresses });
  }

  /** The admin API reloaded this worker's config: the primary reloads the others. */
  reloaded(): void {
    this.send({ sc: 'reloaded' });
  }

  /** InvalidationSink: to every other worker, holding the current session's output until they applied it. */
  publish(protocol: Protocol, invalidation: Invalidation): void {
    this.mesh.publish(protocol, invalidation, this.fenceChange(), currentOutput());
  }

  /**
   * The fence of a worker that does not follow the change streams itself: a fill of `database`
   * is allowed while the following worker reports its stream up.
   */
  remoteFence(protocol: Protocol): (database: string | null) => typeof CDC_DOWN | null {
    return (database) => {
      const target = protocol === 'mysql' ? MYSQL_STREAM : database;
      if (target === null) return CDC_DOWN;
      const key = `${protocol} ${target}`;
      if (this.streamsUp.get(key) === true) return null;
      const now = Date.now();
      if (database !== null && now - (this.followAsked.get(key) ?? 0) >= FOLLOW_REQUEST_MS) {
        this.followAsked.set(key, now);
        this.send({ sc: 'follow', protocol, database });
      }
      return CDC_DOWN;
    };
  }

  /** The whole proxy's /metrics: every worker's registry, summed by prom-client's AggregatorRegistry in the primary. */
  async metricsText(): Promise<string> {
    return await this.gather<string>((id) => ({ sc: 'gather-metrics', id }));
  }

  /** The whole proxy's /stats. */
  async stats(top: number): Promise<WholeStatsReport> {
    const all = await this.gather<WorkerStats[]>((id) => ({ sc: 'gather-stats', id, top }));
    return mergeStatsReports(all, top);
  }

  private gather<T>(request: (id: number) => ToPrimary): Promise<T> {
    const id = ++this.nextId;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.gathers.delete(id);
        reject(new Error(`the other workers did not answer within ${GATHER_TIMEOUT_MS} ms`));
      }, GATHER_TIMEOUT_MS);
      this.gathers.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      this.send(request(id));
    });
  }

  private receive(message: ToWorker): void {
    switch (message.sc) {
      case 'join':
        void this.mesh.join(message.peers).then(() => {
          this.send({ sc: 'joined' });
          this.onJoined();
        });
        return;
      case 'follow':
        // Asking the fence starts following the database (changes/change-fence.ts).
        this.caches.get(message.protocol)?.fence(message.database);
        return;
      case 'stats-request': {
        const m = this.metrics;
        if (m === null) return;
        const report = buildStatsReport(m.cacheStats.values(), message.top, m.changeStreams, this.fleetReport());
        this.send({ sc: 'stats', id: message.id, stats: { slot: this.slot, pid: process.pid, report } });
        return;
      }
      case 'metrics':
        this.settle(message.id, message.error === null ? message.body : new Error(message.error));
        return;
      case 'stats':
        this.settle(message.id, message.stats);
        return;
    }
  }

  private settle(id: number, value: unknown): void {
    const g = this.gathers.get(id);
    if (g === undefined) return;
    this.gathers.delete(id);
    clearTimeout(g.timer);
    if (value instanceof Error) g.reject(value);
    else g.resolve(value);
  }

  private mirror(fences: readonly StreamUp[]): void {
    this.streamsUp = new Map(fences.map((f) => [`${f.protocol} ${f.target}`, f.up]));
    for (const f of fences) this.mirroredProtocols.add(f.protocol);
  }

  /**
   * The worker that follows the change streams ended: what it read last may never have been
   * published. The followed protocols' entries go, and their fills are refused until the worker
   * started in its place reports its streams up. Its connection ends after everything it sent,
   * so no report of its own can arrive after this.
   */
  private peerLost(slot: number): void {
    if (slot !== LEAD_SLOT || this.mirroredProtocols.size === 0) return;
    this.mirror([]);
    for (const protocol of this.mirroredProtocols) this.caches.get(protocol)?.applyInvalidation({ scope: 'all', catalog: true });
  }

  /** This worker's own streams' states (it follows them). */
  private fences(): StreamUp[] {
    return [...this.streams!].map((s) => ({ protocol: s.protocol, target: s.database, up: s.state === 'up' }));
  }

  /** The following worker's stream states when they changed since the last publish, else null. */
  private fenceChange(): StreamUp[] | null {
    if (this.streams === null) return null;
    const fences = this.fences();
    const text = JSON.stringify(fences);
    if (text === this.sentFences) return null;
    this.sentFences = text;
    return fences;
  }

  private send(message: ToPrimary): void {
    if (this.lost || !process.connected) return;
    process.send!(message);
  }

  /**
   * Without the primary no connection reaches this worker and none could be started in the place
   * of one that ends (every worker sees the same): its caches stop answering (bypass
   * `workers-down`) and the worker shuts down. Its invalidations still reach the other workers
   * directly while it does, and output held for one goes once they applied it.
   */
  private primaryLost(): void {
    if (this.lost) return;
    this.lost = true;
    for (const cache of this.caches.values()) cache.suspend(PRIMARY_LOST);
    this.log.error('workers: lost the primary process; stopping this worker');
    this.onLost();
  }
}
