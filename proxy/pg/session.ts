// One client connection and its own upstream connection. The session relays bytes both ways
// unchanged and reads just enough of them to know the protocol state (PgSessionState).
//
// Phases, and the only moves between them (see `moveTo`):
//   Startup        -> Connecting (StartupMessage received) | Closed
//   Connecting     -> Authenticating (upstream connected)  | Closed
//   Authenticating -> Ready (first ReadyForQuery)          | Closed
//   Ready          -> Closed
// Client messages are forwarded only when whole, so the upstream always sits at a message boundary
// and the proxy can add a Terminate of its own when the client vanishes.
import net from 'node:net';
import { BackendScanner } from './backend-scanner.js';
import { Frontend, MAX_STARTUP_PACKET } from './codes.js';
import { PgProxyError, SqlState, errorResponse } from './error-response.js';
import { Framer, type FrameError, type FrameSink } from './framer.js';
import type { PgCache } from './pg-cache.js';
import { PgRelay, type RelayIo } from './relay.js';
import type { PgSessionState } from './session-state.js';
import { decodeStartupPacket } from './startup.js';
import { sendCancelRequest } from './cancel.js';
import { ReadBuffer, adoptAccepted } from '../read-buffer.js';
import type { ListenerHost } from '../listener.js';

export const enum Phase {
  Startup,
  Connecting,
  Authenticating,
  Ready,
  Closed,
}

const LEGAL_MOVES: Record<Phase, readonly Phase[]> = {
  [Phase.Startup]: [Phase.Connecting, Phase.Closed],
  [Phase.Connecting]: [Phase.Authenticating, Phase.Closed],
  [Phase.Authenticating]: [Phase.Ready, Phase.Closed],
  [Phase.Ready]: [Phase.Closed],
  [Phase.Closed]: [],
};

/** What a session needs from the listener that owns it. */
export interface SessionHost extends ListenerHost<PgSession> {
  /** The result cache, null when caching is off. */
  readonly cache: PgCache | null;
}

const NO_SSL = Buffer.from('N');
const TERMINATE = Buffer.from([Frontend.Terminate, 0, 0, 0, 4]);

export class PgSession implements RelayIo {
  phase = Phase.Startup;
  startupParams: ReadonlyMap<string, string> = new Map();
  /** Created with the StartupMessage; owns the traffic from then on. */
  private relay: PgRelay | null = null;
  private upstream: net.Socket | null = null;
  /** Whole client messages that arrived while the upstream connection was being opened. */
  private held: Buffer[] = [];
  private readonly framer: Framer;
  private readonly scanner = new BackendScanner();
  private loginTimer: NodeJS.Timeout | null = null;
  private stallTimer: NodeJS.Timeout | null = null;
  private lastClientData = 0;
  /** The client said goodbye: the upstream closing next is expected. */
  private clientTerminated = false;

  readonly client: net.Socket;
  private readonly clientReads = new ReadBuffer((chunk) => this.onClientData(chunk));
  private readonly upstreamReads = new ReadBuffer((chunk) => this.onUpstreamData(chunk));

  /** `accepted` comes from a server with pauseOnConnect; the session reads it through its own buffer. */
  constructor(accepted: net.Socket, private readonly host: SessionHost) {
    this.client = adoptAccepted(accepted, this.clientReads);
    this.framer = new Framer(host.limits.maxMessageBytes, MAX_STARTUP_PACKET);
  }

  start(): void {
    const { client } = this;
    client.setNoDelay(true);
    client.resume();
    client.on('error', this.onClientGone);
    client.on('close', this.onClientGone);
    client.on('drain', this.onClientDrain);
    if (this.host.limits.loginTimeoutMs > 0) {
      this.loginTimer = setTimeout(this.onLoginTimeout, this.host.limits.loginTimeoutMs);
    }
  }

  /** Ends the session from outside (shutdown): a FATAL error to the client when at a boundary. */
  terminate(err: PgProxyError): void {
    this.fail(err, 'shutdown');
  }

  /** What the session knows of its server connection; null before the StartupMessage. */
  get state(): PgSessionState | null {
    return this.relay?.state ?? null;
  }

  /** Requests sent upstream and not answered yet. */
  get busy(): boolean {
    return (this.relay?.state.awaitingReady ?? 0) > 0;
  }

  get remote(): string {
    return `${this.client.remoteAddress}:${this.client.remotePort}`;
  }

  private moveTo(next: Phase): void {
    if (!LEGAL_MOVES[this.phase].includes(next)) {
      throw new Error(`pg session: illegal move from phase ${this.phase} to ${next}`);
    }
    this.phase = next;
  }

  // ---- client -> upstream ----

  private onClientData(chunk: Buffer): void {
    if (this.phase === Phase.Closed) return;
    this.lastClientData = Date.now();
    const err = this.framer.feed(chunk, this.clientSink);
    this.relay?.endOfClientChunk();
    if (err) {
      this.fail(frameErrorToPg(err, this.framer.isTyped), err.kind);
      return;
    }
    if (this.framer.hasPartial) this.armStallTimer();
  }

