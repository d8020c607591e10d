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

const FORMAT = 1;

/** [u8 format][u32 header length][header JSON][reply bytes]. */
export function encodeL2Entry(entry: L2Entry): Buffer {
  const header = Buffer.from(JSON.stringify({ k: entry.key, e: entry.era, a: entry.asOf, x: entry.expiresAt, t: entry.tags, f: entry.fingerprint }), 'utf8');
  const head = Buffer.allocUnsafe(5);
  head.writeUInt8(FORMAT, 0);
  head.writeUInt32BE(header.length, 1);
  return Buffer.concat([head, header, entry.bytes]);
}

/** Null for anything this version did not write (a newer sidecache, damage): a miss. */
export function decodeL2Entry(data: Buffer): L2Entry | null {
  if (data.length < 5 || data.readUInt8(0) !== FORMAT) return null;
  const length = data.readUInt32BE(1);
  if (5 + length > data.length) return null;
  let h: unknown;
  try {
    h = JSON.parse(data.subarray(5, 5 + length).toString('utf8'));
  } catch {
    return null;
  }
  if (typeof h !== 'object' || h === null) return null;
  const o = h as Record<string, unknown>;
  if (typeof o.k !== 'string' || typeof o.e !== 'string' || !Number.isSafeInteger(o.a) || typeof o.x !== 'number' || typeof o.f !== 'string') return null;
  if (!Array.isArray(o.t) || !o.t.every((t) => typeof t === 'string')) return null;
  return { key: o.k, era: o.e, asOf: o.a as number, expiresAt: o.x, tags: o.t as string[], fingerprint: o.f, bytes: data.subarray(5 + length) };
}

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
