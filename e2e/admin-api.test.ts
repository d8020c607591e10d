// test-timeout: 90
//
// The admin API of the real bin/sidecache started with --admin-token, in front of the local
// PostgreSQL: reads through the proxy show up in /api/queries and /api/tables, a flush by table
// makes the next read of that table a miss while other tables still hit, flush all empties the
// cache, and every call without the token is refused. What a web page could send is refused too
// (a text/plain POST, another Origin, a Host name reached by DNS rebinding), and the curl commands
// of docs/admin-api.md and the README run as written.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { request } from 'undici';
import { connectPg, direct, uniqueName } from './support/pg-direct.js';
import { measure } from './support/metrics.js';
import { DIRECT_PG, REPO_ROOT, startProxy, type RunningProxy } from './support/sidecache.js';

const TOKEN = uniqueName('token');
const HOT = uniqueName('sc_admin_hot');
const COLD = uniqueName('sc_admin_cold');

let proxy: RunningProxy;
let client: pg.Client;

test.before(async () => {
  await direct(`CREATE TABLE ${HOT} (id int PRIMARY KEY, v text); INSERT INTO ${HOT} SELECT g, 'v' || g FROM generate_series(1, 10) g;
                CREATE TABLE ${COLD} (id int PRIMARY KEY); INSERT INTO ${COLD} VALUES (1);`);
  proxy = await startProxy({ args: ['--admin-token', TOKEN] });
  client = await connectPg(proxy.pgPort);
});

test.after(async () => {
  await client?.end();
  await proxy?.stop();
  await direct(`DROP TABLE IF EXISTS ${HOT}, ${COLD}`);
});

