// test-timeout: 120
//
// The slow-query log through the real binary against the real PostgreSQL and MariaDB: a statement
// over --slow-query-threshold gets exactly one warn line with its protocol, outcome, duration,
// fingerprint, sample (MySQL: literals marked ?) and bypass reason; a fast one gets none; a reload
// (SIGHUP, then the admin API) changes the threshold and turns the log off. How long a statement
// took is bounded from both sides without guessing the machine's speed: at least the server's
// sleep, at most what the client timed around it; a statement is "fast" when the client timed it
// under the threshold.
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
import { waitFor } from './support/until.js';

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

/**
 * The slow-query lines of `protocol` whose sample ends with `marker`, e.g. a column alias unique to one
 * statement (MySQL samples are the statement's shape, with the literals replaced).
 */
function linesOf(protocol: string, marker: string): Line[] {
  return slowLines().filter((l) => l.protocol === protocol && String(l.sample).endsWith(marker));
}

/** Waits until the slow-query line of the statement with `marker` is written; returns it. */
async function loggedFor(protocol: string, marker: string): Promise<Line> {
  if (!(await waitFor(() => linesOf(protocol, marker).length > 0, 10_000))) throw new Error(`no slow-query line for ${marker}:\n${proxy.output()}`);
  return linesOf(protocol, marker)[0]!;
}

/** Milliseconds the client waited for `run`: an upper bound of what the proxy can have measured. */
async function timed(run: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await run();
  return performance.now() - started;
}

/**
 * Runs `statement('name_1')`, `statement('name_2')`, ... until the client times one under
 * `thresholdMs` (a loaded machine may stall any of them) and returns its alias: that one must not
 * be logged.
 */
async function underThreshold(run: (sql: string) => Promise<unknown>, name: string, statement: (alias: string) => string, thresholdMs: number): Promise<string> {
  for (let attempt = 1; attempt <= 20; attempt++) {
    const alias = `${name}_${attempt}`;
    if (await timed(() => run(statement(alias))) < thresholdMs) return alias;
  }
  throw new Error(`20 tries of ${statement(name)} all took ${thresholdMs} ms or more at the client`);
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

const pgQuery = (sql: string): Promise<unknown> => pgClient.query(sql);
const mysqlQuery = (sql: string): Promise<unknown> => mysqlClient.query(sql);

test('PostgreSQL: pg_sleep(0.3) over a 100ms threshold is logged once with its fields, a fast query is not', async () => {
  const fast = await underThreshold(pgQuery, 'fast', (alias) => `SELECT 1 AS ${alias}`, 100);
  const waited = await timed(() => pgQuery('SELECT pg_sleep(0.3)'));
  const line = await loggedFor('postgres', 'pg_sleep(0.3)');
  assert.is(linesOf('postgres', 'pg_sleep(0.3)').length, 1, 'one line');
  assert.equal(linesOf('postgres', fast), [], 'not the fast statement (lines arrive in order, so it would be there by now)');
  assert.is(line.level, 40, 'warn');
  assert.is(line.protocol, 'postgres');
  assert.is(line.outcome, 'bypass');
  assert.is(line.bypassReason, 'not-cacheable', 'pg_sleep is volatile');
  assert.is(line.thresholdMs, 100);
  assert.ok((line.durationMs as number) >= 300 && (line.durationMs as number) <= waited + 1, `${line.durationMs} ms, the client waited ${waited}`);
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
  const fast = await underThreshold(mysqlQuery, 'fast', (alias) => `SELECT 1 AS ${alias}`, 100);
  const waited = await timed(() => mysqlQuery('SELECT SLEEP(0.3) AS slow'));
  const line = await loggedFor('mysql', 'AS slow');
  assert.is(linesOf('mysql', 'AS slow').length, 1, 'one line');
  assert.equal(linesOf('mysql', fast), [], 'not the fast statement');
  assert.is(line.level, 40);
  assert.is(line.protocol, 'mysql');
  assert.is(line.outcome, 'bypass');
  assert.is(line.bypassReason, 'unstable-function', 'SLEEP is never cached');
  assert.ok((line.durationMs as number) >= 300 && (line.durationMs as number) <= waited + 1, `${line.durationMs} ms, the client waited ${waited}`);
  assert.match(line.fingerprint as string, /^[0-9a-f]+$/);
  assert.is(line.sample, 'SELECT SLEEP(?) AS slow', 'the literal marked, neither its value nor a stand-in for it');
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

  const pgUnder = await underThreshold(pgQuery, 'under', (alias) => `SELECT pg_sleep(0.3) AS ${alias}`, 500);
  const mysqlUnder = await underThreshold(mysqlQuery, 'under', (alias) => `SELECT SLEEP(0.3) AS ${alias}`, 500);
  await pgQuery('SELECT pg_sleep(0.6) AS beyond');
  await mysqlQuery('SELECT SLEEP(0.6) AS beyond');
  const slow = [await loggedFor('postgres', 'AS beyond'), await loggedFor('mysql', 'AS beyond')];
  assert.equal(slow.map((l) => l.thresholdMs), [500, 500]);
  for (const l of slow) assert.ok((l.durationMs as number) >= 600, String(l.durationMs));
  assert.equal([...linesOf('postgres', pgUnder), ...linesOf('mysql', mysqlUnder)], [], '0.3 s is no longer slow');
});

test('POST /api/config/reload with "off" stops the log', async () => {
  writeConfig('off');
  const reload = async (): Promise<{ applied: string[] }> => {
    const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/api/config/reload`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    assert.is(res.status, 200);
    return (await res.json()) as { applied: string[] };
  };
  assert.equal((await reload()).applied, ['slow-query-threshold']);
  await pgQuery('SELECT pg_sleep(0.6) AS while_off');
  await mysqlQuery('SELECT SLEEP(0.6) AS while_off');
  // A line for either statement would have been written before the next reload's line.
  const reloads = logLines().filter((l) => l.msg === 'config reloaded').length;
  assert.equal((await reload()).applied, []);
  await logged('config reloaded', reloads + 1);
  assert.equal([...linesOf('postgres', 'while_off'), ...linesOf('mysql', 'while_off')], []);
});

test.run();
