// test-timeout: 120
//
// The --config file and its reload through the real binary: SIGHUP and POST /api/config/reload
// apply a new connection limit and cache TTL while an open client keeps working; a broken file is
// logged once and changes nothing; listener changes are reported as needing a restart.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { connectPg, direct, uniqueName } from './support/pg-direct.js';
import { localServersConfig, spawnSidecache, type RunningProxy } from './support/sidecache.js';
import { withinWindow } from './support/until.js';

const TOKEN = 'reload-test-token';
const TABLE = uniqueName('sc_reload');
const dir = mkdtempSync(path.join(tmpdir(), 'sidecache-reload-e2e-'));
const file = path.join(dir, 'sidecache.yaml');
let proxy: RunningProxy;
const open: pg.Client[] = [];

function writeConfig(extra: string): void {
  writeFileSync(file, [
    ...localServersConfig({ pg: true }),
    `admin-token: ${TOKEN}`,
    extra,
  ].join('\n') + '\n');
}

async function client(): Promise<pg.Client> {
  const c = await connectPg(proxy.pgPort);
  open.push(c);
  return c;
}

/** Resolves when `promise` rejects with an error `check` accepts; fails the test otherwise. */
async function rejects(promise: Promise<unknown>, check: RegExp | ((err: Error) => boolean), message?: string): Promise<void> {
  let error: Error | undefined;
  try {
    await promise;
  } catch (err) {
    error = err as Error;
  }
  if (error === undefined) assert.unreachable(message ?? 'expected a rejection');
  const ok = typeof check === 'function' ? check(error!) : check.test(error!.message);
  assert.ok(ok, `${message ?? 'unexpected error'}: ${error!.message}`);
}

function count(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

/** Sends SIGHUP and waits until the process has logged one more line containing `marker`. */
async function hangUp(marker: string): Promise<string> {
  const before = count(proxy.output(), marker);
  proxy.child.kill('SIGHUP');
  const until = Date.now() + 5000;
  while (count(proxy.output(), marker) === before) {
    if (Date.now() > until) throw new Error(`no "${marker}" after SIGHUP:\n${proxy.output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const lines = proxy.output().split('\n').filter((l) => l.includes(marker));
  return lines[lines.length - 1]!;
}

async function api(method: string, pathname: string, token: string | null = TOKEN): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://127.0.0.1:${proxy.adminPort}${pathname}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
  });
  return { status: res.status, body: await res.json() };
}

async function value(c: pg.Client, id: number): Promise<number> {
  const r = await c.query<{ v: number }>(`SELECT v FROM ${TABLE} WHERE id = ${id}`);
  return r.rows[0]!.v;
}

test.before(async () => {
  await direct(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v int NOT NULL)`);
  await direct(`INSERT INTO ${TABLE} VALUES (1, 10), (2, 20)`);
  writeConfig('max-client-connections: 1\ncache-ttl: 0');
  proxy = await spawnSidecache(['--config', file]);
});

test.after(async () => {
  await Promise.all(open.map((c) => c.end().catch(() => {})));
  await proxy?.stop();
  await direct(`DROP TABLE IF EXISTS ${TABLE}`);
  rmSync(dir, { recursive: true, force: true });
});

test('SIGHUP raises the connection limit and shortens the TTL; the open client keeps working', async () => {
  const first = await client();
  assert.is(await value(first, 1), 10);
  await rejects(connectPg(proxy.pgPort), /too many clients/, 'the file limits clients to 1');

  writeConfig('max-client-connections: 2\ncache-ttl: 1s');
  const line = await hangUp('config reloaded');
  assert.match(line, /"applied":\["max-client-connections","cache-ttl"\]/);

  const second = await client();
  assert.is(await value(second, 2), 20, 'a second client is admitted under the new limit');
  assert.is(await value(first, 1), 10, 'the client opened before the reload still works');

  // A fill under the new TTL: served from cache until it expires a second later. A read that comes
  // back within 0.9 s of when the fill was sent must be a hit (another try when the machine stalled).
  const read = async (sql: string): Promise<number> => (await second.query<{ v: number }>(sql)).rows[0]!.v;
  const ttl = await withinWindow(900, async (n) => {
    const sql = `SELECT v FROM ${TABLE} WHERE id = 2 AND ${n} > 0`;
    const filled = await read(sql);
    await direct(`UPDATE ${TABLE} SET v = v + 1 WHERE id = 2`);
    return { sql, filled, read: await read(sql) };
  });
  assert.is(ttl.read, ttl.filled, 'still cached (the write bypassed sidecache)');
  await new Promise((r) => setTimeout(r, 1300));
  assert.is(await read(ttl.sql), ttl.filled + 1, 'expired after the reloaded TTL of 1s');
});

test('a broken file on SIGHUP is logged once, names the key and keeps the running config', async () => {
  writeConfig('max-client-connections: 2\ncache-ttl: soon');
  const line = await hangUp('config reload failed');
  assert.ok(line.includes(`cache-ttl in ${file}: expected a duration`), line);
  assert.is(count(proxy.output(), 'config reload failed'), 1);
  const { body } = await api('GET', '/api/config');
  assert.is(body.config.cacheTtlMs, 1000);
  assert.is(body.config.maxClientConnections, 2);
  assert.is(await value(open[0]!, 1), 10, 'the first client is still connected');
});

test('POST /api/config/reload: token required, applies live settings, reports restart-only ones, 400 on a bad file', async () => {
  writeConfig('max-client-connections: 1\ncache-ttl: 2s\nmysql-listen: 127.0.0.1:3999');
  assert.is((await api('POST', '/api/config/reload', null)).status, 401);
  assert.is((await api('GET', '/api/config/reload')).status, 405);

  const ok = await api('POST', '/api/config/reload');
  assert.is(ok.status, 200);
  assert.equal(ok.body.applied, ['max-client-connections', 'cache-ttl']);
  assert.equal(ok.body.needsRestart, ['mysql-listen']);
  assert.is(ok.body.config.cacheTtlMs, 2000);
  assert.is(ok.body.config.adminToken, '(redacted)');
  assert.equal(ok.body.config.mysqlListen, { host: '0.0.0.0', port: 3306 }, 'a listener keeps its address until a restart');
  assert.match(proxy.output(), /"needsRestart":\["mysql-listen"\]/);
  // Two clients are open: above the lowered limit they stay, but a third is refused.
  await rejects(connectPg(proxy.pgPort), /too many clients/);
  for (const c of open) assert.is(await value(c, 1), 10, 'open clients survive a lowered limit');

  writeConfig('max-client-connections: lots');
  const bad = await api('POST', '/api/config/reload');
  assert.is(bad.status, 400);
  assert.is(bad.body.error, 'invalid-config');
  assert.match(bad.body.message, `max-client-connections in ${file}: expected a whole number`);
  assert.is((await api('GET', '/api/config')).body.config.maxClientConnections, 1);
});

test('an invalid file at start exits 2 with the key named', async () => {
  const broken = path.join(dir, 'broken.yaml');
  writeFileSync(broken, 'pg-upstream: postgres://127.0.0.1:5432\ncache-max-bytes: 12 parsecs\n');
  await rejects(spawnSidecache(['--config', broken], {}, 10_000), (err: Error) =>
    /exited with code 2/.test(err.message) && err.message.includes(`cache-max-bytes in ${broken}: expected a size`));
});

test.run();