/** A body goes as JSON unless `headers` name another content-type. */
async function api(method: 'GET' | 'POST', path: string, opts: { token?: string | null; body?: unknown; headers?: Record<string, string> } = {}): Promise<{ status: number; json: any }> {
  const token = opts.token === undefined ? TOKEN : opts.token;
  const res = await request(`http://127.0.0.1:${proxy.adminPort}${path}`, {
    method,
    headers: {
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...opts.headers,
    },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  return { status: res.statusCode, json: JSON.parse(await res.body.text()) };
}

const readHot = (id: number) => client.query(`SELECT v FROM ${HOT} WHERE id = $1`, [id]);
const readCold = () => client.query(`SELECT id FROM ${COLD}`);

test('reads through the proxy show in /api/queries and /api/tables', async () => {
  for (let i = 0; i < 3; i++) {
    await readHot(1);
    await readHot(2);
    await readCold();
  }
  const queries = await api('GET', '/api/queries?protocol=postgres');
  assert.is(queries.status, 200);
  const hot = queries.json.queries.find((q: { sample: string }) => q.sample.includes(HOT));
  assert.ok(hot, JSON.stringify(queries.json));
  assert.equal([hot.hits, hot.misses], [4, 2]);
  assert.equal(hot.tables, [HOT]);
  assert.type(hot.meanMs.hit, 'number');

  const tables = await api('GET', '/api/tables');
  const row = tables.json.tables.find((t: { table: string }) => t.table === HOT);
  assert.equal([row.protocol, row.database, row.entries, row.hits, row.misses], ['postgres', DIRECT_PG.database, 2, 4, 2]);
  assert.ok(row.bytes > 0);
});

test('every API call and /stats without the right token: 401, nothing flushed; /metrics stays open', async () => {
  for (const token of [null, 'wrong']) {
    for (const path of ['/api/queries', '/api/tables', '/api/config', '/stats']) {
      const res = await api('GET', path, { token });
      assert.is(res.status, 401, `${path} with ${token}`);
    }
    assert.is((await api('POST', '/api/flush', { token, body: { all: true } })).status, 401);
  }
  const { delta } = await measure(proxy.adminPort, () => readHot(1));
  assert.is(delta.hits, 1, 'still cached after the refused flushes');
});

test('flush by table: the next read of it is a miss, other tables still hit', async () => {
  const flushed = await api('POST', '/api/flush', { body: { table: HOT, database: DIRECT_PG.database, protocol: 'postgres' } });
  assert.equal([flushed.status, flushed.json.dropped], [200, 2]);
  const hot = await measure(proxy.adminPort, () => readHot(1));
  assert.equal([hot.delta.hits, hot.delta.misses], [0, 1]);
  const cold = await measure(proxy.adminPort, () => readCold());
  assert.equal([cold.delta.hits, cold.delta.misses], [1, 0]);
  const row = (await api('GET', '/api/tables')).json.tables.find((t: { table: string }) => t.table === HOT);
  assert.ok(row.invalidations >= 1);
});

test('flush by fingerprint drops that statement\'s entries only', async () => {
  const hot = (await api('GET', '/api/queries')).json.queries.find((q: { sample: string }) => q.sample.includes(HOT));
  const res = await api('POST', '/api/flush', { body: { fingerprint: hot.fingerprint } });
  assert.is(res.json.dropped, 1);
  assert.is((await measure(proxy.adminPort, () => readHot(1))).delta.misses, 1);
  assert.is((await measure(proxy.adminPort, () => readCold())).delta.hits, 1);
});

test('a POST a web page could send to another site (text/plain, a form) is a 415 and flushes nothing', async () => {
  await readHot(1);
  for (const type of ['text/plain;charset=UTF-8', 'application/x-www-form-urlencoded']) {
    const res = await api('POST', '/api/flush', { body: { all: true }, headers: { 'content-type': type } });
    assert.equal([res.status, res.json.error], [415, 'unsupported-media-type'], type);
  }
  assert.is((await api('POST', '/api/config/reload', { headers: { 'content-type': 'text/plain' } })).status, 415);
  assert.is((await measure(proxy.adminPort, () => readHot(1))).delta.hits, 1, 'still cached');
});

test('a POST from another origin or site is a 403 and flushes nothing, token or not', async () => {
  for (const token of [TOKEN, null]) {
    for (const headers of [{ origin: 'http://evil.example' }, { 'sec-fetch-site': 'cross-site' }] as Record<string, string>[]) {
      const res = await api('POST', '/api/flush', { token, body: { all: true }, headers });
      assert.equal([res.status, res.json.error], [403, 'cross-site'], JSON.stringify(headers));
    }
  }
  assert.is((await measure(proxy.adminPort, () => readHot(1))).delta.hits, 1, 'still cached');
  const own = await api('POST', '/api/flush', { body: { fingerprint: 'none' }, headers: { origin: `http://127.0.0.1:${proxy.adminPort}`, 'sec-fetch-site': 'same-origin' } });
  assert.is(own.status, 200, 'the listener\'s own origin (the dashboard) may');
});

test('a Host name the listener does not answer (DNS rebinding) is a 421; /healthz and /metrics answer any', async () => {
  const rebound = { host: `rebound.example:${proxy.adminPort}` };
  for (const path of ['/api/queries', '/stats', '/']) {
    const res = await api('GET', path, { headers: rebound });
    assert.equal([res.status, res.json.error], [421, 'misdirected-request'], path);
  }
  for (const path of ['/healthz', '/metrics']) {
    const res = await request(`http://127.0.0.1:${proxy.adminPort}${path}`, { headers: rebound });
    assert.is(res.statusCode, 200, path);
    await res.body.dump();
  }
  assert.is((await api('GET', '/api/queries', { headers: { host: `localhost:${proxy.adminPort}` } })).status, 200);
});

test('flush all empties the cache', async () => {
  const res = await api('POST', '/api/flush', { body: { all: true } });
  assert.is(res.status, 200);
  assert.ok(res.json.dropped >= 2);
  const tables = await api('GET', '/api/tables');
  assert.is(tables.json.tables.reduce((n: number, t: { entries: number }) => n + t.entries, 0), 0);
  assert.is((await measure(proxy.adminPort, () => readCold())).delta.misses, 1);
});

test('bad requests: 400 bad body, 405 wrong method, 404 unknown', async () => {
  assert.is((await api('POST', '/api/flush', { body: { table: HOT } })).status, 400);
  assert.is((await api('GET', '/api/flush')).status, 405);
  assert.is((await api('GET', '/api/unknown')).status, 404);
});

test('GET /api/config shows the effective settings with the token redacted', async () => {
  const res = await api('GET', '/api/config');
  assert.is(res.status, 200);
  assert.is(res.json.config.adminToken, '(redacted)');
  assert.is(res.json.config.pgUpstream.port, DIRECT_PG.port);
  assert.not.match(JSON.stringify(res.json), TOKEN);
});

/** The single-line curl commands of the ```sh blocks of a markdown file, without what they are piped to. */
async function documentedCurls(file: string): Promise<string[]> {
  const text = await readFile(path.join(REPO_ROOT, file), 'utf8');
  const blocks = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  return blocks.flatMap((b) => b.split('\n')).map((l) => l.trim()).filter((l) => l.startsWith('curl ')).map((l) => l.split(' | ')[0]!);
}

/** Runs a documented command with bash; returns the HTTP status curl saw. */
async function runCurl(command: string, env: NodeJS.ProcessEnv): Promise<number> {
  const { stdout } = await promisify(execFile)('bash', ['-c', `${command} -o /dev/null -w '%{http_code}'`], { env: { ...process.env, ...env }, timeout: 10_000 });
  return Number(stdout);
}

test('the curl commands of docs/admin-api.md and of the README run as written', async () => {
  const docs = await documentedCurls('docs/admin-api.md');
  assert.ok(docs.filter((c) => c.includes('-X POST')).length >= 5, docs.join('\n'));
  const env = { ADMIN: `http://127.0.0.1:${proxy.adminPort}`, AUTH: `Authorization: Bearer ${TOKEN}` };
  for (const command of docs) assert.is(await runCurl(command, env), 200, command);
  // The README's walk-through runs without a token, on port 9180.
  const open = await startProxy();
  try {
    const readme = (await documentedCurls('README.md')).map((c) => c.replaceAll('http://127.0.0.1:9180', `http://127.0.0.1:${open.adminPort}`));
    assert.ok(readme.filter((c) => c.includes('-X POST')).length >= 3, readme.join('\n'));
    for (const command of readme) assert.is(await runCurl(command, {}), 200, command);
  } finally {
    await open.stop();
  }
});

test.run();
