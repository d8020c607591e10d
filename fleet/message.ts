// What one entry of the fleet's Redis Stream says, and how it is spelled as the entry's fields.
// Pure: fields in, message out, and back. The sequence number is not the publisher's to write: the
// publish script (scripts.ts) adds it atomically with the entry, so readers can tell a gap.
import type { Protocol } from '../telemetry/metrics.js';
import type { Invalidation } from '../proxy/result-cache.js';

export type BusBody =
  /** A cache's invalidation, to be applied by every other proxy's cache of that protocol. */
  | { readonly kind: 'invalidation'; readonly protocol: Protocol; readonly invalidation: Invalidation }
  /** The leader's pulse: no effect but to show the bus moves, and how fast. */
  | { readonly kind: 'beat' }
  /**
   * The change-stream leader of a protocol (fleet/change-leader.ts) reports which of its streams
   * are up (PostgreSQL databases, or `*` for MySQL's binlog): the others fill only for those.
   */
  | { readonly kind: 'streams'; readonly protocol: Protocol; readonly up: readonly string[] };

export interface BusMessage {
  /** The instance id of the proxy that published it; a proxy skips its own. */
  readonly origin: string;
  /** When it was published, in ms since the epoch on the publisher's clock (for the lag). */
  readonly sentAt: number;
  readonly body: BusBody;
}

/** An entry as read back: its sequence number and message, either null when unreadable. */
export interface BusEntry {
  /** Consecutive over the whole stream; null when the entry has none (not written by the script). */
  readonly seq: number | null;
  /** null when the entry cannot be read (a newer sidecache, damage): its effect is unknown. */
  readonly message: BusMessage | null;
}

/** Field names; one letter each, an entry is written per invalidation. */
const VERSION = 'v';
const ORIGIN = 'o';
const SENT_AT = 't';
const KIND = 'k';
const PROTOCOL = 'p';
const DATA = 'd';
export const SEQ_FIELD = 's';
const FORMAT = '1';

/** The fields of an entry (name, value, name, value, ...), without the sequence number. */
export function encodeMessage(message: BusMessage): string[] {
  const head = [VERSION, FORMAT, ORIGIN, message.origin, SENT_AT, String(message.sentAt)];
  const body = message.body;
  switch (body.kind) {
    case 'beat':
      return [...head, KIND, 'b'];
    case 'invalidation':
      return [...head, KIND, 'i', PROTOCOL, body.protocol, DATA, JSON.stringify(body.invalidation)];
    case 'streams':
      return [...head, KIND, 's', PROTOCOL, body.protocol, DATA, JSON.stringify(body.up)];
  }
}

/** Reads an entry's fields as XREAD returns them (a flat name, value list). */
export function decodeEntry(fields: readonly string[]): BusEntry {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i]!, fields[i + 1]!);
  const seqText = map.get(SEQ_FIELD);
  const seq = seqText !== undefined && /^\d{1,16}$/.test(seqText) && Number.isSafeInteger(Number(seqText)) ? Number(seqText) : null;
  return { seq, message: readMessage(map) };
}

function readMessage(map: ReadonlyMap<string, string>): BusMessage | null {
  const origin = map.get(ORIGIN);
  const sentAt = Number(map.get(SENT_AT));
  if (map.get(VERSION) !== FORMAT || origin === undefined || !Number.isFinite(sentAt)) return null;
  switch (map.get(KIND)) {
    case 'b':
      return { origin, sentAt, body: { kind: 'beat' } };
    case 'i': {
      const protocol = readProtocol(map.get(PROTOCOL));
      const invalidation = readInvalidation(map.get(DATA));
      return protocol === null || invalidation === null ? null : { origin, sentAt, body: { kind: 'invalidation', protocol, invalidation } };
    }
    case 's': {
      const protocol = readProtocol(map.get(PROTOCOL));
      const up = readJson(map.get(DATA));
      return protocol === null || !isStrings(up) ? null : { origin, sentAt, body: { kind: 'streams', protocol, up } };
    }
    default:
      return null;
  }
}

function readProtocol(text: string | undefined): Protocol | null {
  return text === 'postgres' || text === 'mysql' ? text : null;
}

function readJson(json: string | undefined): unknown {
  try {
    return JSON.parse(json ?? '');
  } catch {
    return undefined;
  }
}

function readInvalidation(json: string | undefined): Invalidation | null {
  const v = readJson(json);
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  switch (o.scope) {
    case 'tags':
      if (!isStrings(o.tags) || !(o.tables === 'database' || isStrings(o.tables)) || !(o.catalog === null || typeof o.catalog === 'string')) return null;
      return { scope: 'tags', tags: o.tags, tables: o.tables, catalog: o.catalog };
    case 'all':
      return typeof o.catalog === 'boolean' ? { scope: 'all', catalog: o.catalog } : null;
    case 'fingerprint':
      return typeof o.fingerprint === 'string' ? { scope: 'fingerprint', fingerprint: o.fingerprint } : null;
    default:
      return null;
  }
}

function isStrings(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === 'string');
}
