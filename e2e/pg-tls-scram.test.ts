// test-timeout: 240
//
// SCRAM with channel binding across TLS on both legs, for users whose secret sidecache knows
// (--pg-auth-file, PgBouncer's userlist format): a private cluster with ssl=on, scram-sha-256 and a
// pg_hba that accepts only hostssl. sidecache verifies the client itself (SCRAM-SHA-256-PLUS bound
// to its own certificate) and logs in upstream with the key the client proved, bound to the
// server's certificate. libpq's default channel_binding=prefer and channel_binding=require log
// in; so does node-postgres with enableChannelBinding. A wrong password is refused with 28P01
// without reaching the server; a user not in the file keeps the pass-through behaviour (and its
// 28000 names the setting); a reload reads the file again; a server asking md5 is refused with the
// reason; trust passes. An auth query (--pg-auth-user, PgBouncer's auth_query) finds secrets on the
// server instead of in a file.
//
// The upstream leg's binding is seen by the login succeeding: the server offers -PLUS on its TLS
// connection, so it would refuse the only other flag sidecache sends on a TLS leg ("y") as a
// downgrade (pg_stat_ssl does not show channel binding).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { scramSecretFor } from '../proxy/pg/test-scram-secret.js';
import { makeCerts, type TestCerts } from './support/certs.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { psql } from './support/psql.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const TABLE = 'scram_items';

let certs: TestCerts;
let cluster: Cluster;
let proxy: RunningProxy;
let dir: string;
let authFile: string;

/** A SCRAM secret computed here, for users whose stored password is not SCRAM (md5) or absent (trust). */
function scramSecret(password: string): string {
  const { iterations, salt, storedKey, serverKey } = scramSecretFor(password).secret;
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

async function storedSecret(user: string): Promise<string> {
  const rows = await cluster.query<{ rolpassword: string }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [user]);
  return rows[0]!.rolpassword;
}

const verifyFull = (user: string, password: string): string => `user=${user} password=${password} sslmode=verify-full sslrootcert=${certs.ca}`;

async function nodePg(user: string, password: string, extra: Record<string, unknown> = {}): Promise<pg.Client> {
  const c = new pg.Client({ host: 'localhost', port: proxy.pgPort, user, password, database: 'postgres', ssl: { ca: await readFile(certs.ca, 'utf8') }, ...extra });
  await c.connect();
  return c;
}

test.before(async () => {
  certs = await makeCerts();
  cluster = await startCluster({
    tls: certs.good,
    hba: [
      'hostssl all trust_user 127.0.0.1/32 trust',
      'hostssl all md5_user 127.0.0.1/32 md5',
      'hostssl all all 127.0.0.1/32 scram-sha-256',
    ],
  });
  await cluster.query(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v text)`);
  await cluster.query(`INSERT INTO ${TABLE} SELECT g, 'row ' || g FROM generate_series(1, 5) g`);
  await cluster.query("SET password_encryption = 'scram-sha-256'; CREATE ROLE app_user LOGIN PASSWORD 'app-pw'; "
    + "CREATE ROLE other_user LOGIN PASSWORD 'other-pw'; CREATE ROLE late_user LOGIN PASSWORD 'late-pw'; CREATE ROLE trust_user LOGIN");
  await cluster.query("SET password_encryption = 'md5'; CREATE ROLE md5_user LOGIN PASSWORD 'md5-pw'");
  await cluster.query(`GRANT SELECT ON ${TABLE} TO app_user, other_user, late_user, trust_user, md5_user`);
  dir = await mkdtemp(path.join(os.tmpdir(), 'sidecache-scram-'));
  authFile = path.join(dir, 'userlist.txt');
  await writeFile(authFile, [
    '; users sidecache authenticates itself',
    `"app_user" "${await storedSecret('app_user')}"`,
    `"trust_user" "${scramSecret('trust-pw')}"`,
    `"md5_user" "${scramSecret('md5-pw')}"`,
    '',
  ].join('\n'), { mode: 0o600 });
  proxy = await startProxy({
    pgUpstream: `postgres://localhost:${cluster.port}?sslmode=verify-full&sslrootcert=${certs.ca}`,
    args: ['--tls-cert', certs.good.cert, '--tls-key', certs.good.key, '--pg-auth-file', authFile],
  });
});

