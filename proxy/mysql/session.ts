// One MySQL client connection and its own upstream connection. The server speaks first, so the
// upstream is opened as soon as the client is accepted. The session relays bytes both ways and
// reads just enough of them to know the protocol state (ReplyTracker, MySqlSessionState).
//
// Phases, and the only moves between them (see `moveTo`):
//   Connecting     -> Greeting (upstream connected)                         | Closed
//   Greeting       -> Login (server handshake relayed, CLIENT_SSL as sidecache offers it) | Closed
//   Login          -> Authenticating (client's HandshakeResponse relayed)    | Closed
//   Authenticating -> Ready (the server's OK ends authentication)            | Closed
//   Ready          -> Closed
// Client packets are forwarded only when whole, so the upstream always sits at a packet boundary
// and the proxy can add a COM_QUIT of its own when the client vanishes.
//
// Compression (CLIENT_COMPRESS) is the client leg's alone: a client that asks for it gets it from
// the first byte after the login's OK, both ways (compression.ts), as from a server; the upstream
// never sees the flag, so what the relay and the cache read and store is the plain protocol.
//
// TLS is each leg's own: the client's ends at the proxy (its SSLRequest, then the handshake
// response inside TLS, sequence id 2), and the proxy opens its own to the server after the client's
// response, with an SSLRequest of its own built from it. Where one leg has the extra SSLRequest and
// the other has not, the login's packets are renumbered on the way (seqShift); commands start at 0
// on both. caching_sha2_password's full authentication sends the password in cleartext when the
// client's leg is TLS, and expects an RSA exchange otherwise, and the server decides by its own leg:
// a login where the two legs differ there is refused with the reason (an RSA exchange with a
// server over TLS fails; a cleartext password must not travel on a cleartext upstream leg).
import type net from 'node:net';
import type tls from 'node:tls';
import { Capability, Command, MAX_LOGIN_PACKET } from './codes.js';
import { CompressedPacketReader, CompressedPacketWriter } from './compression.js';
import { MySqlErrorCode, MySqlProxyError, errPacket } from './error-packet.js';
import {
  decodeClientLogin, decodeServerHandshake, offeredCapabilities, rewriteHandshakeResponse, rewriteServerHandshake, sslRequestPacket,
  type ServerHandshake,
} from './handshake.js';
import type { MySqlCache } from './mysql-cache.js';
import { MalformedPacketError, PacketFramer, type PacketError, type PacketSink } from './packets.js';
import { MySqlRelay } from './relay.js';
import { ReplyTracker } from './replies.js';
import { ServerScanner } from './server-scanner.js';
import { MySqlSessionState } from './session-state.js';
import { BufferBudget } from '../buffer-budget.js';
import type { ListenerHost } from '../listener.js';
import { Phase, ProxySession, endSocket, type LegalMoves } from '../session.js';

const LEGAL_MOVES: LegalMoves = {
  [Phase.Connecting]: [Phase.Greeting, Phase.Closed],
  [Phase.Greeting]: [Phase.Login, Phase.Closed],
  [Phase.Login]: [Phase.Authenticating, Phase.Closed],
  [Phase.Authenticating]: [Phase.Ready, Phase.Closed],
  [Phase.Ready]: [Phase.Closed],
};

/** What a session needs from the listener that owns it. */
export interface SessionHost extends ListenerHost<MySqlSession> {
  /** The result cache, null when caching is off. */
  readonly cache: MySqlCache | null;
}

const COM_QUIT = Buffer.from([1, 0, 0, 0, Command.Quit]);

export class MySqlSession extends ProxySession<MySqlProxyError> {
  protected declare readonly host: SessionHost;
  readonly state = new MySqlSessionState();
  private readonly tracker = new ReplyTracker(this.state);
  /** Client packets, whole; the limit rises from MAX_LOGIN_PACKET to --max-message-bytes after login. */
  private readonly framer: PacketFramer;
  /** The server's handshake, read whole so its capabilities can be rewritten; not a client's bytes, so outside the budget. */
  private readonly greetingFramer = new PacketFramer(MAX_LOGIN_PACKET, new BufferBudget(Infinity));
  private readonly scanner = new ServerScanner();
  /** Routes traffic through the cache once logged in; null when caching is off (bytes flow as they come). */
  private relay: MySqlRelay | null = null;
  private handshake: ServerHandshake | null = null;
  /** The latest sequence id relayed either way, and which way: the proxy's own packets follow it. */
  private lastSeq = 0;
  private lastFromClient = false;
  /** The client's leg is compressed from the login's OK on: what it sends is read, what it gets wrapped. */
  private compression: { readonly reader: CompressedPacketReader; readonly writer: CompressedPacketWriter } | null = null;
  /** SSLRequest accepted: TLS starts after it, in the rest of the current chunk or later. */
  private tlsAccepted: tls.SecureContext | null = null;
  /** Upstream sequence id minus the client's during the login (the legs' SSLRequests differ). */
  private seqShift = 0;
  /** The server asked for caching_sha2_password's full authentication; the client answers next. */
  private sha2FullAuth = false;

