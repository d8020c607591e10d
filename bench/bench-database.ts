// The bench's own database: created, filled by `pgbench -i`, checked for lost or doubled TPC-B
// work, and dropped. Always reached directly, never through the proxy under test.
import pg from 'pg';
import { initPgbench, type PgbenchTarget } from './pgbench.js';

export interface TpcbSums {
  accounts: bigint;
  tellers: bigint;
  branches: bigint;
  history: bigint;
  historyRows: bigint;
}

export class BenchDatabase {
  private constructor(readonly target: PgbenchTarget, private readonly client: pg.Client) {}

  /** Creates `name` on the server (dropping a leftover of the same name) and initialises it at `scale`. */
  static async create(server: Omit<PgbenchTarget, 'database'>, name: string, scale: number): Promise<BenchDatabase> {
    await withClient({ ...server, database: 'postgres' }, async (admin) => {
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
    });
    const target = { ...server, database: name };
    await initPgbench(target, scale, 300_000);
    const client = new pg.Client(target);
    await client.connect();
    return new BenchDatabase(target, client);
  }

  /**
   * What pgbench does before a run, minus its TRUNCATE of pgbench_history (the bench runs pgbench
   * with -n so history keeps every transaction for the consistency check). The CHECKPOINT keeps
   * one run's dirty pages from being written during the next run.
   */
  async prepareRun(): Promise<void> {
    await this.client.query('VACUUM pgbench_branches');
    await this.client.query('VACUUM pgbench_tellers');
    await this.client.query('CHECKPOINT');
  }

  /** Every TPC-B transaction adds the same delta to one account, teller and branch and logs it in history. */
  async tpcbSums(): Promise<TpcbSums> {
    const { rows } = await this.client.query<Record<keyof TpcbSums, string>>(`
      SELECT (SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts) AS accounts,
             (SELECT coalesce(sum(tbalance), 0) FROM pgbench_tellers)  AS tellers,
             (SELECT coalesce(sum(bbalance), 0) FROM pgbench_branches) AS branches,
             (SELECT coalesce(sum(delta), 0) FROM pgbench_history)     AS history,
             (SELECT count(*) FROM pgbench_history)                    AS "historyRows"`);
    const row = rows[0]!;
    return {
      accounts: BigInt(row.accounts),
      tellers: BigInt(row.tellers),
      branches: BigInt(row.branches),
      history: BigInt(row.history),
      historyRows: BigInt(row.historyRows),
    };
  }

  async drop(): Promise<void> {
    await this.client.end();
    await withClient({ ...this.target, database: 'postgres' }, (admin) =>
      admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(this.target.database)} WITH (FORCE)`));
  }
}

/** The balances agree with the history when no transaction was lost, split or applied twice. */
export function sumsBalance(s: TpcbSums): boolean {
  return s.accounts === s.history && s.tellers === s.history && s.branches === s.history;
}

/** A connection to `target` for `fn`, closed afterwards. */
export async function withClient<T>(target: PgbenchTarget, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(target);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
