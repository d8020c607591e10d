import { request } from 'undici';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMetrics } from '../telemetry/metrics.js';
import { QueryStats } from '../telemetry/query-stats.js';
import { AdminServer, parseTop } from './server.js';
import { DEFAULT_TOP, MAX_TOP, type StatsReport } from './stats-report.js';

const metrics = createMetrics();
const stats = new QueryStats('postgres', metrics);
const admin = new AdminServer(metrics);
let base = '';

test.before(async () => {
  const at = await admin.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${at.port}`;
  stats.observeStore(() => ({ entries: 1, bytes: 512, evictions: 0, maxBytes: 4096 }));
  for (let i = 0; i < 30; i++) {
    const id = stats.identify(`f${i}`, `SELECT ${i} FROM t${i % 3}`, [`public.t${i % 3}`]);
    for (let h = 0; h <= i; h++) stats.hit(id, 0.00003);
    stats.miss(id, 0.0005);
  }
});

test.after(async () => {
  await admin.close();
});

async function get(path: string, method: 'GET' | 'POST' | 'HEAD' = 'GET', headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: string }> {
  const res = await request(`${base}${path}`, { method, headers });
  return { status: res.statusCode, type: String(res.headers['content-type'] ?? ''), body: await res.body.text() };
}

test('GET /healthz answers ok', async () => {
  const res = await get('/healthz');
  assert.is(res.status, 200);
  assert.is(res.body, 'ok\n');
});

test('GET /metrics serves the Prometheus text with the cache metrics', async () => {
  const res = await get('/metrics');
  assert.is(res.status, 200);
  assert.match(res.type, 'text/plain');
  for (const name of ['sidecache_cache_hits_total', 'sidecache_cache_misses_total', 'sidecache_cache_bypass_total', 'sidecache_cache_writes_total',
    'sidecache_invalidations_total', 'sidecache_cache_entries', 'sidecache_cache_bytes', 'sidecache_cache_max_bytes', 'sidecache_evictions_total',
    'sidecache_query_duration_seconds', 'sidecache_client_connections']) {
    assert.match(res.body, `# TYPE ${name} `, name);
  }
  assert.match(res.body, 'sidecache_cache_hits_total{protocol="postgres"} 465\n');
});

test('GET /stats returns the JSON report with the default top 20', async () => {
  const res = await get('/stats');
  assert.is(res.status, 200);
  assert.match(res.type, 'application/json');
  const report = JSON.parse(res.body) as StatsReport;
  assert.is(report.hits, 465);
  assert.is(report.misses, 30);
  assert.is(report.hitRatio, 465 / 495);
  assert.equal([report.entries, report.bytes, report.maxBytes, report.evictions], [1, 512, 4096, 0]);
  assert.ok(report.protocols.postgres);
  assert.is(report.topQueries.byHits.length, DEFAULT_TOP);
  assert.is(report.topQueries.byHits[0]!.fingerprint, 'f29');
  assert.is(report.topQueries.byHits[0]!.sample, 'SELECT 29 FROM t2');
  assert.equal(Object.keys(report.topQueries.byHits[0]!.meanMs), ['hit', 'miss', 'bypass', 'write']);
  assert.is(report.topTables.byHits.length, 3);
  assert.is(report.topTables.byHits[0]!.table, 'public.t2');
  assert.ok(Array.isArray(report.topTables.byMisses));
});

test('GET /stats?top=N bounds the lists; a bad N is a 400', async () => {
  const two = JSON.parse((await get('/stats?top=2')).body) as StatsReport;
  assert.is(two.topQueries.byHits.length, 2);
  assert.is(two.topQueries.byMisses.length, 2);
  assert.is((await get(`/stats?top=${MAX_TOP + 1}`)).status, 400);
  assert.is((await get('/stats?top=abc')).status, 400);
  assert.is(parseTop(null), DEFAULT_TOP);
  assert.is(parseTop('0'), 0);
  assert.is(parseTop('-1'), null);
});

test('an unknown path is a 404 naming the routes', async () => {
  const res = await get('/nope');
  assert.is(res.status, 404);
  assert.match(res.body, '/stats');
});

test('POST is a 405 with Allow', async () => {
  const res = await request(`${base}/stats`, { method: 'POST', body: '{}' });
  assert.is(res.statusCode, 405);
  assert.is(res.headers.allow, 'GET, HEAD');
  await res.body.dump();
});

test('a Host name the listener does not answer (DNS rebinding) gets 421; /healthz and /metrics answer any', async () => {
  const port = new URL(base).port;
  for (const path of ['/', '/dashboard', '/stats', '/api/queries', '/nope']) {
    const res = await get(path, 'GET', { host: `rebound.example:${port}` });
    assert.is(res.status, 421, path);
    assert.is(JSON.parse(res.body).error, 'misdirected-request');
  }
  for (const path of ['/healthz', '/metrics']) assert.is((await get(path, 'GET', { host: `rebound.example:${port}` })).status, 200, path);
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]) assert.is((await get('/stats', 'GET', { host })).status, 200, host);
});

test('--admin-allowed-hosts: the listed names are answered, others are not', async () => {
  const named = new AdminServer(metrics, { allowedHosts: ['sidecache.internal'] });
  const at = await named.listen({ host: '0.0.0.0', port: 0 });
  try {
    const status = async (host: string): Promise<number> => {
      const res = await request(`http://127.0.0.1:${at.port}/stats`, { headers: { host } });
      await res.body.dump();
      return res.statusCode;
    };
    assert.equal([await status('sidecache.internal'), await status('localhost'), await status('10.0.0.1'), await status('rebound.example')], [200, 200, 200, 421]);
  } finally {
    await named.close();
  }
});

test('a state-changing request from another origin is a 403 on any path', async () => {
  const res = await get('/stats', 'POST', { origin: 'http://evil.example' });
  assert.is(res.status, 403);
  assert.is(JSON.parse(res.body).error, 'cross-site');
});

test('HEAD /healthz answers 200 without a body', async () => {
  const res = await get('/healthz', 'HEAD');
  assert.is(res.status, 200);
  assert.is(res.body, '');
});

test.run();