  constructor(accepted: net.Socket, host: SessionHost) {
    super(accepted, host, Phase.Connecting, LEGAL_MOVES, { log: 'mysql', scheme: 'mysql' });
    this.framer = new PacketFramer(MAX_LOGIN_PACKET, host.buffers);
  }

  /** The server speaks first: the upstream is opened as soon as the client is admitted. */
  start(): void {
    this.startClient();
    if (!this.host.admit(this)) {
      this.fail(new MySqlProxyError(MySqlErrorCode.TooManyConnections, 'Too many connections (sidecache --max-client-connections)'), null);
      return;
    }
    this.openUpstream(() => {
      if (this.phase === Phase.Connecting) this.moveTo(Phase.Greeting);
    });
  }

  protected get login(): { user: string | null; database: string | null } {
    return { user: this.state.user, database: this.state.database };
  }

  /** Commands sent upstream and not answered yet. */
  get busy(): boolean {
    return this.tracker.awaiting > 0;
  }

  // ---- client -> upstream ----

  protected onClientData(chunk: Buffer): void {
    const compression = this.compression;
    if (compression === null) {
      this.clientBytes(chunk);
      return;
    }
    const err = compression.reader.feed(chunk, (plain, seq) => {
      compression.writer.received(seq);
      if (this.phase !== Phase.Closed) this.clientBytes(plain);
    });
    if (err) this.fail(new MySqlProxyError(MySqlErrorCode.UncompressError, `sidecache: Couldn't uncompress communication packet: ${err.detail}`), 'uncompress');
  }

  /** Plain client bytes (inflated when the leg is compressed), framed into packets. */
  private clientBytes(bytes: Buffer): void {
    const err = this.framer.feed(bytes, this.clientSink);
    if (err) {
      this.fail(packetErrorToMySql(err, this.phase === Phase.Ready), err.kind);
      return;
    }
    if (this.tlsAccepted !== null) {
      const context = this.tlsAccepted;
      this.tlsAccepted = null;
      this.startClientTls(context, this.framer.rest);
    }
  }

  protected get hasPartialMessage(): boolean {
    return this.framer.hasPartial || this.compression?.reader.hasPartial === true;
  }

  /** Bytes for the client, in compressed packets once the leg is compressed. */
  override toClient(bytes: Buffer, more?: Buffer): void {
    const compression = this.compression;
    if (compression === null) super.toClient(bytes, more);
    else super.toClient(compression.writer.wrap(more === undefined ? bytes : Buffer.concat([bytes, more])));
  }

  protected dropPartialMessage(): void {
    this.framer.discardPartial();
  }

  private readonly clientSink: PacketSink = {
    packet: (buf, start, end, seq, lastSeq, payloadLength) => {
      if (this.phase === Phase.Closed) return;
      this.lastSeq = lastSeq;
      this.lastFromClient = true;
      if (this.phase === Phase.Ready && payloadLength > 0 && buf[start + 4] === Command.Quit) this.clientLeaving = true;
      switch (this.phase) {
        case Phase.Connecting:
        case Phase.Greeting:
          this.fail(new MySqlProxyError(MySqlErrorCode.BadHandshake, 'sidecache: Bad handshake: the client sent data before the server\'s handshake'), 'early-data');
          return;
        case Phase.Login:
          this.onLoginPacket(buf, start, end, seq);
          return;
        case Phase.Authenticating:
        case Phase.Ready:
          let kind;
          try {
            if (this.relay !== null) {
              if (payloadLength > 0 && buf[start + 4] === Command.Quit && this.tracker.awaiting === 0) {
                this.close();
                return;
              }
              this.relay.clientPacket(buf, start, end, payloadLength);
              return;
            }
            if (this.phase === Phase.Authenticating && !this.loginPacketMayPass()) return;
            kind = this.tracker.clientPacket(buf, start, end, payloadLength);
          } catch (err) {
            if (!(err instanceof MalformedPacketError)) throw err;
            this.fail(new MySqlProxyError(MySqlErrorCode.MalformedPacket, `sidecache: Malformed communication packet: ${err.message}`), 'malformed');
            return;
          }
          if (kind === 'no-reply' && buf[start + 4] === Command.Quit && this.phase === Phase.Ready) {
            // The client is leaving: free its slot now (close() sends the COM_QUIT upstream), so
            // a client that reconnects at once is not refused by --max-client-connections.
            this.close();
            return;
          }
          if (this.phase === Phase.Authenticating && this.seqShift !== 0) buf[start + 3] = (seq + this.seqShift) & 0xff;
          this.toUpstream(buf.subarray(start, end));
          return;
      }
    },
  };

