// The fleet's Lua scripts. Each runs atomically in Redis; the keys of one script share a Cluster
// hash slot (the `{prefix}` hash tag of keys.ts). EVAL rather than EVALSHA: the script text is a
// few hundred bytes, Redis keeps it compiled by its hash, and a server that lost its script cache
// (restart, failover) needs no NOSCRIPT round trip, which would delay a publish past the write's
// acknowledgement.
import { L2_CHECK_FIELDS_LUA } from './l2-entry.js';
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
 * Lua: `l2_fresh(tags, era, asOf, fields, from)` is 1 when `era` is the current one and no field of
 * `fields` from index `from` on was bumped in the tag table `tags` after `asOf`, else 0; and the
 * current era. The one check both L2_CHECK and L2_GET make.
 */
const L2_FRESH_LUA = `
local function l2_fresh(tags, era, asOf, fields, from)
  local current = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
  if current ~= era then return 0, current end
  local seqs = redis.call('HMGET', tags, unpack(fields, from))
  for i = 1, #seqs do
    if seqs[i] and tonumber(seqs[i]) > tonumber(asOf) then return 0, current end
  end
  return 1, current
end`;

/**
 * KEYS: the second tier's tag table. ARGV: an entry's era, its asOf, then the fields it depends on.
 * Returns {1 when the era is current and no field was bumped after asOf, else 0; the current era}.
 */
export const L2_CHECK = `${L2_FRESH_LUA}
local fresh, era = l2_fresh(KEYS[1], ARGV[1], ARGV[2], ARGV, 3)
return {fresh, era}`;

/**
 * The second tier's lookup in one round trip, on a single Redis node (a Cluster keeps an entry and
 * the tag table in different slots: there GET, then L2_CHECK). KEYS: the entry, the tag table.
 * Reads the entry and checks it as L2_CHECK does, with the era, asOf and dependency fields the entry
 * carries (l2-entry.ts), in one atomic step. Returns {0} when there is no entry or one of another
 * format, {2, era} when it is void (another era, or a field bumped after its asOf), {1, era, entry}
 * when it is fresh.
 */
export const L2_GET = `${L2_CHECK_FIELDS_LUA}${L2_FRESH_LUA}
local data = redis.call('GET', KEYS[1])
if not data then return {0} end
local fields = l2_check_fields(data)
if not fields then return {0} end
local fresh, era = l2_fresh(KEYS[2], fields[1], fields[2], fields, 3)
if fresh ~= 1 then return {2, era} end
return {1, era, data}`;

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

/** runScript for a script that returns bytes: its strings come back as Buffers. */
export function runScriptForBytes(redis: RedisConnection, script: string, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
  return redis.callBuffer('EVAL', script, keys.length, ...keys, ...args);
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
