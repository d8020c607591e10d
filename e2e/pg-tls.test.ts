// test-timeout: 300
//
// TLS on both PostgreSQL legs against a private cluster that has ssl=on and a pg_hba that accepts
// only hostssl: certificates made by the test (e2e/support/certs.ts). Real clients log in through
// sidecache with sslmode=verify-full (psql, node-postgres, pgJDBC, psycopg2), the cache answers
// over TLS as in cleartext, every certificate failure on either leg is refused with a clear error
// in the client's protocol and a log line, a cleartext client is refused under --client-tls
// require, SCRAM's channel binding is handled, PostgreSQL 17's direct TLS is accepted, a renewed
// certificate is taken by a reload while a TLS session stays open, and pgbench runs TPC-B over TLS
// with its balances consistent afterwards.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmod, copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import pg from 'pg';
import { makeCerts, type CertPair, type TestCerts } from './support/certs.js';
import { CLIENTS_DIR, runClientProgram } from './support/client-program.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { psql, type Run } from './support/psql.js';
import { cacheCounters, counterDelta } from './support/metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';
import { RecordingTlsClient } from './support/tls-records.js';
import { serialize } from './support/pg-raw.js';

const PG_JDBC_JAR = '/usr/share/java/postgresql.jar';
const PYTHON = process.env.SIDECACHE_PYTHON ?? '/usr/bin/python3';
const TABLE = 'tls_items';

let certs: TestCerts;
let cluster: Cluster;
/** Both legs verify-full; its certificate files live in `proxyDir` so a test can renew them in place. */
let proxy: RunningProxy;
let proxyDir: string;
const others: RunningProxy[] = [];

function upstreamUrl(mode = 'verify-full', ca = certs.ca): string {
  return `postgres://localhost:${cluster.port}?sslmode=${mode}&sslrootcert=${ca}`;
}

async function startTlsProxy(opts: { upstream?: string; cert?: CertPair; args?: string[] } = {}): Promise<RunningProxy> {
  const cert = opts.cert ?? certs.good;
  const p = await startProxy({ pgUpstream: opts.upstream ?? upstreamUrl(), args: ['--tls-cert', cert.cert, '--tls-key', cert.key, ...(opts.args ?? [])] });
  others.push(p);
  return p;
}

const verifyFull = (ca = certs.ca): string => `user=postgres sslmode=verify-full sslrootcert=${ca}`;

async function pgTls(port: number, extra: pg.ClientConfig = {}): Promise<pg.Client> {
  const c = new pg.Client({ host: 'localhost', port, user: 'postgres', database: 'postgres', ssl: { ca: await readFile(certs.ca, 'utf8') }, ...extra });
  await c.connect();
  return c;
}

/** Puts `pair` in place of the cluster's certificate and reloads it (PostgreSQL re-reads its SSL files on SIGHUP). */
async function serverCertificate(pair: CertPair): Promise<void> {
  await copyFile(pair.cert, path.join(cluster.dataDir, 'server.crt'));
  await copyFile(pair.key, path.join(cluster.dataDir, 'server.key'));
  // copyFile copies the source's mode; PostgreSQL keeps its old files for a key others can read.
  await chmod(path.join(cluster.dataDir, 'server.key'), 0o600);
  await cluster.query('SELECT pg_reload_conf()');
  // The reload is asynchronous: wait until a fresh connection is shown the new certificate.
  const want = new X509Certificate(await readFile(pair.cert)).fingerprint256;
  for (let i = 0; i < 100; i++) {
    if (await peerFingerprint(cluster.port, false) === want) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the cluster did not take the new certificate');
}

/** The certificate a PostgreSQL server (or sidecache) shows after SSLRequest, or with direct TLS. */
function peerFingerprint(port: number, direct: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = direct ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['postgresql'] }) : null;
    if (socket !== null) {
      socket.once('secureConnect', () => {
        resolve(socket.getPeerCertificate().fingerprint256);
        socket.destroy();
      });
      socket.once('error', reject);
      return;
    }
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', ssl: { rejectUnauthorized: false } });
    c.connect().then(() => {
      const s = (c as unknown as { connection: { stream: tls.TLSSocket } }).connection.stream;
      resolve(s.getPeerCertificate().fingerprint256);
      return c.end();
    }).catch(reject);
  });
}

