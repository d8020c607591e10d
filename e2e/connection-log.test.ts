// test-timeout: 120
//
// Connection log lines through the real binary against the real PostgreSQL and MariaDB: a client
// that logs in gets "connection opened" (remote, user, database) and, when its session ends,
// "connection closed" with why and how long; --log-connections off silences both, a reload turns
// them back on. The remote address is the client's own port, so each line is matched to its client.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { connectMySql } from './support/mysql-direct.js';
import { connectPg, direct, sleep } from './support/pg-direct.js';
import { DIRECT_MYSQL, DIRECT_PG, localServersConfig, spawnSidecache, type RunningProxy } from './support/sidecache.js';

type Line = Record<string, unknown>;

const dir = mkdtempSync(path.join(tmpdir(), 'sidecache-connlog-e2e-'));
const file = path.join(dir, 'sidecache.yaml');
let proxy: RunningProxy;

function writeConfig(logConnections: 'on' | 'off'): void {
  writeFileSync(file, [
    ...localServersConfig({ pg: true, mysql: true }),
    `log-connections: ${logConnections}`,
  ].join('\n') + '\n');
}

function linesFor(remote: string, msg: string): Line[] {
  return proxy.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line)
    .filter((l) => l.msg === msg && l.remote === remote);
}

async function lineFor(remote: string, msg: string): Promise<Line> {
  const until = Date.now() + 5000;
  for (;;) {
    const [line] = linesFor(remote, msg);
    if (line !== undefined) return line;
    if (Date.now() > until) throw new Error(`no "${msg}" line for ${remote}:\n${proxy.output()}`);
    await sleep(20);
  }
}

function localAddress(socket: net.Socket): string {
  return `${socket.localAddress}:${socket.localPort}`;
}

function pgSocket(c: pg.Client): net.Socket {
  return (c as unknown as { connection: { stream: net.Socket } }).connection.stream;
}

test.before(async () => {
  writeConfig('on');
  proxy = await spawnSidecache(['--config', file]);
});

test.after(async () => {
  await proxy?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('PostgreSQL: opened at login with user and database, closed with "client quit" when the client says goodbye', async () => {
  const c = await connectPg(proxy.pgPort);
  const remote = localAddress(pgSocket(c));
  await c.query('SELECT 1');
  const opened = await lineFor(remote, 'pg: connection opened');
  assert.is(opened.level, 30);
  assert.is(opened.user, DIRECT_PG.user);
  assert.is(opened.database, DIRECT_PG.database);
  assert.equal(linesFor(remote, 'pg: connection closed'), [], 'nothing closed yet');
  await c.end();
  const closed = await lineFor(remote, 'pg: connection closed');
  assert.is(closed.reason, 'client quit');
  assert.is(closed.user, DIRECT_PG.user);
  assert.type(closed.seconds, 'number');
});

test('PostgreSQL: a session the server ends is closed with "server closed the connection"', async () => {
  const c = await connectPg(proxy.pgPort);
  c.on('error', () => undefined);
  const remote = localAddress(pgSocket(c));
  const { rows } = await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  await lineFor(remote, 'pg: connection opened');
  await direct('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
  const closed = await lineFor(remote, 'pg: connection closed');
  assert.is(closed.reason, 'server closed the connection');
  await c.end().catch(() => undefined);
});

test('MySQL: opened with user and database, closed with "client quit" after COM_QUIT', async () => {
  const c = await connectMySql(proxy.mysqlPort);
  const remote = localAddress((c as unknown as { connection: { stream: net.Socket } }).connection.stream);
  await c.query('SELECT 1');
  const opened = await lineFor(remote, 'mysql: connection opened');
  assert.is(opened.user, DIRECT_MYSQL.user);
  assert.is(opened.database, DIRECT_MYSQL.database);
  await c.end();
  const closed = await lineFor(remote, 'mysql: connection closed');
  assert.is(closed.reason, 'client quit');
});

test('MySQL: a client that vanishes without COM_QUIT is closed with "client closed the connection"', async () => {
  const c = await connectMySql(proxy.mysqlPort);
  const socket = (c as unknown as { connection: { stream: net.Socket } }).connection.stream;
  const remote = localAddress(socket);
  await lineFor(remote, 'mysql: connection opened');
  socket.destroy();
  const closed = await lineFor(remote, 'mysql: connection closed');
  assert.is(closed.reason, 'client closed the connection');
});

test('log-connections off: no lines for new sessions; a reload turns them back on', async () => {
  writeConfig('off');
  proxy.child.kill('SIGHUP');
  const until = Date.now() + 5000;
  while (!proxy.output().includes('config reloaded') && Date.now() < until) await sleep(20);
  const quiet = await connectPg(proxy.pgPort);
  const quietRemote = localAddress(pgSocket(quiet));
  await quiet.query('SELECT 1');
  await quiet.end();
  await sleep(200);
  assert.equal(linesFor(quietRemote, 'pg: connection opened'), []);
  assert.equal(linesFor(quietRemote, 'pg: connection closed'), []);

  writeConfig('on');
  const reloads = proxy.output().split('config reloaded').length;
  proxy.child.kill('SIGHUP');
  while (proxy.output().split('config reloaded').length === reloads && Date.now() < until + 5000) await sleep(20);
  const loud = await connectPg(proxy.pgPort);
  const loudRemote = localAddress(pgSocket(loud));
  await loud.query('SELECT 1');
  await loud.end();
  await lineFor(loudRemote, 'pg: connection opened');
  await lineFor(loudRemote, 'pg: connection closed');
});

test.run();
