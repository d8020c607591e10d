// test-timeout: 300
//
// TLS on both MySQL legs against a private MariaDB with ssl-cert/ssl-key and
// require_secure_transport=ON (cleartext logins refused by the server), certificates made by the
// test (e2e/support/certs.ts). mysql2 with ssl {ca}, the mariadb CLI with --ssl-verify-server-cert
// and MariaDB Connector/J with sslMode=verify-full log in through sidecache; a cleartext client
// reaches the TLS-only server through sidecache's own TLS; the cache answers over TLS as in
// cleartext; certificate failures on either leg are refused with an ERR packet and a log line;
// --client-tls require refuses a cleartext login; caching_sha2_password's full authentication is
// refused where the legs differ; sysbench oltp_read_write over TLS keeps the tables consistent.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type tls from 'node:tls';
import { promisify } from 'node:util';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { makeCerts, type CertPair, type TestCerts } from './support/certs.js';
import { CLIENTS_DIR, runClientProgram } from './support/client-program.js';
import { startMariadb, type MariadbServer } from './support/mariadb-server.js';
import { startFakeSha2Server } from './support/mysql-fake-sha2-server.js';
import { measureMySql } from './support/mysql-metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const run = promisify(execFile);
const MARIADB_JDBC_JAR = '/usr/share/java/mariadb-java-client.jar';
const DB = 'tls_db';

let certs: TestCerts;
let server: MariadbServer;
/** ssl-mode=VERIFY_IDENTITY upstream, --tls-cert good. */
let proxy: RunningProxy;
const others: RunningProxy[] = [];
// Each proxy started here adds an exit hook (support/sidecache.ts).
process.setMaxListeners(30);

function upstreamUrl(mode = 'VERIFY_IDENTITY', ca = certs.ca, port = server.port): string {
  return `mysql://localhost:${port}?ssl-mode=${mode}&ssl-ca=${ca}`;
}

async function startTlsProxy(opts: { upstream?: string; cert?: CertPair; args?: string[] } = {}): Promise<RunningProxy> {
  const cert = opts.cert ?? certs.good;
  const p = await startProxy({ pgUpstream: null, mysqlUpstream: opts.upstream ?? upstreamUrl(), args: ['--tls-cert', cert.cert, '--tls-key', cert.key, ...(opts.args ?? [])] });
  others.push(p);
  return p;
}

async function connect(port: number, ssl: mysql.SslOptions | undefined, extra: mysql.ConnectionOptions = {}): Promise<mysql.Connection> {
  return mysql.createConnection({ host: 'localhost', port, user: 'root', database: DB, ssl, connectTimeout: 10_000, ...extra });
}

/** mysql2's verify-full: the chain, and (verifyIdentity) the host name. */
async function caSsl(ca = certs.ca): Promise<mysql.SslOptions> {
  return { ca: await readFile(ca), verifyIdentity: true } as mysql.SslOptions;
}

function clientStream(c: mysql.Connection): tls.TLSSocket | { encrypted?: boolean } {
  return (c as unknown as { connection: { stream: tls.TLSSocket } }).connection.stream;
}

async function refusal(p: Promise<unknown>): Promise<Error & { errno?: number; code?: string }> {
  return p.then(() => { throw new Error('expected the login to be refused'); }, (e: Error & { errno?: number }) => e);
}

/** The child's output arrives asynchronously: wait (bounded) for a line. */
async function waitForLine(p: RunningProxy, text: string): Promise<void> {
  for (let i = 0; i < 50 && !p.output().includes(text); i++) await new Promise((r) => setTimeout(r, 100));
}

test.before(async () => {
  certs = await makeCerts();
  server = await startMariadb({ binlog: false, tls: { ...certs.good, ca: certs.ca } });
  await server.query(`CREATE DATABASE ${DB}; CREATE TABLE ${DB}.items (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO ${DB}.items VALUES (1, 'one'), (2, 'two'), (3, 'three')`);
  proxy = await startTlsProxy();
});

test.after(async () => {
  await Promise.all(others.map((p) => p.stop()));
  await server?.stop();
  await certs?.remove();
});