function startupMessage(user: string, database: string): Buffer {
  const body = Buffer.from(`user\0${user}\0database\0${database}\0\0`);
  const out = Buffer.alloc(8 + body.length);
  out.writeInt32BE(out.length, 0);
  out.writeInt32BE(196608, 4);
  body.copy(out, 8);
  return out;
}

test.before(async () => {
  certs = await makeCerts();
  cluster = await startCluster({
    tls: certs.good,
    hba: ['hostssl all scram_user 127.0.0.1/32 scram-sha-256', 'hostssl all all 127.0.0.1/32 trust'],
  });
  await cluster.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v text)`);
  await cluster.query(`INSERT INTO ${TABLE} SELECT g, 'row ' || g FROM generate_series(1, 10) g`);
  await cluster.query("SET password_encryption = 'scram-sha-256'; CREATE ROLE scram_user LOGIN PASSWORD 'scram-pw'");
  await cluster.query('GRANT SELECT ON tls_items TO scram_user');
  proxyDir = await mkdtemp(path.join(os.tmpdir(), 'sidecache-tls-proxy-'));
  await copyFile(certs.good.cert, path.join(proxyDir, 'cert.pem'));
  await copyFile(certs.good.key, path.join(proxyDir, 'key.pem'));
  proxy = await startTlsProxy({ cert: { cert: path.join(proxyDir, 'cert.pem'), key: path.join(proxyDir, 'key.pem') } });
});

test.after(async () => {
  await Promise.all(others.map((p) => p.stop()));
  await cluster?.stop();
  await certs?.remove();
  if (proxyDir) await rm(proxyDir, { recursive: true, force: true });
});

test('psql verify-full through sidecache to a hostssl-only server: TLS on both legs, the repeated read a hit', async () => {
  const before = await cacheCounters(proxy.adminPort);
  const sql = `SELECT v FROM ${TABLE} WHERE id = 3`;
  const run = await psql(proxy.pgPort, verifyFull(), ['\\conninfo', 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()', sql, sql]);
  assert.is(run.code, 0, run.stderr);
  assert.match(run.stdout, /SSL connection \(protocol: TLSv1\.[23]/, 'the client leg');
  assert.match(run.stdout, /\nt\nrow 3\nrow 3\n$/, 'the upstream leg: the server sees TLS');
  const delta = counterDelta(await cacheCounters(proxy.adminPort), before);
  assert.is(delta.misses, 1);
  assert.is(delta.hits, 1);
});

test('node-postgres with ssl {ca}: hits over TLS are answered without an upstream trip', async () => {
  const c = await pgTls(proxy.pgPort);
  try {
    const sql = `SELECT id, v FROM ${TABLE} WHERE id = $1`;
    await c.query(sql, [5]);
    const stat = async (): Promise<number> => Number((await cluster.query<{ n: string }>(
      "SELECT calls::text AS n FROM pg_stat_user_tables t, LATERAL (SELECT seq_scan + coalesce(idx_scan, 0) AS calls) s WHERE relname = 'tls_items'"))[0]!.n);
    const scansBefore = await stat();
    const before = await cacheCounters(proxy.adminPort);
    for (let i = 0; i < 5; i++) assert.equal((await c.query(sql, [5])).rows, [{ id: 5, v: 'row 5' }]);
    const delta = counterDelta(await cacheCounters(proxy.adminPort), before);
    assert.is(delta.hits, 5);
    assert.is(delta.misses, 0);
    assert.is(await stat(), scansBefore, 'the server read nothing for the hits');
  } finally {
    await c.end();
  }
});

test('pgJDBC sslmode=verify-full and psycopg2 sslmode=verify-full log in and read through TLS', async () => {
  const jdbc = await runClientProgram('java', ['-cp', PG_JDBC_JAR, path.join(CLIENTS_DIR, 'TlsQuery.java'),
    `jdbc:postgresql://localhost:${proxy.pgPort}/postgres?user=postgres&sslmode=verify-full&sslrootcert=${certs.ca}`,
    'SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()'], { timeoutMs: 60_000 });
  assert.is(jdbc.code, 0, jdbc.stderr);
  assert.is(jdbc.stdout, 'true\ntrue\n');
  const py = await runClientProgram(PYTHON, ['-c', [
    'import psycopg2, sys',
    `c = psycopg2.connect(host="localhost", port=${proxy.pgPort}, user="postgres", dbname="postgres", sslmode="verify-full", sslrootcert="${certs.ca}")`,
    'cur = c.cursor()',
    `cur.execute("SELECT v FROM ${TABLE} WHERE id = 7")`,
    'print(cur.fetchone()[0], c.info.ssl_in_use)',
  ].join('\n')], { timeoutMs: 30_000 });
  assert.is(py.code, 0, py.stderr);
  assert.is(py.stdout, 'row 7 True\n');
});

