// SCRAM-SHA-256 (RFC 5802, RFC 7677) at both ends of a login that sidecache terminates: the
// server to its client, the client to the upstream, for a user whose secret it knows
// (--pg-auth-file). The server half verifies the client's proof against StoredKey and recovers
// ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the client half proves the same
// ClientKey to the upstream (the secret is the upstream's own verifier: same salt and iteration
// count), so no password is ever known. Channel binding is tls-server-end-point (RFC 5929), the
// only type PostgreSQL supports: on each leg the hash of that leg's server certificate.
//
// The primitives are node:crypto's (HMAC, SHA-256, timingSafeEqual); the message handling is
// written here because no maintained JavaScript library does the server side (node-postgres'
// pg/lib/crypto/sasl.js is a client that starts from the password). Pure: nonces come from the
// caller, messages are strings in and out; a failure throws ScramError.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { ScramSecret } from '../../config/pg-auth-file.js';
// node-postgres' reader of a certificate's signature algorithm (the hash tls-server-end-point uses).
import certSignatures from 'pg/lib/crypto/cert-signatures.js';

export const SCRAM = 'SCRAM-SHA-256';
export const SCRAM_PLUS = 'SCRAM-SHA-256-PLUS';
const CB_TYPE = 'tls-server-end-point';
const KEY_BYTES = 32;

/** Why an exchange failed: `protocol` (a malformed or inconsistent message, 08P01), `password` (a wrong proof, 28P01), `refused` (28000). */
export class ScramError extends Error {
  constructor(readonly kind: 'protocol' | 'password' | 'refused', message: string) {
    super(message);
    this.name = 'ScramError';
  }
}

/** The leg's channel binding data: the tls-server-end-point hash of its server certificate; null: the leg is not TLS. */
export type Channel = Buffer | null;

/** tls-server-end-point: the certificate (DER) hashed with its signature's hash, SHA-256 for MD5 and SHA-1 (RFC 5929 section 4.1). */
export function endPointHash(der: Buffer): Buffer {
  const named = (certSignatures.signatureAlgorithmHashFromCertificate(der) as string).toLowerCase();
  const hash = named === 'md5' || named === 'sha-1' ? 'sha256' : named.replace('sha-', 'sha');
  return createHash(hash).update(der).digest();
}

