// What a protocol's listener does the same way for PostgreSQL and MySQL: accept clients, enforce
// the connection limit, count connections in the metrics, and shut down gracefully. Each protocol supplies its session type and its shutdown error.
import net from 'node:net';
import type { Logger } from '../telemetry/log.js';
import type { Config, HostPort } from '../config/settings.js';
import type { Metrics, Protocol } from '../telemetry/metrics.js';
import type { BufferBudget } from './buffer-budget.js';
import { clientTls, type ClientTls, type UpstreamTlsPlan } from './tls.js';

/**
 * The accept queue asked of the kernel, which caps it at net.core.somaxconn (4096 by default since
 * Linux 5.4). Node's default of 511 overflows when a burst of clients arrives faster than the
 * event loop accepts: the kernel then drops their handshakes, so they connect seconds later (SYN
 * retries), hang (a dropped final ACK of a client that waits for the server to speak first), or
 * get a bare reset, instead of the protocol's own refusal.
 */
const LISTEN_BACKLOG = 65535;

/** The limits every session enforces, from the config. */
export interface SessionLimits {
  maxMessageBytes: number;
  loginTimeoutMs: number;
  messageStallTimeoutMs: number;
  upstreamConnectTimeoutMs: number;
  /** Log each logged-in session's start and end (--log-connections). */
  logConnections: boolean;
}

/** What a session needs from the listener that owns it (ProxyListener implements it). */
export interface ListenerHost<S> {
  readonly upstream: HostPort;
  /** TLS to the upstream; null: cleartext (sslmode=disable, or the quick start's embedded server). */
  readonly upstreamTls: UpstreamTlsPlan | null;
  /** TLS offered to clients, as of the latest reload. */
  readonly clientTls: ClientTls;
  readonly limits: SessionLimits;
  readonly log: Logger;
  /** Where every session takes the bytes of client messages that arrive in part. */
  readonly buffers: BufferBudget;
  /** Asks for a connection slot once the client has said who it is; false = over the limit. */
  admit(session: S): boolean;
  upstreamOpened(): void;
  upstreamClosed(): void;
  protocolError(reason: string): void;
  upstreamError(reason: string): void;
  closed(session: S): void;
}

/** What the listener needs of a session. */
export interface ListenedSession<E> {
  readonly remote: string;
  /** Requests sent upstream and not answered yet: shutdown waits for them. */
  readonly busy: boolean;
  start(): void;
  /** Ends the session with `err` told to the client where the protocol allows. */
  terminate(err: E): void;
}

export interface ListenerProtocol<S extends ListenedSession<E>, E> {
  protocol: Protocol;
  /** Prefix of log lines: 'pg', 'mysql'. */
  logName: string;
  createSession(socket: net.Socket): S;
  shutdownError(): E;
  upstreamTls: UpstreamTlsPlan | null;
}

export class ProxyListener<S extends ListenedSession<E>, E> implements ListenerHost<S> {
  /** Replaced whole by a reload; sessions read it when they use a limit, so new values reach them. */
  limits: SessionLimits;
  clientTls: ClientTls;
  readonly upstreamTls: UpstreamTlsPlan | null;
  private readonly server: net.Server;
  private maxClients: number;
  /** Sessions that hold a connection slot. */
  private readonly admitted = new Set<S>();
  private readonly all = new Set<S>();
  private readonly labels: { protocol: Protocol };

  constructor(
    config: Config,
    readonly upstream: HostPort,
    readonly log: Logger,
    private readonly metrics: Metrics,
    readonly buffers: BufferBudget,
    private readonly kind: ListenerProtocol<S, E>,
  ) {
    this.limits = sessionLimits(config);
    this.clientTls = clientTls(config);
    this.upstreamTls = kind.upstreamTls;
    this.maxClients = config.maxClientConnections;
    this.labels = { protocol: kind.protocol };
    // Paused: each session takes its accepted socket over with its own read buffer (read-buffer.ts).
    this.server = net.createServer({ noDelay: true, pauseOnConnect: true }, (socket) => this.accept(socket));
  }

  /**
   * A config reload. Connections already admitted stay even when over a lowered limit; a
   * session's message-size limit is the one in force when it logged in. `tls`: the certificate
   * read again, for new connections; open ones keep the one they were shown.
   */
  applyConfig(config: Config, tls: ClientTls): void {
    this.limits = sessionLimits(config);
    this.clientTls = tls;
    this.maxClients = config.maxClientConnections;
  }

  /** Resolves with the bound address; rejects (e.g. EADDRINUSE) without leaving anything open. */
  listen(at: HostPort): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ port: at.port, host: at.host, backlog: LISTEN_BACKLOG }, () => {
        this.server.off('error', reject);
        this.server.on('error', (err) => this.log.error({ err: err.message }, `${this.kind.logName}: listener error`));
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  /** Stops accepting; sessions idle between requests are told so and closed, busy ones by the deadline. */
  async close(deadlineMs: number): Promise<void> {
    this.server.close();
    const shutdown = this.kind.shutdownError();
    const until = Date.now() + deadlineMs;
    while (this.all.size > 0) {
      for (const s of this.all) if (!s.busy || Date.now() >= until) s.terminate(shutdown);
      if (this.all.size === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private accept(socket: net.Socket): void {
    const session = this.kind.createSession(socket);
    this.all.add(session);
    session.start();
  }

  /** Asks for a connection slot once the client has said who it is; false = over the limit. */
  admit(session: S): boolean {
    if (this.admitted.size >= this.maxClients) {
      this.metrics.rejectedConnections.inc({ ...this.labels, reason: 'max-client-connections' });
      this.log.warn({ remote: session.remote, limit: this.maxClients }, `${this.kind.logName}: connection refused: too many clients`);
      return false;
    }
    this.admitted.add(session);
    this.metrics.clientConnections.inc(this.labels);
    this.metrics.clientConnectionsTotal.inc(this.labels);
    return true;
  }

  upstreamOpened(): void {
    this.metrics.upstreamConnections.inc(this.labels);
  }

  upstreamClosed(): void {
    this.metrics.upstreamConnections.dec(this.labels);
  }

  protocolError(reason: string): void {
    this.metrics.protocolErrors.inc({ ...this.labels, reason });
  }

  upstreamError(reason: string): void {
    this.metrics.upstreamErrors.inc({ ...this.labels, reason });
  }

  closed(session: S): void {
    this.all.delete(session);
    if (this.admitted.delete(session)) this.metrics.clientConnections.dec(this.labels);
  }
}

function sessionLimits(config: Config): SessionLimits {
  return Object.freeze({
    maxMessageBytes: config.maxMessageBytes,
    loginTimeoutMs: config.loginTimeoutMs,
    messageStallTimeoutMs: config.messageStallTimeoutMs,
    upstreamConnectTimeoutMs: config.upstreamConnectTimeoutMs,
    logConnections: config.logConnections === 'on',
  });
}
