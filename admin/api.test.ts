import { request } from 'undici';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { databaseTag, dependencyTags, tableTag } from '../cache/tags.js';
import { loadConfig } from '../config/settings.js';
import { ResultCache, type Invalidation, type RuledStatement } from '../proxy/result-cache.js';
import { AdminApi, MAX_BODY_BYTES, parseFlushRequest, redactedConfig, tableUsage, tokenMatches, type CachedResults } from './api.js';
import { createMetrics, type Protocol } from '../telemetry/metrics.js';

import { AdminServer } from './server.js';

const TOKEN = 's3cret-token';
const config = loadConfig(['--admin-token', TOKEN, '--cache-ttl', '0'], {}).config;
const metrics = createMetrics();

/** The cache service without a protocol's analysis: the API only drives its store, stats and invalidations. */
class PlainCache extends ResultCache<RuledStatement> {
  constructor() {
    super('postgres', config, metrics);
  }
  protected catalogChanged(): void {}
}
const cache = new PlainCache();
const { store, stats } = cache;
/** What the flushes told a fleet's other proxies. */
const published: Invalidation[] = [];
cache.joinFleet({ publish: (_protocol, invalidation) => void published.push(invalidation) }, null);
const caches = new Map<Protocol, CachedResults>([['postgres', cache]]);
const admin = new AdminServer(metrics, { api: new AdminApi(caches, () => config), token: TOKEN });
let base = '';

const users = stats.identify('fp-users', 'SELECT * FROM users WHERE id = $1', ['users']);
const orders = stats.identify('fp-orders', 'SELECT * FROM orders JOIN users USING (user_id)', ['orders', 'users']);

function fill(): void {
  for (let i = 0; i < 3; i++) {
    store.set(`u${i}`, Buffer.alloc(100), { identity: users }, { token: store.startFill(), tags: dependencyTags('app', [{ database: 'app', schema: '', table: 'users' }]) });
  }
  store.set('o0', Buffer.alloc(50), { identity: orders }, { token: store.startFill(), tags: dependencyTags('app', [{ database: 'app', schema: '', table: 'orders' }, { database: 'app', schema: '', table: 'users' }]) });
  store.set('other-db', Buffer.alloc(10), { identity: users }, { token: store.startFill(), tags: dependencyTags('shop', [{ database: 'shop', schema: '', table: 'users' }]) });
}