test('mysql2 with ssl {ca} through sidecache to a TLS-only server: TLS on both legs, the repeated read a hit', async () => {
  const c = await connect(proxy.mysqlPort, await caSsl());
  try {
    assert.ok(clientStream(c).encrypted, 'the client leg');
    const [status] = await c.query<RowDataPacket[]>("SHOW SESSION STATUS LIKE 'Ssl_cipher'");
    assert.ok(String(status[0]!.Value).length > 0, 'the server sees TLS');
    const sql = 'SELECT v FROM items WHERE id = 2';
    await c.query(sql);
    const { delta } = await measureMySql(proxy.adminPort, async () => {
      for (let i = 0; i < 3; i++) assert.equal((await c.query<RowDataPacket[]>(sql))[0], [{ v: 'two' }]);
    });
    assert.is(delta.hits, 3);
    assert.is(delta.misses, 0);
  } finally {
    await c.end();
  }
});

test('a cleartext client reaches the TLS-only server through sidecache\'s own TLS; ssl-mode=DISABLED gets the server\'s refusal', async () => {
  const c = await connect(proxy.mysqlPort, undefined);
  try {
    assert.not.ok(clientStream(c).encrypted);
    assert.equal((await c.query<RowDataPacket[]>('SELECT v FROM items WHERE id = 1'))[0], [{ v: 'one' }]);
  } finally {
    await c.end();
  }
  const plain = await startTlsProxy({ upstream: `mysql://localhost:${server.port}?ssl-mode=DISABLED` });
  const err = await refusal(connect(plain.mysqlPort, undefined));
  // MariaDB's own refusal under require_secure_transport.
  assert.match(err.message, /Access denied for user 'root'/);
});

test('the mariadb CLI with --ssl-verify-server-cert and Connector/J with sslMode=verify-full log in over TLS', async () => {
  const { stdout } = await run('mariadb', ['--protocol=TCP', '-h', 'localhost', '-P', String(proxy.mysqlPort), '-u', 'root', '--ssl-verify-server-cert',
    `--ssl-ca=${certs.ca}`, DB, '-e', 'status; SELECT v FROM items WHERE id = 3'], { timeout: 30_000 });
  assert.match(stdout, /SSL:\s+Cipher in use is /);
  assert.match(stdout, /\nthree\n/);
  const jdbc = await runClientProgram('java', ['-cp', MARIADB_JDBC_JAR, path.join(CLIENTS_DIR, 'TlsQuery.java'),
    `jdbc:mariadb://localhost:${proxy.mysqlPort}/${DB}?user=root&sslMode=verify-full&serverSslCert=${certs.ca}`,
    "SELECT VARIABLE_VALUE <> '' FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'SSL_CIPHER'"], { timeoutMs: 60_000 });
  assert.is(jdbc.code, 0, jdbc.stderr);
  assert.is(jdbc.stdout, '1\n1\n');
});

