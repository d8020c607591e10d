// Accepts MySQL/MariaDB clients, enforces the connection limit and owns the live sessions.
import net from 'node:net';
import type { Logger } from '../../cli/log.js';
import type { Config, HostPort } from '../../config/settings.js';
import type { Metrics } from '../../admin/metrics.js';
import { MySqlErrorCode, MySqlProxyError } from './error-packet.js';
import type { MySqlCache } from './mysql-cache.js';
import { MySqlSession, type SessionHost, type SessionLimits } from './session.js';

const PROTOCOL = { protocol: 'mysql' } as const;

export class MySqlListener implements SessionHost {
  readonly limits: SessionLimits;
  private readonly server: net.Server;
  private readonly maxClients: number;
  /** Sessions that hold a connection slot. */
  private readonly admitted = new Set<MySqlSession>();
  private readonly all = new Set<MySqlSession>();

  constructor(config: Config, readonly upstream: HostPort, readonly log: Logger, private readonly metrics: Metrics, readonly cache: MySqlCache | null = null) {
    this.limits = {
      maxMessageBytes: config.maxMessageBytes,
      loginTimeoutMs: config.loginTimeoutMs,
      messageStallTimeoutMs: config.messageStallTimeoutMs,
      upstreamConnectTimeoutMs: config.upstreamConnectTimeoutMs,
    };
    this.maxClients = config.maxClientConnections;
    this.server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
  }

  /** Resolves with the bound address; rejects (e.g. EADDRINUSE) without leaving anything open. */
  listen(at: HostPort): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(at.port, at.host, () => {
        this.server.off('error', reject);
        this.server.on('error', (err) => this.log.error({ err: err.message }, 'mysql: listener error'));
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  get sessionCount(): number {
    return this.admitted.size;
  }

  /** Stops accepting; sessions idle between commands are told so and closed, busy ones by the deadline. */
  async close(deadlineMs: number): Promise<void> {
    this.server.close();
    const shutdown = new MySqlProxyError(MySqlErrorCode.ServerShutdown, 'Server shutdown in progress (sidecache shutting down)');
    const until = Date.now() + deadlineMs;
    while (this.all.size > 0) {
      for (const s of this.all) if (s.awaiting === 0 || Date.now() >= until) s.terminate(shutdown);
      if (this.all.size === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private accept(socket: net.Socket): void {
    const session = new MySqlSession(socket, this);
    this.all.add(session);
    session.start();
  }

  admit(session: MySqlSession): boolean {
    if (this.admitted.size >= this.maxClients) {
      this.metrics.rejectedConnections.inc({ ...PROTOCOL, reason: 'max-client-connections' });
      this.log.warn({ remote: session.remote, limit: this.maxClients }, 'mysql: connection refused: too many clients');
      return false;
    }
    this.admitted.add(session);
    this.metrics.clientConnections.inc(PROTOCOL);
    this.metrics.clientConnectionsTotal.inc(PROTOCOL);
    return true;
  }

  upstreamOpened(): void {
    this.metrics.upstreamConnections.inc(PROTOCOL);
  }

  upstreamClosed(): void {
    this.metrics.upstreamConnections.dec(PROTOCOL);
  }

  protocolError(reason: string): void {
    this.metrics.protocolErrors.inc({ ...PROTOCOL, reason });
  }

  upstreamLost(): void {
    if (this.cache === null) return;
    const dropped = this.cache.upstreamLost();
    if (dropped > 0) this.log.warn({ dropped }, 'mysql: an upstream session ended unexpectedly; cached results dropped');
  }

  upstreamError(reason: string): void {
    this.metrics.upstreamErrors.inc({ ...PROTOCOL, reason });
  }

  closed(session: MySqlSession): void {
    this.all.delete(session);
    if (this.admitted.delete(session)) this.metrics.clientConnections.dec(PROTOCOL);
  }
}
