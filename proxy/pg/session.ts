// One client connection and its own upstream connection. The session relays bytes both ways
// unchanged and reads just enough of them to know the protocol state (PgSessionState).
//
// Phases, and the only moves between them (see `moveTo`):
//   Startup        -> Connecting (StartupMessage received) | Login (a user of --pg-auth-file, or an auth query) | Closed
//   Login          -> Connecting (the client's SCRAM proof verified by sidecache, or no secret found) | Closed
//   Connecting     -> Authenticating (upstream connected)  | Closed
//   Authenticating -> Ready (first ReadyForQuery)          | Closed
//   Ready          -> Closed
// Client messages are forwarded only when whole, so the upstream always sits at a message boundary
// and the proxy can add a Terminate of its own when the client vanishes. Until the login completes
// a client message may be at most MAX_LOGIN_MESSAGE bytes, --max-message-bytes after.
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import type tls from 'node:tls';
import type { PgAuthSecrets, ScramSecret } from '../../config/pg-auth-file.js';
import { BackendScanner } from './backend-scanner.js';
import { Frontend, MAX_LOGIN_MESSAGE, MAX_STARTUP_PACKET } from './codes.js';
import { PgProxyError, SqlState, errorResponse } from './error-response.js';
import { Framer, type FrameError, type FrameSink } from './framer.js';
import type { PgAuthQuery } from './auth-query.js';
import type { PgCache } from './pg-cache.js';
import { PgRelay, type RelayIo } from './relay.js';
import type { PgSessionState } from './session-state.js';
import { AuthRewriter, gs2Flag } from './sasl.js';
import { endPointHash, type Channel } from './scram.js';
import { ScramLogin } from './scram-login.js';
import { decodeStartupPacket, isTerminateBeforeStartup } from './startup.js';
import { sendCancelRequest } from './cancel.js';
import type { ListenerHost } from '../listener.js';
import { Phase, ProxySession, endSocket, type LegalMoves } from '../session.js';

const LEGAL_MOVES: LegalMoves = {
  [Phase.Startup]: [Phase.Connecting, Phase.Login, Phase.Closed],
  [Phase.Login]: [Phase.Connecting, Phase.Closed],
  [Phase.Connecting]: [Phase.Authenticating, Phase.Closed],
  [Phase.Authenticating]: [Phase.Ready, Phase.Closed],
  [Phase.Ready]: [Phase.Closed],
};

/** What a session needs from the listener that owns it. */
export interface SessionHost extends ListenerHost<PgSession> {
  /** The result cache, null when caching is off. */
  readonly cache: PgCache | null;
  /** Users whose SCRAM secret sidecache knows (--pg-auth-file), as of the latest reload. */
  readonly pgAuth: PgAuthSecrets;
  /** Looks up the secret of a user not in the file (--pg-auth-user); null when unset. */
  readonly authQuery: PgAuthQuery | null;
}

const NO_SSL = Buffer.from('N');
const SSL_OK = Buffer.from('S');
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
const TERMINATE = Buffer.from([Frontend.Terminate, 0, 0, 0, 4]);
/** A TLS record of type handshake: what a client speaking direct TLS (PostgreSQL 17) sends first. */
const TLS_HANDSHAKE_RECORD = 0x16;
/** PostgreSQL's ALPN name; direct TLS requires it (libpq 17 sends it on both paths). */
const ALPN = ['postgresql'];

/**
 * The server offers SCRAM-SHA-256-PLUS on its TLS leg; the client, on TLS too, was shown plain SCRAM
 * and says it could bind (GS2 'y'): the server would refuse that as a downgrade, and the proof
 * covers the flag, so it cannot be changed on the way.
 */
const CHANNEL_BINDING_DOWNGRADE = 'sidecache: SCRAM channel binding cannot pass through sidecache, which terminates TLS on both legs: '
  + 'the server offers SCRAM-SHA-256-PLUS and would refuse this client\'s SCRAM-SHA-256 with channel binding "y" as a downgrade; '
  + 'give sidecache this user\'s SCRAM secret (--pg-auth-file, or an auth query: --pg-auth-user) so it runs SCRAM with channel binding on each leg itself, '
  + 'or connect with channel_binding=disable, or have sidecache reach the server without TLS (sslmode=disable) on a trusted network';

