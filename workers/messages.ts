// What the cluster primary and its workers tell each other over Node's IPC channel (JSON). Every
// message carries `sc`, which keeps it apart from prom-client's own cluster messages.
import type net from 'node:net';
import type { Protocol } from '../telemetry/metrics.js';
import type { StatsReport } from '../admin/stats-report.js';
import type { Invalidation } from '../proxy/result-cache.js';

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
  /** The worker's channel listens: invalidations reach it from now on. */
  | { sc: 'ready' }
  /** The worker cannot start (a port taken); `message` is the one line the operator reads. */
  | { sc: 'failed'; message: string }
  /** The worker serves: its listeners are bound. */
  | { sc: 'listening'; addresses: Addresses }
  /**
   * An invalidation for every other worker; `fences` (the change streams' states, when they
   * changed) comes from the worker that follows the streams, and is applied before it.
   */
  | { sc: 'publish'; id: number; protocol: Protocol; invalidation: Invalidation; fences?: StreamUp[] }
  /** The worker applied invalidation `id` of worker `origin`. */
  | { sc: 'applied'; origin: number; id: number }
  /** Please follow this database's change stream (a read of it found no stream up). */
  | { sc: 'follow'; protocol: Protocol; database: string }
  | { sc: 'gather-metrics'; id: number }
  | { sc: 'gather-stats'; id: number; top: number }
  | { sc: 'stats'; id: number; stats: WorkerStats }
  /** The worker reloaded its config through the admin API: the others should too. */
  | { sc: 'reloaded' };

export type ToWorker =
  /** Worker `origin`'s invalidation; origin 0 is the primary's own (a lost stream follower). */
  | { sc: 'invalidation'; origin: number; id: number; protocol: Protocol; invalidation: Invalidation; fences?: StreamUp[] }
  /** Every other worker applied invalidation `id`: the output held for it may go. */
  | { sc: 'published'; id: number }
  | { sc: 'fences'; fences: StreamUp[] }
  | { sc: 'follow'; protocol: Protocol; database: string }
  | { sc: 'metrics'; id: number; body: string | null; error: string | null }
  | { sc: 'stats-request'; id: number; top: number }
  | { sc: 'stats'; id: number; stats: WorkerStats[] };

export function isMessage<T extends { sc: string }>(message: unknown): message is T {
  return typeof message === 'object' && message !== null && typeof (message as { sc?: unknown }).sc === 'string';
}
