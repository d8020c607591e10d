// test-timeout: 120
//
// A client that resets its connection in the middle of the TLS handshake closes only its own
// session. The case that matters: the client's first TLS bytes came in the same read as its
// request for TLS (PostgreSQL's SSLRequest or MySQL's SSL request packet followed at once by the
// ClientHello, or PostgreSQL 17's direct TLS, whose first read is the ClientHello). The session then
// feeds the TLS layer from the plain socket, and that socket's ECONNRESET had no listener: the
// whole proxy exited (seen once as an unhandled 'error' event when sysbench's threads ended).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import tls from 'node:tls';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { makeCerts, type TestCerts } from './support/certs.js';
import { packet, sslRequest as mysqlSslRequest } from './support/mysql-raw.js';
import { sslRequest as pgSslRequest } from './support/pg-raw.js';
import { DIRECT_MYSQL, DIRECT_MYSQL_URL, DIRECT_PG, startProxy, type RunningProxy } from './support/sidecache.js';

let certs: TestCerts;
let proxy: RunningProxy;

test.before(async () => {
  certs = await makeCerts();
  proxy = await startProxy({ mysqlUpstream: DIRECT_MYSQL_URL, args: ['--tls-cert', certs.good.cert, '--tls-key', certs.good.key] });
});

test.after(async () => {
  await proxy?.stop();
  await certs?.remove();
});

/** The first bytes a TLS client sends (its ClientHello), captured on a throwaway listener. */
async function clientHello(alpn: string[]): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const hello = new Promise<Buffer>((resolve) => server.once('connection', (s) => s.once('data', (d: Buffer) => {
    resolve(d);
    s.destroy();
  })));
  const client = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, rejectUnauthorized: false, ALPNProtocols: alpn });
  client.on('error', () => undefined);
  const bytes = await hello;
  client.destroy();
  server.close();
  return bytes;
}

/** Connects, sends `first` (after the server greeting when `waitForGreeting`), then resets the connection mid-handshake. */
async function resetMidHandshake(port: number, first: Buffer, waitForGreeting: boolean): Promise<void> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  if (waitForGreeting) await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  socket.write(first);
  // The proxy has the bytes and answers with its ServerHello: the handshake is under way.
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  socket.resetAndDestroy();
  await new Promise((r) => setTimeout(r, 200));
}

async function stillServing(): Promise<void> {
  assert.is(proxy.child.exitCode, null, `sidecache exited:\n${proxy.output().slice(-2000)}`);
  const c = new pg.Client({ ...DIRECT_PG, port: proxy.pgPort });
  await c.connect();
  try {
    assert.is((await c.query('SELECT 1 AS one')).rows[0].one, 1);
  } finally {
    await c.end();
  }
  const m = await mysql.createConnection({ ...DIRECT_MYSQL, port: proxy.mysqlPort });
  try {
    const [rows] = await m.query('SELECT 1 AS one');
    assert.equal(rows, [{ one: 1 }]);
  } finally {
    await m.end();
  }
}

test('PostgreSQL: SSLRequest and ClientHello in one write, then a reset: only that connection ends', async () => {
  await resetMidHandshake(proxy.pgPort, Buffer.concat([pgSslRequest(), await clientHello(['postgresql'])]), false);
  await stillServing();
});

test('PostgreSQL direct TLS (sslnegotiation=direct), then a reset: only that connection ends', async () => {
  await resetMidHandshake(proxy.pgPort, await clientHello(['postgresql']), false);
  await stillServing();
});

test('MySQL: the SSL request packet and ClientHello in one write, then a reset: only that connection ends', async () => {
  await resetMidHandshake(proxy.mysqlPort, Buffer.concat([packet(mysqlSslRequest(), 1), await clientHello([])]), true);
  await stillServing();
});

test.run();
