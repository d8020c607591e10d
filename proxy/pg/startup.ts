// Decodes the untyped packets a client may send before its session starts: SSLRequest,
// GSSENCRequest, CancelRequest and the StartupMessage itself. Pure.
import { Frontend, PROTOCOL_MAJOR_3, StartupCode } from './codes.js';

export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; pid: number; secret: Buffer }
  | { kind: 'startup'; major: number; minor: number; params: Map<string, string> }
  | { kind: 'invalid'; reason: string };

/**
 * The startup packet length a client's Terminate ('X', then its length 4) reads as when it comes
 * before any StartupMessage: node-postgres sends one on connect() followed at once by end().
 * PostgreSQL closes the connection without a reply (it only logs "invalid length of startup
 * packet", as for any impossible length); a client that said goodbye expects none.
 */
export function isTerminateBeforeStartup(length: number): boolean {
  return length === TERMINATE_READ_AS_LENGTH;
}

const TERMINATE_READ_AS_LENGTH = Frontend.Terminate * 0x1000000;

/** `packet` is the whole packet including its 4-byte length. */
export function decodeStartupPacket(packet: Buffer): StartupPacket {
  const code = packet.readInt32BE(4);
  switch (code) {
    case StartupCode.SSLRequest:
      return packet.length === 8 ? { kind: 'ssl' } : { kind: 'invalid', reason: 'malformed SSLRequest' };
    case StartupCode.GSSENCRequest:
      return packet.length === 8 ? { kind: 'gssenc' } : { kind: 'invalid', reason: 'malformed GSSENCRequest' };
    case StartupCode.CancelRequest:
      // Protocol 3.2 allows a longer secret key; 3.0 uses 4 bytes.
      if (packet.length < 16) return { kind: 'invalid', reason: 'malformed CancelRequest' };
      return { kind: 'cancel', pid: packet.readInt32BE(8), secret: packet.subarray(12) };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== PROTOCOL_MAJOR_3) {
    return { kind: 'invalid', reason: `unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.x` };
  }
  const params = new Map<string, string>();
  let pos = 8;
  while (pos < packet.length) {
    const nameEnd = packet.indexOf(0, pos);
    if (nameEnd < 0) return { kind: 'invalid', reason: 'invalid startup packet layout: missing terminator' };
    if (nameEnd === pos) {
      if (nameEnd !== packet.length - 1) return { kind: 'invalid', reason: 'invalid startup packet layout: data after terminator' };
      return { kind: 'startup', major, minor, params };
    }
    const valueEnd = packet.indexOf(0, nameEnd + 1);
    if (valueEnd < 0) return { kind: 'invalid', reason: 'invalid startup packet layout: missing value' };
    params.set(packet.toString('utf8', pos, nameEnd), packet.toString('utf8', nameEnd + 1, valueEnd));
    pos = valueEnd + 1;
  }
  return { kind: 'invalid', reason: 'invalid startup packet layout: expected terminator as last byte' };
}
