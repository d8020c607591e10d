// Every part of a MySQL cache entry's key, in one place. A key is the session context's prefix
// (who asks, under which settings and capabilities: MySqlCache.context) followed by what was asked:
//
//   COM_QUERY         'Q' text
//   COM_STMT_EXECUTE  'E' part(text) part(null-bitmap) part(parameter-types) values
//
// where part(s) is s's length, ':', then s, so no text, bitmap or type list can run into the next
// part, whatever bytes it holds (a statement's text may hold a NUL). The values come last and need
// no length. A context is found by its text (contextText), built from the probe's row (user, role,
// database, keyed settings), the capabilities that shape result bytes and, for a session that
// shares nothing, its own id. Pure.
import { Capability, MariaDbCapability } from './codes.js';

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

/** The key of a COM_QUERY's reply, without the context prefix. */
export function queryKey(text: string): string {
  return 'Q' + text;
}

/**
 * The key of a COM_STMT_EXECUTE's reply, without the context prefix: the statement's text, the
 * null bitmap, the parameter types in force (sent with it or remembered) and the values, each as
 * the latin1 string of its bytes.
 */
export function executeKey(text: string, nullBitmap: string, types: string, values: string): string {
  return `E${part(text)}${part(nullBitmap)}${part(types)}${values}`;
}

/** The key an entry is stored under. */
export function entryKey(contextPrefix: string, keySuffix: string): string {
  return contextPrefix + keySuffix;
}

function part(s: string): string {
  return `${s.length}:${s}`;
}