export class PgSession extends ProxySession<PgProxyError> implements RelayIo {
  protected declare readonly host: SessionHost;
  startupParams: ReadonlyMap<string, string> = new Map();
  /** Created with the StartupMessage; owns the traffic from then on. */
  private relay: PgRelay | null = null;
  /**
   * Whole client messages that arrived while the upstream connection was being opened: at most
   * the rest of the chunk that held the StartupMessage, as the client is not read meanwhile.
   */
  private held: Buffer[] = [];
  private readonly framer: Framer;
  private readonly scanner = new BackendScanner();
  /** The upstream agreed to TLS or refused it ('S'/'N'): until then the answer is awaited. */
  private awaitingSslAnswer = false;
  /** The StartupMessage, held while the upstream's TLS is negotiated. */
  private pendingStartup: Buffer | null = null;
  /** Login bytes from a TLS upstream, with SCRAM's -PLUS mechanisms removed; null after login. */
  private authRewriter: AuthRewriter | null = null;
  /** A user of --pg-auth-file: sidecache runs SCRAM on both legs (scram-login.ts); null after login. */
  private scram: ScramLogin | null = null;
  /** The StartupMessage, kept while sidecache authenticates the client itself (Phase.Login). */
  private loginStartup: Buffer | null = null;
  /** SSLRequest answered 'S': TLS starts after the current chunk's SSLRequest. */
  private tlsAccepted: tls.SecureContext | null = null;

  constructor(accepted: net.Socket, host: SessionHost) {
    super(accepted, host, Phase.Startup, LEGAL_MOVES, { log: 'pg', scheme: 'postgres' });
    this.framer = new Framer(MAX_STARTUP_PACKET, host.buffers);
  }

  start(): void {
    this.startClient();
  }

  /** What the session knows of its server connection; null before the StartupMessage. */
  get state(): PgSessionState | null {
    return this.relay?.state ?? null;
  }

  protected get login(): { user: string | null; database: string | null } {
    const user = this.startupParams.get('user') ?? null;
    return { user, database: this.startupParams.get('database') ?? user };
  }

  /** Requests sent upstream and not answered yet. */
  get busy(): boolean {
    return (this.relay?.state.awaitingReady ?? 0) > 0;
  }

  // ---- client -> upstream ----

  protected onClientData(chunk: Buffer): void {
    if (this.phase === Phase.Startup && !this.clientTls && !this.framer.hasPartial && chunk[0] === TLS_HANDSHAKE_RECORD) {
      this.directTls(chunk);
      return;
    }
    const err = this.framer.feed(chunk, this.clientSink);
    if (this.tlsAccepted !== null) {
      // 'S' went out: the client's TLS handshake follows (in this chunk's rest, or later).
      const context = this.tlsAccepted;
      this.tlsAccepted = null;
      this.startClientTls(context, this.framer.rest, ALPN);
      return;
    }
    this.relay?.endOfClientChunk();
    if (err === null) return;
    if (!this.framer.isTyped && isTerminateBeforeStartup(err.length)) {
      this.host.log.debug({ remote: this.remote }, 'pg: Terminate before the startup message; closing without a reply, as PostgreSQL does');
      this.close();
      return;
    }
    this.fail(frameErrorToPg(err, this.framer.isTyped, this.phase === Phase.Ready), err.kind);
  }

  protected get hasPartialMessage(): boolean {
    return this.framer.hasPartial;
  }

  protected dropPartialMessage(): void {
    this.framer.discardPartial();
  }

  private readonly clientSink: FrameSink = {
    message: (code, buf, start, end) => {
      switch (this.phase) {
        case Phase.Startup:
          this.onStartupPacket(buf.subarray(start, end));
          return;
        case Phase.Login:
          this.onScramMessage(code, buf, start, end);
          return;
        case Phase.Connecting:
          this.relay!.state.onFrontend(code, buf, start, end, 'client');
          this.held.push(Buffer.from(buf.subarray(start, end))); // outlives the read buffer
          return;
        case Phase.Authenticating:
          if (code === Frontend.Password && this.authRewriter?.takeHidden() === true && gs2Flag(buf.subarray(start, end)) === 'y') {
            this.fail(new PgProxyError(SqlState.InvalidAuthorization, CHANNEL_BINDING_DOWNGRADE), 'channel-binding');
            return;
          }
          this.relay!.forward(code, buf, start, end);
          return;
        case Phase.Ready:
          if (code === Frontend.Terminate) this.clientLeaving = true;
          this.relay!.clientMessage(code, buf, start, end);
          return;
        case Phase.Closed:
          return;
      }
    },
  };

