// The login of a user whose SCRAM secret sidecache knows (--pg-auth-file), as PgBouncer does it
// with its auth_file: sidecache is the SCRAM server to the client (SCRAM-SHA-256-PLUS offered on
// a TLS client leg, bound to sidecache's certificate), and once the client's proof is verified,
// the SCRAM client to the upstream with the ClientKey the proof revealed (bound to the server's
// certificate on a TLS upstream leg). Each leg's channel binding names its own certificate, so
// libpq's channel_binding=prefer and require both work with TLS on both legs. The upstream's SASL
// messages are answered here and never reach the client; everything else (AuthenticationOk,
// ParameterStatus, BackendKeyData, ReadyForQuery, an ErrorResponse) passes on to the relay.
// The message math is scram.ts; this module frames the protocol messages around it. Pure.
import { serialize } from 'pg-protocol';
import type { ScramSecret } from '../../config/pg-auth-file.js';
import { AuthRequest, Backend, Frontend } from './codes.js';
import { PgProxyError, SqlState } from './error-response.js';
import { authentication, authenticationSasl, saslMechanisms } from './sasl.js';
import { ScramClient, ScramError, ScramServer, type Channel } from './scram.js';

/** What a client message of the login led to. */
export interface ClientStep {
  /** The Authentication message to send back. */
  readonly reply: Buffer;
  /** The proof was right: `reply` is AuthenticationSASLFinal, and the upstream login can start. */
  readonly verified: boolean;
}

export class ScramLogin {
  private readonly server: ScramServer;
  private upstreamClient: ScramClient | null = null;
  private clientKey: Buffer | null = null;
  private clientStep: 'initial' | 'response' | 'done' = 'initial';
  /** The upstream's AuthenticationOk went by: the rest of the traffic is the relay's. */
  private upstreamDone = false;
  /** An incomplete upstream message at the end of a chunk (a copy). */
  private held: Buffer | null = null;

  constructor(
    private readonly secret: ScramSecret,
    private readonly user: string,
    /** The client leg's binding data (sidecache's certificate); null on cleartext. */
    clientChannel: Channel,
    private readonly nonce: () => string,
  ) {
    this.server = new ScramServer(secret, nonce(), clientChannel);
  }

  /** AuthenticationSASL for the client, right after its StartupMessage. */
  start(): Buffer {
    return authenticationSasl(this.server.mechanisms);
  }

  /** A whole client message ('p': SASLInitialResponse, then SASLResponse). Throws PgProxyError. */
  clientMessage(code: number, buf: Buffer, start: number, end: number): ClientStep {
    if (code !== Frontend.Password || this.clientStep === 'done') {
      throw new PgProxyError(SqlState.ProtocolViolation, `expected SASL response, got message type ${String.fromCharCode(code)}`);
    }
    try {
      if (this.clientStep === 'initial') {
        const nameEnd = buf.indexOf(0, start + 5);
        if (nameEnd < 0 || nameEnd >= end || nameEnd + 5 > end) throw new ScramError('protocol', 'malformed SASLInitialResponse');
        const mechanism = buf.toString('utf8', start + 5, nameEnd);
        const length = buf.readInt32BE(nameEnd + 1);
        if (length < 0 || nameEnd + 5 + length !== end) throw new ScramError('protocol', 'malformed SASLInitialResponse');
        const serverFirst = this.server.first(mechanism, buf.toString('utf8', nameEnd + 5, end));
        this.clientStep = 'response';
        return { reply: authentication(AuthRequest.SASLContinue, Buffer.from(serverFirst)), verified: false };
      }
      const { serverFinal, clientKey } = this.server.final(buf.toString('utf8', start + 5, end));
      this.clientKey = clientKey;
      this.clientStep = 'done';
      return { reply: authentication(AuthRequest.SASLFinal, Buffer.from(serverFinal)), verified: true };
    } catch (err) {
      throw this.toPg(err, 'client');
    }
  }

