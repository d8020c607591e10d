// The MySQL bench's view of MariaDB itself, always reached directly: its own databases (created,
// dropped), MariaDB's query cache switched on only around the runs that measure it and restored to
// what it was, and a fingerprint of the sysbench table for the consistency check.
import mysql from 'mysql2/promise';
import { startMariadb } from '../e2e/support/mariadb-server.js';
import type { HopDatabase } from './netns.js';
import type { SysbenchTarget } from './mysql-sysbench.js';

/**
 * The private MariaDB of `make bench-mysql --rtt`, inside the hop's namespace: no binary log (the
 * shared server has none either), a buffer pool that holds the bench's tables, connections for
 * sysbench's threads through every target at once.
 */
export const MARIADB_BEHIND_HOP: HopDatabase = {
  port: 3306,
  user: 'root',
  start: (namespace) => startMariadb({
    netns: namespace,
    port: 3306,
    binlog: false,
    args: ['--innodb-buffer-pool-size=256M', '--max-connections=200'],
  }),
};

export type MysqlServer = Omit<SysbenchTarget, 'database'>;

/** The query cache settings found at the start, put back at the end (the server is shared). */
export interface QueryCacheSettings {
  type: string;
  size: number;
}

/** What a fill of MariaDB's query cache needs: 64 MiB holds the hot table's 1000 results many times over. */
export const QUERY_CACHE_BYTES = 64 * 1024 * 1024;

/**
 * sbtest1 summed up so that any changed row changes it: a read through a proxy that returns a
 * stale cached result differs from the direct read. Cacheable (no volatile function), so it can be
 * primed in the proxy's cache before writes.
 */
export const FINGERPRINT_SQL = "SELECT COUNT(*) AS n, SUM(k) AS k, BIT_XOR(CRC32(CONCAT_WS('#', id, k, c, pad))) AS crc FROM sbtest1";

export class MysqlBenchServer {
  private constructor(readonly server: MysqlServer, private readonly admin: mysql.Connection, readonly databases: string[]) {}

  static async connect(server: MysqlServer): Promise<MysqlBenchServer> {
    return new MysqlBenchServer(server, await mysql.createConnection({ ...server }), []);
  }

  /** Creates `name` (dropping a leftover of the same name); dropped again by `close`. */
  async createDatabase(name: string): Promise<SysbenchTarget> {
    await this.admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
    await this.admin.query(`CREATE DATABASE \`${name}\``);
    this.databases.push(name);
    return { ...this.server, database: name };
  }

  async queryCacheSettings(): Promise<QueryCacheSettings> {
    const [rows] = await this.admin.query<mysql.RowDataPacket[]>("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('query_cache_type', 'query_cache_size')");
    const value = (name: string): string => String(rows.find((r) => r['Variable_name'] === name)?.['Value'] ?? '');
    return { type: value('query_cache_type'), size: Number(value('query_cache_size')) };
  }

  /** Sets both; the size first, since MariaDB refuses type ON while the size is 0. */
  async setQueryCache(settings: QueryCacheSettings): Promise<void> {
    await this.admin.query(`SET GLOBAL query_cache_size = ${Math.trunc(settings.size)}`);
    await this.admin.query(`SET GLOBAL query_cache_type = ${mysql.escape(settings.type)}`);
  }

  async queryCacheHits(): Promise<number> {
    const [rows] = await this.admin.query<mysql.RowDataPacket[]>("SHOW GLOBAL STATUS LIKE 'Qcache_hits'");
    return Number(rows[0]?.['Value'] ?? NaN);
  }

  async fingerprint(database: string): Promise<string> {
    const reader = await FingerprintReader.open({ ...this.server, database });
    try {
      return await reader.read();
    } finally {
      await reader.close();
    }
  }

  /** Drops every database it created; safe to call twice. */
  async close(): Promise<void> {
    for (const name of this.databases.splice(0)) {
      await this.admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
    }
    await this.admin.end();
  }
}

/**
 * FINGERPRINT_SQL on one connection kept open across a run: the read before the run is cached on
 * it, and the read after must not return that entry if the run changed the table.
 */
export class FingerprintReader {
  private constructor(private readonly connection: mysql.Connection) {}

  static async open(target: SysbenchTarget): Promise<FingerprintReader> {
    return new FingerprintReader(await mysql.createConnection({ ...target }));
  }

  async read(): Promise<string> {
    const [rows] = await this.connection.query<mysql.RowDataPacket[]>(FINGERPRINT_SQL);
    const row = rows[0]!;
    return `count ${row['n']}, sum(k) ${row['k']}, crc ${row['crc']}`;
  }

  async close(): Promise<void> {
    await this.connection.end();
  }
}