function hmac(key: Buffer, text: string): Buffer {
  return createHmac('sha256', key).update(text).digest();
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** `k=v,k=v` into its attributes in order; a part without `=` is a protocol error. */
function attributes(text: string): [string, string][] {
  return text.split(',').map((part) => {
    if (part.length < 2 || part[1] !== '=') throw new ScramError('protocol', `malformed SCRAM message: expected attribute=value, got "${part.slice(0, 20)}"`);
    return [part[0]!, part.slice(2)];
  });
}

/** A nonce: printable ASCII without a comma (RFC 5802's printable). */
function checkNonce(nonce: string | undefined): string {
  if (nonce === undefined || !/^[\x21-\x2b\x2d-\x7e]+$/.test(nonce)) throw new ScramError('protocol', 'malformed SCRAM message: invalid nonce');
  return nonce;
}

function base64(value: string | undefined, what: string): Buffer {
  if (value === undefined || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw new ScramError('protocol', `malformed SCRAM message: invalid ${what}`);
  return Buffer.from(value, 'base64');
}

/** The GS2 header (`n,,`, `y,,`, `p=tls-server-end-point,,`) and what follows it. */
function splitGs2(message: string): { header: string; flag: string; rest: string } {
  const first = message.indexOf(',');
  const second = first < 0 ? -1 : message.indexOf(',', first + 1);
  if (second < 0) throw new ScramError('protocol', 'malformed SCRAM message: no GS2 header');
  const flag = message.slice(0, first);
  if (message.slice(first + 1, second) !== '') throw new ScramError('refused', 'SCRAM authorization identities (authzid) are not supported');
  return { header: message.slice(0, second + 1), flag, rest: message.slice(second + 1) };
}

/**
 * sidecache as the SCRAM server of one login. `channel`: the client leg's binding data (then
 * SCRAM-SHA-256-PLUS is offered), null on a cleartext leg.
 */
export class ScramServer {
  private gs2 = '';
  private clientFirstBare = '';
  private serverFirst = '';
  private nonce = '';
  private plus = false;

  constructor(private readonly secret: ScramSecret, private readonly serverNonce: string, private readonly channel: Channel) {}

  /** The mechanisms of AuthenticationSASL, -PLUS first as PostgreSQL lists them. */
  get mechanisms(): string[] {
    return this.channel === null ? [SCRAM] : [SCRAM_PLUS, SCRAM];
  }

  /** The client-first-message for `mechanism`; returns the server-first-message. */
  first(mechanism: string, clientFirst: string): string {
    if (!this.mechanisms.includes(mechanism)) throw new ScramError('protocol', `client selected an invalid SASL authentication mechanism "${mechanism}"`);
    this.plus = mechanism === SCRAM_PLUS;
    const { header, flag, rest } = splitGs2(clientFirst);
    // As PostgreSQL's read_client_first_message: the flag must agree with the mechanism and the leg.
    if (flag === `p=${CB_TYPE}`) {
      if (!this.plus) throw new ScramError('protocol', 'the client requested SCRAM channel binding but selected a mechanism without it');
    } else if (flag.startsWith('p=')) {
      throw new ScramError('protocol', `unsupported SCRAM channel-binding type "${flag.slice(2)}"`);
    } else if (flag === 'y') {
      if (this.channel !== null) {
        throw new ScramError('protocol', 'SCRAM channel binding negotiation error: the client supports SCRAM channel binding but thinks the server does not; this server (sidecache) does support channel binding');
      }
    } else if (flag !== 'n') {
      throw new ScramError('protocol', `malformed SCRAM message: unexpected channel-binding flag "${flag.slice(0, 10)}"`);
    }
    if (this.plus && !flag.startsWith('p=')) throw new ScramError('protocol', 'the client selected SCRAM-SHA-256-PLUS but sent no channel binding');
    const attrs = attributes(rest);
    if (attrs[0]?.[0] !== 'n' || attrs[1]?.[0] !== 'r') throw new ScramError('protocol', 'malformed SCRAM message: expected n= and r= attributes');
    const clientNonce = checkNonce(attrs[1][1]);
    this.gs2 = header;
    this.clientFirstBare = rest;
    this.nonce = clientNonce + checkNonce(this.serverNonce);
    this.serverFirst = `r=${this.nonce},s=${this.secret.salt.toString('base64')},i=${this.secret.iterations}`;
    return this.serverFirst;
  }

  /** The client-final-message; returns the server-final-message and the ClientKey the proof showed. */
  final(clientFinal: string): { serverFinal: string; clientKey: Buffer } {
    const proofAt = clientFinal.lastIndexOf(',p=');
    if (proofAt < 0) throw new ScramError('protocol', 'malformed SCRAM message: no proof');
    const withoutProof = clientFinal.slice(0, proofAt);
    const attrs = attributes(withoutProof);
    if (attrs[0]?.[0] !== 'c' || attrs[1]?.[0] !== 'r') throw new ScramError('protocol', 'malformed SCRAM message: expected c= and r= attributes');
    const binding = base64(attrs[0][1], 'channel binding');
    const expected = Buffer.concat([Buffer.from(this.gs2), this.plus ? this.channel! : Buffer.alloc(0)]);
    if (!binding.equals(expected)) throw new ScramError('protocol', 'SCRAM channel binding check failed');
    if (attrs[1][1] !== this.nonce) throw new ScramError('protocol', 'SCRAM nonce mismatch');
    const proof = base64(clientFinal.slice(proofAt + 3), 'proof');
    if (proof.length !== KEY_BYTES) throw new ScramError('protocol', 'malformed SCRAM message: invalid proof length');
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const clientKey = xor(proof, hmac(this.secret.storedKey, authMessage));
    if (!timingSafeEqual(sha256(clientKey), this.secret.storedKey)) throw new ScramError('password', 'wrong SCRAM proof');
    return { serverFinal: `v=${hmac(this.secret.serverKey, authMessage).toString('base64')}`, clientKey };
  }
}

/**
 * sidecache as the SCRAM client of the upstream, proving `clientKey` (from ScramServer.final).
 * `channel`: the upstream leg's binding data, null on a cleartext leg.
 */
export class ScramClient {
  private clientFirstBare = '';
  private gs2 = '';
  private plus = false;
  private authMessage = '';

  constructor(
    private readonly secret: ScramSecret,
    private readonly clientKey: Buffer,
    private readonly clientNonce: string,
    private readonly channel: Channel,
    /** PostgreSQL ignores it (the StartupMessage names the user): libpq sends it empty. */
    private readonly user = '',
  ) {}

  /**
   * Picks from the server's mechanisms: -PLUS on a TLS leg that offers it; else plain SCRAM,
   * saying `y` ("I could bind") on TLS, which a server offering -PLUS would refuse as a downgrade.
   */
  first(mechanisms: readonly string[]): { mechanism: string; message: string } {
    this.plus = this.channel !== null && mechanisms.includes(SCRAM_PLUS);
    if (!this.plus && !mechanisms.includes(SCRAM)) {
      throw new ScramError('refused', `the server offers no SCRAM-SHA-256 (it offers ${mechanisms.join(', ') || 'nothing'})`);
    }
    this.gs2 = this.plus ? `p=${CB_TYPE},,` : this.channel !== null ? 'y,,' : 'n,,';
    this.clientFirstBare = `n=${this.user},r=${checkNonce(this.clientNonce)}`;
    return { mechanism: this.plus ? SCRAM_PLUS : SCRAM, message: this.gs2 + this.clientFirstBare };
  }

  /** The server-first-message; returns the client-final-message. */
  final(serverFirst: string): string {
    const attrs = attributes(serverFirst);
    const nonce = attrs[0]?.[0] === 'r' ? checkNonce(attrs[0][1]) : undefined;
    if (nonce === undefined || !nonce.startsWith(this.clientNonce) || nonce.length === this.clientNonce.length) {
      throw new ScramError('protocol', 'the server\'s SCRAM nonce does not extend sidecache\'s');
    }
    if (attrs[1]?.[0] !== 's' || attrs[2]?.[0] !== 'i') throw new ScramError('protocol', 'malformed SCRAM message from the server: expected s= and i=');
    const salt = base64(attrs[1][1], 'salt');
    if (!salt.equals(this.secret.salt) || Number(attrs[2][1]) !== this.secret.iterations) {
      throw new ScramError('refused', 'the server\'s SCRAM salt or iteration count differs from the secret sidecache holds: the password was changed');
    }
    const binding = Buffer.concat([Buffer.from(this.gs2), this.plus ? this.channel! : Buffer.alloc(0)]);
    const withoutProof = `c=${binding.toString('base64')},r=${nonce}`;
    this.authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const storedKey = sha256(this.clientKey);
    const proof = xor(this.clientKey, hmac(storedKey, this.authMessage));
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** The server-final-message: the server proves it holds ServerKey. */
  verify(serverFinal: string): void {
    const attrs = attributes(serverFinal);
    if (attrs[0]?.[0] === 'e') throw new ScramError('refused', `the server refused the SCRAM exchange: ${attrs[0][1]}`);
    if (attrs[0]?.[0] !== 'v') throw new ScramError('protocol', 'malformed SCRAM message from the server: expected v=');
    const signature = base64(attrs[0][1], 'server signature');
    const expected = hmac(this.secret.serverKey, this.authMessage);
    if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      throw new ScramError('refused', 'the server\'s SCRAM signature is wrong: it does not hold the secret sidecache holds');
    }
  }
}
