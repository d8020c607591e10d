// test-timeout: 180
//
// The binlog stream over TLS: a private mariadbd with --log-bin (ROW), a certificate and
// require_secure_transport=ON, so a cleartext login is refused. The stream's control and dump
// connections take --mysql-upstream's TLS settings, as the relay does (ssl-mode=VERIFY_IDENTITY
// with the test's CA, and the default PREFERRED): a write made straight to the server invalidates
// a cached read, which only a stream that connected can do (without it every MySQL read bypasses
// the cache and never becomes a hit).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { makeCerts, type TestCerts } from './support/certs.js';
import { readUntil, stableHit, waitForStream } from './support/cdc.js';
import { startMariadb, type MariadbServer } from './support/mariadb-server.js';
import { measureMySql } from './support/mysql-metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const DB = 'cdc_tls';
let certs: TestCerts;
let server: MariadbServer;
const proxies: RunningProxy[] = [];

test.before(async () => {
  certs = await makeCerts();
  server = await startMariadb({ tls: { ...certs.good, ca: certs.ca } });
  await server.query(`CREATE DATABASE ${DB}; CREATE TABLE ${DB}.kv (k int PRIMARY KEY, v int); INSERT INTO ${DB}.kv VALUES (1, 0), (2, 0)`);
});

test.after(async () => {
  await Promise.all(proxies.map((p) => p.stop()));
  await server?.stop();
  await certs?.remove();
});

const MODES: [string, () => string][] = [
  ['ssl-mode=VERIFY_IDENTITY', () => `?ssl-mode=VERIFY_IDENTITY&ssl-ca=${certs.ca}`],
  ['the default ssl-mode (PREFERRED)', () => ''],
];

for (const [name, query] of MODES) {
  test(`${name}: the binlog stream connects over TLS and a direct write invalidates a cached read`, async () => {
    // A long TTL: only the stream can make the write visible through the cache.
    const proxy = await startProxy({ pgUpstream: null, mysqlUpstream: `mysql://localhost:${server.port}${query()}`,
      args: ['--mysql-cdc', `mysql://root@localhost:${server.port}`, '--cache-ttl', '10m'] });
    proxies.push(proxy);
    const app = await mysql.createConnection({ host: '127.0.0.1', port: proxy.mysqlPort, user: 'root', database: DB });
    try {
      const k = proxies.length;
      const sql = `SELECT v FROM kv WHERE k = ${k}`;
      const read = async (): Promise<unknown[]> => (await app.query<RowDataPacket[]>(sql))[0].map((r) => ({ ...r }));
      await waitForStream(proxy.adminPort, 'mysql', '*', 'up');
      const before = await stableHit(async () => {
        const { result, delta } = await measureMySql(proxy.adminPort, read);
        return { rows: result, hit: delta.hits === 1 };
      }, sql);
      assert.equal(before, [{ v: 0 }]);
      await server.query(`UPDATE ${DB}.kv SET v = 1 WHERE k = ${k}`);
      await readUntil(read, [{ v: 1 }], sql);
    } finally {
      await app.end();
    }
  });
}

test.run();
