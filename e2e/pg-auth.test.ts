// Authentication is relayed transparently: every method PostgreSQL offers works through the proxy,
// and a failed login looks exactly as it does against the server itself.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import net from 'node:net';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { startCluster, type Cluster } from './support/cluster.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const PASSWORD = 'right horse battery';
const WRONG = 'wrong horse battery';
const DATABASE = 'postgres';

/** One role per auth method; the hba lines below decide which method each role meets. */
const ROLE = { trust: 'trust_user', clear: 'clear_user', md5: 'md5_user', scram: 'scram_user' } as const;
const PASSWORD_ROLES = [ROLE.clear, ROLE.md5, ROLE.scram];

/** Authentication request codes (the int32 after 'R'). */
const AUTH_CLEARTEXT = 3;
const AUTH_MD5 = 5;
const AUTH_SASL = 10;

let cluster: Cluster;
let proxy: RunningProxy;
/** Opened before any failed login, to show the proxy keeps serving it. */
let bystander: pg.Client;

test.before(async () => {
  cluster = await startCluster({
    hba: [
      `host all ${ROLE.trust} 127.0.0.1/32 trust`,
      `host all ${ROLE.clear} 127.0.0.1/32 password`,
      `host all ${ROLE.md5} 127.0.0.1/32 md5`,
      `host all ${ROLE.scram} 127.0.0.1/32 scram-sha-256`,
    ],
    settings: { password_encryption: 'scram-sha-256' },
  });
  await cluster.query(`CREATE ROLE ${ROLE.trust} LOGIN`);
  await cluster.query(`CREATE ROLE ${ROLE.clear} LOGIN PASSWORD '${PASSWORD}'`);
  // An md5 hba line falls back to SCRAM when the stored secret is SCRAM, so store an md5 hash.
  await cluster.query(`SET password_encryption = 'md5'; CREATE ROLE ${ROLE.md5} LOGIN PASSWORD '${PASSWORD}'`);
  await cluster.query(`CREATE ROLE ${ROLE.scram} LOGIN PASSWORD '${PASSWORD}'`);
  proxy = await startProxy({ pgUpstream: `postgres://${cluster.host}:${cluster.port}` });
  bystander = await connect(proxy.pgPort, ROLE.trust);
});

test.after(async () => {
  await bystander?.end().catch(() => undefined);
  await proxy?.stop();
  await cluster?.stop();
});

for (const [method, user] of Object.entries(ROLE)) {
  test(`${method}: login through the proxy and run a query`, async () => {
    const client = await connect(proxy.pgPort, user, PASSWORD);
    try {
      const { rows } = await client.query('SELECT current_user AS who, $1::int + 1 AS answer', [41]);
      assert.equal(rows, [{ who: user, answer: 42 }]);
    } finally {
      await client.end();
    }
  });
}

for (const user of PASSWORD_ROLES) {
  test(`${user}: a wrong password fails through the proxy exactly as it does directly`, async () => {
    const direct = await loginError(cluster.port, user, WRONG);
    const viaProxy = await loginError(proxy.pgPort, user, WRONG);
    assert.equal(direct.code, '28P01');
    assert.equal(viaProxy, direct);
  });
}

test('the server asks each role for the method its hba line names', async () => {
  for (const [user, code] of [[ROLE.clear, AUTH_CLEARTEXT], [ROLE.md5, AUTH_MD5], [ROLE.scram, AUTH_SASL]] as const) {
    const { authRequest } = await rawLogin(proxy.pgPort, user, WRONG, false);
    assert.is(authRequest.readInt32BE(5), code, user);
  }
  // Without TLS between client and proxy there is nothing to bind a channel to: no SCRAM-SHA-256-PLUS.
  const { authRequest } = await rawLogin(proxy.pgPort, ROLE.scram, WRONG, false);
  assert.equal(saslMechanisms(authRequest), ['SCRAM-SHA-256']);
});

for (const [user, sslRequestFirst] of [[ROLE.clear, true], [ROLE.md5, false]] as const) {
  test(`${user}: after a failed login the proxy relays the server's error byte for byte and closes`, async () => {
    const direct = await rawLogin(cluster.port, user, WRONG, sslRequestFirst);
    const viaProxy = await rawLogin(proxy.pgPort, user, WRONG, sslRequestFirst);
    assert.is(direct.closedByPeer, true);
    assert.is(String.fromCharCode(direct.afterPassword[0]!), 'E');
    assert.is(viaProxy.closedByPeer, true, 'the proxy closes the connection after the server does');
    assert.equal(viaProxy.afterPassword.toString('latin1'), direct.afterPassword.toString('latin1'));
  });
}

test('psql (sslmode=prefer, so SSLRequest first) logs in with SCRAM through the proxy', async () => {
  const result = await psql(proxy.pgPort, ROLE.scram, PASSWORD, 'SELECT current_user');
  assert.is(result.stderr, '');
  assert.is(result.code, 0);
  assert.is(result.stdout.trim(), ROLE.scram);
});