  /**
   * The client's answer to a full-authentication request, where the legs differ in TLS: the
   * client sends what its own leg allows, which the server (judging by its leg) cannot take.
   */
  private loginPacketMayPass(): boolean {
    if (!this.sha2FullAuth) return true;
    this.sha2FullAuth = false;
    if (this.clientTls === this.upstreamTls) return true;
    const reason = this.clientTls
      ? 'caching_sha2_password full authentication: the client sends its password in cleartext inside its TLS connection, and sidecache\'s connection to the server is not TLS; set ssl-mode=REQUIRED (or VERIFY_CA, VERIFY_IDENTITY) on --mysql-upstream'
      : 'caching_sha2_password full authentication: sidecache\'s connection to the server is TLS, where the server expects the password in cleartext, and the client\'s connection is not, where it would only send it RSA-encrypted; connect to sidecache with TLS';
    this.host.log.info({ remote: this.remote, user: this.state.user, reason }, 'mysql: login refused');
    this.fail(new MySqlProxyError(MySqlErrorCode.SecureTransportRequired, `sidecache: ${reason}`), null);
    return false;
  }

  /** The client's answer to the handshake: HandshakeResponse41, or an SSLRequest we must refuse. */
  private onLoginPacket(buf: Buffer, start: number, end: number, seq: number): void {
    // Inside TLS the response follows the SSLRequest (1).
    const expected = this.clientTls ? 2 : 1;
    if (seq !== expected) {
      this.fail(new MySqlProxyError(MySqlErrorCode.PacketsOutOfOrder, `sidecache: Bad handshake: expected sequence id ${expected}, got ${seq}`), 'bad-handshake');
      return;
    }
    let login;
    try {
      login = decodeClientLogin(buf, start + 4, end);
    } catch (err) {
      if (!(err instanceof MalformedPacketError)) throw err;
      this.fail(new MySqlProxyError(MySqlErrorCode.BadHandshake, `sidecache: Bad handshake: ${err.message}`), 'bad-handshake');
      return;
    }
    if (login.kind === 'ssl-request') {
      const { context } = this.host.clientTls;
      if (context === null || this.clientTls) {
        this.fail(new MySqlProxyError(MySqlErrorCode.NotSupportedYet, 'sidecache does not offer TLS here (no --tls-cert, or --client-tls disable): connect without SSL (e.g. --ssl=0, ssl-mode=DISABLED or PREFERRED)'), 'ssl-request');
        return;
      }
      this.tlsAccepted = context;
      this.framer.stopAfterMessage();
      return;
    }
    if (login.kind === 'pre-41') {
      this.fail(new MySqlProxyError(MySqlErrorCode.BadHandshake, 'sidecache: Bad handshake: clients without CLIENT_PROTOCOL_41 are not supported'), 'bad-handshake');
      return;
    }
    if (!this.clientTls && this.host.clientTls.mode === 'require') {
      this.fail(new MySqlProxyError(MySqlErrorCode.SecureTransportRequired,
        `sidecache: Connections using insecure transport are prohibited (--client-tls require): user '${login.response.user}' must connect with TLS (e.g. --ssl, ssl-mode=REQUIRED)`), 'cleartext-refused');
      return;
    }
    this.state.onLogin(offeredCapabilities(this.handshake!), this.handshake!, login.response);
    this.tracker.startLogin();
    this.moveTo(Phase.Authenticating);
    const plan = this.host.upstreamTls;
    const upstreamTls = plan !== null && (this.handshake!.capabilities & Capability.Ssl) !== 0;
    if (plan !== null && !upstreamTls && !plan.optional) {
      this.upstreamTlsFailed(plan, 'the server does not offer TLS (no CLIENT_SSL in its handshake)');
      return;
    }
    const response = rewriteHandshakeResponse(buf.subarray(start + 4, end), upstreamTls);
    this.seqShift = (upstreamTls ? 1 : 0) - (this.clientTls ? 1 : 0);
    const header = Buffer.from(buf.subarray(start, start + 4));
    header[3] = (seq + this.seqShift) & 0xff;
    const packet = Buffer.concat([header, response]);
    if (!upstreamTls) {
      this.toUpstream(packet);
      return;
    }
    this.toUpstream(sslRequestPacket(response, 1));
    this.startUpstreamTls(plan, () => this.toUpstream(packet));
  }

