// What a client session does the same way for PostgreSQL and MySQL: the two sockets and their
// reused read buffers, writes with backpressure both ways, the upstream connection's timeout and
// its errors, the login and stalled-message timers, phases with checked moves, and closing. Each
// protocol's session supplies its framing, its error encoding and how it says goodbye upstream.
import net from 'node:net';
import tls from 'node:tls';
import util from 'node:util';
import type { SessionLabel } from '../telemetry/query-stats.js';
import type { ListenerHost } from './listener.js';
import { DirectWrite, directWritable, writeDirect } from './direct-write.js';
import { asCurrentOutput, type OutputGate } from './output-hold.js';
import { ReadBuffer, adoptAccepted, readTlsInto } from './read-buffer.js';
import { serverTls, tlsFailure, type UpstreamTlsPlan } from './tls.js';

/**
 * How long a socket the proxy has ended stays open for the peer to read what was written last and
 * close its side. Ending only half-closes: a peer that neither reads nor closes would keep the
 * descriptor forever. What the kernel already holds for the peer is still delivered after the
 * descriptor is closed.
 */
export const CLOSE_GRACE_MS = 2000;

/**
 * Ends `socket` (after `lastBytes`) and destroys it CLOSE_GRACE_MS later unless the peer closed
 * first. Meanwhile whatever the peer still sends is read and dropped: closing with unread bytes
 * would reset the connection, and a reset can discard the error the peer has not read yet.
 */
