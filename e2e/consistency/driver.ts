// What the stale-read checker needs from a database protocol. The checker decides what to write and
// read, with which versions, and judges every result; a driver only turns those requests into the
// statements of its dialect, sent over its client library's simple or prepared path. A new protocol
// (MySQL through mysql2) is one module implementing ConsistencyDriver, registered in drivers.ts.
import type { RunningProxy, StartOptions } from '../support/sidecache.js';

/**
 * The ways a writer stamps versions. Each stamp is `version = V WHERE key = K AND version < V`, so
 * a row only ever moves up and always holds the highest committed version of its key.
 */
export type WriteForm =
  /** One autocommit UPDATE with the values in the SQL text, over the simple path. */
  | 'autocommit-simple'
  /** One autocommit UPDATE with parameters, over an unnamed prepared statement. */
  | 'autocommit-parameterised'
  /** One autocommit UPDATE through a named prepared statement the connection reuses. */
  | 'autocommit-prepared'
  /** An insert-or-update of one key (ON CONFLICT / ON DUPLICATE KEY), parameterised. */
  | 'upsert'
  /** Several UPDATEs in one simple query, committed as one implicit transaction. */
  | 'multi-statement'
  /** BEGIN, UPDATEs (parameterised), COMMIT as separate round trips. */
  | 'transaction-commit'
  /** BEGIN; UPDATE ...; COMMIT in one simple query. */
  | 'multi-statement-transaction'
  /** BEGIN, UPDATE, ROLLBACK: must never become visible. */
  | 'transaction-rollback'
  /** BEGIN; UPDATE ...; ROLLBACK in one simple query: must never become visible. */
  | 'multi-statement-rollback'
  /** BEGIN, UPDATE, a statement that fails, COMMIT (which the server answers with ROLLBACK). */
  | 'transaction-failed';

/** How a reader asks: SQL text with the key in it, parameterised (unnamed), or a named prepared statement. */
export type ReadPath = 'simple' | 'parameterised' | 'prepared';

export interface Stamp {
  key: number;
  version: number;
}

/** One row of the versions table as read back. */
export interface VersionRow {
  key: number;
  version: number;
}

export interface DriverConnection {
  /** Resolves when the server acknowledged the whole form (its commit, or its rollback). */
  write(form: WriteForm, stamps: readonly Stamp[]): Promise<void>;
  /** The row of `key`, or every row in key order when `key` is null. */
  read(path: ReadPath, key: number | null): Promise<VersionRow[]>;
  close(): Promise<void>;
}

export interface ConsistencyDriver {
  /** As in `--protocol`. */
  readonly protocol: string;
  /** The `protocol` label of sidecache's cache metrics for this side. */
  readonly metricsProtocol: string;
  /** The write forms this protocol has; the checker cycles through them. */
  readonly writeForms: readonly WriteForm[];
  /** How to start a sidecache with this side on, and which of its ports is this side's. */
  proxyOptions(): StartOptions;
  portOf(proxy: RunningProxy): number;
  /** Creates `table` with keys 0..keys-1 at version 0 (on a direct connection). */
  createTable(table: string, keys: number): Promise<void>;
  dropTable(table: string): Promise<void>;
  /** Every row of `table` read on a direct connection, in key order. */
  readDirect(table: string): Promise<VersionRow[]>;
  /** A client connection through `port` working on `table`. */
  connect(port: number, table: string): Promise<DriverConnection>;
}

/** Whether a write form, once acknowledged, has committed its stamps. */
export const COMMITS: Readonly<Record<WriteForm, boolean>> = {
  'autocommit-simple': true,
  'autocommit-parameterised': true,
  'autocommit-prepared': true,
  'upsert': true,
  'multi-statement': true,
  'transaction-commit': true,
  'multi-statement-transaction': true,
  'transaction-rollback': false,
  'multi-statement-rollback': false,
  'transaction-failed': false,
};

/** Keys stamped by one write of the form: several for the forms that are about writing several rows at once. */
export const KEYS_PER_WRITE: Readonly<Record<WriteForm, number>> = {
  'autocommit-simple': 1,
  'autocommit-parameterised': 1,
  'autocommit-prepared': 1,
  'upsert': 1,
  'multi-statement': 2,
  'transaction-commit': 2,
  'multi-statement-transaction': 2,
  'transaction-rollback': 1,
  'multi-statement-rollback': 1,
  'transaction-failed': 1,
};

/** A driver broke its contract or the server answered something the form does not allow. */
export class DriverError extends Error {
  override name = 'DriverError';
}
