// The login packets: the server's initial handshake (protocol 10) and the client's answer
// (HandshakeResponse41 or SSLRequest). Decoders are views over a payload; the two rewrites produce
// the same packet with capability bits cleared, every other byte unchanged (the scramble, the
// connection id and the version string reach the client exactly as the server sent them).
import { Capability, HANDSHAKE_RESPONSE_FIXED, HIDDEN_CAPABILITIES, HIDDEN_MARIADB_CAPABILITIES, UPSTREAM_HIDDEN_CAPABILITIES } from './codes.js';
import { MalformedPacketError, PayloadReader } from './packets.js';

export interface ServerHandshake {
  protocolVersion: number;
  serverVersion: string;
  connectionId: number;
  /** Lower and upper capability words combined (32 bits). */
  capabilities: number;
  /** MariaDB's extended capabilities; 0 from MySQL (or when CLIENT_MYSQL is set). */
  mariaDbCapabilities: number;
  charset: number;
  status: number;
  /** Both scramble parts, without the trailing NUL. */
  scramble: Buffer;
  authPlugin: string;
  /** Payload offsets of the capability words, for the rewrite. */
  offsets: { capsLow: number; capsHigh: number; mariaDbCaps: number };
}

/** Decodes the initial handshake payload buf[start, end). Throws MalformedPacketError. */
export function decodeServerHandshake(buf: Buffer, start: number, end: number): ServerHandshake {
  const r = new PayloadReader(buf, start, end);
  const protocolVersion = r.u8();
  if (protocolVersion !== 10) throw new MalformedPacketError(`unsupported handshake protocol version ${protocolVersion}`);
  const serverVersion = r.cstring();
  const connectionId = r.u32();
  const scramble1 = r.bytes(8);
  r.skip(1);
  const capsLow = r.pos - start;
  let capabilities = r.u16();
  const hs: ServerHandshake = {
    protocolVersion, serverVersion, connectionId, capabilities, mariaDbCapabilities: 0, charset: 0, status: 0,
    scramble: scramble1, authPlugin: '', offsets: { capsLow, capsHigh: -1, mariaDbCaps: -1 },
  };
  if (r.remaining === 0) return hs;
  hs.charset = r.u8();
  hs.status = r.u16();
  hs.offsets.capsHigh = r.pos - start;
  capabilities = (capabilities | (r.u16() << 16)) >>> 0;
  hs.capabilities = capabilities;
  const authDataLength = r.u8();
  r.skip(6);
  hs.offsets.mariaDbCaps = r.pos - start;
  const extended = r.u32();
  // MariaDB clears CLIENT_MYSQL (bit 0) to say the last 4 reserved bytes hold extended capabilities.
  if ((capabilities & Capability.LongPassword) === 0) hs.mariaDbCapabilities = extended;
  else hs.offsets.mariaDbCaps = -1;
  if (capabilities & Capability.SecureConnection) {
    const part2 = Math.max(13, authDataLength - 8);
    const scramble2 = r.bytes(Math.min(part2, r.remaining));
    const nul = scramble2.indexOf(0);
    hs.scramble = Buffer.concat([scramble1, nul >= 0 ? scramble2.subarray(0, nul) : scramble2]);
  }
  if (capabilities & Capability.PluginAuth) hs.authPlugin = r.cstringOrRest();
  return hs;
}

/**
 * The handshake payload with the capabilities the proxy cannot pass on cleared (the server's TLS,
 * zstd, optional metadata; see HIDDEN_CAPABILITIES). zlib compression stays as the server offers
 * it: the proxy speaks it with the client. `offerTls`: CLIENT_SSL set, for the proxy's own TLS
 * (whatever the server offers). A copy; the input is not changed.
 */
export function rewriteServerHandshake(payload: Buffer, hs: ServerHandshake, offerTls: boolean): Buffer {
  const out = Buffer.from(payload);
  const { capsLow, capsHigh, mariaDbCaps } = hs.offsets;
  out.writeUInt16LE((out.readUInt16LE(capsLow) & ~HIDDEN_CAPABILITIES & 0xffff) | (offerTls ? Capability.Ssl : 0), capsLow);
  if (capsHigh >= 0) out.writeUInt16LE(out.readUInt16LE(capsHigh) & (~HIDDEN_CAPABILITIES >>> 16) & 0xffff, capsHigh);
  if (mariaDbCaps >= 0) out.writeUInt32LE((out.readUInt32LE(mariaDbCaps) & ~HIDDEN_MARIADB_CAPABILITIES) >>> 0, mariaDbCaps);
  return out;
}