  private readonly clientSink: FrameSink = {
    message: (code, buf, start, end) => {
      switch (this.phase) {
        case Phase.Startup:
          this.onStartupPacket(buf.subarray(start, end));
          return;
        case Phase.Connecting:
          this.relay!.state.onFrontend(code, buf, start, end);
          this.held.push(Buffer.from(buf.subarray(start, end))); // outlives the read buffer
          return;
        case Phase.Authenticating:
          this.relay!.forward(code, buf, start, end);
          return;
        case Phase.Ready:
          if (code === Frontend.Terminate) this.clientTerminated = true;
          this.relay!.clientMessage(code, buf, start, end);
          return;
        case Phase.Closed:
          return;
      }
    },
  };

  // RelayIo: where the relay's bytes go, with backpressure both ways.
  toUpstream(bytes: Buffer): void {
    const upstream = this.upstream;
    if (upstream === null || this.phase === Phase.Closed) return;
    const flowing = upstream.write(bytes);
    // A write that did not go out at once still points into the client's read buffer.
    if (upstream.writableLength > 0) this.clientReads.retain();
    if (!flowing) this.client.pause();
  }

  toClient(bytes: Buffer, more?: Buffer): void {
    if (this.phase === Phase.Closed || this.client.destroyed) return;
    let flowing: boolean;
    if (more === undefined) {
      flowing = this.client.write(bytes);
    } else {
      this.client.cork();
      this.client.write(bytes);
      flowing = this.client.write(more);
      this.client.uncork();
    }
    // A write that did not go out at once still points into the upstream's read buffer.
    if (this.client.writableLength > 0) this.upstreamReads.retain();
    if (!flowing) {
      // Stop producing replies until the client reads: both what the server sends and what the
      // cache answers for the client's own requests.
      this.upstream?.pause();
      this.client.pause();
    }
  }

  loginRefused(message: string): void {
    this.host.log.info({ remote: this.remote, user: this.startupParams.get('user'), database: this.startupParams.get('database'), error: message }, 'pg: connection refused by upstream');
  }

  private onStartupPacket(packet: Buffer): void {
    const decoded = decodeStartupPacket(packet);
    switch (decoded.kind) {
      case 'ssl':
      case 'gssenc':
        // Encryption is not offered yet: the client goes on in plaintext or gives up itself.
        this.client.write(NO_SSL);
        return;
      case 'cancel':
        sendCancelRequest(this.host.upstream, Buffer.from(packet), this.host.log);
        this.close();
        return;
      case 'invalid':
        this.fail(new PgProxyError(SqlState.ProtocolViolation, decoded.reason), 'bad-startup');
        return;
      case 'startup':
        break;
    }
    this.startupParams = decoded.params;
    const user = decoded.params.get('user') ?? '';
    const startupKey = [...decoded.params].filter(([k]) => k !== 'application_name').sort().join('\u0000');
    this.relay = new PgRelay(this, this.host.cache, decoded.params.get('database') ?? user, startupKey, this.host.log);
    if (!this.host.admit(this)) {
      this.fail(new PgProxyError(SqlState.TooManyConnections, 'sorry, too many clients already (sidecache --max-client-connections)'), null);
      return;
    }
    this.framer.startTyped();
    this.moveTo(Phase.Connecting);
    this.connectUpstream(Buffer.from(packet));
  }

  private connectUpstream(startupPacket: Buffer): void {
    const { host, port } = this.host.upstream;
    const upstream = net.connect({ host, port, noDelay: true, onread: this.upstreamReads.onread });
    this.upstream = upstream;
    this.host.upstreamOpened();
    upstream.setTimeout(this.host.limits.upstreamConnectTimeoutMs);
    upstream.once('timeout', () => upstream.destroy(new Error(`no answer within ${this.host.limits.upstreamConnectTimeoutMs} ms`)));
    upstream.once('connect', () => {
      upstream.setTimeout(0);
      if (this.phase !== Phase.Connecting) return;
      this.moveTo(Phase.Authenticating);
      upstream.cork();
      upstream.write(startupPacket);
      for (const m of this.held) upstream.write(m);
      upstream.uncork();
      this.held = [];
    });
    upstream.on('drain', this.onUpstreamDrain);
    upstream.on('error', this.onUpstreamError);
    upstream.on('close', this.onUpstreamClose);
  }

  // ---- upstream -> client ----

  private onUpstreamData(chunk: Buffer): void {
    if (this.phase === Phase.Closed) return;
    const relay = this.relay!;
    relay.upstreamChunk(chunk, this.scanner);
    if (this.phase === Phase.Authenticating && relay.state.ready) {
      this.moveTo(Phase.Ready);
      this.clearLoginTimer();
    }
  }

  private readonly onClientDrain = (): void => {
    this.upstream?.resume();
    if (this.upstream === null || !this.upstream.writableNeedDrain) this.client.resume();
  };

  private readonly onUpstreamDrain = (): void => {
    this.client.resume();
  };

