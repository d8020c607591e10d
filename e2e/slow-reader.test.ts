// test-timeout: 120
// Both relays read each socket into one reused buffer (proxy/read-buffer.ts): a chunk is valid only
// until its handler returns, and a write the kernel did not take at once must keep its bytes. A
// client that stops reading in the middle of a large result is exactly that case: the proxy's
// writes queue up, and if a queued write still pointed into a buffer the next read overwrote, the
// client would get someone else's bytes. Every row is distinct, so any overwritten byte shows.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import type net from 'node:net';
import type pg from 'pg';
import type { RowDataPacket } from 'mysql2/promise';
import { connectMySql, directMySql } from './support/mysql-direct.js';
import { connectPg, direct, sleep } from './support/pg-direct.js';
import { DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

let proxy: RunningProxy;
/** Big enough to overflow both sockets' kernel buffers many times (about 20 MB of rows). */
const ROWS = 200_000;
const PAUSE_MS = 1500;

test.before(async () => {
  proxy = await startProxy({ mysqlUpstream: DIRECT_MYSQL_URL });
});

test.after(async () => {
  await proxy?.stop();
});

function digest(rows: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(rows)).digest('hex');
}

test('PostgreSQL: a client that stops reading mid-result gets every row intact when it reads again', async () => {
  const sql = `SELECT i, md5(i::text) || md5((i * 7)::text) AS h FROM generate_series(1, ${ROWS}) AS i`;
  const expected = digest((await direct(sql)).rows);
  // A corrupted reply may leave the client waiting forever: fail it instead.
  const c = await connectPg(proxy.pgPort, { query_timeout: 30_000 });
  try {
    const pending = c.query(sql);
    const socket = (c as unknown as { connection: { stream: net.Socket } }).connection.stream;
    socket.pause();
    await sleep(PAUSE_MS);
    socket.resume();
    const result: pg.QueryResult = await pending;
    assert.is(result.rows.length, ROWS);
    assert.is(digest(result.rows), expected);
    // The session goes on normally afterwards.
    assert.equal((await c.query('SELECT 41 + 1 AS n')).rows, [{ n: 42 }]);
  } finally {
    await c.end();
  }
});

test('MySQL: a client that stops reading mid-result gets every row intact when it reads again', async () => {
  const sql = `SELECT seq AS i, CONCAT(MD5(seq), MD5(seq * 7)) AS h FROM seq_1_to_${ROWS}`;
  const expected = digest(await directMySql(sql) as unknown[]);
  const c = await connectMySql(proxy.mysqlPort);
  try {
    const pending = c.query<RowDataPacket[]>({ sql, timeout: 30_000 });
    const socket = (c as unknown as { connection: { stream: net.Socket } }).connection.stream;
    socket.pause();
    await sleep(PAUSE_MS);
    socket.resume();
    const [rows] = await pending;
    assert.is(rows.length, ROWS);
    assert.is(digest(rows), expected);
    const [after] = await c.query<RowDataPacket[]>('SELECT 41 + 1 AS n');
    assert.equal(after, [{ n: 42 }]);
  } finally {
    await c.end();
  }
});

test.run();