/** The capabilities a client sees in the rewritten handshake. */
export function offeredCapabilities(hs: ServerHandshake): { capabilities: number; mariaDbCapabilities: number } {
  return {
    capabilities: (hs.capabilities & ~HIDDEN_CAPABILITIES) >>> 0,
    mariaDbCapabilities: (hs.mariaDbCapabilities & ~HIDDEN_MARIADB_CAPABILITIES) >>> 0,
  };
}

export type ClientLogin =
  | { kind: 'ssl-request'; capabilities: number }
  | { kind: 'pre-41'; capabilities: number }
  | { kind: 'response'; response: HandshakeResponse };

export interface HandshakeResponse {
  capabilities: number;
  mariaDbCapabilities: number;
  maxPacketSize: number;
  charset: number;
  user: string;
  authResponse: Buffer;
  database: string | null;
  authPlugin: string | null;
}

/** Decodes the client's first packet payload buf[start, end). Throws MalformedPacketError. */
export function decodeClientLogin(buf: Buffer, start: number, end: number): ClientLogin {
  const r = new PayloadReader(buf, start, end);
  if (r.remaining < 4) throw new MalformedPacketError(`login packet of ${r.remaining} bytes`);
  const capabilities = r.u32();
  if ((capabilities & Capability.Protocol41) === 0) return { kind: 'pre-41', capabilities };
  if (r.remaining + 4 < HANDSHAKE_RESPONSE_FIXED) throw new MalformedPacketError(`login packet of ${end - start} bytes`);
  if (end - start === HANDSHAKE_RESPONSE_FIXED && (capabilities & Capability.Ssl)) return { kind: 'ssl-request', capabilities };
  const maxPacketSize = r.u32();
  const charset = r.u8();
  r.skip(19);
  const extended = r.u32();
  const user = r.cstring();
  let authResponse: Buffer;
  if (capabilities & Capability.PluginAuthLenencClientData) authResponse = r.lenencBytes();
  else if (capabilities & Capability.SecureConnection) authResponse = r.bytes(r.u8());
  else authResponse = Buffer.from(r.cstring(), 'utf8');
  const database = capabilities & Capability.ConnectWithDb && r.remaining > 0 ? r.cstring() : null;
  const authPlugin = capabilities & Capability.PluginAuth && r.remaining > 0 ? r.cstringOrRest() : null;
  return {
    kind: 'response',
    response: {
      capabilities, mariaDbCapabilities: capabilities & Capability.LongPassword ? 0 : extended,
      maxPacketSize, charset, user, authResponse, database, authPlugin,
    },
  };
}

/**
 * The client's HandshakeResponse41 payload with the hidden capabilities cleared, in case a client
 * asks for one blindly: the server must not enable what the proxy cannot follow. Compression is
 * cleared too: the proxy compresses the client leg itself, the upstream leg stays plain. CLIENT_SSL
 * says whether the proxy's own connection to the server is TLS (`upstreamTls`), whatever the
 * client's leg is. Other bits pass as sent, so the server sees what it would see without the proxy. A copy.
 */
export function rewriteHandshakeResponse(payload: Buffer, upstreamTls: boolean): Buffer {
  const out = Buffer.from(payload);
  const caps = out.readUInt32LE(0);
  out.writeUInt32LE(((caps & ~UPSTREAM_HIDDEN_CAPABILITIES) | (upstreamTls ? Capability.Ssl : 0)) >>> 0, 0);
  if ((caps & Capability.LongPassword) === 0) out.writeUInt32LE((out.readUInt32LE(28) & ~HIDDEN_MARIADB_CAPABILITIES) >>> 0, 28);
  return out;
}

/**
 * The SSLRequest the proxy sends the server before its own TLS handshake: the first 32 bytes of
 * the (rewritten, CLIENT_SSL set) HandshakeResponse payload, as a client sends them, with `seq`.
 */
export function sslRequestPacket(rewrittenResponse: Buffer, seq: number): Buffer {
  const packet = Buffer.alloc(4 + HANDSHAKE_RESPONSE_FIXED);
  packet.writeUIntLE(HANDSHAKE_RESPONSE_FIXED, 0, 3);
  packet[3] = seq;
  rewrittenResponse.copy(packet, 4, 0, HANDSHAKE_RESPONSE_FIXED);
  return packet;
}
