// SCRAM secrets looked up on the server, as PgBouncer's auth_query / auth_user: for a user not in
// --pg-auth-file, sidecache runs --pg-auth-query as --pg-auth-user (in --pg-auth-dbname, or the
// database the client asked for) and takes the first row's second column as the user's secret.
// With a SCRAM secret the login goes as for a user of the file (scram-login.ts); with none (no
// row, an md5 hash, an expired or NULL password, a failed query) it is relayed as before, so a
// broken auth query never locks anyone out that the server would let in.
// The connections are node-postgres pools, a small one per database, over the pg-upstream URL's
// TLS settings (channel binding on when that leg is TLS).
import pg from 'pg';
import { parseScramSecret, type ScramSecret } from '../../config/pg-auth-file.js';
import type { Config, HostPort } from '../../config/settings.js';
import type { Logger } from '../../telemetry/log.js';
import type { UpstreamTlsPlan } from '../tls.js';

/** Pools kept at once: clients choose database names, so they are bounded (the oldest goes). */
const MAX_POOLS = 16;
const POOL_SIZE = 2;
const IDLE_MS = 30_000;

export class PgAuthQuery {
  private readonly pools = new Map<string, pg.Pool>();
  /** sslmode=prefer and the server refused TLS: from then on in cleartext, as the relay would be. */
  private cleartext = false;

  private constructor(
    private readonly user: string,
    private readonly password: string | null,
    private readonly query: string,
    private readonly dbname: string | null,
    private readonly upstream: HostPort,
    private readonly tls: UpstreamTlsPlan | null,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {}

  /** Null when --pg-auth-user is not set. */
  static fromConfig(config: Config, upstream: HostPort, tls: UpstreamTlsPlan | null, log: Logger): PgAuthQuery | null {
    if (config.pgAuthUser === null) return null;
    return new PgAuthQuery(config.pgAuthUser, config.pgAuthPassword, config.pgAuthQuery, config.pgAuthDbname, upstream, tls,
      config.upstreamConnectTimeoutMs, log);
  }

  /** The user's SCRAM secret, or null: relay the login. Never rejects. */
  async secretOf(user: string, database: string): Promise<ScramSecret | null> {
    const db = this.dbname ?? database;
    for (;;) {
      try {
        const { rows } = await this.pool(db).query<unknown[]>({ text: this.query, values: [user], rowMode: 'array' });
        const secret = rows[0]?.[1];
        return typeof secret === 'string' ? parseScramSecret(secret) : null;
      } catch (err) {
        const message = (err as Error).message;
        if (this.tls?.optional === true && !this.cleartext && /does not support SSL/.test(message)) {
          this.cleartext = true;
          await this.close();
          continue;
        }
        this.log.warn({ user, database: db, authUser: this.user, err: message }, 'pg: the auth query failed; the login is relayed');
        return null;
      }
    }
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
  }

  private pool(database: string): pg.Pool {
    let pool = this.pools.get(database);
    if (pool !== undefined) return pool;
    if (this.pools.size >= MAX_POOLS) {
      const [oldest, old] = this.pools.entries().next().value as [string, pg.Pool];
      this.pools.delete(oldest);
      void old.end().catch(() => undefined);
    }
    const tls = this.cleartext ? null : this.tls;
    pool = new pg.Pool({
      host: this.upstream.host,
      port: this.upstream.port,
      user: this.user,
      password: this.password ?? undefined,
      database,
      application_name: 'sidecache-auth-query',
      max: POOL_SIZE,
      idleTimeoutMillis: IDLE_MS,
      connectionTimeoutMillis: this.timeoutMs,
      query_timeout: this.timeoutMs,
      ssl: tls === null ? false : tls.options(this.upstream.host),
      enableChannelBinding: tls !== null,
    });
    // An idle connection the server closed: the pool drops it; the next query opens another.
    pool.on('error', () => undefined);
    this.pools.set(database, pool);
    return pool;
  }
}