export function endSocket(socket: net.Socket, lastBytes?: Buffer): void {
  if (lastBytes === undefined) socket.end();
  else socket.end(lastBytes);
  socket.resume();
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/** Every phase either protocol goes through; each session allows its own moves (`legalMoves`). */
export const enum Phase {
  /** PostgreSQL: waiting for the StartupMessage (or an SSLRequest / CancelRequest). */
  Startup,
  /** Opening the upstream connection. */
  Connecting,
  /** MySQL: waiting for the server's handshake. */
  Greeting,
  /** MySQL: waiting for the client's HandshakeResponse. PostgreSQL: sidecache authenticates the client itself (SCRAM, --pg-auth-file). */
  Login,
  Authenticating,
  Ready,
  Closed,
}

export type LegalMoves = Readonly<Partial<Record<Phase, readonly Phase[]>>>;

export abstract class ProxySession<E extends Error> implements OutputGate {
  /** The accepted socket, or the TLS socket over it once the client asked for TLS. */
  client: net.Socket;
  protected upstream: net.Socket | null = null;
  /** Each leg speaks TLS (from the handshake on): what the login rules read (SCRAM, caching_sha2). */
  clientTls = false;
  upstreamTls = false;
  /** The upstream TLS handshake is under way: its failure refuses the login with the reason. */
  private upstreamTlsPlan: UpstreamTlsPlan | null = null;
  /** Raw client reads go here while a TLS layer reads through a stream wrapper (tls.ts serverTls). */
  private rawClientFeed: ((chunk: Buffer) => void) | null = null;
  readonly remote: string;
  /** The client ended the session itself (Terminate, COM_QUIT): the upstream closing next is expected. */
  protected clientLeaving = false;
  private loginTimer: NodeJS.Timeout | null = null;
  private stallTimer: NodeJS.Timeout | null = null;
  /** When the latest bytes of an unfinished client message came (set by the subclass). */
  protected lastClientData = 0;
  /** When the login finished (0 before): a session that logged in logs its end. */
  private loggedInAt = 0;
  /** Why the session ends, for its "connection closed" line; the first cause found wins. */
  private endReason: string | null = null;
  /** Writes to the upstream during the current client chunk: from the second on they are corked into one. */
  private chunkWrites = -1;
  /** Each leg's writes may skip its stream (direct-write.ts): plain TCP, not TLS. */
  private clientDirect = false;
  private upstreamDirect = false;
  private readonly clientReads = new ReadBuffer((chunk) => {
    if (this.rawClientFeed === null) this.clientChunk(chunk);
    else this.rawClientFeed(chunk);
  });
  private readonly upstreamChunk = (chunk: Buffer): void => {
    if (this.phase !== Phase.Closed) asCurrentOutput(this, this.handleUpstreamData, chunk);
  };
  private readonly upstreamReads = new ReadBuffer(this.upstreamChunk);
  private readonly handleUpstreamData = (chunk: Buffer): void => this.onUpstreamData(chunk);
  /** Holds on the client's output (output-hold.ts): while above 0 the socket is corked. */
  private holds = 0;
  /** The session ended while its output was held: the socket ends at the last release. */
  private endHeld = false;

  /** `accepted` comes from a server with pauseOnConnect; the session reads it through its own buffer. */
  protected constructor(
    accepted: net.Socket,
    protected readonly host: ListenerHost<ProxySession<E>>,
    public phase: Phase,
    private readonly legalMoves: LegalMoves,
    /** Names the protocol in log lines and the upstream URL: 'pg' / 'postgres', 'mysql' / 'mysql'. */
    private readonly names: { readonly log: string; readonly scheme: string },
  ) {
    this.client = adoptAccepted(accepted, this.clientReads);
    this.clientDirect = directWritable(this.client);
    // Kept: a TLS socket over a stream wrapper has no address of its own.
    this.remote = `${this.client.remoteAddress}:${this.client.remotePort}`;
  }

  // ---- what each protocol supplies ----

  /** Client bytes, valid only until this returns (read-buffer.ts). Not called once closed. */
  protected abstract onClientData(chunk: Buffer): void;
  /** Upstream bytes, valid only until this returns. Not called once closed. */
  protected abstract onUpstreamData(chunk: Buffer): void;
  /** The client stream stopped inside a message. */
  protected abstract get hasPartialMessage(): boolean;
  /** The session ended: the unfinished client message goes, and its bytes back to the budget. */
  protected abstract dropPartialMessage(): void;
  /** The session's error to `err` as the bytes the client reads, or null where one cannot be inserted now. */
  protected abstract errorBytes(err: E): Buffer | null;
  protected abstract loginTimeoutError(ms: number): E;
  protected abstract stallError(ms: number): E;
  /** `reason`: the upstream was never reached (Connecting) or the connection broke later. */
  protected abstract upstreamError(reason: 'unreachable' | 'lost', detail: string): E;
  /**
   * Ends the upstream connection politely (Terminate, COM_QUIT) or not, as the protocol state
   * allows, with endSocket: bytes still arriving from the upstream have nowhere to go.
   */
  protected abstract endUpstream(upstream: net.Socket, wasReady: boolean): void;
  /** Who logged in, for the connection log lines. */
  protected abstract get login(): { readonly user: string | null; readonly database: string | null };

  // ---- shared ----

  /** Who this session is, for log lines about its statements (the slow-query log). */
  get label(): SessionLabel {
    return { remote: this.remote, ...this.login };
  }

  protected get upstreamUrl(): string {
    return `${this.names.scheme}://${this.host.upstream.host}:${this.host.upstream.port}`;
  }

  /** Ends the session from outside (shutdown): the error told to the client where the protocol allows. */
  terminate(err: E): void {
    this.fail(err, 'shutdown');
  }

  protected moveTo(next: Phase): void {
    if (!(this.legalMoves[this.phase] ?? []).includes(next)) {
      throw new Error(`${this.names.log} session: illegal move from phase ${this.phase} to ${next}`);
    }
    this.phase = next;
  }

  /** Starts reading the client, with the login timer running. */
  protected startClient(): void {
    const { client } = this;
    client.setNoDelay(true);
    client.resume();
    this.watchClient(client);
    if (this.host.limits.loginTimeoutMs > 0) {
      this.loginTimer = setTimeout(this.onLoginTimeout, this.host.limits.loginTimeoutMs);
    }
  }

  private watchClient(client: net.Socket): void {
    client.on('error', this.onClientGone);
    client.on('close', this.onClientGone);
    client.on('drain', this.onClientDrain);
  }

  /**
   * The client asked for TLS: from now on it speaks through `tls`. `already`: bytes of its
   * handshake that came with the request. Reads resume once the handshake is done.
   */
  protected startClientTls(context: tls.SecureContext, already: Buffer | null, alpn?: string[]): void {
    const raw = this.client;
    raw.off('error', this.onClientGone);
    raw.off('close', this.onClientGone);
    raw.off('drain', this.onClientDrain);
    const { tls: secure, feed } = serverTls(raw, context, already, alpn);
    // The plain socket still reads when the TLS layer is fed from it (feed): its errors (a client
    // that resets mid-handshake) end the TLS socket, hence the session, instead of going unheard,
    // which would end the process.
    raw.on('error', (err) => secure.destroy(err));
    this.rawClientFeed = feed;
    this.client = secure;
    this.clientDirect = false;
    this.clientTls = true;
    this.watchClient(secure);
    // Before onClientGone closes the session: a client that rejects the certificate is worth a line.
    secure.prependOnceListener('error', (err) => {
      if (this.phase !== Phase.Closed) this.host.log.info({ remote: this.remote, err: err.message }, `${this.names.log}: client TLS connection failed`);
    });
    // Over the socket's own handle the decrypted bytes come through clientReads like cleartext ones.
    if (feed !== null || !readTlsInto(secure, this.clientReads)) secure.on('data', (chunk: Buffer) => this.clientChunk(chunk));
  }

  private clientChunk(chunk: Buffer): void {
    if (this.phase === Phase.Closed) return;
    this.chunkWrites = 0;
    this.onClientData(chunk);
    if (this.chunkWrites > 1) this.upstream?.uncork();
    this.chunkWrites = -1;
    // (onClientData may have closed the session: the phase is read again.)
    if ((this.phase as Phase) !== Phase.Closed && this.hasPartialMessage) {
      // The stall clock is read only for unfinished messages: the timer asks only about them.
      this.lastClientData = Date.now();
      this.armStallTimer();
    }
  }

  /** Opens the upstream connection; `onConnect` runs once it is up, unless the session ended first. */
  protected openUpstream(onConnect: () => void): void {
    const { host, port } = this.host.upstream;
    const upstream = net.connect({ host, port, noDelay: true, onread: this.upstreamReads.onread });
    this.upstream = upstream;
    this.upstreamDirect = directWritable(upstream);
    this.host.upstreamOpened();
    const timeoutMs = this.host.limits.upstreamConnectTimeoutMs;
    upstream.setTimeout(timeoutMs);
    upstream.once('timeout', () => upstream.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    upstream.once('connect', () => {
      upstream.setTimeout(0);
      if (this.phase !== Phase.Closed) onConnect();
    });
    this.watchUpstream(upstream);
  }

  private watchUpstream(upstream: net.Socket): void {
    upstream.on('drain', this.onUpstreamDrain);
    upstream.on('error', this.onUpstreamError);
    upstream.on('close', this.onUpstreamClose);
  }

  /**
   * Starts TLS on the upstream connection (the server agreed to it); `onSecure` runs once the
   * handshake and the certificate checks of `plan` passed. A failure refuses the login with the reason.
   */
  protected startUpstreamTls(plan: UpstreamTlsPlan, onSecure: () => void): void {
    const raw = this.upstream!;
    raw.off('drain', this.onUpstreamDrain);
    raw.off('error', this.onUpstreamError);
    raw.off('close', this.onUpstreamClose);
    const secure = tls.connect({ socket: raw, ...plan.options(this.host.upstream.host) });
    // As on the client leg: an error of the plain socket under the TLS one must not go unheard.
    raw.on('error', (err) => secure.destroy(err));
    this.upstream = secure;
    this.upstreamDirect = false;
    this.upstreamTlsPlan = plan;
    this.watchUpstream(secure);
    if (!readTlsInto(secure, this.upstreamReads)) secure.on('data', this.upstreamChunk);
    const timeoutMs = this.host.limits.upstreamConnectTimeoutMs;
    secure.setTimeout(timeoutMs);
    secure.once('timeout', () => secure.destroy(new Error(`no TLS handshake within ${timeoutMs} ms`)));
    secure.once('secureConnect', () => {
      secure.setTimeout(0);
      this.upstreamTlsPlan = null;
      this.upstreamTls = true;
      if (this.phase !== Phase.Closed) onSecure();
    });
  }

  /** TLS to the upstream failed (or the server refused it and `plan` insists): this client's login is refused. */
  protected upstreamTlsFailed(plan: UpstreamTlsPlan, reason: string): void {
    this.host.upstreamError('tls');
    this.host.log.warn({ remote: this.remote, upstream: this.upstreamUrl, setting: plan.describe, reason }, `${this.names.log}: upstream TLS failed`);
    this.fail(this.upstreamError('unreachable', `TLS to upstream ${this.upstreamUrl} failed (${plan.describe}): ${reason}`), null);
  }

  /** Bytes for the server, with backpressure: a server not reading stops the client's reads. */
  toUpstream(bytes: Buffer): void {
    const upstream = this.upstream;
    if (upstream === null || this.phase === Phase.Closed) return;
    // Most client chunks hold one message: one write. Several (a pipeline) go out as one.
    if (this.chunkWrites >= 0 && ++this.chunkWrites === 2) upstream.cork();
    const direct = this.upstreamDirect ? writeDirect(upstream, bytes, this.onUpstreamWritten) : DirectWrite.Stream;
    const flowing = direct === DirectWrite.Stream ? upstream.write(bytes) : direct === DirectWrite.Sent;
    // A write that did not go out at once still points into the client's read buffer.
    if (!flowing || upstream.writableLength > 0) this.clientReads.retain();
    if (!flowing) this.client.pause();
  }

  /** Bytes for the client (`more` right after, in one write), with backpressure both ways. */
  toClient(bytes: Buffer, more?: Buffer): void {
    const { client } = this;
    if (this.phase === Phase.Closed || client.destroyed) return;
    let flowing: boolean;
    const direct = more === undefined && this.clientDirect ? writeDirect(client, bytes, this.onClientWritten) : DirectWrite.Stream;
    if (direct !== DirectWrite.Stream) {
      flowing = direct === DirectWrite.Sent;
    } else if (more === undefined) {
      flowing = client.write(bytes);
    } else {
      client.cork();
      client.write(bytes);
      flowing = client.write(more);
      client.uncork();
    }
    // A write that did not go out at once still points into the upstream's read buffer.
    if (!flowing || client.writableLength > 0) this.upstreamReads.retain();
    if (!flowing) {
      // Stop producing replies until the client reads: both what the server sends and what the
      // cache answers for the client's own requests.
      this.upstream?.pause();
      client.pause();
    }
  }

  /**
   * Keeps what is written to the client in the socket until release() (output-hold.ts): the
   * acknowledgement of a write waits for the other workers to drop what it made stale. Later
   * replies, hits included, queue behind it in order.
   */
  hold(): void {
    if (this.holds++ === 0 && !this.client.destroyed) this.client.cork();
  }

  release(): void {
    if (--this.holds > 0) return;
    if (!this.client.destroyed) this.client.uncork();
    if (this.endHeld) endSocket(this.client);
  }

  private readonly onClientDrain = (): void => {
    this.upstream?.resume();
    if (this.upstream === null || !this.upstream.writableNeedDrain) this.client.resume();
  };

  private readonly onUpstreamDrain = (): void => {
    this.client.resume();
  };

  /** A direct write the kernel did not take at once went out (or failed): as the stream's 'drain' (or 'error'). */
  private readonly onClientWritten = (status: number): void => {
    if (status < 0) this.client.destroy(writeError(status));
    else this.onClientDrain();
  };

  private readonly onUpstreamWritten = (status: number): void => {
    if (status < 0) this.upstream?.destroy(writeError(status));
    else this.onUpstreamDrain();
  };

  /** The login finished: the login timer stops. */
  protected loggedIn(): void {
    this.clearLoginTimer();
    this.loggedInAt = Date.now();
    if (this.host.limits.logConnections) {
      this.host.log.info({ remote: this.remote, ...this.login }, `${this.names.log}: connection opened`);
    }
  }

  /** The "connection closed" line of a session that logged in, once. */
  private logEnd(fallbackReason: string): void {
    if (this.loggedInAt === 0 || !this.host.limits.logConnections) return;
    const reason = this.endReason ?? (this.clientLeaving ? 'client quit' : fallbackReason);
    const seconds = Math.round(Date.now() - this.loggedInAt) / 1000;
    this.host.log.info({ remote: this.remote, ...this.login, reason, seconds }, `${this.names.log}: connection closed`);
  }

  private readonly onUpstreamError = (err: Error): void => {
    if (this.phase === Phase.Closed) return;
    const log = this.names.log;
    if (this.upstreamTlsPlan !== null) {
      this.upstreamTlsFailed(this.upstreamTlsPlan, tlsFailure(err));
      return;
    }
    if (this.phase === Phase.Connecting) {
      this.host.upstreamError('connect');
      this.host.log.warn({ remote: this.remote, upstream: this.upstreamUrl, err: err.message }, `${log}: upstream unreachable`);
      this.fail(this.upstreamError('unreachable', `cannot reach upstream ${this.upstreamUrl}: ${err.message}`), null);
      return;
    }
    // One session's connection breaking is not the server going away: the cache learns that
    // from the server's identity at the next login (upstream-identity.ts).
    this.host.upstreamError('io');
    this.host.log.warn({ remote: this.remote, err: err.message }, `${log}: upstream connection failed`);
    this.fail(this.upstreamError('lost', `lost the upstream connection: ${err.message}`), null);
  };

  private readonly onUpstreamClose = (): void => {
    this.host.upstreamClosed();
    this.upstream = null;
    if (this.phase === Phase.Closed) return;
    // The server ended the session (the client said goodbye, a fatal error, a timeout or KILL of
    // its own, a refused login): pass the close on once what it sent has been written. The cache
    // stays: a restart or failover shows in the server's identity at the next login.
    this.moveTo(Phase.Closed);
    this.endClient();
    this.logEnd('server closed the connection');
    this.host.closed(this);
  };

  private readonly onClientGone = (): void => {
    if (this.phase === Phase.Closed) return;
    this.close();
  };

  private readonly onLoginTimeout = (): void => {
    this.loginTimer = null;
    this.fail(this.loginTimeoutError(this.host.limits.loginTimeoutMs), 'login-timeout');
  };

  private armStallTimer(): void {
    const limit = this.host.limits.messageStallTimeoutMs;
    if (limit <= 0 || this.stallTimer !== null) return;
    this.stallTimer = setTimeout(this.onStallCheck, limit);
  }

  private readonly onStallCheck = (): void => {
    this.stallTimer = null;
    if (this.phase === Phase.Closed || !this.hasPartialMessage) return;
    const limit = this.host.limits.messageStallTimeoutMs;
    const idle = Date.now() - this.lastClientData;
    if (idle < limit) {
      this.stallTimer = setTimeout(this.onStallCheck, limit - idle);
      return;
    }
    this.fail(this.stallError(limit), 'stall');
  };

  /**
   * Ends the session because of `err`: the client gets it where it cannot break a message or
   * reply in flight, then both sides close. `protocolReason` counts and logs a protocol error.
   */
  protected fail(err: E, protocolReason: string | null): void {
    if (this.phase === Phase.Closed) return;
    this.endReason ??= protocolReason === 'shutdown' ? 'shutdown' : err.message;
    if (protocolReason !== null && protocolReason !== 'shutdown') {
      this.host.protocolError(protocolReason);
      this.host.log.warn({ remote: this.remote, reason: protocolReason }, `${this.names.log}: closing client connection: ${err.message}`);
    }
    if (!this.client.destroyed) {
      const bytes = this.errorBytes(err);
      if (bytes !== null) this.client.write(bytes);
    }
    this.close();
  }

  protected close(): void {
    if (this.phase === Phase.Closed) return;
    const wasReady = this.phase === Phase.Ready;
    this.moveTo(Phase.Closed);
    this.endClient();
    const upstream = this.upstream;
    if (upstream !== null) this.endUpstream(upstream, wasReady);
    this.logEnd('client closed the connection');
    this.host.closed(this);
  }

  /** The client's side of every end: timers stop, the unfinished message goes, the socket closes. */
  private endClient(): void {
    this.clearTimers();
    this.dropPartialMessage();
    // Ending flushes a corked socket: a held acknowledgement would leave before its release.
    if (this.holds > 0) this.endHeld = true;
    else endSocket(this.client);
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

/** The error a failed direct write ends its socket with, as net's own write would report it. */
function writeError(status: number): Error {
  return Object.assign(new Error(`write ${util.getSystemErrorName(status)}`), { code: util.getSystemErrorName(status), errno: status, syscall: 'write' });
}
