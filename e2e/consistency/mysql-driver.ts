// The stale-read checker's MySQL driver, on mysql2: `query` sends SQL text (COM_QUERY; with values
// mysql2 would only format them into the text, so values go in the text), `execute` a prepared
// statement mysql2 prepares once per connection and reuses (COM_STMT_EXECUTE), and the
// parameterised path prepares, executes and closes a statement every time (COM_STMT_PREPARE,
// EXECUTE, CLOSE: new statement ids each round, like PostgreSQL's unnamed statement).
// MySQL does not abort a transaction when a statement in it fails, so it has no 'transaction-failed'.
import type mysql from 'mysql2/promise';
import type { ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { DIRECT_MYSQL, connectMySql, statementsOn } from '../support/mysql-direct.js';
import { DIRECT_MYSQL_URL, type RunningProxy, type StartOptions } from '../support/sidecache.js';
import { DriverError, type ConsistencyDriver, type DriverConnection, type ReadPath, type Stamp, type VersionRow, type WriteForm } from './driver.js';

/** mysql2's result of one statement, or of each statement of a multi-statement text. */
type QueryResult = RowDataPacket[] | ResultSetHeader | Array<RowDataPacket[] | ResultSetHeader>;

class MySqlConnection implements DriverConnection {
  private readonly update: string;
  private readonly upsert: string;
  private readonly readOne: string;
  private readonly readAll: string;

  constructor(private readonly conn: mysql.Connection, private readonly table: string) {
    this.update = `UPDATE ${table} SET version = ? WHERE k = ? AND version < ?`;
    this.upsert = `INSERT INTO ${table} (k, version) VALUES (?, ?) ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version))`;
    this.readOne = `SELECT k, version FROM ${table} WHERE k = ?`;
    this.readAll = `SELECT k, version FROM ${table} WHERE k >= ? ORDER BY k`;
  }

  async write(form: WriteForm, stamps: readonly Stamp[]): Promise<void> {
    const c = this.conn;
    const first = stamps[0]!;
    switch (form) {
      case 'autocommit-simple':
      case 'multi-statement':
        await c.query(this.literalUpdates(stamps));
        return;
      case 'autocommit-parameterised':
        await this.once(this.update, [first.version, first.key, first.version]);
        return;
      case 'autocommit-prepared':
        await c.execute(this.update, [first.version, first.key, first.version]);
        return;
      case 'upsert':
        await c.execute(this.upsert, [first.key, first.version]);
        return;
      case 'transaction-commit':
        await c.query('BEGIN');
        for (const s of stamps) await c.execute(this.update, [s.version, s.key, s.version]);
        await c.query('COMMIT');
        return;
      case 'multi-statement-transaction':
        expectStatements(await this.multi(`BEGIN; ${this.literalUpdates(stamps)}; COMMIT`), stamps.length + 2, form);
        return;
      case 'transaction-rollback':
        await c.query('BEGIN');
        await c.execute(this.update, [first.version, first.key, first.version]);
        await c.query('ROLLBACK');
        return;
      case 'multi-statement-rollback':
        expectStatements(await this.multi(`BEGIN; ${this.literalUpdates(stamps)}; ROLLBACK`), stamps.length + 2, form);
        return;
      case 'transaction-failed':
        throw new DriverError(`${form}: MySQL does not abort a transaction on an error; the form does not apply`);
    }
  }

  async read(path: ReadPath, key: number | null): Promise<VersionRow[]> {
    const c = this.conn;
    let rows: RowDataPacket[];
    switch (path) {
      case 'simple':
        [rows] = await c.query<RowDataPacket[]>(key === null
          ? `SELECT k, version FROM ${this.table} ORDER BY k`
          : `SELECT k, version FROM ${this.table} WHERE k = ${key}`);
        break;
      case 'parameterised':
        rows = (key === null ? await this.once(this.readAll, [0]) : await this.once(this.readOne, [key])) as RowDataPacket[];
        break;
      case 'prepared':
        [rows] = key === null
          ? await c.execute<RowDataPacket[]>(this.readAll, [0])
          : await c.execute<RowDataPacket[]>(this.readOne, [key]);
        break;
    }
    return toVersionRows(rows);
  }

  async close(): Promise<void> {
    await this.conn.end();
  }

  /** Prepare, execute, close: the statement lives for one execution. */
  private async once(sql: string, values: unknown[]): Promise<unknown> {
    // A different text from the reused statements', so closing it never touches theirs.
    const text = `${sql} -- once`;
    const statement = await this.conn.prepare(text);
    try {
      const [result] = await statement.execute(values);
      return result;
    } finally {
      this.conn.unprepare(text);
    }
  }

  private async multi(sql: string): Promise<QueryResult> {
    const [result] = await this.conn.query<QueryResult & RowDataPacket[]>(sql);
    return result;
  }

  private literalUpdates(stamps: readonly Stamp[]): string {
    return stamps.map((s) => `UPDATE ${this.table} SET version = ${s.version} WHERE k = ${s.key} AND version < ${s.version}`).join('; ');
  }
}

/** A multi-statement text answers with one result per statement; fewer means it stopped early. */
function expectStatements(result: QueryResult, count: number, form: WriteForm): void {
  const n = Array.isArray(result) ? result.length : 1;
  if (n !== count) throw new DriverError(`${form}: the server answered ${n} statements, expected ${count}`);
}

/** BIGINT arrives as a number or, past 2^53, a string; versions stay far below that. */
function toVersionRows(rows: RowDataPacket[]): VersionRow[] {
  return rows.map((r) => ({ key: Number(r.k), version: Number(r.version) }));
}

/** A MySQL/MariaDB server the checker runs against: the shared one, or a private one (the change-stream mode). */
export interface MySqlServer {
  port: number;
  database: string;
}

/** The driver for `server`, whose sidecache is started with `proxy`. */
export function mysqlDriverAt(server: MySqlServer, proxy: StartOptions): ConsistencyDriver {
  const connect = (port: number, extra: mysql.ConnectionOptions = {}): Promise<mysql.Connection> => connectMySql(port, { database: server.database, ...extra });
  const direct = (...statements: string[]): Promise<unknown> => statementsOn(server.port, statements, { database: server.database });
  return {
    protocol: 'mysql',
    metricsProtocol: 'mysql',
    writeForms: [
      'autocommit-simple', 'autocommit-parameterised', 'autocommit-prepared', 'upsert', 'multi-statement',
      'transaction-commit', 'multi-statement-transaction', 'transaction-rollback', 'multi-statement-rollback',
    ],
    proxyOptions(): StartOptions {
      return proxy;
    },
    portOf(running: RunningProxy): number {
      return running.mysqlPort;
    },
    async createTable(table: string, keys: number): Promise<void> {
      const values = Array.from({ length: keys }, (_, k) => `(${k}, 0)`).join(', ');
      await direct(
        `CREATE TABLE ${table} (k INT PRIMARY KEY, version BIGINT NOT NULL) ENGINE=InnoDB`,
        `INSERT INTO ${table} VALUES ${values}`,
      );
    },
    async dropTable(table: string): Promise<void> {
      await direct(`DROP TABLE IF EXISTS ${table}`);
    },
    async readDirect(table: string): Promise<VersionRow[]> {
      return toVersionRows(await direct(`SELECT k, version FROM ${table} ORDER BY k`) as RowDataPacket[]);
    },
    async connect(port: number, table: string): Promise<DriverConnection> {
      return new MySqlConnection(await connect(port, { multipleStatements: true }), table);
    },
  };
}

export const mysqlDriver: ConsistencyDriver = mysqlDriverAt(DIRECT_MYSQL, { pgUpstream: null, mysqlUpstream: DIRECT_MYSQL_URL });
