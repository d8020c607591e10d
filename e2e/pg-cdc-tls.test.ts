// test-timeout: 180
//
// The change stream over TLS: a private cluster with ssl=on, wal_level=logical and a pg_hba that
// accepts only hostssl. The replication connection takes --pg-upstream's TLS settings, as the
// relay does (sslmode=verify-full with the test's CA, and the default sslmode=prefer): a write
// made straight to the database invalidates a cached read, which only a stream that connected can
// do (without it the database's reads bypass the cache and never become hits).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { makeCerts, type TestCerts } from './support/certs.js';
import type { Cluster } from './support/cluster.js';
import { readUntil, stableHit, startLogicalCluster, waitForStream } from './support/cdc.js';
import { measure } from './support/metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const DB = 'cdc_tls';
let certs: TestCerts;
let cluster: Cluster;
const proxies: RunningProxy[] = [];

test.before(async () => {
  certs = await makeCerts();
  cluster = await startLogicalCluster({
    tls: certs.good,
    hba: ['hostssl all all 127.0.0.1/32 trust', 'hostssl replication all 127.0.0.1/32 trust'],
  });
  await cluster.query(`CREATE DATABASE ${DB}`);
  const db = new pg.Client({ host: cluster.socketDir, port: cluster.port, user: 'postgres', database: DB });
  await db.connect();
  await db.query('CREATE TABLE kv (k int PRIMARY KEY, v int); INSERT INTO kv SELECT g, 0 FROM generate_series(1, 5) g');
  await db.end();
});

test.after(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
  await cluster?.stop();
  await certs?.remove();
});

const MODES: [string, () => string][] = [
  ['sslmode=verify-full', () => `?sslmode=verify-full&sslrootcert=${certs.ca}`],
  ['the default sslmode (prefer)', () => ''],
];

for (const [name, query] of MODES) {
  test(`${name}: the stream connects over TLS and a direct write invalidates a cached read`, async () => {
    const upstream = `postgres://localhost:${cluster.port}${query()}`;
    // A long TTL: only the stream can make the write visible through the cache.
    const proxy = await startProxy({ pgUpstream: upstream, args: ['--pg-cdc', `postgres://postgres@localhost:${cluster.port}`, '--cache-ttl', '10m'] });
    proxies.push(proxy);
    const app = new pg.Client({ host: '127.0.0.1', port: proxy.pgPort, user: 'postgres', database: DB });
    await app.connect();
    try {
      const k = proxies.length;
      const sql = `SELECT v FROM kv WHERE k = ${k}`;
      await app.query(sql);
      await waitForStream(proxy.adminPort, 'postgres', DB, 'up');
      const before = await stableHit(async () => {
        const { result, delta } = await measure(proxy.adminPort, () => app.query(sql));
        return { rows: result.rows, hit: delta.hits === 1 };
      }, sql);
      assert.equal(before, [{ v: 0 }]);
      const db = new pg.Client({ host: cluster.socketDir, port: cluster.port, user: 'postgres', database: DB });
      await db.connect();
      await db.query(`UPDATE kv SET v = 1 WHERE k = ${k}`);
      await db.end();
      await readUntil(async () => (await app.query(sql)).rows, [{ v: 1 }], sql);
    } finally {
      await app.end();
    }
  });
}

test.run();
