// Accepts MySQL/MariaDB clients: the shared listener (proxy/listener.ts) with MySQL sessions.
import type { Logger } from '../../telemetry/log.js';
import type { Config, UpstreamUrl } from '../../config/settings.js';
import type { Metrics } from '../../telemetry/metrics.js';
import type { BufferBudget } from '../buffer-budget.js';
import { ProxyListener } from '../listener.js';
import { mysqlUpstreamTlsPlan } from '../tls.js';
import { MySqlErrorCode, MySqlProxyError } from './error-packet.js';
import type { MySqlCache } from './mysql-cache.js';
import { MySqlSession } from './session.js';

export class MySqlListener extends ProxyListener<MySqlSession, MySqlProxyError> {
  constructor(config: Config, upstream: UpstreamUrl, log: Logger, metrics: Metrics, buffers: BufferBudget, readonly cache: MySqlCache | null = null) {
    super(config, upstream, log, metrics, buffers, {
      protocol: 'mysql',
      logName: 'mysql',
      createSession: (socket) => new MySqlSession(socket, this),
      shutdownError: () => new MySqlProxyError(MySqlErrorCode.ServerShutdown, 'Server shutdown in progress (sidecache shutting down)'),
      upstreamTls: mysqlUpstreamTlsPlan(upstream.tls),
    });
  }
}
