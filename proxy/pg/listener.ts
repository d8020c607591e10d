// Accepts PostgreSQL clients: the shared listener (proxy/listener.ts) with PostgreSQL sessions.
import type { Logger } from '../../telemetry/log.js';
import type { Config, HostPort } from '../../config/settings.js';
import type { Metrics } from '../../telemetry/metrics.js';
import type { BufferBudget } from '../buffer-budget.js';
import { ProxyListener } from '../listener.js';
import { upstreamTlsPlan } from '../tls.js';
import { PgProxyError, SqlState } from './error-response.js';
import type { PgCache } from './pg-cache.js';
import { PgSession } from './session.js';

export class PgListener extends ProxyListener<PgSession, PgProxyError> {
  constructor(config: Config, upstream: HostPort, log: Logger, metrics: Metrics, buffers: BufferBudget, readonly cache: PgCache | null) {
    super(config, upstream, log, metrics, buffers, {
      protocol: 'postgres',
      logName: 'pg',
      // Sessions take the accepted socket over with a read buffer of their own (read-buffer.ts).
      createSession: (socket) => new PgSession(socket, this),
      shutdownError: () => new PgProxyError(SqlState.AdminShutdown, 'terminating connection due to administrator command (sidecache shutting down)'),
      // The quick start's embedded server (no pg-upstream) speaks cleartext only.
      upstreamTls: config.pgUpstream === null ? null : upstreamTlsPlan(config.pgUpstream.tls, `sslmode=${config.pgUpstream.tls.mode}`),
    });
  }
}