  loginRefused(message: string): void {
    this.host.log.info({ remote: this.remote, user: this.startupParams.get('user'), database: this.startupParams.get('database'), error: message }, 'pg: connection refused by upstream');
  }

  private onStartupPacket(packet: Buffer): void {
    const decoded = decodeStartupPacket(packet);
    switch (decoded.kind) {
      case 'ssl': {
        const { context } = this.host.clientTls;
        if (context === null || this.clientTls) {
          // No certificate (or TLS already on): the client goes on in plaintext or gives up itself.
          this.client.write(NO_SSL);
          return;
        }
        this.client.write(SSL_OK);
        this.tlsAccepted = context;
        this.framer.stopAfterMessage();
        return;
      }
      case 'gssenc':
        // GSSAPI encryption is not offered: the client goes on with SSLRequest, plaintext, or gives up.
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
    if (!this.clientTls && this.host.clientTls.mode === 'require') {
      const user = decoded.params.get('user') ?? '';
      const db = decoded.params.get('database') ?? user;
      this.fail(new PgProxyError(SqlState.InvalidAuthorization,
        `sidecache requires TLS (--client-tls require): no cleartext login for user "${user}", database "${db}"; connect with sslmode=require, verify-ca or verify-full`), 'cleartext-refused');
      return;
    }
    const user = decoded.params.get('user') ?? '';
    const startupKey = [...decoded.params].filter(([k]) => k !== 'application_name').sort().join('\u0000');
    this.relay = new PgRelay(this, this.host.cache, decoded.params.get('database') ?? user, startupKey, this.host.log);
    if (!this.host.admit(this)) {
      this.fail(new PgProxyError(SqlState.TooManyConnections, 'sorry, too many clients already (sidecache --max-client-connections)'), null);
      return;
    }
    this.framer.startTyped(MAX_LOGIN_MESSAGE);
    const secret = this.host.pgAuth.get(user);
    if (secret !== undefined) {
      this.startScram(secret, user, Buffer.from(packet));
      return;
    }
    if (this.host.authQuery !== null) {
      this.lookUpSecret(this.host.authQuery, user, decoded.params.get('database') ?? user, Buffer.from(packet));
      return;
    }
    this.moveTo(Phase.Connecting);
    this.connectUpstream(Buffer.from(packet));
  }

  /** sidecache authenticates the client itself; the upstream is reached once the proof is verified. */
  private startScram(secret: ScramSecret, user: string, startupPacket: Buffer): void {
    this.scram = new ScramLogin(secret, user, this.clientTls ? channelOf((this.client as tls.TLSSocket).getCertificate()) : null, scramNonce);
    this.loginStartup = startupPacket;
    if (this.phase !== Phase.Login) this.moveTo(Phase.Login);
    this.client.write(this.scram.start());
  }

  /** The auth query (--pg-auth-user) for a user not in the file: with a secret found, as startScram; else relayed. */
  private lookUpSecret(query: PgAuthQuery, user: string, database: string, startupPacket: Buffer): void {
    this.moveTo(Phase.Login);
    // Nothing to read until the client is asked for something.
    this.client.pause();
    void query.secretOf(user, database).then((secret) => {
      if (this.phase !== Phase.Login) return;
      if (secret === null) {
        this.moveTo(Phase.Connecting);
        this.connectUpstream(startupPacket);
        return;
      }
      this.client.resume();
      this.startScram(secret, user, startupPacket);
    });
  }

  private onScramMessage(code: number, buf: Buffer, start: number, end: number): void {
    if (code === Frontend.Terminate) {
      // A client without a password gives up here (psql then asks for one and comes back).
      this.clientLeaving = true;
      this.close();
      return;
    }
    if (this.scram === null) {
      this.fail(new PgProxyError(SqlState.ProtocolViolation, `sidecache: unexpected message type ${String.fromCharCode(code)} before the authentication request`), 'bad-startup');
      return;
    }
    let step;
    try {
      step = this.scram.clientMessage(code, buf, start, end);
    } catch (err) {
      this.scramFailed(err as PgProxyError);
      return;
    }
    this.client.write(step.reply);
    if (!step.verified) return;
    const startup = this.loginStartup!;
    this.loginStartup = null;
    this.moveTo(Phase.Connecting);
    this.connectUpstream(startup);
  }

  /** A login sidecache refused itself (a wrong password, a broken exchange, an upstream it cannot answer). */
  private scramFailed(err: PgProxyError): void {
    this.host.log.info({ remote: this.remote, user: this.startupParams.get('user'), database: this.startupParams.get('database'), error: err.message }, 'pg: login refused by sidecache');
    this.fail(err, err.sqlState === SqlState.ProtocolViolation ? 'scram' : null);
  }

  /** The client's first bytes are a TLS ClientHello: PostgreSQL 17's direct TLS (sslnegotiation=direct). */
  private directTls(chunk: Buffer): void {
    const { context } = this.host.clientTls;
    if (context === null) {
      this.fail(new PgProxyError(SqlState.ProtocolViolation, 'sidecache: a TLS handshake without SSLRequest (sslnegotiation=direct), but --tls-cert is not set'), 'bad-startup');
      return;
    }
    this.startClientTls(context, Buffer.from(chunk), ALPN);
    const secure = this.client as tls.TLSSocket;
    secure.once('secure', () => {
      // As PostgreSQL 17: direct TLS without the ALPN name could be another protocol's client.
      if (secure.alpnProtocol !== ALPN[0]) {
        this.fail(new PgProxyError(SqlState.ProtocolViolation, 'sidecache: direct TLS connection without ALPN "postgresql"'), 'bad-startup');
      }
    });
  }

  private connectUpstream(startupPacket: Buffer): void {
    // Nothing can be forwarded yet: reading on would pile up whatever the client sends.
    this.client.pause();
    this.openUpstream(() => {
      if (this.phase !== Phase.Connecting) return;
      const plan = this.host.upstreamTls;
      if (plan === null) {
        this.sendStartup(startupPacket);
        return;
      }
      this.awaitingSslAnswer = true;
      this.pendingStartup = startupPacket;
      this.upstream!.write(SSL_REQUEST);
    });
  }

  /** The server's one-byte answer to SSLRequest. */
  private onSslAnswer(chunk: Buffer): void {
    const plan = this.host.upstreamTls!;
    const startup = this.pendingStartup!;
    this.awaitingSslAnswer = false;
    this.pendingStartup = null;
    if (chunk[0] === 0x53 /* S */) {
      // Bytes after 'S' were not encrypted: a man in the middle could have put them there (CVE-2021-23222).
      if (chunk.length > 1) {
        this.upstreamTlsFailed(plan, 'the server sent unencrypted data after agreeing to TLS');
        return;
      }
      this.startUpstreamTls(plan, () => this.sendStartup(startup));
      return;
    }
    if (chunk[0] === 0x4e /* N */ && chunk.length === 1) {
      if (plan.optional) this.sendStartup(startup);
      else this.upstreamTlsFailed(plan, 'the server does not support TLS');
      return;
    }
    this.upstreamTlsFailed(plan, `the server answered SSLRequest with ${chunk[0] === 0x45 ? 'an error' : `byte ${chunk[0]}`}`);
  }

  private sendStartup(startupPacket: Buffer): void {
    if (this.phase !== Phase.Connecting) return;
    if (this.upstreamTls && this.scram === null) this.authRewriter = new AuthRewriter();
    this.moveTo(Phase.Authenticating);
    this.client.resume();
    const upstream = this.upstream!;
    upstream.cork();
    upstream.write(startupPacket);
    for (const m of this.held) upstream.write(m);
    upstream.uncork();
    this.held = [];
  }

  // ---- upstream -> client ----

  protected onUpstreamData(chunk: Buffer): void {
    if (this.awaitingSslAnswer) {
      this.onSslAnswer(chunk);
      return;
    }
    const relay = this.relay!;
    if (this.authRewriter !== null) chunk = this.authRewriter.feed(chunk);
    if (this.scram !== null) {
      let step;
      try {
        step = this.scram.upstreamChunk(chunk, this.upstreamTls ? channelOf((this.upstream as tls.TLSSocket).getPeerCertificate()) : null);
      } catch (err) {
        this.scramFailed(err as PgProxyError);
        return;
      }
      if (step.toUpstream !== null) this.toUpstream(step.toUpstream);
      chunk = step.toRelay;
      if (chunk.length === 0) return;
    }
    relay.upstreamChunk(chunk, this.scanner);
    if (this.phase === Phase.Authenticating && relay.state.ready) {
      this.authRewriter = null;
      this.scram = null;
      this.moveTo(Phase.Ready);
      this.loggedIn();
      this.framer.setLimit(this.host.limits.maxMessageBytes);
    }
  }

  protected errorBytes(err: PgProxyError): Buffer | null {
    // Only between messages: inside one it would corrupt what the client is reading.
    return this.scanner.atBoundary ? errorResponse(err) : null;
  }

  protected loginTimeoutError(ms: number): PgProxyError {
    return new PgProxyError(SqlState.ProtocolViolation, `sidecache: startup and authentication not completed within ${ms} ms`);
  }

  protected stallError(ms: number): PgProxyError {
    return new PgProxyError(SqlState.ProtocolViolation, `sidecache: incomplete message, client sent nothing for ${ms} ms`);
  }

  protected upstreamError(_reason: 'unreachable' | 'lost', detail: string): PgProxyError {
    return new PgProxyError(SqlState.ConnectionFailure, `sidecache: ${detail}`);
  }

  /** A client that is not there to read a result should not keep its query running upstream. */
  protected endUpstream(upstream: net.Socket): void {
    this.relay?.closed();
    const state = this.relay?.state;
    if (state !== undefined && state.awaitingReady > 0 && state.backendKey) {
      sendCancelRequest(this.host.upstream, cancelPacket(state.backendKey.pid, state.backendKey.secret), this.host.log);
    }
    if (upstream.readyState === 'open') endSocket(upstream, TERMINATE);
    else upstream.destroy();
  }
}

/** 18 random bytes in base64: printable, no comma, as a SCRAM nonce must be. */
function scramNonce(): string {
  return randomBytes(18).toString('base64');
}

/**
 * A leg's tls-server-end-point binding data from its server certificate (sidecache's own on the
 * client leg, the server's upstream); null when there is none or its hash is one PostgreSQL cannot
 * bind with either (Ed448): -PLUS is then not offered, or not chosen.
 */
function channelOf(cert: { raw?: Buffer } | null | undefined): Channel {
  if (cert?.raw === undefined) return null;
  try {
    return endPointHash(cert.raw);
  } catch {
    return null;
  }
}

function frameErrorToPg(err: FrameError, typed: boolean, loggedIn: boolean): PgProxyError {
  const what = typed ? 'message' : 'startup packet';
  switch (err.kind) {
    case 'too-long': {
      const which = !typed ? '' : loggedIn ? ' (--max-message-bytes)' : ' before login';
      return new PgProxyError(SqlState.ProtocolViolation, `sidecache: invalid ${what} length ${err.length}: exceeds the limit of ${err.limit} bytes${which}`);
    }
    case 'too-short':
      return new PgProxyError(SqlState.ProtocolViolation, `sidecache: invalid ${what} length ${err.length}`);
    case 'over-budget':
      return new PgProxyError(SqlState.OutOfMemory, `sidecache: out of memory: a ${err.length}-byte ${what} does not fit: incomplete client messages already hold ${err.held} of ${err.limit} bytes (--max-buffered-message-bytes)`);
  }
}

function cancelPacket(pid: number, secret: Buffer): Buffer {
  const packet = Buffer.allocUnsafe(12 + secret.length);
  packet.writeInt32BE(packet.length, 0);
  packet.writeInt32BE(80877102, 4);
  packet.writeInt32BE(pid, 8);
  secret.copy(packet, 12);
  return packet;
}
