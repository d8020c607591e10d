// The fleet's Lua scripts. Each runs atomically in Redis; the keys of one script share a Cluster
// hash slot (the `{prefix}` hash tag of keys.ts). EVAL rather than EVALSHA: the script text is a
// few hundred bytes, Redis keeps it compiled by its hash, and a server that lost its script cache
// (restart, failover) needs no NOSCRIPT round trip, which would delay a publish past the write's
// acknowledgement.
import type { RedisConnection } from './redis-connection.js';

/** KEYS: stream, sequence counter. ARGV: approximate max length, then the entry's fields. Returns the entry id. */
export const PUBLISH = `
local seq = redis.call('INCR', KEYS[2])
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 's', seq, unpack(ARGV, 2))`;

/**
 * KEYS: stream, sequence counter. Returns {last entry id, its sequence number}: where a reader
 * starts so that the next entry it reads must carry the next number ('0-0' and the counter for an
 * empty stream).
 */
export const POSITION = `
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local seq = redis.call('GET', KEYS[2]) or '0'
if last[1] then return {last[1][1], seq} end
return {'0-0', seq}`;

/** KEYS: lease. ARGV: holder, ttl ms. Extends the lease only while `holder` holds it: 1, else 0. */
export const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

/** KEYS: lease. ARGV: holder. Ends the lease only while `holder` holds it: 1, else 0. */
export const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export function runScript(redis: RedisConnection, script: string, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
  return redis.call('EVAL', script, keys.length, ...keys, ...args);
}