  private readonly onUpstreamError = (err: Error): void => {
    if (this.phase === Phase.Closed) return;
    const { host, port } = this.host.upstream;
    if (this.phase === Phase.Connecting) {
      this.host.upstreamError('connect');
      this.host.upstreamLost();
      this.host.log.warn({ remote: this.remote, upstream: `${host}:${port}`, err: err.message }, 'pg: upstream unreachable');
      this.fail(new PgProxyError(SqlState.ConnectionFailure, `sidecache: cannot reach upstream postgres://${host}:${port}: ${err.message}`), null);
      return;
    }
    this.host.upstreamError('io');
    if (this.phase === Phase.Ready) this.host.upstreamLost();
    this.host.log.warn({ remote: this.remote, err: err.message }, 'pg: upstream connection failed');
    this.fail(new PgProxyError(SqlState.ConnectionFailure, `sidecache: lost the upstream connection: ${err.message}`), null);
  };

  private readonly onUpstreamClose = (): void => {
    this.host.upstreamClosed();
    this.upstream = null;
    if (this.phase === Phase.Closed) return;
    // The server ended the session (after Terminate, a FATAL error, or a timeout of its own):
    // pass the close on once what it sent has been written.
    if (this.phase === Phase.Ready && !this.clientTerminated) this.host.upstreamLost();
    this.moveTo(Phase.Closed);
    this.clearTimers();
    this.client.end();
    this.host.closed(this);
  };

  // ---- ending ----

  private readonly onClientGone = (): void => {
    if (this.phase === Phase.Closed) return;
    this.close();
  };

  private readonly onLoginTimeout = (): void => {
    this.loginTimer = null;
    this.fail(new PgProxyError(SqlState.ProtocolViolation, `sidecache: startup and authentication not completed within ${this.host.limits.loginTimeoutMs} ms`), 'login-timeout');
  };

  private armStallTimer(): void {
    const limit = this.host.limits.messageStallTimeoutMs;
    if (limit <= 0 || this.stallTimer !== null) return;
    this.stallTimer = setTimeout(this.onStallCheck, limit);
  }

  private readonly onStallCheck = (): void => {
    this.stallTimer = null;
    if (this.phase === Phase.Closed || !this.framer.hasPartial) return;
    const limit = this.host.limits.messageStallTimeoutMs;
    const idle = Date.now() - this.lastClientData;
    if (idle < limit) {
      this.stallTimer = setTimeout(this.onStallCheck, limit - idle);
      return;
    }
    this.fail(new PgProxyError(SqlState.ProtocolViolation, `sidecache: incomplete message, client sent nothing for ${limit} ms`), 'stall');
  };

  /**
   * Ends the session because of `err`: the client gets it as an ErrorResponse when the stream to
   * it is between messages (else it would corrupt a half-sent message), then both sides close.
   */
  private fail(err: PgProxyError, protocolReason: string | null): void {
    if (this.phase === Phase.Closed) return;
    if (protocolReason !== null && protocolReason !== 'shutdown') {
      this.host.protocolError(protocolReason);
      this.host.log.warn({ remote: this.remote, reason: protocolReason }, `pg: closing client connection: ${err.message}`);
    }
    if (this.scanner.atBoundary && !this.client.destroyed) this.client.write(errorResponse(err));
    this.close();
  }

  private close(): void {
    if (this.phase === Phase.Closed) return;
    this.moveTo(Phase.Closed);
    this.clearTimers();
    this.client.end();
    // A client that is not there to read a result should not keep its query running upstream.
    const upstream = this.upstream;
    if (upstream !== null) {
      const state = this.relay?.state;
      if (state !== undefined && state.awaitingReady > 0 && state.backendKey) {
        sendCancelRequest(this.host.upstream, cancelPacket(state.backendKey.pid, state.backendKey.secret), this.host.log);
      }
      if (upstream.readyState === 'open') upstream.end(TERMINATE);
      else upstream.destroy();
      // Bytes still arriving from the upstream have nowhere to go.
      upstream.resume();
    }
    this.host.closed(this);
  }

  private clearLoginTimer(): void {
    if (this.loginTimer !== null) clearTimeout(this.loginTimer);
    this.loginTimer = null;
  }

  private clearTimers(): void {
    this.clearLoginTimer();
    if (this.stallTimer !== null) clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }
}

function frameErrorToPg(err: FrameError, typed: boolean): PgProxyError {
  const what = typed ? 'message' : 'startup packet';
  if (err.kind === 'too-long') {
    return new PgProxyError(SqlState.ProtocolViolation, `sidecache: invalid ${what} length ${err.length}: exceeds the limit of ${err.limit} bytes`);
  }
  return new PgProxyError(SqlState.ProtocolViolation, `sidecache: invalid ${what} length ${err.length}`);
}

function cancelPacket(pid: number, secret: Buffer): Buffer {
  const packet = Buffer.allocUnsafe(12 + secret.length);
  packet.writeInt32BE(packet.length, 0);
  packet.writeInt32BE(80877102, 4);
  packet.writeInt32BE(pid, 8);
  secret.copy(packet, 12);
  return packet;
}