test.before(async () => {
  const at = await admin.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${at.port}`;
  for (let i = 0; i < 5; i++) stats.hit(users, 0.0001);
  stats.miss(users, 0.002);
  stats.hit(orders, 0.0001);
  stats.miss(orders, 0.003);
  stats.miss(orders, 0.003);
});

test.after(async () => {
  await admin.close();
});

/** A body goes as JSON unless `headers` name another content-type. */
async function call(method: 'GET' | 'POST' | 'PUT', path: string, opts: { token?: string | null; body?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; json: any }> {
  const token = opts.token === undefined ? TOKEN : opts.token;
  const res = await request(`${base}${path}`, {
    method,
    headers: {
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...opts.headers,
    },
    body: opts.body,
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: text === '' ? null : JSON.parse(text) };
}

test('tokenMatches: only the exact bearer token', () => {
  assert.ok(tokenMatches('Bearer abc', 'abc'));
  assert.ok(tokenMatches('bearer  abc', 'abc'));
  assert.not.ok(tokenMatches('Bearer abcd', 'abc'));
  assert.not.ok(tokenMatches('Bearer ab', 'abc'));
  assert.not.ok(tokenMatches('abc', 'abc'));
  assert.not.ok(tokenMatches(undefined, 'abc'));
  assert.not.ok(tokenMatches('Basic abc', 'abc'));
});

test('parseFlushRequest: each form, and a 400 naming the problem otherwise', () => {
  assert.equal(parseFlushRequest({ all: true }), { kind: 'all', protocol: null });
  assert.equal(parseFlushRequest({ table: 't', database: 'd', protocol: 'mysql' }), { kind: 'table', protocol: 'mysql', database: 'd', table: 't' });
  assert.equal(parseFlushRequest({ database: 'd' }), { kind: 'database', protocol: null, database: 'd' });
  assert.equal(parseFlushRequest({ fingerprint: 'f' }), { kind: 'fingerprint', protocol: null, fingerprint: 'f' });
  for (const [body, message] of [
    [null, 'JSON object'], [[], 'JSON object'], [{}, 'exactly one'], [{ all: false }, '"all" must be true'],
    [{ all: true, fingerprint: 'f' }, 'exactly one'], [{ table: 't' }, 'needs its "database"'], [{ table: '', database: 'd' }, 'non-empty'],
    [{ all: true, protocol: 'oracle' }, 'protocol must be'], [{ all: true, tables: 'x' }, 'unknown field "tables"'],
  ] as const) {
    try {
      parseFlushRequest(body);
      assert.unreachable(JSON.stringify(body));
    } catch (err) {
      assert.is((err as { status?: number }).status, 400, JSON.stringify(body));
      assert.match((err as Error).message, message);
    }
  }
});

test('tableUsage counts entries and bytes per database and table, and stops at the limit', () => {
  fill();
  const usage = tableUsage(store.entriesByRecency(), 100);
  const find = (db: string, t: string) => usage.tables.find((u) => u.database === db && u.table === t);
  assert.is(usage.scanned, 5);
  assert.is(find('app', 'users')?.entries, 4);
  assert.is(find('app', 'orders')?.entries, 1);
  assert.is(find('shop', 'users')?.entries, 1);
  assert.ok(find('app', 'users')!.bytes > 4 * 50);
  assert.is(tableUsage(store.entriesByRecency(), 2).truncated, true);
});

test('an empty --admin-token is refused rather than guarding with an empty password', () => {
  assert.throws(() => loadConfig(['--admin-token='], {}), /--admin-token: must not be empty/);
  assert.is(loadConfig([], { SIDECACHE_ADMIN_TOKEN: 'from-env' }).config.adminToken, 'from-env');
});

test('redactedConfig hides the token and leaves the rest', () => {
  const shown = redactedConfig(config);
  assert.is(shown.adminToken, '(redacted)');
  assert.is(shown.cacheMaxBytes, config.cacheMaxBytes);
  assert.ok(Object.isFrozen(shown));
  assert.is(redactedConfig(loadConfig([], {}).config).adminToken, null);
  const fleet = redactedConfig(loadConfig(['--redis', 'redis://app:url-secret@127.0.0.1:1'], { SIDECACHE_REDIS_PASSWORD: 'env-secret' }).config);
  assert.equal([fleet.redis?.password, fleet.redisPassword, fleet.redis?.display], ['(redacted)', '(redacted)', 'redis://app@127.0.0.1:1']);
  assert.not.match(JSON.stringify(fleet), /secret/);
});

test('redactedConfig hides the change streams\' passwords wherever they were given', () => {
  const given = loadConfig(['--pg-upstream', 'postgres://db:5432', '--pg-cdc', 'postgres://repl:s3cret-pg@db:5432',
    '--mysql-upstream', 'mysql://db:3306', '--mysql-cdc', 'mysql://repl@db:3306'], { SIDECACHE_MYSQL_CDC_PASSWORD: 's3cret-my' }).config;
  const shown = JSON.stringify(redactedConfig(given));
  assert.not.match(shown, /s3cret/);
  assert.match(shown, /"pgCdc":\{"url":"postgres:\/\/repl@db:5432"/);
  assert.is(redactedConfig(given).mysqlCdc!.password, '(redacted)');
  assert.is(redactedConfig(given).mysqlCdcPassword, '(redacted)');
  const auth = redactedConfig(loadConfig(['--pg-upstream', 'postgres://db:5432', '--pg-auth-user', 'auth'], { SIDECACHE_PG_AUTH_PASSWORD: 's3cret-auth' }).config);
  assert.is(auth.pgAuthPassword, '(redacted)');
  assert.not.match(JSON.stringify(auth), /s3cret/);
});

test('without the right token: 401 JSON on /api/* and /stats; /metrics and /healthz stay open', async () => {
  for (const token of [null, 'wrong']) {
    for (const path of ['/api/queries', '/api/config', '/stats']) {
      const res = await call('GET', path, { token });
      assert.is(res.status, 401, `${path} ${token}`);
      assert.is(res.json.error, 'unauthorized');
    }
    const flush = await call('POST', '/api/flush', { token, body: '{"all":true}' });
    assert.is(flush.status, 401);
  }
  assert.ok(store.size > 0, 'an unauthorized flush dropped nothing');
  for (const path of ['/metrics', '/healthz']) {
    const res = await request(`${base}${path}`);
    assert.is(res.statusCode, 200, path);
    await res.body.dump();
  }
});

test('GET /api/queries lists the top fingerprints with latency, by hits or misses', async () => {
  const byHits = await call('GET', '/api/queries');
  assert.is(byHits.status, 200);
  assert.equal(byHits.json.queries.map((q: { fingerprint: string }) => q.fingerprint), ['fp-users', 'fp-orders']);
  const q = byHits.json.queries[0];
  assert.equal([q.hits, q.misses, q.hitRatio, q.tables], [5, 1, 5 / 6, ['users']]);
  assert.ok(Math.abs(q.meanMs.miss - 2) < 1e-9);
  const byMisses = await call('GET', '/api/queries?by=misses&top=1');
  assert.equal(byMisses.json.queries.map((x: { fingerprint: string }) => x.fingerprint), ['fp-orders']);
  assert.is((await call('GET', '/api/queries?protocol=mysql')).json.queries.length, 0);
  assert.is((await call('GET', '/api/queries?top=-1')).status, 400);
  assert.is((await call('GET', '/api/queries?by=latency')).status, 400);
  assert.is((await call('GET', '/api/queries?protocol=oracle')).status, 400);
});

test('GET /api/tables joins cached entries with per-table counts', async () => {
  const res = await call('GET', '/api/tables');
  assert.is(res.status, 200);
  const row = res.json.tables.find((t: { database: string; table: string }) => t.database === 'app' && t.table === 'users');
  assert.equal([row.protocol, row.entries, row.hits, row.misses], ['postgres', 4, 6, 3]);
  assert.is(res.json.scannedEntries, 5);
  assert.is(res.json.truncated, false);
});

test('POST /api/flush by table, by fingerprint, by database, then all', async () => {
  let res = await call('POST', '/api/flush', { body: '{"database":"app","table":"orders"}' });
  assert.equal([res.status, res.json.dropped], [200, 1]);
  assert.is(store.get('o0'), undefined);
  assert.ok(store.get('u0') !== undefined, 'other tables stay');
  res = await call('POST', '/api/flush', { body: '{"fingerprint":"fp-users","protocol":"postgres"}' });
  assert.equal(res.json, { dropped: 4, byProtocol: { postgres: 4 } });
  fill();
  res = await call('POST', '/api/flush', { body: '{"database":"shop"}' });
  assert.is(res.json.dropped, 1);
  res = await call('POST', '/api/flush', { body: '{"all":true}' });
  assert.is(res.json.dropped, 4);
  assert.is(store.size, 0);
  assert.equal(published, [
    { scope: 'tags', tags: [tableTag('app', '', 'orders')], tables: ['orders'], catalog: null },
    { scope: 'fingerprint', fingerprint: 'fp-users' },
    { scope: 'tags', tags: [databaseTag('shop')], tables: 'database', catalog: null },
    { scope: 'all', catalog: false },
  ], 'each flush is published to the other proxies of a fleet');
});

test('flush errors: 400 bad body, 405 wrong method, 413 too large, 404 unknown path', async () => {
  assert.is((await call('POST', '/api/flush', { body: 'not json' })).status, 400);
  assert.is((await call('POST', '/api/flush', { body: '{"table":"t"}' })).status, 400);
  const wrongMethod = await call('GET', '/api/flush');
  assert.is(wrongMethod.status, 405);
  assert.is(wrongMethod.json.error, 'method-not-allowed');
  assert.is((await call('POST', '/api/queries', { body: '{}' })).status, 405);
  assert.is((await call('POST', '/api/flush', { body: `{"fingerprint":"${'x'.repeat(MAX_BODY_BYTES)}"}` })).status, 413);
  assert.is((await call('GET', '/api/nothing')).status, 404);
});

test('a POST without a JSON content type is refused with 415 before its body is read', async () => {
  fill();
  const before = store.size;
  for (const type of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
    const res = await call('POST', '/api/flush', { body: '{"all":true}', headers: { 'content-type': type } });
    assert.equal([res.status, res.json.error], [415, 'unsupported-media-type'], type);
  }
  assert.is((await call('POST', '/api/flush', { headers: { 'content-length': '0' } })).status, 415, 'no content type at all');
  assert.is((await call('POST', '/api/config/reload')).status, 415, 'a POST without a body too');
  assert.is(store.size, before, 'nothing was flushed');
  const charset = await call('POST', '/api/flush', { body: '{"database":"nowhere"}', headers: { 'content-type': 'application/json; charset=utf-8' } });
  assert.is(charset.status, 200, 'parameters of application/json are fine');
});

test('a POST from another origin or site is refused with 403; the listener\'s own origin passes', async () => {
  const before = store.size;
  const own = new URL(base).host;
  const foreign: Record<string, string>[] = [{ origin: 'http://evil.example' }, { origin: 'null' }, { origin: `http://${own}`, 'sec-fetch-site': 'cross-site' }, { 'sec-fetch-site': 'same-site' }];
  for (const headers of foreign) {
    const res = await call('POST', '/api/flush', { body: '{"all":true}', headers });
    assert.equal([res.status, res.json.error], [403, 'cross-site'], JSON.stringify(headers));
  }
  assert.is(store.size, before, 'nothing was flushed');
  const same = await call('POST', '/api/flush', { body: '{"all":true}', headers: { origin: `http://${own}`, 'sec-fetch-site': 'same-origin' } });
  assert.equal([same.status, same.json.dropped], [200, before]);
});

test('GET /api/config shows the effective config without the token', async () => {
  const res = await call('GET', '/api/config');
  assert.is(res.status, 200);
  assert.is(res.json.config.adminToken, '(redacted)');
  assert.is(res.json.config.cacheTtlMs, 0);
  assert.not.match(JSON.stringify(res.json), TOKEN);
});

test.run();