  protected onUpstreamData(chunk: Buffer): void {
    if (this.phase === Phase.Greeting) {
      const err = this.greetingFramer.feed(chunk, this.greetingSink);
      if (err) this.upstreamBroken(`invalid handshake packet (${err.kind})`);
      return;
    }
    if (this.phase === Phase.Authenticating && this.seqShift !== 0) {
      // Packet by packet: each is renumbered for the client's leg.
      const err = this.greetingFramer.feed(chunk, this.loginSink);
      if (err) this.upstreamBroken(`invalid login packet (${err.kind})`);
      return;
    }
    this.serverBytes(chunk);
  }

  /** The server's login packets while the legs' numbering differs (seqShift). */
  private readonly loginSink: PacketSink = {
    packet: (buf, start, end, seq, _lastSeq, payloadLength) => {
      if (this.phase === Phase.Closed) return;
      if (this.phase === Phase.Authenticating) {
        // AuthMoreData "perform full authentication" of caching_sha2_password.
        if (payloadLength === 2 && buf[start + 4] === 0x01 && buf[start + 5] === 0x04) this.sha2FullAuth = true;
        buf[start + 3] = (seq - this.seqShift) & 0xff;
      }
      this.serverBytes(buf.subarray(start, end));
    },
  };

  private serverBytes(chunk: Buffer): void {
    if (this.relay !== null) {
      this.relay.upstreamChunk(chunk);
      this.lastSeq = this.relay.lastSeq;
      this.lastFromClient = false;
      return;
    }
    this.scanner.feed(chunk, this.tracker);
    this.lastSeq = this.scanner.lastSeq;
    this.lastFromClient = false;
    this.toClient(chunk);
    if (this.phase === Phase.Authenticating) {
      if (this.state.authenticated) {
        this.moveTo(Phase.Ready);
        // The OK went out plain (above); everything after it is compressed, as a server does.
        if ((this.state.capabilities & Capability.Compress) !== 0) {
          this.compression = { reader: new CompressedPacketReader(), writer: new CompressedPacketWriter() };
        }
        this.loggedIn();
        this.framer.setLimit(this.host.limits.maxMessageBytes);
        // The login's reply ended at a packet boundary: the relay's own scanner starts here.
        if (this.host.cache !== null) this.relay = new MySqlRelay(this, this.host.cache, this.state, this.tracker, this.host.log);
      } else if (this.tracker.loginError !== null) {
        const { code, message } = this.tracker.loginError;
        this.host.log.info({ remote: this.remote, user: this.state.user, database: this.state.database, code, error: message }, 'mysql: connection refused by upstream');
        this.tracker.loginError = null;
      }
    }
  }

  /** The server's first packet: its handshake (relayed with hidden capabilities cleared) or an ERR. */
  private readonly greetingSink: PacketSink = {
    packet: (buf, start, end, seq) => {
      if (this.phase !== Phase.Greeting) {
        this.upstreamBroken('the server sent a packet before the client answered its handshake');
        return;
      }
      this.lastSeq = seq;
      this.lastFromClient = false;
      if (end - start > 4 && buf[start + 4] === 0xff) {
        // The server refused the connection (too many connections, host blocked): pass it on.
        this.toClient(buf.subarray(start, end));
        this.moveTo(Phase.Login);
        return;
      }
      let hs: ServerHandshake;
      try {
        hs = decodeServerHandshake(buf, start + 4, end);
      } catch (err) {
        if (!(err instanceof MalformedPacketError)) throw err;
        this.upstreamBroken(`unsupported handshake: ${err.message}`);
        return;
      }
      this.handshake = hs;
      this.moveTo(Phase.Login);
      const offerTls = this.host.clientTls.context !== null;
      this.toClient(Buffer.concat([buf.subarray(start, start + 4), rewriteServerHandshake(buf.subarray(start + 4, end), hs, offerTls)]));
    },
  };

