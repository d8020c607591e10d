// The second tier's (`--l2 on`) record of one cached result in Redis, and the names of the fields
// of the tier's tag table. Pure: values in, bytes out, and back.
//
// An entry says when it was filled in the bus's numbering (`asOf`: the last bus entry its proxy had
// applied when the fill was sent) and under which era of the tag table; the tag table holds, per
// tag, the number of the last bus entry that invalidated it (scripts.ts PUBLISH writes both in one
// step). An entry is served only while no tag it depends on was invalidated after its `asOf`.
import type { Protocol } from '../telemetry/metrics.js';
import type { Invalidation } from '../proxy/result-cache.js';

export interface L2Entry {
  /** The L1 key in full: the Redis key holds only its hash. */
  readonly key: string;
  /** The era of the tag table the fill began under (see l2.ts: a new era voids every entry). */
  readonly era: string;
  /** The last bus entry applied by the filling proxy when the fill was sent. */
  readonly asOf: number;
  /** Wall-clock ms after which the entry is not served (the fill's TTL). */
  readonly expiresAt: number;
  readonly tags: readonly string[];
  readonly fingerprint: string;
  /** The reply's bytes, as the L1 store keeps them. */
  readonly bytes: Buffer;
}

/**
 * 2 since the one-round-trip lookup (scripts.ts L2_GET): the fields the freshness check needs come
 * first, in a block a Lua script reads without JSON. Entries of format 1 (an older sidecache) are
 * misses, both here and in the script, and expire by their TTL.
 */
export const L2_ENTRY_FORMAT = 2;

/**
 * [u8 format][u32 check length][check][u32 header length][header JSON][reply bytes], where check is
 * a list of [u32 length][bytes] items: the era, asOf in decimal, then the entry's dependency fields
 * (dependencyFields, as UTF-8: the bytes Redis keeps as tag-table field names). The rest of the
 * entry (key, expiry, tags, fingerprint) is the JSON header. Lengths are big-endian.
 */
export function encodeL2Entry(protocol: Protocol, entry: L2Entry): Buffer {
  const items = [entry.era, String(entry.asOf), ...dependencyFields(protocol, entry)].map((item) => Buffer.from(item, 'utf8'));
  const header = Buffer.from(JSON.stringify({ k: entry.key, x: entry.expiresAt, t: entry.tags, f: entry.fingerprint }), 'utf8');
  const checkLength = items.reduce((sum, item) => sum + 4 + item.length, 0);
  const out = Buffer.allocUnsafe(1 + 4 + checkLength + 4 + header.length + entry.bytes.length);
  let at = out.writeUInt8(L2_ENTRY_FORMAT, 0);
  at = out.writeUInt32BE(checkLength, at);
  for (const item of items) {
    at = out.writeUInt32BE(item.length, at);
    at += item.copy(out, at);
  }
  at = out.writeUInt32BE(header.length, at);
  at += header.copy(out, at);
  entry.bytes.copy(out, at);
  return out;
}

/** Null for anything this version did not write (another format, damage): a miss. */
export function decodeL2Entry(data: Buffer): L2Entry | null {
  if (data.length < 5 || data.readUInt8(0) !== L2_ENTRY_FORMAT) return null;
  const checkEnd = 5 + data.readUInt32BE(1);
  if (checkEnd + 4 > data.length) return null;
  const items: string[] = [];
  for (let at = 5; at < checkEnd;) {
    if (at + 4 > checkEnd) return null;
    const end = at + 4 + data.readUInt32BE(at);
    if (end > checkEnd) return null;
    items.push(data.toString('utf8', at + 4, end));
    at = end;
  }
  const headerEnd = checkEnd + 4 + data.readUInt32BE(checkEnd);
  if (items.length < 2 || headerEnd > data.length) return null;
  const era = items[0]!;
  const asOf = Number(items[1]);
  let h: unknown;
  try {
    h = JSON.parse(data.toString('utf8', checkEnd + 4, headerEnd));
  } catch {
    return null;
  }
  if (typeof h !== 'object' || h === null || !Number.isSafeInteger(asOf)) return null;
  const o = h as Record<string, unknown>;
  if (typeof o.k !== 'string' || typeof o.x !== 'number' || typeof o.f !== 'string') return null;
  if (!Array.isArray(o.t) || !o.t.every((t) => typeof t === 'string')) return null;
  return { key: o.k, era, asOf, expiresAt: o.x, tags: o.t as string[], fingerprint: o.f, bytes: data.subarray(headerEnd) };
}

/**
 * Lua for scripts.ts: `l2_check_fields(data)` reads an entry's check block as encodeL2Entry wrote
 * it and returns {era, asOf, dependency field...}, or nil for another format or damage. Here, next
 * to the encoder, so the format has one owner.
 */
export const L2_CHECK_FIELDS_LUA = `
local function l2_check_fields(data)
  if #data < 5 or string.byte(data, 1) ~= ${L2_ENTRY_FORMAT} then return nil end
  local stop = 5 + struct.unpack('>I4', data, 2)
  if stop > #data then return nil end
  local fields, at = {}, 6
  while at <= stop do
    if at + 3 > stop then return nil end
    local last = at + 3 + struct.unpack('>I4', data, at)
    if last > stop then return nil end
    fields[#fields + 1] = string.sub(data, at + 4, last)
    at = last + 1
  end
  if #fields < 2 then return nil end
  return fields
end`;

/** The tag-table fields an invalidation bumps: what it drops, per protocol. */
export function invalidatedFields(protocol: Protocol, invalidation: Invalidation): string[] {
  switch (invalidation.scope) {
    case 'all':
      return [allField(protocol)];
    case 'tags':
      return invalidation.tags.map((tag) => tagField(protocol, tag));
    case 'fingerprint':
      return [fingerprintField(protocol, invalidation.fingerprint)];
  }
}

/** The fields whose bump voids `entry`: its tags, its fingerprint, and "everything". */
export function dependencyFields(protocol: Protocol, entry: Pick<L2Entry, 'tags' | 'fingerprint'>): string[] {
  return [allField(protocol), fingerprintField(protocol, entry.fingerprint), ...entry.tags.map((tag) => tagField(protocol, tag))];
}

function allField(protocol: Protocol): string {
  return `${protocol}:*`;
}

function tagField(protocol: Protocol, tag: string): string {
  return `${protocol}:t:${tag}`;
}

function fingerprintField(protocol: Protocol, fingerprint: string): string {
  return `${protocol}:f:${fingerprint}`;
}
