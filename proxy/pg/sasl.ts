// SCRAM across a leg of TLS that sidecache terminates. Channel binding (SCRAM-SHA-256-PLUS) binds
// the exchange to the certificate of the TLS connection the client sees, which is sidecache's,
// while the server checks it against its own: it cannot pass. So the server's mechanism list loses
// its -PLUS entries before the client reads it (AuthRewriter), and libpq's channel_binding=prefer
// picks plain SCRAM-SHA-256; channel_binding=require stops in the client with its own error.
// That is the login of a user whose secret sidecache does not know; for one it knows
// (--pg-auth-file), sidecache runs SCRAM itself on both legs (scram-login.ts) and binding works.
// Pure: bytes in, bytes out.
import { AuthRequest, Backend } from './codes.js';

/**
 * Server bytes of the login, passed on in whole messages with AuthenticationSASL rewritten; an
 * incomplete message at the end of a chunk is held until its rest comes.
 */
export class AuthRewriter {
  private held: Buffer | null = null;
  /** A -PLUS mechanism was removed and the client has not answered yet (see takeHidden). */
  private hidden = false;

  /** True once after a -PLUS mechanism was hidden: the client's next SASL message answers that list. */
  takeHidden(): boolean {
    const hidden = this.hidden;
    this.hidden = false;
    return hidden;
  }

  feed(chunk: Buffer): Buffer {
    let bytes = chunk;
    if (this.held !== null) {
      bytes = Buffer.concat([this.held, chunk]);
      this.held = null;
    }
    let out: Buffer[] | null = null;
    let from = 0;
    let pos = 0;
    while (pos + 5 <= bytes.length) {
      const end = pos + 1 + bytes.readInt32BE(pos + 1);
      if (end > bytes.length) break;
      if (bytes[pos] === Backend.Authentication && end - pos >= 9 && bytes.readInt32BE(pos + 5) === AuthRequest.SASL) {
        out ??= [];
        const rewritten = withoutChannelBinding(bytes.subarray(pos, end));
        if (rewritten.length !== end - pos) this.hidden = true;
        out.push(bytes.subarray(from, pos), rewritten);
        from = end;
      }
      pos = end;
    }
    // A copy: the chunk's buffer is reused once the caller returns.
    if (pos < bytes.length) this.held = Buffer.from(bytes.subarray(pos));
    if (out === null) return bytes.subarray(0, pos);
    out.push(bytes.subarray(from, pos));
    return Buffer.concat(out);
  }
}

/** The mechanism names of an AuthenticationSASL message (whole, from its code); null when malformed. */
export function saslMechanisms(message: Buffer): string[] | null {
  const names: string[] = [];
  let pos = 9;
  while (pos < message.length && message[pos] !== 0) {
    const end = message.indexOf(0, pos);
    if (end < 0) return null;
    names.push(message.toString('utf8', pos, end));
    pos = end + 1;
  }
  return names;
}

/** AuthenticationSASL (whole message) with the given mechanisms. */
export function authenticationSasl(mechanisms: readonly string[]): Buffer {
  return authentication(AuthRequest.SASL, Buffer.from(mechanisms.map((m) => `${m}\0`).join('') + '\0'));
}

/** An Authentication ('R') message asking `request`, with `data` after the code. */
export function authentication(request: AuthRequest, data: Buffer): Buffer {
  const out = Buffer.allocUnsafe(9 + data.length);
  out[0] = Backend.Authentication;
  out.writeInt32BE(8 + data.length, 1);
  out.writeInt32BE(request, 5);
  data.copy(out, 9);
  return out;
}

/** AuthenticationSASL (whole message) without the mechanisms that end in -PLUS. */
export function withoutChannelBinding(message: Buffer): Buffer {
  const names = saslMechanisms(message);
  if (names === null) return message; // malformed: the client judges it as the server sent it
  return authenticationSasl(names.filter((n) => !n.endsWith('-PLUS')));
}

/**
 * The GS2 channel-binding flag of a SASLInitialResponse payload (after the mechanism name and the
 * length): 'y' says "I can bind, but the server offered no -PLUS", which a server that does offer
 * it must refuse as a downgrade (RFC 5802 section 6). Null when it cannot be read.
 */
export function gs2Flag(message: Buffer): string | null {
  const nameEnd = message.indexOf(0, 5);
  if (nameEnd < 0 || nameEnd + 5 >= message.length) return null;
  return String.fromCharCode(message[nameEnd + 5]!);
}
