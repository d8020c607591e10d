// The request ledger: the fill lifecycle (stored on a clean reply, dropped on an error, a poisoned
// capture or a write after its token), the accounting of every request, and a block's writes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMetrics } from '../telemetry/metrics.js';
import { loadConfig } from '../config/settings.js';
import { ProbePurpose } from './cache-router.js';
import { PgCache, type StatementInfo } from './pg/pg-cache.js';
import { BlockWrites, RequestLedger, WriteScope, forwardAction, type CacheAction, type OutstandingRequest } from './request-ledger.js';
import { tableTag } from '../cache/tags.js';

const config = loadConfig(['--cache-ttl', '0'], {}).config;
type Request = OutstandingRequest<StatementInfo> & { errored: boolean };

async function setUp(): Promise<{ cache: PgCache; ledger: RequestLedger<StatementInfo, Request> }> {
  const cache = await PgCache.create(config, createMetrics());
  return { cache, ledger: new RequestLedger<StatementInfo, Request>(cache, { label: { remote: 'test', user: null, database: null } }) };
}

function request(action: CacheAction<StatementInfo>, info: StatementInfo | null): Request {
  return { action, startedAt: performance.now(), info, errored: false };
}

const TAGS = [tableTag('db', '', 'items')];

test('a fill is stored once complete, under its prefix and key, with its tags', async () => {
  const { cache, ledger } = await setUp();
  const info = cache.info('SELECT * FROM items');
  const fill = ledger.fillAction('Qkey', false);
  const r = ledger.push(request(fill, info));
  fill.capture.parts.push(Buffer.from('reply'));
  fill.capture.size = 5;
  assert.is(ledger.shift(), r);
  ledger.completed(r, { cacheable: true, reason: null });
  assert.is(cache.store.get('1\u0001Qkey'), undefined, 'not before storeFills');
  ledger.storeFills(() => ({ keyPrefix: '1\u0001', sharedPrefix: null, parts: fill.capture.parts, tags: TAGS }));
  assert.equal(cache.store.get('1\u0001Qkey')?.bytes, Buffer.from('reply'));
  assert.equal([cache.stats.misses, cache.stats.bypasses], [1, 0]);
  cache.invalidate('db', ['items'], WriteScope.Tables, false);
  assert.is(cache.store.get('1\u0001Qkey'), undefined, 'tagged');
});

test('an errored, poisoned, or refused fill is not stored; a write after the token refuses it', async () => {
  const { cache, ledger } = await setUp();
  const info = cache.info('SELECT * FROM items');
  const fills = ['a', 'b', 'c', 'd'].map((k) => ledger.fillAction(k, false));
  const requests = fills.map((f) => ledger.push(request(f, info)));
  for (const f of fills) f.capture.parts.push(Buffer.from('x'));
  requests[0]!.errored = true;
  fills[1]!.capture.poisoned = true;
  cache.invalidate('db', ['items'], WriteScope.Tables, false); // after every token: d is refused
  for (let i = 0; i < requests.length; i++) ledger.completed(ledger.shift()!, undefined);
  const asked: string[] = [];
  ledger.storeFills((_r, fill) => (asked.push(fill.keySuffix), fill.keySuffix === 'c' ? null : { keyPrefix: '', sharedPrefix: null, parts: fill.capture.parts, tags: TAGS }));
  assert.equal(asked, ['c', 'd'], 'errored and poisoned fills are not even asked');
  for (const k of ['a', 'b', 'c', 'd']) assert.is(cache.store.get(k), undefined, k);
  assert.is(fills[3]!.capture.parts.length, 0, 'captured bytes are let go');
});