// (Node's and MariaDB's clients close without a TLS alert when they reject a certificate after the
// handshake, so sidecache has nothing to log here; e2e/pg-tls.test.ts checks the line with libpq.)
test('client leg: a wrong CA, an expired and a wrong-host certificate are refused by the client', async () => {
  const wrongCa = await refusal(connect(proxy.mysqlPort, await caSsl(certs.otherCa)));
  assert.match(wrongCa.message, /self[- ]signed|unable to (verify|get)/);
  const expired = await startTlsProxy({ cert: certs.expired });
  assert.match((await refusal(connect(expired.mysqlPort, await caSsl()))).message, /certificate has expired/);
  const wrongHost = await startTlsProxy({ cert: certs.wrongHost });
  assert.match((await refusal(connect(wrongHost.mysqlPort, await caSsl()))).message, /Hostname\/IP does not match certificate's altnames|wrong\.example/);
  const cli = await run('mariadb', ['--protocol=TCP', '-h', 'localhost', '-P', String(wrongHost.mysqlPort), '-u', 'root', '--ssl-verify-server-cert',
    `--ssl-ca=${certs.ca}`, '-e', 'SELECT 1'], { timeout: 30_000 }).then(() => null, (e: { stderr: string }) => e.stderr);
  assert.match(String(cli), /ERROR 2026/);
});

test('upstream leg: a wrong CA, or REQUIRED against a server without TLS, refuse the login with an ERR and one log line', async () => {
  const wrongCa = await startTlsProxy({ upstream: upstreamUrl('VERIFY_CA', certs.otherCa) });
  const err = await refusal(connect(wrongCa.mysqlPort, await caSsl()));
  assert.is(err.errno, 2003);
  assert.match(err.message, /TLS to upstream mysql:\/\/localhost:\d+ failed \(ssl-mode=VERIFY_CA\): .*(self[- ]signed|unable to (verify|get))/);
  await waitForLine(wrongCa, 'mysql: upstream TLS failed');
  assert.is(wrongCa.output().split('\n').filter((l) => l.includes('mysql: upstream TLS failed')).length, 1);
  const shared = await startTlsProxy({ upstream: 'mysql://127.0.0.1:3306?ssl-mode=REQUIRED' });
  const noTls = await refusal(connect(shared.mysqlPort, undefined, { database: 'test' }));
  assert.match(noTls.message, /failed \(ssl-mode=REQUIRED\): the server does not offer TLS/);
  // PREFERRED (the default) goes on in cleartext with such a server.
  const preferred = await startTlsProxy({ upstream: 'mysql://127.0.0.1:3306' });
  const c = await connect(preferred.mysqlPort, await caSsl(), { database: 'test' });
  assert.equal((await c.query<RowDataPacket[]>('SELECT 1 AS one'))[0], [{ one: 1 }]);
  await c.end();
});

test('--client-tls require: a cleartext login gets error 3159 naming what to change; TLS logins pass', async () => {
  const strict = await startTlsProxy({ args: ['--client-tls', 'require'] });
  const err = await refusal(connect(strict.mysqlPort, undefined));
  assert.is(err.errno, 3159);
  assert.match(err.message, /insecure transport are prohibited \(--client-tls require\): user 'root' must connect with TLS/);
  const c = await connect(strict.mysqlPort, await caSsl());
  await c.ping();
  await c.end();
});

test('caching_sha2_password over a TLS client leg: the fast path passes; full authentication to a cleartext upstream is refused', async () => {
  for (const mode of ['fast', 'full'] as const) {
    const fake = await startFakeSha2Server(mode, 'sha2-secret');
    const p = await startTlsProxy({ upstream: `mysql://127.0.0.1:${fake.port}` });
    try {
      const attempt = mysql.createConnection({ host: 'localhost', port: p.mysqlPort, user: 'sha2user', password: 'sha2-secret', ssl: await caSsl() });
      if (mode === 'fast') {
        const c = await attempt;
        await c.ping();
        await c.end();
        assert.ok(fake.logins[0]!.accepted);
        assert.equal(fake.logins[0]!.sequence.slice(0, 1), [1], 'renumbered for the cleartext upstream leg');
      } else {
        const err = await refusal(attempt);
        assert.is(err.errno, 3159);
        assert.match(err.message, /sends its password in cleartext inside its TLS connection, and sidecache's connection to the server is not TLS; set ssl-mode=REQUIRED/);
        assert.not.ok(fake.logins[0]!.accepted);
        assert.equal(fake.logins[0]!.sequence, [1], 'the password never reached the server');
      }
    } finally {
      await fake.close();
    }
  }
});

test('sysbench oltp_read_write over TLS on both legs: no fatal error, every table keeps its rows', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sidecache-sysbench-tls-'));
  try {
    // sysbench 1.0 with --mysql-ssl=on reads these names from its working directory.
    await copyFile(certs.ca, path.join(dir, 'cacert.pem'));
    await copyFile(certs.good.cert, path.join(dir, 'client-cert.pem'));
    await copyFile(certs.good.key, path.join(dir, 'client-key.pem'));
    const sysbench = (action: string, extra: string[] = []): Promise<{ stdout: string }> => run('sysbench', ['oltp_read_write',
      '--mysql-host=127.0.0.1', `--mysql-port=${proxy.mysqlPort}`, '--mysql-user=root', `--mysql-db=${DB}`, '--mysql-ssl=on',
      '--tables=2', '--table-size=2000', '--db-driver=mysql', ...extra, action], { cwd: dir, timeout: 120_000, maxBuffer: 16 << 20 });
    await sysbench('prepare');
    const out = (await sysbench('run', ['--threads=4', '--events=500', '--time=0', '--report-interval=0'])).stdout;
    assert.is(Number(/transactions:\s+(\d+)/.exec(out)?.[1]), 500, out);
    const c = await connect(proxy.mysqlPort, await caSsl());
    try {
      for (const t of ['sbtest1', 'sbtest2']) {
        assert.equal((await c.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${t}`))[0], [{ n: 2000 }]);
        const [status] = await c.query<RowDataPacket[]>("SHOW SESSION STATUS LIKE 'Ssl_cipher'");
        assert.ok(String(status[0]!.Value).length > 0);
      }
    } finally {
      await c.end();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