test('psql with a wrong password shows the server\'s error through the proxy', async () => {
  const direct = await psql(cluster.port, ROLE.scram, WRONG, 'SELECT 1');
  const viaProxy = await psql(proxy.pgPort, ROLE.scram, WRONG, 'SELECT 1');
  assert.is(direct.code, 2);
  assert.is(viaProxy.code, 2);
  assert.match(direct.stderr, `password authentication failed for user "${ROLE.scram}"`);
  // Only the "connection to server at ..., port N failed" prefix may differ.
  assert.is(afterFatal(viaProxy.stderr), afterFatal(direct.stderr));
});

test('failed logins leave other sessions and new logins working', async () => {
  await Promise.all(PASSWORD_ROLES.map((user) => loginError(proxy.pgPort, user, WRONG)));
  const { rows } = await bystander.query('SELECT current_user AS who');
  assert.equal(rows, [{ who: ROLE.trust }]);
  for (const user of PASSWORD_ROLES) {
    const client = await connect(proxy.pgPort, user, PASSWORD);
    assert.equal((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
    await client.end();
  }
});

async function connect(port: number, user: string, password?: string): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port, user, password, database: DATABASE, connectionTimeoutMillis: 10_000 });
  await client.connect();
  return client;
}

interface LoginError { message: string; code: string | undefined; severity: string | undefined }

async function loginError(port: number, user: string, password: string): Promise<LoginError> {
  try {
    const client = await connect(port, user, password);
    await client.end();
  } catch (err) {
    const e = err as pg.DatabaseError;
    return { message: e.message, code: e.code, severity: e.severity };
  }
  throw new Error(`${user} logged in with a wrong password on port ${port}`);
}

interface RawLogin {
  /** The first message the server sent: AuthenticationRequest. */
  authRequest: Buffer;
  /** Every byte received after the password was sent. */
  afterPassword: Buffer;
  /** The peer ended the connection (rather than our timeout). */
  closedByPeer: boolean;
}

/**
 * Logs in over a bare socket, so the exact bytes and the close can be observed. Answers cleartext
 * and md5 requests; for anything else stops after the request.
 */
function rawLogin(port: number, user: string, password: string, sslRequestFirst: boolean): Promise<RawLogin> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let buffered = Buffer.alloc(0);
    let stage: 'ssl' | 'auth' | 'after' = sslRequestFirst ? 'ssl' : 'auth';
    let authRequest = Buffer.alloc(0);
    const timer = setTimeout(() => finish(false), 5000);
    const finish = (closedByPeer: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ authRequest, afterPassword: stage === 'after' ? buffered : Buffer.alloc(0), closedByPeer });
    };
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.on('error', fail);
    socket.on('end', () => finish(true));
    socket.on('connect', () => socket.write(sslRequestFirst ? serialize.requestSsl() : serialize.startup({ user, database: DATABASE })));
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (stage === 'ssl') {
        if (buffered[0] !== 'N'.charCodeAt(0)) return fail(new Error(`SSLRequest answered with ${buffered.toString('latin1')}`));
        buffered = buffered.subarray(1);
        stage = 'auth';
        socket.write(serialize.startup({ user, database: DATABASE }));
      }
      if (stage !== 'auth' || buffered.length < 5 || buffered.length < 1 + buffered.readInt32BE(1)) return;
      authRequest = buffered.subarray(0, 1 + buffered.readInt32BE(1));
      buffered = buffered.subarray(authRequest.length);
      if (authRequest[0] !== 'R'.charCodeAt(0)) return fail(new Error(`expected an auth request, got ${authRequest.toString('latin1')}`));
      const method = authRequest.readInt32BE(5);
      if (method === AUTH_CLEARTEXT) socket.write(serialize.password(password));
      else if (method === AUTH_MD5) socket.write(serialize.password(md5Response(user, password, authRequest.subarray(9, 13))));
      else return finish(false);
      stage = 'after';
    });
  });
}

function md5Response(user: string, password: string, salt: Buffer): string {
  const md5 = (data: Buffer | string): string => createHash('md5').update(data).digest('hex');
  return 'md5' + md5(Buffer.concat([Buffer.from(md5(password + user)), salt]));
}

/** AuthenticationSASL body: int32 10, then NUL-terminated mechanism names, then an empty one. */
function saslMechanisms(authRequest: Buffer): string[] {
  return authRequest.subarray(9).toString('utf8').split('\0').filter((m) => m !== '');
}

interface PsqlResult { code: number | null; stdout: string; stderr: string }

function psql(port: number, user: string, password: string, sql: string): Promise<PsqlResult> {
  const conninfo = `host=127.0.0.1 port=${port} user=${user} dbname=${DATABASE} sslmode=prefer connect_timeout=10`;
  // Only what the test sets may steer libpq: no PG* variables or password file from the machine.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PG')));
  return new Promise((resolve) => {
    execFile('psql', ['-X', '-A', '-t', '-w', '-d', conninfo, '-c', sql],
      { env: { ...env, PGPASSWORD: password, PGPASSFILE: '/dev/null' }, timeout: 20_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }));
  });
}

function afterFatal(stderr: string): string {
  return stderr.slice(stderr.indexOf('FATAL:'));
}

test.run();
