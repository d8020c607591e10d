// PostgreSQL cache keys never collide across what changes a result: the session context (user,
// settings, database), the request's form (simple or extended, with which Describe), result
// formats, parameter types and values.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { serialize } from 'pg-protocol';
import { createMetrics } from '../../telemetry/metrics.js';
import { loadConfig } from '../../config/settings.js';
import type { ProbeResult } from '../../invalidation/pg-probe.js';
import { cacheableBatch, type Held } from './cacheable-batch.js';
import { contextPrefix, describedKeys, entryKey, executionOf, extendedKey, simpleQueryKey } from './cache-key.js';
import { PgCache } from './pg-cache.js';

function held(...messages: Buffer[]): Held[] {
  return messages.map((m) => ({ code: m[0]!, buf: m, start: 0, end: m.length }));
}

const none = new Map();
const text = 'SELECT v FROM t WHERE id = $1';

function batchKey(parse: Buffer, bind: Buffer, describe: Buffer | null = serialize.describe({ type: 'P' })): string {
  const messages = [parse, bind, ...(describe === null ? [] : [describe]), serialize.execute()];
  return cacheableBatch(held(...messages), none)!.keySuffix;
}

test('different contexts (user, settings, database, reported parameters) give different prefixes', async () => {
  const cache = await PgCache.create(loadConfig([], {}).config, createMetrics());
  const probe: ProbeResult = { database: 'db', currentUser: 'app', sessionUser: 'app', settings: 'public', relations: [], functions: [], hasTempRelations: false, fanOutTables: [] };
  const session = { id: 1, reported: 'UTF8', startupKey: '', ownContext: false };
  const variants = [
    cache.context(probe, session)!,
    cache.context({ ...probe, currentUser: 'other' }, session)!,
    cache.context({ ...probe, settings: 'other_schema' }, session)!,
    cache.context({ ...probe, database: 'db2' }, session)!,
    cache.context(probe, { ...session, reported: 'LATIN1' })!,
    cache.context(probe, { ...session, ownContext: true })!,
  ];
  const prefixes = variants.map((c) => c.keyPrefix);
  assert.is(new Set(prefixes).size, prefixes.length);
  assert.is(cache.context(probe, { ...session, id: 2 })!.keyPrefix, prefixes[0], 'sessions in the same state share');
  // A prefix ends with a separator no id contains: context 1 never reads context 11's keys.
  assert.is.not(entryKey(contextPrefix(1), simpleQueryKey('1')), entryKey(contextPrefix(11), simpleQueryKey('')));
});

test('simple and extended keys of the same text differ; so do the Describe kinds', () => {
  const parse = serialize.parse({ text });
  const bind = serialize.bind({ values: ['7'] });
  const keys = [
    simpleQueryKey(text),
    batchKey(parse, bind),
    batchKey(parse, bind, serialize.describe({ type: 'S' })),
    batchKey(parse, bind, null),
  ];
  assert.is(new Set(keys).size, keys.length);
});

test('result formats, parameter types, parameter values and their formats are part of the key', () => {
  const parse = serialize.parse({ text });
  const keys = [
    batchKey(parse, serialize.bind({ values: ['7'] })),
    batchKey(parse, serialize.bind({ values: ['8'] })),
    batchKey(parse, serialize.bind({ values: ['7'], binary: true })),
    batchKey(serialize.parse({ text, types: [23] }), serialize.bind({ values: ['7'] })),
    batchKey(serialize.parse({ text, types: [25] }), serialize.bind({ values: ['7'] })),
    batchKey(parse, serialize.bind({ values: [null] })),
    batchKey(parse, serialize.bind({ values: [''] })),
  ];
  assert.is(new Set(keys).size, keys.length);
});

test('a batch without Describe finds the described executions of the same statement and values', () => {
  const parse = serialize.parse({ text });
  const bind = serialize.bind({ values: ['7'] });
  const without = cacheableBatch(held(parse, bind, serialize.execute()), none)!;
  assert.equal(without.describedKeySuffixes, [batchKey(parse, bind), batchKey(parse, bind, serialize.describe({ type: 'S' }))]);
  assert.equal(describedKeys(executionOf('s', 'b')), [extendedKey('P', executionOf('s', 'b')), extendedKey('S', executionOf('s', 'b'))]);
  assert.equal(cacheableBatch(held(parse, bind, serialize.describe({ type: 'P' }), serialize.execute()), none)!.describedKeySuffixes, []);
});

test.run();