  private upstreamBroken(reason: string): void {
    this.host.upstreamError('protocol');
    this.host.log.warn({ remote: this.remote, upstream: this.upstreamUrl, reason }, 'mysql: upstream protocol error');
    this.fail(new MySqlProxyError(MySqlErrorCode.UpstreamLost, `sidecache: the upstream ${this.upstreamUrl} broke the protocol: ${reason}`), null);
  }

  protected loginTimeoutError(ms: number): MySqlProxyError {
    return new MySqlProxyError(MySqlErrorCode.BadHandshake, `sidecache: Bad handshake: login not completed within ${ms} ms`);
  }

  protected stallError(ms: number): MySqlProxyError {
    return new MySqlProxyError(MySqlErrorCode.ReadTimeout, `sidecache: Got timeout reading communication packets: incomplete packet, client sent nothing for ${ms} ms`);
  }

  protected upstreamError(reason: 'unreachable' | 'lost', detail: string): MySqlProxyError {
    return new MySqlProxyError(reason === 'unreachable' ? MySqlErrorCode.UpstreamUnreachable : MySqlErrorCode.UpstreamLost, `sidecache: ${detail}`);
  }

  /**
   * The sequence id an ERR of the proxy's own must carry to read as the next packet the client
   * expects: before the handshake 0; right after a client packet the next id; while the client
   * is idle between commands 1 (the reply to its next command); when the client is about to send
   * (after the handshake or an auth request) the id after its coming packet.
   */
  private errorSeq(): number {
    if (this.phase === Phase.Connecting || this.phase === Phase.Greeting) return 0;
    if (this.lastFromClient) return (this.lastSeq + 1) & 0xff;
    if (this.phase === Phase.Ready && this.tracker.awaiting === 0) return 1;
    const clientsTurn = this.phase === Phase.Login || this.tracker.awaitingClient;
    return (this.lastSeq + (clientsTurn ? 2 : 1)) & 0xff;
  }

  /** An ERR where it cannot break a packet or a reply in flight, numbered as the client expects. */
  protected errorBytes(err: MySqlProxyError): Buffer | null {
    const atBoundary = this.relay !== null ? this.relay.atBoundary : this.scanner.atBoundary;
    // Also right after the client's turn in a login exchange, before it went upstream: the client
    // reads the server's answer next, which may be an ERR.
    const clientsTurn = this.phase === Phase.Authenticating && this.lastFromClient && this.tracker.awaitingClient;
    if (!atBoundary || !(this.tracker.canInterject || clientsTurn)) return null;
    const packet = errPacket(err, this.errorSeq());
    return this.compression === null ? packet : this.compression.writer.wrap(packet);
  }

  /**
   * A COM_QUIT lets the server end the session cleanly (no "aborted connection"); it is only
   * understood as a command, not in the middle of a file transfer or an auth exchange.
   */
  protected endUpstream(upstream: net.Socket, wasReady: boolean): void {
    this.relay?.closed();
    if (upstream.readyState !== 'open') upstream.destroy();
    else if (wasReady && !this.tracker.awaitingClient) endSocket(upstream, COM_QUIT);
    else endSocket(upstream);
  }
}

function packetErrorToMySql(err: PacketError, loggedIn: boolean): MySqlProxyError {
  switch (err.kind) {
    case 'too-long': {
      const what = loggedIn ? '(--max-message-bytes)' : 'for a login packet';
      return new MySqlProxyError(MySqlErrorCode.PacketTooLarge, `sidecache: Got a packet bigger than the limit: ${err.length} bytes exceeds ${err.limit} bytes ${what}`);
    }
    case 'out-of-order':
      return new MySqlProxyError(MySqlErrorCode.PacketsOutOfOrder, `sidecache: Got packets out of order: expected sequence id ${err.expected}, got ${err.got}`);
    case 'over-budget':
      return new MySqlProxyError(MySqlErrorCode.OutOfMemory, `sidecache: Out of memory (needed ${err.length} bytes): incomplete client packets already hold ${err.held} of ${err.limit} bytes (--max-buffered-message-bytes)`);
  }
}
