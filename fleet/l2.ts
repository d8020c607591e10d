// The second tier (`--l2 on`): results filled by any proxy of the fleet, kept in Redis, so a proxy
// that misses in its own memory (new, restarted, evicted) can answer from the fleet's before it
// goes to the database. It only reads and writes Redis; the relays decide when to ask it.
//
// Correctness rests on the bus (bus.ts): every invalidation's publish also records, per tag it
// drops, the bus entry's number in the tag table (scripts.ts PUBLISH), in the same step as the
// entry is appended and before the write's acknowledgement leaves the writing proxy. A fill records
// `asOf`, the last bus entry its proxy had applied when the fill was sent: every write acknowledged
// before that is in the fill's snapshot. An entry is served only when no tag it depends on was
// bumped after its `asOf`, and its era is the current one: the run id of the Redis server holding the tag
// table. Redis replicates asynchronously, so a failover may lose the last tag bumps while entries on
// other nodes (a Cluster) survive; a restart without persistence loses the table. Both change the
// run id, and every entry filled before is void. A proxy that merely reconnects changes nothing:
// a new proxy warms from what the fleet filled.
//
// On one Redis node a lookup is one round trip: the entry is read and checked in one script
// (scripts.ts L2_GET), atomically. In a Cluster the entry and the tag table live in different slots,
// so the entry is read first and checked after (L2_CHECK), no earlier than the read.
//
// Redis's memory bounds the tier: entries carry a TTL and nothing else does, so `maxmemory` with
// `volatile-lru` evicts entries and never the bus's stream, counter or tag table (docs/deploy.md).
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Protocol } from '../telemetry/metrics.js';
import type { FleetKeys } from './keys.js';
import { dependencyFields, decodeL2Entry, encodeL2Entry, type L2Entry } from './l2-entry.js';
import type { RedisConnection } from './redis-connection.js';
import { L2_CHECK, L2_ERA, L2_GET, runScript, runScriptForBytes } from './scripts.js';

/** Where a fill stood when it was sent; null from fillToken() while the bus is not live. */
export interface L2FillToken {
  readonly era: string;
  readonly asOf: number;
}

/** A result to keep in the second tier. */
export interface L2Fill {
  readonly bytes: Buffer;
  readonly tags: readonly string[];
  readonly fingerprint: string;
  readonly ttlMs: number;
}

export interface L2Counts {
  hits: number;
  misses: number;
  /** Found but voided by a later invalidation, a new era or its TTL. */
  stale: number;
  /** Lookups that failed (Redis slow or gone): counted as misses too. */
  errors: number;
  writes: number;
  bytesWritten: number;
  bytesServed: number;
}

/** What the tier needs of the bus. */
export interface L2Bus {
  readonly isLive: boolean;
  /** The last bus entry applied. */
  position(): number;
}

export class SecondTier {
  private era = '';
  readonly counts: L2Counts = { hits: 0, misses: 0, stale: 0, errors: 0, writes: 0, bytesWritten: 0, bytesServed: 0 };

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: FleetKeys,
    private readonly bus: L2Bus,
    private readonly log: Logger,
    private readonly maxEntryBytes: number,
  ) {}

  /** Reads the era (bus.ts onCaughtUp: the Redis server may be another one than before). */
  async readEra(): Promise<void> {
    this.era = await runScript(this.redis, L2_ERA, [this.keys.l2Tags], []) as string;
  }

  /** Taken when a fill is sent; null (no second-tier write) while the bus is not live. */
  fillToken(): L2FillToken | null {
    if (!this.bus.isLive || this.era === '') return null;
    return { era: this.era, asOf: this.bus.position() };
  }

  /** Keeps a completed fill; fire and forget (a failed write only costs a later miss). */
  put(protocol: Protocol, key: string, token: L2FillToken, fill: L2Fill): void {
    if (fill.ttlMs <= 0 || fill.bytes.length > this.maxEntryBytes) return;
    const data = encodeL2Entry(protocol, { ...token, key, expiresAt: Date.now() + fill.ttlMs, tags: fill.tags, fingerprint: fill.fingerprint, bytes: fill.bytes });
    this.counts.writes++;
    this.counts.bytesWritten += data.length;
    this.redis.call('SET', this.entryKey(protocol, key), data, 'PX', Math.ceil(fill.ttlMs)).catch((err: Error) => {
      this.log.debug({ err: err.message }, 'l2: write failed');
    });
  }

  /**
   * The fleet's entry for `key`, if one is current: read and checked against the tag table.
   * Null on a miss, a void entry, or any trouble with Redis (the caller goes to the database).
   */
  async get(protocol: Protocol, key: string): Promise<L2Entry | null> {
    if (!this.bus.isLive) return null;
    try {
      return this.redis.isCluster ? await this.readThenCheck(protocol, key) : await this.readAndCheck(protocol, key);
    } catch (err) {
      this.counts.errors++;
      this.counts.misses++;
      this.log.debug({ err: (err as Error).message }, 'l2: lookup failed');
      return null;
    }
  }

  /** One node: one script reads the entry and checks it (L2_GET); one round trip. */
  private async readAndCheck(protocol: Protocol, key: string): Promise<L2Entry | null> {
    const [status, era, data] = await runScriptForBytes(this.redis, L2_GET, [this.entryKey(protocol, key), this.keys.l2Tags], []) as [number, Buffer?, Buffer?];
    // The server changed since the bus caught up (its fence is on the way): fills use the new era.
    if (era !== undefined) this.era = era.toString('latin1');
    if (status === 0) return this.miss();
    if (status !== 1) return this.void();
    return this.served(key, decodeL2Entry(data!));
  }

  /** A Cluster: the entry and the tag table are in different slots; read, then check (L2_CHECK). */
  private async readThenCheck(protocol: Protocol, key: string): Promise<L2Entry | null> {
    const data = await this.redis.callBuffer('GET', this.entryKey(protocol, key)) as Buffer | null;
    const entry = data === null ? null : decodeL2Entry(data);
    if (entry === null || entry.key !== key) return this.miss();
    if (entry.expiresAt <= Date.now()) return this.void();
    const [fresh, era] = await runScript(this.redis, L2_CHECK, [this.keys.l2Tags], [entry.era, entry.asOf, ...dependencyFields(protocol, entry)]) as [number, string];
    this.era = era;
    if (fresh !== 1) return this.void();
    return this.served(key, entry);
  }

  /** A fresh entry's last checks: ours (not another key of the same hash) and not past its TTL. */
  private served(key: string, entry: L2Entry | null): L2Entry | null {
    if (entry === null || entry.key !== key) return this.miss();
    if (entry.expiresAt <= Date.now()) return this.void();
    this.counts.hits++;
    this.counts.bytesServed += entry.bytes.length;
    return entry;
  }

  private miss(): null {
    this.counts.misses++;
    return null;
  }

  private void(): null {
    this.counts.stale++;
    this.counts.misses++;
    return null;
  }

  private entryKey(protocol: Protocol, key: string): string {
    return this.keys.l2Entry(protocol, createHash('sha256').update(key, 'latin1').digest('base64url'));
  }
}
