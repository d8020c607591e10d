// test-timeout: 120
//
// The slow-query log through the real binary against the real PostgreSQL and MariaDB: a statement
// over --slow-query-threshold gets exactly one warn line with its protocol, outcome, duration,
// fingerprint, sample (MySQL: literals marked ?) and bypass reason; a fast one gets none; a reload (SIGHUP, then the admin API)
// changes the threshold and turns the log off.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { connectMySql, type MySqlConnection } from './support/mysql-direct.js';
import { connectPg } from './support/pg-direct.js';
import { DIRECT_MYSQL, DIRECT_PG, localServersConfig, spawnSidecache, type RunningProxy } from './support/sidecache.js';

type Line = Record<string, unknown>;

const dir = mkdtempSync(path.join(tmpdir(), 'sidecache-slow-e2e-'));
const file = path.join(dir, 'sidecache.yaml');
let proxy: RunningProxy;
let pgClient: pg.Client;
let mysqlClient: MySqlConnection;

function writeConfig(threshold: string): void {
  writeFileSync(file, [
    ...localServersConfig({ pg: true, mysql: true }),
    `slow-query-threshold: ${threshold}`,
  ].join('\n') + '\n');
}

/** The JSON log lines written so far (stdout's banner lines are not JSON). */
function logLines(): Line[] {
  return proxy.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
}

function slowLines(): Line[] {
  return logLines().filter((l) => l.msg === 'slow query');
}

/** Waits until the log holds `n` lines with message `msg`; returns the last one. */
async function logged(msg: string, n: number): Promise<Line> {
  const until = Date.now() + 5000;
  for (;;) {
    const lines = logLines().filter((l) => l.msg === msg);
    if (lines.length >= n) return lines[n - 1]!;
    if (Date.now() > until) throw new Error(`no ${n}th "${msg}" line:\n${proxy.output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test.before(async () => {
  writeConfig('100ms');
  proxy = await spawnSidecache(['--config', file]);
  pgClient = await connectPg(proxy.pgPort);
  mysqlClient = await connectMySql(proxy.mysqlPort);
});

test.after(async () => {
  await pgClient?.end().catch(() => {});
  await mysqlClient?.end().catch(() => {});
  await proxy?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('PostgreSQL: pg_sleep(0.3) over a 100ms threshold is logged once with its fields, a fast query is not', async () => {
  await pgClient.query('SELECT 1 AS fast');
  await pgClient.query('SELECT pg_sleep(0.3)');
  const line = await logged('slow query', 1);
  assert.is(slowLines().length, 1, 'only the slow statement (lines arrive in order, so SELECT 1 would be first)');
  assert.is(line.level, 40, 'warn');
  assert.is(line.protocol, 'postgres');
  assert.is(line.outcome, 'bypass');
  assert.is(line.bypassReason, 'not-cacheable', 'pg_sleep is volatile');
  assert.is(line.thresholdMs, 100);
  assert.ok((line.durationMs as number) >= 300 && (line.durationMs as number) < 3000, String(line.durationMs));
  assert.match(line.fingerprint as string, /^[0-9a-f]{16}$/);
  assert.is(line.sample, 'SELECT pg_sleep(0.3)');
  assert.type(line.time, 'string');
  // Who sent it: the client's own address, its user and database.
  const socket = (pgClient as unknown as { connection: { stream: net.Socket } }).connection.stream;
  assert.is(line.remote, `${socket.localAddress}:${socket.localPort}`);
  assert.is(line.user, DIRECT_PG.user);
  assert.is(line.database, DIRECT_PG.database);
});

test('MariaDB: SLEEP(0.3) over a 100ms threshold is logged once with its fields, a fast query is not', async () => {
  await mysqlClient.query('SELECT 1 AS fast');
  await mysqlClient.query('SELECT SLEEP(0.3)');
  const line = await logged('slow query', 2);
  assert.is(slowLines().length, 2);
  assert.is(line.level, 40);
  assert.is(line.protocol, 'mysql');
  assert.is(line.outcome, 'bypass');
  assert.is(line.bypassReason, 'unstable-function', 'SLEEP is never cached');
  assert.ok((line.durationMs as number) >= 300 && (line.durationMs as number) < 3000, String(line.durationMs));
  assert.match(line.fingerprint as string, /^[0-9a-f]+$/);
  assert.is(line.sample, 'SELECT SLEEP(?)', 'the literal marked, neither its value nor a stand-in for it');
  const socket = (mysqlClient as unknown as { connection: { stream: net.Socket } }).connection.stream;
  assert.is(line.remote, `${socket.localAddress}:${socket.localPort}`);
  assert.is(line.user, DIRECT_MYSQL.user);
  assert.is(line.database, DIRECT_MYSQL.database);
});

test('SIGHUP raises the threshold: 0.3 s is no longer slow, 0.6 s is, on both sides', async () => {
  writeConfig('500ms');
  const reloads = logLines().filter((l) => l.msg === 'config reloaded').length;
  proxy.child.kill('SIGHUP');
  const reloaded = await logged('config reloaded', reloads + 1);
  assert.equal(reloaded.applied, ['slow-query-threshold']);

  await pgClient.query('SELECT pg_sleep(0.3)');
  await mysqlClient.query('SELECT SLEEP(0.3)');
  await pgClient.query('SELECT pg_sleep(0.6)');
  await mysqlClient.query('SELECT SLEEP(0.6)');
  await logged('slow query', 4);
  const lines = slowLines();
  assert.is(lines.length, 4, 'only the two 0.6 s statements are new');
  assert.equal(lines.slice(2).map((l) => [l.protocol, l.thresholdMs]), [['postgres', 500], ['mysql', 500]]);
  assert.is(lines[3]!.sample, 'SELECT SLEEP(?)', 'SLEEP(0.6) shares SLEEP(0.3)\'s fingerprint and sample');
  for (const l of lines.slice(2)) assert.ok((l.durationMs as number) >= 600, String(l.durationMs));
});

test('POST /api/config/reload with "off" stops the log', async () => {
  writeConfig('off');
  const reload = async (): Promise<{ applied: string[] }> => {
    const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/api/config/reload`, { method: 'POST' });
    assert.is(res.status, 200);
    return (await res.json()) as { applied: string[] };
  };
  assert.equal((await reload()).applied, ['slow-query-threshold']);
  await pgClient.query('SELECT pg_sleep(0.6)');
  await mysqlClient.query('SELECT SLEEP(0.6)');
  // A line for either statement would have been written before the next reload's line.
  const reloads = logLines().filter((l) => l.msg === 'config reloaded').length;
  assert.equal((await reload()).applied, []);
  await logged('config reloaded', reloads + 1);
  assert.is(slowLines().length, 4);
});

test.run();
