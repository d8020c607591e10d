// The fleet's Lua scripts. Each runs atomically in Redis; the keys of one script share a Cluster
// hash slot (the `{prefix}` hash tag of keys.ts). EVAL rather than EVALSHA: the script text is a
// few hundred bytes, Redis keeps it compiled by its hash, and a server that lost its script cache
// (restart, failover) needs no NOSCRIPT round trip, which would delay a publish past the write's
// acknowledgement.
import type { RedisConnection } from './redis-connection.js';

/**
 * KEYS: stream, sequence counter, the second tier's tag table. ARGV: approximate max length, the
 * number n of tag-table fields, those n fields, then the entry's fields. Each field gets the
 * entry's number (l2-entry.ts: what an entry of the second tier depends on), in the same step as
 * the entry is appended. Returns the entry id.
 */
export const PUBLISH = `
local seq = redis.call('INCR', KEYS[2])
local n = tonumber(ARGV[2])
for i = 3, 2 + n do redis.call('HSET', KEYS[3], ARGV[i], seq) end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 's', seq, unpack(ARGV, 3 + n))`;

/**
 * The second tier's era: the run id of the Redis server that holds the tag table. It changes when
 * that server restarts or a replica takes over, exactly when tag bumps may have been lost.
 * KEYS: the tag table (a Cluster runs the script on its node). Returns the era.
 */
export const L2_ERA = `
return string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')`;

/**
 * KEYS: the second tier's tag table. ARGV: an entry's era, its asOf, then the fields it depends on.
 * Returns {1 when the era is current and no field was bumped after asOf, else 0; the current era}.
 */
export const L2_CHECK = `
local era = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
if era ~= ARGV[1] then return {0, era} end
local seqs = redis.call('HMGET', KEYS[1], unpack(ARGV, 3))
local asOf = tonumber(ARGV[2])
for i = 1, #seqs do
  if seqs[i] and tonumber(seqs[i]) > asOf then return {0, era} end
end
return {1, era}`;

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

/**
 * KEYS: the wanted set of a protocol's change streams. ARGV: target, most targets, expiry ms. Adds
 * the target unless the set is full; the set goes when nobody asked for that long.
 */
export const WANT = `
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 and redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;