test('client leg: a wrong CA, an expired and a wrong-host certificate are refused by the client, and logged', async () => {
  const wrongCa = await psql(proxy.pgPort, verifyFull(certs.otherCa), ['SELECT 1']);
  assert.is(wrongCa.code, 2);
  assert.match(wrongCa.stderr, /certificate verify failed/);
  const expired = await startTlsProxy({ cert: certs.expired });
  const run = await psql(expired.pgPort, verifyFull(), ['SELECT 1']);
  assert.match(run.stderr, /certificate verify failed|certificate has expired/);
  const wrongHost = await startTlsProxy({ cert: certs.wrongHost });
  const run2 = await psql(wrongHost.pgPort, verifyFull(), ['SELECT 1']);
  assert.match(run2.stderr, /server certificate for "wrong\.example" does not match host name "localhost"/);
  // libpq checks the name after the handshake: verify-ca accepts the same certificate.
  assert.is((await psql(wrongHost.pgPort, `user=postgres sslmode=verify-ca sslrootcert=${certs.ca}`, ['SELECT 1'])).stdout, '1\n');
  for (let i = 0; i < 50 && !expired.output().includes('pg: client TLS connection failed'); i++) await new Promise((r) => setTimeout(r, 100));
  assert.match(expired.output(), /pg: client TLS connection failed/);
});

