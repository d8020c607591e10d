// The stale-read checker's PostgreSQL driver, on node-postgres: a query without values goes over the
// simple protocol, one with values over an unnamed prepared statement (Parse/Bind/Execute/Sync each
// time), one with a `name` over a named statement parsed once per connection.
import pg from 'pg';
import { DIRECT_PG } from '../support/pg-direct.js';
import type { RunningProxy, StartOptions } from '../support/sidecache.js';
import { DriverError, type ConsistencyDriver, type DriverConnection, type ReadPath, type Stamp, type VersionRow, type WriteForm } from './driver.js';

const DIVISION_BY_ZERO = '22012';

class PgConnection implements DriverConnection {
  private readonly update: string;
  private readonly upsert: string;
  private readonly readOne: string;
  private readonly readAll: string;

  constructor(private readonly client: pg.Client, private readonly table: string) {
    this.update = `UPDATE ${table} SET version = $1 WHERE k = $2 AND version < $1`;
    this.upsert = `INSERT INTO ${table} AS t (k, version) VALUES ($1, $2)
      ON CONFLICT (k) DO UPDATE SET version = EXCLUDED.version WHERE t.version < EXCLUDED.version`;
    this.readOne = `SELECT k, version FROM ${table} WHERE k = $1`;
    this.readAll = `SELECT k, version FROM ${table} WHERE k >= $1 ORDER BY k`;
  }

  async write(form: WriteForm, stamps: readonly Stamp[]): Promise<void> {
    const c = this.client;
    switch (form) {
      case 'autocommit-simple':
        await c.query(this.literalUpdates(stamps));
        return;
      case 'autocommit-parameterised':
        await c.query(this.update, [stamps[0]!.version, stamps[0]!.key]);
        return;
      case 'autocommit-prepared':
        await c.query({ name: 'cc_update', text: this.update, values: [stamps[0]!.version, stamps[0]!.key] });
        return;
      case 'upsert':
        await c.query(this.upsert, [stamps[0]!.key, stamps[0]!.version]);
        return;
      case 'multi-statement':
        await c.query(this.literalUpdates(stamps));
        return;
      case 'transaction-commit': {
        await c.query('BEGIN');
        for (const s of stamps) await c.query({ name: 'cc_update', text: this.update, values: [s.version, s.key] });
        expectTag(await c.query('COMMIT'), 'COMMIT', form);
        return;
      }
      case 'multi-statement-transaction':
        expectLastTag(await c.query(`BEGIN; ${this.literalUpdates(stamps)}; COMMIT`), 'COMMIT', form);
        return;
      case 'transaction-rollback':
        await c.query('BEGIN');
        await c.query(this.update, [stamps[0]!.version, stamps[0]!.key]);
        expectTag(await c.query('ROLLBACK'), 'ROLLBACK', form);
        return;
      case 'multi-statement-rollback':
        expectLastTag(await c.query(`BEGIN; ${this.literalUpdates(stamps)}; ROLLBACK`), 'ROLLBACK', form);
        return;
      case 'transaction-failed': {
        await c.query('BEGIN');
        await c.query(this.update, [stamps[0]!.version, stamps[0]!.key]);
        const failed = await c.query('SELECT 1/0').then(() => null, (err: Error & { code?: string }) => err);
        if (failed?.code !== DIVISION_BY_ZERO) throw new DriverError(`${form}: expected error ${DIVISION_BY_ZERO}, got ${failed?.message ?? 'success'}`);
        // The block is aborted: the server answers COMMIT with the tag ROLLBACK.
        expectTag(await c.query('COMMIT'), 'ROLLBACK', form);
        return;
      }
    }
  }

  async read(path: ReadPath, key: number | null): Promise<VersionRow[]> {
    const c = this.client;
    let result: pg.QueryResult;
    switch (path) {
      case 'simple':
        result = await c.query(key === null
          ? `SELECT k, version FROM ${this.table} ORDER BY k`
          : `SELECT k, version FROM ${this.table} WHERE k = ${key}`);
        break;
      case 'parameterised':
        result = key === null ? await c.query(this.readAll, [0]) : await c.query(this.readOne, [key]);
        break;
      case 'prepared':
        result = key === null
          ? await c.query({ name: 'cc_read_all', text: this.readAll, values: [0] })
          : await c.query({ name: 'cc_read_one', text: this.readOne, values: [key] });
        break;
    }
    return toVersionRows(result.rows);
  }

  async close(): Promise<void> {
    await this.client.end();
  }

  private literalUpdates(stamps: readonly Stamp[]): string {
    return stamps.map((s) => `UPDATE ${this.table} SET version = ${s.version} WHERE k = ${s.key} AND version < ${s.version}`).join('; ');
  }
}

function expectTag(result: pg.QueryResult, tag: string, form: WriteForm): void {
  if (result.command !== tag) throw new DriverError(`${form}: the server answered ${result.command}, expected ${tag}`);
}

function expectLastTag(results: pg.QueryResult | pg.QueryResult[], tag: string, form: WriteForm): void {
  const all = Array.isArray(results) ? results : [results];
  expectTag(all[all.length - 1]!, tag, form);
}

/** bigint arrives as a string; versions stay far below 2^53. */
function toVersionRows(rows: Array<Record<string, unknown>>): VersionRow[] {
  return rows.map((r) => ({ key: Number(r.k), version: Number(r.version) }));
}

/** A PostgreSQL server the checker runs against: the shared one, or a private one (the change-stream mode). */
export interface PgServer {
  host: string;
  port: number;
  database: string;
}

/** The driver for `server`, whose sidecache is started with `proxy`. */
export function pgDriverAt(server: PgServer, proxy: StartOptions): ConsistencyDriver {
  const connect = async (port: number): Promise<pg.Client> => {
    const client = new pg.Client({ host: server.host, port, user: DIRECT_PG.user, database: server.database });
    await client.connect();
    return client;
  };
  const direct = async (sql: string, params: unknown[] = []): Promise<pg.QueryResult> => {
    const c = await connect(server.port);
    try {
      return await c.query(sql, params);
    } finally {
      await c.end();
    }
  };
  return {
    protocol: 'postgres',
    metricsProtocol: 'postgres',
    writeForms: [
      'autocommit-simple', 'autocommit-parameterised', 'autocommit-prepared', 'upsert', 'multi-statement',
      'transaction-commit', 'multi-statement-transaction', 'transaction-rollback', 'multi-statement-rollback',
      'transaction-failed',
    ],
    proxyOptions(): StartOptions {
      return proxy;
    },
    portOf(running: RunningProxy): number {
      return running.pgPort;
    },
    async createTable(table: string, keys: number): Promise<void> {
      await direct(`CREATE TABLE ${table} (k int PRIMARY KEY, version bigint NOT NULL)`);
      await direct(`INSERT INTO ${table} SELECT k, 0 FROM generate_series(0, $1 - 1) AS k`, [keys]);
    },
    async dropTable(table: string): Promise<void> {
      await direct(`DROP TABLE IF EXISTS ${table}`);
    },
    async readDirect(table: string): Promise<VersionRow[]> {
      return toVersionRows((await direct(`SELECT k, version FROM ${table} ORDER BY k`)).rows);
    },
    async connect(port: number, table: string): Promise<DriverConnection> {
      return new PgConnection(await connect(port), table);
    },
  };
}

export const pgDriver: ConsistencyDriver = pgDriverAt(DIRECT_PG, {});
