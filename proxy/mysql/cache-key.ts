// Every part of a MySQL cache entry's key, in one place. A key is the session context's prefix
// (who asks, under which settings and capabilities: MySqlCache.context) followed by what was asked:
//
//   COM_QUERY         '\x03' bytes
//   COM_STMT_EXECUTE  'E' part(statement bytes) part(null-bitmap) part(parameter-types) values
//
// where part(s) is s's length, ':', then s, so no text, bitmap or type list can run into the next
// part, whatever bytes it holds (a statement's text may hold a NUL). The values come last and need
// no length. A COM_QUERY's key is its payload as sent (the command byte, then the statement's
// bytes), one latin1 character per byte: read in one copy from the packet with no UTF-8 decoding
// (a hit never needs the text), and two statements that differ in any byte never share a key
// (their UTF-8 decodings may: invalid sequences of a latin1 client all decode to U+FFFD); an
// execution's key holds its statement's bytes the same way. A context is found by its text
// (contextText), built from the probe's row (user, role, database, keyed settings), the
// capabilities that shape result bytes and, for a session that shares nothing, its own id. Pure.
import { Capability, MAX_PACKET_PAYLOAD, MariaDbCapability } from './codes.js';
import { payloadOf } from './packets.js';

/** Result bytes depend on these capabilities (EOF vs OK terminators, metadata, OK packet layout). */
const KEYED_CAPABILITIES = (Capability.DeprecateEof | Capability.Protocol41 | Capability.SessionTrack | Capability.LongPassword) >>> 0;
const KEYED_MARIADB_CAPABILITIES = (MariaDbCapability.ExtendedMetadata | MariaDbCapability.CacheMetadata) >>> 0;

/** The capabilities of a login that shape result bytes, as a context's part. */
export function keyedCapabilities(capabilities: number, mariaDbCapabilities: number): string {
  return `${(capabilities & KEYED_CAPABILITIES) >>> 0}:${(mariaDbCapabilities & KEYED_MARIADB_CAPABILITIES) >>> 0}`;
}

/**
 * What tells contexts apart: the probe's view of the session (NUL-separated, NULL marked, see
 * MySqlCache.readProbe), the keyed capabilities, and the id of a session that shares nothing.
 */
export function contextText(probeText: string, capabilities: string, privateId: number | null): string {
  return `${probeText}\u0000${capabilities}\u0000${privateId ?? ''}`;
}

/** A context's prefix: its id, then a separator no id contains. */
export function contextPrefix(contextId: number): string {
  return `${contextId}\u0001`;
}

/** The key of the COM_QUERY in the logical packet buf[start, end) (headers included), without the context prefix. */
export function queryKey(buf: Buffer, start: number, end: number): string {
  const first = buf[start]! | (buf[start + 1]! << 8) | (buf[start + 2]! << 16);
  if (first < MAX_PACKET_PAYLOAD) return buf.toString('latin1', start + 4, start + 4 + first);
  return payloadOf(buf, start, end).toString('latin1');
}

/**
 * The key of a COM_STMT_EXECUTE's reply, without the context prefix: the statement's bytes (its
 * COM_STMT_PREPARE payload, as queryKey reads it), the null bitmap, the parameter types in force
 * (sent with it or remembered) and the values, each as the latin1 string of its bytes.
 */
export function executeKey(statement: string, nullBitmap: string, types: string, values: string): string {
  return `E${part(statement)}${part(nullBitmap)}${part(types)}${values}`;
}

/** The key an entry is stored under. */
export function entryKey(contextPrefix: string, keySuffix: string): string {
  return contextPrefix + keySuffix;
}

function part(s: string): string {
  return `${s.length}:${s}`;
}
