// test-timeout: 180
// sysbench oltp_read_write through the proxy (server-side prepared statements, transactions, four
// threads), then a consistency check: sysbench ends without a fatal error, every table still holds exactly
// table_size rows (each of its DELETEs is paired with an INSERT of the same id), and a proxied read
// of every table checksums equal to a direct read of it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { RowDataPacket } from 'mysql2/promise';
import { DIRECT_MYSQL, connectMySql, directMySql, uniqueName } from './support/mysql-direct.js';
import { DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

const run = promisify(execFile);
const db = uniqueName('sc_sysbench');
const TABLES = 2;
const TABLE_SIZE = 10_000;
/** Transactions the run does, however long they take (a count, where `--time` gives a slow machine fewer). */
const EVENTS = 1000;
let proxy: RunningProxy;
test.before(async () => {
  // make test installs sysbench (scripts/ensure-servers.sh); a missing one is a failure, not a skip.
  await run('sysbench', ['--version']).catch(() => {
    throw new Error('sysbench is not installed: run scripts/ensure-servers.sh as root or apt-get install sysbench');
  });
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: DIRECT_MYSQL_URL });
  await directMySql(`CREATE DATABASE ${db}`);
  await sysbench(DIRECT_MYSQL.port, 'prepare');
});

test.after(async () => {
  await directMySql(`DROP DATABASE IF EXISTS ${db}`).catch(() => undefined);
  await proxy?.stop();
});

async function sysbench(port: number, action: 'prepare' | 'run', extra: string[] = []): Promise<string> {
  const { stdout } = await run('sysbench', [
    'oltp_read_write', `--mysql-host=127.0.0.1`, `--mysql-port=${port}`, '--mysql-user=root', `--mysql-db=${db}`,
    `--tables=${TABLES}`, `--table-size=${TABLE_SIZE}`, '--db-driver=mysql', ...extra, action,
  ], { maxBuffer: 16 * 1024 * 1024, timeout: 120_000 });
  return stdout;
}

/** Per table: row count and a checksum over every row, read through `port`. */
async function tableDigest(port: number): Promise<unknown[]> {
  const c = await connectMySql(port, { database: db });
  try {
    const out: unknown[] = [];
    for (let i = 1; i <= TABLES; i++) {
      const [rows] = await c.query<RowDataPacket[]>(
        `SELECT COUNT(*) AS n, SUM(CRC32(CONCAT_WS('|', id, k, c, pad))) AS crc, SUM(k) AS k FROM sbtest${i}`);
      out.push(rows[0]);
    }
    return out;
  } finally {
    await c.end();
  }
}

test('oltp_read_write through the proxy: no errors, row counts kept, proxied and direct reads agree', async () => {
  const before = await tableDigest(DIRECT_MYSQL.port);
  const out = await sysbench(proxy.mysqlPort, 'run', ['--threads=4', `--events=${EVENTS}`, '--time=0', '--report-interval=0']);
  const transactions = Number(/transactions:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const errors = Number(/ignored errors:\s+(\d+)/.exec(out)?.[1] ?? -1);
  assert.is(transactions, EVENTS, `transactions: ${transactions}\n${out}`);
  // "Ignored errors" are the deadlocks InnoDB itself reports between sysbench's threads (1213);
  // sysbench retries them. A few are the server's doing; a relay bug would fail far more, or fatally.
  assert.ok(errors >= 0 && errors <= transactions / 100, `ignored errors: ${errors}\n${out}`);
  const directAfter = await tableDigest(DIRECT_MYSQL.port);
  const proxiedAfter = await tableDigest(proxy.mysqlPort);
  assert.equal(proxiedAfter, directAfter, 'a proxied read of every table equals a direct read');
  for (const t of directAfter as { n: string }[]) assert.is(Number(t.n), TABLE_SIZE, 'rows per table');
  assert.not.equal(directAfter, before, 'the run changed the data');
});

test.run();