test('upstream leg: a wrong CA, an expired and a wrong-host server certificate refuse the login with 08006 and one log line; others go on', async () => {
  const wrongCa = await startTlsProxy({ upstream: upstreamUrl('verify-full', certs.otherCa) });
  const c = await pgTls(proxy.pgPort);
  try {
    const err = await pgTls(wrongCa.pgPort).then(() => null, (e: Error & { code?: string }) => e);
    assert.ok(err !== null);
    assert.is(err.code, '08006');
    assert.match(err.message, /TLS to upstream postgres:\/\/localhost:\d+ failed \(sslmode=verify-full\): .*(self[- ]signed|unable to verify|unable to get)/);
    for (let i = 0; i < 50 && !wrongCa.output().includes('pg: upstream TLS failed'); i++) await new Promise((r) => setTimeout(r, 100));
    assert.is(wrongCa.output().split('\n').filter((l) => l.includes('pg: upstream TLS failed')).length, 1);
    assert.equal((await c.query(`SELECT v FROM ${TABLE} WHERE id = 1`)).rows, [{ v: 'row 1' }], 'another session is unaffected');
  } finally {
    await c.end();
  }
  const verifyCa = await startTlsProxy({ upstream: upstreamUrl('verify-ca') });
  try {
    await serverCertificate(certs.expired);
    const expired = await pgTls(proxy.pgPort).then(() => null, (e: Error) => e);
    assert.match(String(expired?.message), /failed \(sslmode=verify-full\): certificate has expired/);
    await serverCertificate(certs.wrongHost);
    const wrongHost = await pgTls(proxy.pgPort).then(() => null, (e: Error) => e);
    assert.match(String(wrongHost?.message), /failed \(sslmode=verify-full\): Hostname\/IP does not match certificate's altnames/);
    // verify-ca checks the chain only, as libpq does.
    const ok = await pgTls(verifyCa.pgPort);
    await ok.end();
  } finally {
    await serverCertificate(certs.good);
  }
  assert.match(proxy.output(), /"reason":"certificate has expired/);
});

test('sslmode=require to a server without TLS refuses the login; prefer goes on in cleartext', async () => {
  const shared = await startTlsProxy({ upstream: 'postgres://127.0.0.1:5432?sslmode=require' });
  const err = await pgTls(shared.pgPort, { database: 'test' }).then(() => null, (e: Error & { code?: string }) => e);
  assert.is(err?.code, '08006');
  assert.match(String(err?.message), /failed \(sslmode=require\): the server does not support TLS/);
  const prefer = await startTlsProxy({ upstream: 'postgres://127.0.0.1:5432' });
  const c = await pgTls(prefer.pgPort, { database: 'test' });
  try {
    assert.equal((await c.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
  } finally {
    await c.end();
  }
});

test('--client-tls require: a cleartext login gets 28000 naming what to change; TLS logins pass', async () => {
  const strict = await startTlsProxy({ args: ['--client-tls', 'require'] });
  const plain = await psql(strict.pgPort, 'user=postgres sslmode=disable', ['SELECT 1']);
  assert.is(plain.code, 2);
  assert.match(plain.stderr, /FATAL: {2}sidecache requires TLS \(--client-tls require\): no cleartext login for user "postgres", database "postgres"; connect with sslmode=require/);
  const viaTls = await psql(strict.pgPort, 'user=postgres sslmode=require', ['SELECT 1']);
  assert.is(viaTls.stdout, '1\n', viaTls.stderr);
  const err = await new pg.Client({ host: '127.0.0.1', port: strict.pgPort, user: 'postgres', database: 'postgres' }).connect().then(() => null, (e: Error & { code?: string }) => e);
  assert.is(err?.code, '28000');
});

test('SCRAM: -PLUS is not offered; channel_binding=require fails in libpq, prefer gets sidecache\'s reason, disable logs in', async () => {
  const conn = `user=scram_user password=scram-pw sslmode=verify-full sslrootcert=${certs.ca}`;
  const required = await psql(proxy.pgPort, `${conn} channel_binding=require`, ['SELECT 1']);
  assert.match(required.stderr, /channel binding is required, but server did not offer an authentication method that supports channel binding/);
  const preferred = await psql(proxy.pgPort, `${conn} channel_binding=prefer`, ['SELECT 1']);
  assert.match(preferred.stderr, /FATAL: {2}sidecache: SCRAM channel binding cannot pass through sidecache.*channel_binding=disable/);
  const disabled = await psql(proxy.pgPort, `${conn} channel_binding=disable`, [`SELECT v FROM ${TABLE} WHERE id = 2`]);
  assert.is(disabled.stdout, 'row 2\n', disabled.stderr);
  // Through a cleartext client leg libpq never asks to bind: SCRAM passes with its default.
  const plainClient = await psql(proxy.pgPort, 'user=scram_user password=scram-pw sslmode=disable', ['SELECT 1']);
  assert.is(plainClient.stdout, '1\n', plainClient.stderr);
});

test('direct TLS (PostgreSQL 17, ALPN postgresql): the startup message inside TLS logs in', async () => {
  const socket = tls.connect({ host: '127.0.0.1', port: proxy.pgPort, ca: await readFile(certs.ca), servername: 'localhost', ALPNProtocols: ['postgresql'] });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    assert.is(socket.alpnProtocol, 'postgresql');
    socket.write(startupMessage('postgres', 'postgres'));
    let got = Buffer.alloc(0);
    await new Promise<void>((resolve, reject) => {
      socket.on('data', (d: Buffer) => {
        got = Buffer.concat([got, d]);
        if (got.includes(Buffer.from([0x5a, 0, 0, 0, 5, 0x49]))) resolve(); // ReadyForQuery 'I'
      });
      socket.once('error', reject);
      setTimeout(() => reject(new Error(`no ReadyForQuery: ${got.toString('latin1')}`)), 10_000);
    });
    assert.is(got[0], 0x52, 'AuthenticationOk first');
  } finally {
    socket.destroy();
  }
  const noAlpn = tls.connect({ host: '127.0.0.1', port: proxy.pgPort, rejectUnauthorized: false });
  const closed = await new Promise<string>((resolve) => {
    let text = '';
    noAlpn.on('data', (d: Buffer) => { text += d.toString('latin1'); });
    noAlpn.once('close', () => resolve(text));
    noAlpn.once('error', () => undefined);
  });
  assert.match(closed, /direct TLS connection without ALPN "postgresql"/);
});

test('a renewed certificate is taken by POST /api/config/reload while a TLS session stays open', async () => {
  const session = await pgTls(proxy.pgPort);
  try {
    const oldPrint = new X509Certificate(await readFile(certs.good.cert)).fingerprint256;
    const newPrint = new X509Certificate(await readFile(certs.renewed.cert)).fingerprint256;
    assert.is(await peerFingerprint(proxy.pgPort, false), oldPrint);
    await copyFile(certs.renewed.cert, path.join(proxyDir, 'cert.pem'));
    await copyFile(certs.renewed.key, path.join(proxyDir, 'key.pem'));
    const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/api/config/reload`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    assert.is(res.status, 200);
    assert.is(await peerFingerprint(proxy.pgPort, false), newPrint, 'SSLRequest path');
    assert.is(await peerFingerprint(proxy.pgPort, true), newPrint, 'direct TLS');
    assert.equal((await session.query(`SELECT v FROM ${TABLE} WHERE id = 4`)).rows, [{ v: 'row 4' }], 'the open session goes on');
  } finally {
    await session.end();
  }
});

test('a prepared hit over TLS is one TLS record; hits pipelined behind it follow in order, none lost', async () => {
  const c = await RecordingTlsClient.connect(proxy.pgPort, await readFile(certs.ca));
  try {
    c.send(serialize.startup({ user: 'postgres', database: 'postgres' }));
    await c.untilReady();
    c.send(serialize.parse({ name: 'by_id', text: `SELECT v FROM ${TABLE} WHERE id = $1`, types: [] }), serialize.sync());
    await c.untilReady();
    const execute = (id: number): Buffer => Buffer.concat([serialize.bind({ statement: 'by_id', values: [String(id)] }), serialize.execute({}), serialize.sync()]);
    const rows = (messages: { code: string; body: Buffer }[]): string[] =>
      messages.filter((m) => m.code === 'D').map((m) => m.body.subarray(6).toString());
    // Until the statement is answered from the cache (the first runs fill it and check the server).
    let hit = false;
    for (let i = 0; i < 20 && !hit; i++) {
      const before = await cacheCounters(proxy.adminPort);
      c.send(execute(7));
      assert.equal(rows(await c.untilReady()), ['row 7']);
      hit = counterDelta(await cacheCounters(proxy.adminPort), before).hits === 1;
    }
    assert.ok(hit, 'the prepared read became a hit');
    const before = await cacheCounters(proxy.adminPort);
    const records = c.records;
    c.send(execute(7));
    const reply = await c.untilReady();
    assert.is(reply.map((m) => m.code).join(''), '2DCZ');
    assert.is(c.records - records, 1, 'BindComplete, DataRow, CommandComplete and ReadyForQuery in one record');
    // Three Sync groups in one record: three replies, in order, none lost.
    c.send(execute(7), execute(7), execute(7));
    assert.equal(rows(await c.untilReady(3)), ['row 7', 'row 7', 'row 7']);
    assert.is(counterDelta(await cacheCounters(proxy.adminPort), before).hits, 4);
    c.send(serialize.query(`SELECT v FROM ${TABLE} WHERE id = 8`));
    assert.equal(rows(await c.untilReady()), ['row 8'], 'the session goes on');
  } finally {
    c.close();
  }
});

test('pgbench TPC-B over TLS on both legs: no failed transaction, balances equal the history', async () => {
  const env = { PATH: process.env.PATH, LANG: 'C.UTF-8', PGHOST: 'localhost', PGPORT: String(proxy.pgPort), PGUSER: 'postgres',
    PGSSLMODE: 'verify-full', PGSSLROOTCERT: certs.ca, PGCONNECT_TIMEOUT: '10' };
  const pgbench = (args: string[]): Promise<Run> => new Promise((resolve, reject) => {
    execFile('pgbench', [...args, 'postgres'], { env, timeout: 90_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
  const init = await pgbench(['-i', '-s', '1', '-q']);
  assert.is(init.code, 0, init.stderr);
  const run = await pgbench(['-c', '4', '-j', '2', '-T', '5', '-M', 'prepared']);
  assert.is(run.code, 0, run.stderr);
  assert.match(run.stdout, /number of failed transactions: 0 \(/);
  const done = Number(/number of transactions actually processed: (\d+)/.exec(run.stdout)?.[1]);
  assert.ok(done > 0, run.stdout);
  const [sums] = await cluster.query<Record<string, string>>(`SELECT
      (SELECT sum(abalance) FROM pgbench_accounts)::text AS accounts, (SELECT sum(tbalance) FROM pgbench_tellers)::text AS tellers,
      (SELECT sum(bbalance) FROM pgbench_branches)::text AS branches, (SELECT coalesce(sum(delta), 0) FROM pgbench_history)::text AS history,
      (SELECT count(*) FROM pgbench_history)::text AS rows`);
  assert.is(sums!.accounts, sums!.history);
  assert.is(sums!.tellers, sums!.history);
  assert.is(sums!.branches, sums!.history);
  assert.is(Number(sums!.rows), done);
});

test.run();