test('accounting: a fill whose decision turned out not cacheable is a bypass; writes, misses in blocks, bypasses', async () => {
  const { cache, ledger } = await setUp();
  const read = cache.info('SELECT * FROM items');
  const write = cache.info('UPDATE items SET a = 1');
  ledger.completed(request(ledger.fillAction('k', false), read), { cacheable: false, reason: 'function' });
  ledger.completed(request(forwardAction('in-transaction', true), read), undefined);
  ledger.completed(request(forwardAction('not-cacheable', false), write), undefined);
  ledger.completed(request(forwardAction('pipelined', false), read), undefined);
  ledger.completed(request(forwardAction('not-cacheable', false), null), undefined);
  ledger.completed(request(forwardAction(null, false), null), undefined);
  ledger.completed(request(ledger.probeAction(ProbePurpose.Catalog, read, 0), null), undefined);
  const s = cache.stats;
  assert.equal([s.hits, s.misses, s.writes, s.bypasses], [0, 1, 1, 3]);
  assert.equal([...s.bypassReasons().keys()].sort(), ['function', 'not-cacheable', 'pipelined']);
  ledger.answered(read.identity, performance.now());
  assert.is(s.hits, 1);
});

test('quiet: nothing outstanding but the identity check', async () => {
  const { cache, ledger } = await setUp();
  assert.ok(ledger.quiet);
  ledger.push(request(ledger.probeAction(ProbePurpose.Identity, null, 0), null));
  assert.ok(ledger.quiet);
  ledger.push(request(forwardAction('pipelined', false), cache.info('SELECT 1')));
  assert.not.ok(ledger.quiet);
  ledger.shift();
  ledger.shift();
  ledger.push(request(ledger.probeAction(ProbePurpose.Catalog, null, 0), null));
  assert.not.ok(ledger.quiet, 'a catalog probe is outstanding work');
});

test('block writes: invalidated at commit with the widest scope, forgotten at rollback', () => {
  const w = new BlockWrites();
  const seen: unknown[] = [];
  const invalidate = (tables: ReadonlySet<string>, scope: WriteScope, catalog: boolean) => void seen.push([[...tables], scope, catalog]);
  w.add(['a'], WriteScope.Tables, false);
  w.add(['b'], WriteScope.Tables, false);
  w.commit(invalidate);
  w.commit(invalidate);
  assert.equal(seen, [[['a', 'b'], WriteScope.Tables, false]], 'committed once; nothing left after');
  w.add(['a'], WriteScope.Tables, false);
  w.add([], WriteScope.Database, true);
  w.add([], WriteScope.Tables, false);
  assert.not.ok(w.empty);
  w.commit(invalidate);
  assert.equal(seen[1], [['a'], WriteScope.Database, true]);
  w.add(['c'], WriteScope.Server, false);
  w.discard();
  assert.ok(w.empty);
  w.commit(invalidate);
  assert.is(seen.length, 2, 'a rollback invalidates nothing');
});

test('a fill keyed under its prefix is a flight others may wait for, settled however it ends', async () => {
  const { cache, ledger } = await setUp();
  const info = cache.info('SELECT * FROM items');
  const ends: string[] = [];
  const waitFor = (key: string) => cache.flights.join(key, (end) => ends.push(`${key}:${end}`));
  const stored = ledger.fillAction('a', false, 'p\u0001');
  const refused = ledger.fillAction('b', false, 'p\u0001');
  const bypassed = ledger.fillAction('c', false, 'p\u0001');
  const abandoned = ledger.fillAction('d', false, 'p\u0001');
  assert.is(ledger.fillAction('e', true, 'p\u0001').flight, null, 'not inside a block');
  assert.is(ledger.fillAction('f', false).flight, null, 'not without a prefix');
  for (const k of ['a', 'b', 'c', 'd']) assert.ok(typeof waitFor(`p\u0001${k}`) === 'object', k);
  for (const f of [stored, refused, bypassed]) {
    f.capture.parts.push(Buffer.from('x'));
    f.capture.size = 1;
    ledger.completed(request(f, info), f === bypassed ? { cacheable: false, reason: 'function' } : undefined);
  }
  ledger.push(request(abandoned, info));
  ledger.storeFills((_r, fill) => (fill === refused ? null : { keyPrefix: 'p\u0001', sharedPrefix: null, parts: fill.capture.parts, tags: TAGS }));
  ledger.abandon();
  await new Promise((resolve) => setImmediate(resolve));
  // FlightEnd: 0 stored, 1 not stored.
  assert.equal(ends.sort(), ['p\u0001a:0', 'p\u0001b:1', 'p\u0001c:1', 'p\u0001d:1']);
  assert.is(cache.flights.size, 0);
});

test.run();
