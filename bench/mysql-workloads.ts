// The sysbench workloads of the MySQL bench and the two tables they run on.

export type MysqlWorkloadKind =
  /** Point selects over a 1000-row table: after a warm-up, nearly every read through a cache is a hit. */
  | 'hot'
  /** sysbench's OLTP read/write mix: reads inside transactions bypass a cache, every commit invalidates. */
  | 'read-write';

/** Which of the bench's two databases a workload runs on. */
export type MysqlTable = 'hot' | 'full';

export interface MysqlWorkload {
  key: string;
  label: string;
  kind: MysqlWorkloadKind;
  test: 'oltp_point_select' | 'oltp_read_write';
  table: MysqlTable;
  args: readonly string[];
}

/**
 * Rows of the hot table. sysbench draws ids uniformly over --table-size and has no option for
 * "only ids 1..N of a bigger table" except its skewed `special` distribution, so the hot key range
 * is a table of its own this size.
 */
export const HOT_ROWS = 1000;
/** Rows of the table oltp_read_write runs on: big enough that 8 threads rarely deadlock on the same rows. */
export const FULL_ROWS = 100_000;

export const MYSQL_WORKLOADS: readonly MysqlWorkload[] = [
  // --db-ps-mode=auto (sysbench's default): server-side prepared statements, COM_STMT_EXECUTE.
  { key: 'hot-prepared', label: 'hot point select, prepared', kind: 'hot', test: 'oltp_point_select', table: 'hot', args: ['--db-ps-mode=auto'] },
  { key: 'hot-text', label: 'hot point select, text', kind: 'hot', test: 'oltp_point_select', table: 'hot', args: ['--db-ps-mode=disable'] },
  { key: 'read-write', label: 'oltp_read_write', kind: 'read-write', test: 'oltp_read_write', table: 'full', args: [] },
];

export const DEFAULT_MYSQL_WORKLOADS = MYSQL_WORKLOADS.map((w) => w.key);

export function tableRows(table: MysqlTable): number {
  return table === 'hot' ? HOT_ROWS : FULL_ROWS;
}