  /**
   * Server bytes of the login. Returns what goes on to the relay (everything but the SASL
   * exchange) and the replies for the upstream. `upstreamChannel`: the upstream leg's binding
   * data, null on cleartext. Throws PgProxyError.
   */
  upstreamChunk(chunk: Buffer, upstreamChannel: Channel): { toRelay: Buffer; toUpstream: Buffer | null } {
    if (this.upstreamDone) return { toRelay: chunk, toUpstream: null };
    let bytes = chunk;
    if (this.held !== null) {
      bytes = Buffer.concat([this.held, chunk]);
      this.held = null;
    }
    const relay: Buffer[] = [];
    const replies: Buffer[] = [];
    let pos = 0;
    while (pos + 5 <= bytes.length && !this.upstreamDone) {
      const end = pos + 1 + bytes.readInt32BE(pos + 1);
      if (end > bytes.length) break;
      const message = bytes.subarray(pos, end);
      if (message[0] === Backend.Authentication && message.length >= 9) {
        const reply = this.authRequest(message, upstreamChannel);
        if (reply === null) relay.push(message);
        else if (reply.length > 0) replies.push(reply);
      } else {
        relay.push(message);
      }
      pos = end;
    }
    if (this.upstreamDone) relay.push(bytes.subarray(pos));
    // A copy: the chunk's buffer is reused once the caller returns.
    else if (pos < bytes.length) this.held = Buffer.from(bytes.subarray(pos));
    return {
      toRelay: relay.length === 1 ? relay[0]! : Buffer.concat(relay),
      toUpstream: replies.length === 0 ? null : Buffer.concat(replies),
    };
  }

  /** The answer to an upstream Authentication message: bytes for the upstream, empty for none, null: pass it on. */
  private authRequest(message: Buffer, channel: Channel): Buffer | null {
    const request = message.readInt32BE(5);
    try {
      switch (request) {
        case AuthRequest.Ok:
          // trust, or the end of the SASL exchange: the client, already answered by sidecache, reads it next.
          if (this.upstreamClient !== null && this.clientStep !== 'done') throw new ScramError('protocol', 'the server ended the SCRAM exchange early');
          this.upstreamDone = true;
          return null;
        case AuthRequest.SASL: {
          const mechanisms = saslMechanisms(message);
          if (mechanisms === null) throw new ScramError('protocol', 'malformed AuthenticationSASL from the server');
          this.upstreamClient = new ScramClient(this.secret, this.clientKey!, this.nonce(), channel);
          const { mechanism, message: first } = this.upstreamClient.first(mechanisms);
          return serialize.sendSASLInitialResponseMessage(mechanism, first);
        }
        case AuthRequest.SASLContinue:
          if (this.upstreamClient === null) throw new ScramError('protocol', 'SASL continue from the server before SASL');
          return serialize.sendSCRAMClientFinalMessage(this.upstreamClient.final(message.toString('utf8', 9)));
        case AuthRequest.SASLFinal:
          if (this.upstreamClient === null) throw new ScramError('protocol', 'SASL final from the server before SASL');
          this.upstreamClient.verify(message.toString('utf8', 9));
          return Buffer.alloc(0);
        case AuthRequest.MD5Password:
        case AuthRequest.CleartextPassword:
          throw new PgProxyError(SqlState.InvalidAuthorization, `sidecache: the server asks for ${request === AuthRequest.MD5Password ? 'md5' : 'cleartext'} password authentication `
            + `for user "${this.user}", but sidecache verified this client with its SCRAM secret (--pg-auth-file) and holds no password to answer with: `
            + 'set the server to scram-sha-256 for this user (pg_hba.conf, and the password stored with password_encryption = scram-sha-256), or remove the user from --pg-auth-file');
        default:
          throw new PgProxyError(SqlState.InvalidAuthorization, `sidecache: the server asks for authentication method ${request} for user "${this.user}", `
            + 'which sidecache cannot answer for a user of --pg-auth-file (it speaks SCRAM-SHA-256 to the server, or trust): remove the user from --pg-auth-file');
      }
    } catch (err) {
      throw this.toPg(err, 'upstream');
    }
  }

  /** One place maps SCRAM failures to what the client reads, as PostgreSQL words them. */
  private toPg(err: unknown, leg: 'client' | 'upstream'): PgProxyError {
    if (err instanceof PgProxyError) return err;
    if (!(err instanceof ScramError)) throw err;
    if (leg === 'client') {
      switch (err.kind) {
        case 'password':
          return new PgProxyError(SqlState.InvalidPassword, `password authentication failed for user "${this.user}"`);
        case 'refused':
          return new PgProxyError(SqlState.InvalidAuthorization, err.message);
        case 'protocol':
          return new PgProxyError(SqlState.ProtocolViolation, err.message);
      }
    }
    return new PgProxyError(SqlState.InvalidAuthorization, `sidecache: logging in to the server as user "${this.user}" with the secret of --pg-auth-file failed: ${err.message}`);
  }
}
