// What the cluster primary and its workers tell each other over Node's IPC channel (JSON). Every
// message carries `sc`, which keeps it apart from prom-client's own cluster messages. Invalidations
// between workers do not pass here: they go straight from worker to worker (workers/peer-mesh.ts).
import type net from 'node:net';
import type { Protocol } from '../telemetry/metrics.js';
import type { StatsReport } from '../admin/stats-report.js';

/** The environment variable that gives a worker its slot (1..N); slot 1 runs the change streams. */
export const SLOT_ENV = 'SIDECACHE_WORKER_SLOT';
export const LEAD_SLOT = 1;

/** One change stream's state as the worker that follows it sees it: the fence the others mirror. */
export interface StreamUp {
  protocol: Protocol;
  /** The followed target: a PostgreSQL database, or `*` for MySQL's one binlog stream. */
  target: string;
  up: boolean;
}

/** A worker's end of the direct channel between workers (workers/peer-mesh.ts). */
export interface PeerAddress {
  slot: number;
  pid: number;
  /** The Unix socket it listens on. */
  path: string;
}

/** The environment variable that names the private directory of the workers' sockets. */
export const PEER_DIR_ENV = 'SIDECACHE_WORKER_SOCKETS';

export interface Addresses {
  pgAddress: net.AddressInfo | null;
  mysqlAddress: net.AddressInfo | null;
  adminAddress: net.AddressInfo;
}

/** One worker's /stats, as the worker answers the primary. */
export interface WorkerStats {
  slot: number;
  pid: number;
  report: StatsReport;
}

export type ToPrimary =
  /**
   * The worker listens for the others on `peer` (a Unix socket) and would join them: the primary
   * answers `join` when it is this worker's turn (one joins at a time).
   */
  | { sc: 'ready'; peer: string }
  /** The worker is connected to every worker that joined before it: the next may join. */
  | { sc: 'joined' }
  /** The worker cannot start (a port taken); `message` is the one line the operator reads. */
  | { sc: 'failed'; message: string }
  /** The worker serves: its listeners are bound. */
  | { sc: 'listening'; addresses: Addresses }
  /** Please follow this database's change stream (a read of it found no stream up). */
  | { sc: 'follow'; protocol: Protocol; database: string }
  | { sc: 'gather-metrics'; id: number }
  | { sc: 'gather-stats'; id: number; top: number }
  | { sc: 'stats'; id: number; stats: WorkerStats }
  /** The worker reloaded its config through the admin API: the others should too. */
  | { sc: 'reloaded' };

export type ToWorker =
  /** Connect to these workers (every one that joined), then say `joined`. */
  | { sc: 'join'; peers: PeerAddress[] }
  | { sc: 'follow'; protocol: Protocol; database: string }
  | { sc: 'metrics'; id: number; body: string | null; error: string | null }
  | { sc: 'stats-request'; id: number; top: number }
  | { sc: 'stats'; id: number; stats: WorkerStats[] };

export function isMessage<T extends { sc: string }>(message: unknown): message is T {
  return typeof message === 'object' && message !== null && typeof (message as { sc?: unknown }).sc === 'string';
}
