// Accepts PostgreSQL clients: the shared listener (proxy/listener.ts) with PostgreSQL sessions.
import type { Logger } from '../../telemetry/log.js';
import { readPgAuthFile, type PgAuthSecrets } from '../../config/pg-auth-file.js';
import type { Config, HostPort } from '../../config/settings.js';
import type { Metrics } from '../../telemetry/metrics.js';
import type { BufferBudget } from '../buffer-budget.js';
import { ProxyListener } from '../listener.js';
import { pgUpstreamTlsPlan, type ClientTls } from '../tls.js';
import { PgAuthQuery } from './auth-query.js';
import { PgProxyError, SqlState } from './error-response.js';
import type { PgCache } from './pg-cache.js';
import { PgSession } from './session.js';

export class PgListener extends ProxyListener<PgSession, PgProxyError> {
  /** Replaced whole by a reload; a session reads it once, at its StartupMessage. */
  pgAuth: PgAuthSecrets;
  /** --pg-auth-user's lookups for users not in the file; null when unset. */
  readonly authQuery: PgAuthQuery | null;

  constructor(config: Config, upstream: HostPort, log: Logger, metrics: Metrics, buffers: BufferBudget, readonly cache: PgCache | null) {
    super(config, upstream, log, metrics, buffers, {
      protocol: 'postgres',
      logName: 'pg',
      // Sessions take the accepted socket over with a read buffer of their own (read-buffer.ts).
      createSession: (socket) => new PgSession(socket, this),
      shutdownError: () => new PgProxyError(SqlState.AdminShutdown, 'terminating connection due to administrator command (sidecache shutting down)'),
      // The quick start's embedded server (no pg-upstream) speaks cleartext only.
      upstreamTls: config.pgUpstream === null ? null : pgUpstreamTlsPlan(config.pgUpstream.tls),
    });
    this.pgAuth = readPgAuthFile(config.pgAuthFile);
    this.authQuery = PgAuthQuery.fromConfig(config, upstream, this.upstreamTls, log);
  }

  override async close(deadlineMs: number): Promise<void> {
    await super.close(deadlineMs);
    await this.authQuery?.close();
  }

  /**
   * Reads --pg-auth-file again (renewed secrets under the same name). The reload already checked
   * the file (loadConfig); should it have broken since, the secrets in use stay.
   */
  override applyConfig(config: Config, tls: ClientTls): void {
    super.applyConfig(config, tls);
    try {
      this.pgAuth = readPgAuthFile(config.pgAuthFile);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'pg: --pg-auth-file could not be read again; the secrets read before stay in use');
    }
  }
}