test.after(async () => {
  await proxy?.stop();
  await cluster?.stop();
  await certs?.remove();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('psql with libpq\'s default channel_binding (prefer) logs in over TLS on both legs and runs a query', async () => {
  const run = await psql(proxy.pgPort, verifyFull('app_user', 'app-pw'), [`SELECT v FROM ${TABLE} WHERE id = 1`, 'SELECT current_user']);
  assert.is(run.stdout, 'row 1\napp_user\n', run.stderr);
});

test('psql with channel_binding=require logs in: sidecache offers SCRAM-SHA-256-PLUS bound to its certificate', async () => {
  const run = await psql(proxy.pgPort, `${verifyFull('app_user', 'app-pw')} channel_binding=require`, [`SELECT v FROM ${TABLE} WHERE id = 2`]);
  assert.is(run.stdout, 'row 2\n', run.stderr);
});

test('node-postgres with enableChannelBinding logs in; without it too', async () => {
  for (const extra of [{ enableChannelBinding: true }, {}]) {
    const c = await nodePg('app_user', 'app-pw', extra);
    try {
      assert.equal((await c.query(`SELECT v FROM ${TABLE} WHERE id = 3`)).rows, [{ v: 'row 3' }]);
    } finally {
      await c.end();
    }
  }
});

test('a wrong password is refused with 28P01 by sidecache, the server never asked', async () => {
  const backends = async (): Promise<string> => (await cluster.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE usename = 'app_user'"))[0]!.n;
  // The earlier tests' sessions end first: one still exiting made the count drop under this test.
  const deadline = Date.now() + 10_000;
  while (await backends() !== '0' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const before = await backends();
  const err = await nodePg('app_user', 'wrong-pw').then((c) => c.end().then(() => null), (e: Error & { code?: string }) => e);
  assert.ok(err !== null, 'the login must fail');
  assert.is(err.code, '28P01');
  assert.match(err.message, /password authentication failed for user "app_user"/);
  const run = await psql(proxy.pgPort, verifyFull('app_user', 'wrong-pw'), ['SELECT 1']);
  assert.match(run.stderr, /password authentication failed for user "app_user"/);
  assert.is(await backends(), before);
});

test('a user not in the file keeps the pass-through login: prefer is refused naming --pg-auth-file, disable logs in', async () => {
  const preferred = await psql(proxy.pgPort, verifyFull('other_user', 'other-pw'), ['SELECT 1']);
  assert.match(preferred.stderr, /sidecache: SCRAM channel binding cannot pass through sidecache.*--pg-auth-file/);
  const disabled = await psql(proxy.pgPort, `${verifyFull('other_user', 'other-pw')} channel_binding=disable`, [`SELECT v FROM ${TABLE} WHERE id = 4`]);
  assert.is(disabled.stdout, 'row 4\n', disabled.stderr);
});

test('a reload reads the file again: a user added to it logs in with channel binding', async () => {
  assert.match((await psql(proxy.pgPort, verifyFull('late_user', 'late-pw'), ['SELECT 1'])).stderr, /cannot pass through sidecache/);
  await writeFile(authFile, `${await readFile(authFile, 'utf8')}"late_user" "${await storedSecret('late_user')}"\n`);
  const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/api/config/reload`, { method: 'POST', headers: { 'content-type': 'application/json' } });
  assert.is(res.status, 200);
  const run = await psql(proxy.pgPort, `${verifyFull('late_user', 'late-pw')} channel_binding=require`, ['SELECT current_user']);
  assert.is(run.stdout, 'late_user\n', run.stderr);
});

test('a server that asks md5 for a user of the file is refused with the reason; trust passes after sidecache\'s own check', async () => {
  const md5 = await psql(proxy.pgPort, verifyFull('md5_user', 'md5-pw'), ['SELECT 1']);
  assert.match(md5.stderr, /the server asks for md5 password authentication for user "md5_user".*--pg-auth-file/);
  const trust = await psql(proxy.pgPort, verifyFull('trust_user', 'trust-pw'), ['SELECT current_user']);
  assert.is(trust.stdout, 'trust_user\n', trust.stderr);
  const wrong = await psql(proxy.pgPort, verifyFull('trust_user', 'nope'), ['SELECT 1']);
  assert.match(wrong.stderr, /password authentication failed for user "trust_user"/);
});

test('an auth query (--pg-auth-user) finds the secret of a user not in a file: channel binding works; an md5 hash is relayed', async () => {
  // PgBouncer's advice: a less privileged auth user reads pg_authid through a SECURITY DEFINER function.
  await cluster.query("CREATE ROLE auth_user LOGIN PASSWORD 'auth-pw'; "
    + 'CREATE FUNCTION public.sidecache_lookup(u text, OUT usename name, OUT passwd text) RETURNS record LANGUAGE sql SECURITY DEFINER '
    + 'SET search_path = pg_catalog AS $$ SELECT rolname, rolpassword FROM pg_authid WHERE rolname = u AND rolcanlogin $$; '
    + 'REVOKE ALL ON FUNCTION public.sidecache_lookup(text) FROM PUBLIC; GRANT EXECUTE ON FUNCTION public.sidecache_lookup(text) TO auth_user');
  const viaQuery = await startProxy({
    pgUpstream: `postgres://localhost:${cluster.port}?sslmode=verify-full&sslrootcert=${certs.ca}`,
    args: ['--tls-cert', certs.good.cert, '--tls-key', certs.good.key, '--pg-auth-user', 'auth_user', '--pg-auth-query', 'SELECT usename, passwd FROM public.sidecache_lookup($1)'],
    env: { SIDECACHE_PG_AUTH_PASSWORD: 'auth-pw' },
  });
  try {
    const preferred = await psql(viaQuery.pgPort, verifyFull('other_user', 'other-pw'), ['SELECT current_user']);
    assert.is(preferred.stdout, 'other_user\n', preferred.stderr);
    const required = await psql(viaQuery.pgPort, `${verifyFull('other_user', 'other-pw')} channel_binding=require`, [`SELECT v FROM ${TABLE} WHERE id = 5`]);
    assert.is(required.stdout, 'row 5\n', required.stderr);
    const wrong = await psql(viaQuery.pgPort, verifyFull('other_user', 'nope'), ['SELECT 1']);
    assert.match(wrong.stderr, /password authentication failed for user "other_user"/);
    // The query gives an md5 hash: not a SCRAM secret, so the login is relayed and the server checks md5 itself.
    const md5 = await psql(viaQuery.pgPort, verifyFull('md5_user', 'md5-pw'), ['SELECT current_user']);
    assert.is(md5.stdout, 'md5_user\n', md5.stderr);
    assert.not.ok(viaQuery.output().includes('auth-pw'), 'the auth user\'s password is not logged');
  } finally {
    await viaQuery.stop();
  }
});

test('secrets never reach the log', async () => {
  const out = proxy.output();
  for (const user of ['app_user', 'late_user']) {
    const secret = await storedSecret(user);
    assert.not.ok(out.includes(secret.split('$')[2]!), `${user}'s keys are not logged`);
  }
  assert.not.ok(/app-pw|late-pw/.test(out));
});

test.run();
