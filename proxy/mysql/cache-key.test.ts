// MySQL cache keys never collide across what changes a result: the session context (user, role,
// database, settings, the capabilities that shape result bytes, a private session), the command
// (COM_QUERY or COM_STMT_EXECUTE), the statement, parameter types, the null bitmap and values.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMetrics } from '../../telemetry/metrics.js';
import { loadConfig } from '../../config/settings.js';
import { contextPrefix, entryKey, executeKey, keyedCapabilities, queryKey } from './cache-key.js';
import { Capability, Command, MariaDbCapability } from './codes.js';
import { encodePacket } from './packets.js';
import type { MySqlProbeResult } from '../../invalidation/mysql-probe.js';
import { MySqlCache } from './mysql-cache.js';
import { PreparedStatements } from './prepared-statements.js';

const LONGLONG = 0x08;
const VAR_STRING = 0xfd;
const TEXT = 'SELECT v FROM t WHERE id = ?';

/** A COM_STMT_EXECUTE payload of statement 1 with one parameter of `type`, sent with its type. */
function execute(type: number, value: Buffer | null): Buffer {
  const head = Buffer.alloc(10);
  head[0] = 0x17;
  head.writeUInt32LE(1, 1);
  head.writeUInt32LE(1, 6);
  const types = Buffer.alloc(2);
  types.writeUInt16LE(type);
  return Buffer.concat([head, Buffer.from([value === null ? 1 : 0]), Buffer.from([1]), types, value ?? Buffer.alloc(0)]);
}

/** The key of a command `command` carrying `sql`'s bytes (a string: UTF-8; a Buffer: as is). */
function commandKey(command: number, sql: string | Buffer): string {
  const packet = encodePacket(Buffer.concat([Buffer.from([command]), typeof sql === 'string' ? Buffer.from(sql) : sql]), 0);
  return queryKey(packet, 0, packet.length);
}

/** The key of a COM_QUERY of `sql`. */
function textKey(sql: string | Buffer): string {
  return commandKey(Command.Query, sql);
}

/** The key of executing `payload` of the statement `text` prepared (as the relay reads its COM_STMT_PREPARE). */
function executionKey(text: string | Buffer, payload: Buffer): string {
  const s = new PreparedStatements();
  const ok = Buffer.alloc(12);
  ok.writeUInt32LE(1, 1);
  ok.writeUInt16LE(1, 7);
  s.prepared(commandKey(Command.StmtPrepare, text), ok, 0, ok.length);
  return s.execution(payload)!.keySuffix!;
}

const int64 = (n: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(n);
  return b;
};
const lenencString = (s: string): Buffer => Buffer.concat([Buffer.from([s.length]), Buffer.from(s)]);

test('different users, roles, databases, settings, capabilities and private sessions give different prefixes', () => {
  const cache = new MySqlCache(loadConfig([], {}).config, createMetrics());
  const probe = (contextText: string, database = 'db'): MySqlProbeResult => ({ database, contextText, sqlMode: '', fanOut: null, checks: [] });
  const caps = keyedCapabilities(Capability.Protocol41, 0);
  const variants = [
    cache.context(probe('db\u0000app@%\u0000app@h\u0000\u0001\u0000utf8mb4'), caps, null)!,
    cache.context(probe('db\u0000other@%\u0000other@h\u0000\u0001\u0000utf8mb4'), caps, null)!,
    cache.context(probe('db\u0000app@%\u0000app@h\u0000`r`@`%`\u0000utf8mb4'), caps, null)!,
    cache.context(probe('db2\u0000app@%\u0000app@h\u0000\u0001\u0000utf8mb4', 'db2'), caps, null)!,
    cache.context(probe('db\u0000app@%\u0000app@h\u0000\u0001\u0000latin1'), caps, null)!,
    cache.context(probe('db\u0000app@%\u0000app@h\u0000\u0001\u0000utf8mb4'), keyedCapabilities(Capability.Protocol41 | Capability.DeprecateEof, 0), null)!,
    cache.context(probe('db\u0000app@%\u0000app@h\u0000\u0001\u0000utf8mb4'), keyedCapabilities(Capability.Protocol41, MariaDbCapability.ExtendedMetadata), null)!,
    cache.context(probe('db\u0000app@%\u0000app@h\u0000\u0001\u0000utf8mb4'), caps, 7)!,
  ];
  const prefixes = variants.map((c) => c.keyPrefix);
  assert.is(new Set(prefixes).size, prefixes.length);
  assert.is(cache.context(probe('db\u0000app@%\u0000app@h\u0000\u0001\u0000utf8mb4'), caps, null)!.keyPrefix, prefixes[0], 'sessions in the same state share');
  // A prefix ends with a separator no id contains: context 1 never reads context 11's keys.
  assert.is.not(entryKey(contextPrefix(1), textKey('1')), entryKey(contextPrefix(11), textKey('')));
});

test('only the capabilities that shape result bytes are part of the context', () => {
  const base = keyedCapabilities(Capability.Protocol41, 0);
  for (const flag of [Capability.DeprecateEof, Capability.SessionTrack, Capability.LongPassword]) {
    assert.is.not(keyedCapabilities(Capability.Protocol41 | flag, 0), base);
  }
  assert.is.not(keyedCapabilities(Capability.Protocol41, MariaDbCapability.CacheMetadata), base);
  assert.is(keyedCapabilities(Capability.Protocol41 | Capability.Compress | Capability.Ssl, 0), base, 'transport flags do not change result bytes');
});

test('a COM_QUERY and an execution of the same text differ; parameter types, nulls and values are part of the key', () => {
  const keys = [
    textKey(TEXT),
    executionKey(TEXT, execute(LONGLONG, int64(7n))),
    executionKey(TEXT, execute(LONGLONG, int64(8n))),
    executionKey(TEXT, execute(VAR_STRING, lenencString('7'))),
    executionKey(TEXT, execute(LONGLONG, null)),
    executionKey(TEXT, execute(VAR_STRING, null)),
    executionKey(TEXT + ' ', execute(LONGLONG, int64(7n))),
  ];
  assert.is(new Set(keys).size, keys.length);
  assert.is(executionKey(TEXT, execute(LONGLONG, int64(7n))), keys[1], 'the same execution, the same key');
});

test('parts are length-prefixed: no text, bitmap or types run into the next part', () => {
  // Without lengths, a NUL in the text could pass for the separator before the bitmap.
  assert.is.not(executeKey('a\u0000b', '', '', ''), executeKey('a', 'b', '', ''));
  assert.is.not(executeKey('a', '\u0001', '\u0008\u0000', 'x'), executeKey('a', '\u0001\u0008', '\u0000', 'x'));
  assert.is.not(executeKey('a', '', '', ''), executeKey('', '', '', 'a'));
  assert.is.not(textKey('E1:a0:0:'), executeKey('a', '', '', ''));
});

test('statements that differ in any byte have different keys, whatever their UTF-8 decodings', () => {
  // A latin1 client's 'é' and 'è' (0xE9, 0xE8) are invalid UTF-8 alone: both decode to U+FFFD.
  const e = Buffer.from("SELECT v FROM t WHERE name = '\u00e9'", 'latin1');
  const è = Buffer.from("SELECT v FROM t WHERE name = '\u00e8'", 'latin1');
  assert.is(e.toString('utf8'), è.toString('utf8'));
  assert.is.not(textKey(e), textKey(è));
  assert.is(textKey(e), textKey(Buffer.from(e)), 'the same bytes, the same key');
  // Prepared statements too: their executions are keyed by the statement's bytes.
  const params = execute(LONGLONG, int64(1n));
  assert.is.not(executionKey(e, params), executionKey(è, params));
  assert.is(executionKey(e, params), executionKey(Buffer.from(e), params));
});

test('a statement split over physical packets has the key of its whole payload', () => {
  const sql = Buffer.alloc(0xffffff + 10, 'a');
  const packet = encodePacket(Buffer.concat([Buffer.from([Command.Query]), sql]), 0);
  assert.is(queryKey(packet, 0, packet.length), String.fromCharCode(Command.Query) + sql.toString('latin1'));
});

test.run();
