import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, SETTINGS, envName, helpText, loadConfig } from './settings.js';

test('defaults apply when nothing is given', () => {
  const { config, explicit, help } = loadConfig([], {});
  assert.is(config.pgUpstream, null);
  assert.equal(config.pgListen, { host: '0.0.0.0', port: 5432 });
  assert.is(config.maxMessageBytes, 64 * 1024 * 1024);
  assert.is(config.loginTimeoutMs, 30_000);
  assert.is(explicit.size, 0);
  assert.not.ok(help);
});

test('environment variables apply and flags win over them', () => {
  const env = { SIDECACHE_PG_LISTEN: '127.0.0.1:7000', SIDECACHE_MAX_MESSAGE_BYTES: '1MiB' };
  const { config, explicit } = loadConfig(['--pg-listen', '127.0.0.1:7001', '--login-timeout=500ms'], env);
  assert.equal(config.pgListen, { host: '127.0.0.1', port: 7001 });
  assert.is(config.maxMessageBytes, 1 << 20);
  assert.is(config.loginTimeoutMs, 500);
  assert.ok(explicit.has('pgListen') && explicit.has('maxMessageBytes') && explicit.has('loginTimeoutMs'));
});

test('upstream URLs are parsed with a default port', () => {
  assert.equal(loadConfig(['--pg-upstream', 'postgres://db.internal'], {}).config.pgUpstream, { url: 'postgres://db.internal', host: 'db.internal', port: 5432, tls: PREFER });
  assert.equal(loadConfig(['--pg-upstream', 'postgresql://127.0.0.1:6543'], {}).config.pgUpstream?.port, 6543);
});

const PREFER = { mode: 'prefer', ca: null, cert: null, key: null };

function assertRefused(argv: string[], message: RegExp): void {
  try {
    loadConfig(argv, {});
    assert.unreachable(argv.join(' '));
  } catch (err) {
    assert.instance(err, ConfigError, argv.join(' '));
    assert.match((err as Error).message, message);
  }
}

test('upstream TLS: libpq\'s and MySQL\'s parameter names and modes, files checked, a CA turns require into verify-ca', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sidecache-tls-settings-'));
  try {
    const ca = path.join(dir, 'ca.pem');
    await writeFile(ca, 'not read as PEM here');
    const pg = (q: string) => loadConfig(['--pg-upstream', `postgres://db:5432?${q}`], {}).config.pgUpstream!.tls;
    const my = (q: string) => loadConfig(['--mysql-upstream', `mysql://db?${q}`], {}).config.mysqlUpstream!.tls;
    assert.equal(pg('sslmode=verify-full'), { mode: 'verify-full', ca: null, cert: null, key: null });
    assert.equal(pg('sslmode=disable').mode, 'disable');
    assert.equal(pg(`sslmode=require&sslrootcert=${ca}`), { mode: 'verify-ca', ca, cert: null, key: null });
    assert.equal(pg(`sslmode=require&sslcert=${ca}&sslkey=${ca}`), { mode: 'require', ca: null, cert: ca, key: ca });
    assert.equal(my('ssl-mode=VERIFY_IDENTITY').mode, 'verify-full');
    assert.equal(my('ssl-mode=disabled').mode, 'disable');
    assert.equal(my(`ssl-mode=VERIFY_CA&ssl-ca=${ca}`), { mode: 'verify-ca', ca, cert: null, key: null });
    assert.equal(loadConfig(['--mysql-upstream', 'mysql://db'], {}).config.mysqlUpstream!.tls, PREFER);
    const bad: [string, string, RegExp][] = [
      ['--pg-upstream', 'postgres://db?sslmode=VERIFY_IDENTITY', /sslmode must be one of disable, prefer, require, verify-ca, verify-full/],
      ['--mysql-upstream', 'mysql://db?ssl-mode=verify-full', /ssl-mode must be one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY/],
      ['--pg-upstream', 'postgres://db?ssl-mode=REQUIRED', /unknown URL parameter "ssl-mode"/],
      ['--pg-upstream', `postgres://db?sslrootcert=${dir}/missing.pem`, /sslrootcert: cannot read .*missing.pem: ENOENT/],
      ['--mysql-upstream', `mysql://db?ssl-cert=${ca}`, /give ssl-cert and ssl-key together/],
    ];
    for (const [flag, url, message] of bad) assertRefused([flag, url], message);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('client TLS: a certificate needs its key, allow/require need a certificate, a key that does not match is refused', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sidecache-tls-settings-'));
  try {
    const junk = path.join(dir, 'junk.pem');
    await writeFile(junk, 'junk');
    const cases: [string[], RegExp][] = [
      [['--tls-cert', junk], /--tls-key: give --tls-cert and --tls-key together/],
      [['--client-tls', 'require'], /--client-tls: require needs --tls-cert and --tls-key/],
      [['--tls-cert', junk, '--tls-key', junk], /--tls-cert: cannot use .*junk.pem/],
    ];
    for (const [argv, message] of cases) assertRefused(argv, message);
    assert.is(loadConfig(['--client-tls', 'disable'], {}).config.clientTls, 'disable');
    assert.is(loadConfig([], {}).config.clientTls, null);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('bad values name the flag and what is wrong', () => {
  const cases: [string[], RegExp][] = [
    [['--pg-listen', 'nope'], /--pg-listen: expected HOST:PORT/],
    [['--pg-listen', '1.2.3.4:70000'], /--pg-listen: port 70000 is out of range/],
    [['--pg-upstream', 'mysql://x:1'], /--pg-upstream: expected a postgres:\/\/ URL/],
    [['--max-message-bytes', '12 parsecs'], /--max-message-bytes: expected a size/],
    [['--login-timeout', 'soon'], /--login-timeout: expected a duration/],
    [['--max-client-connections', '-1'], /--max-client-connections: expected a whole number/],
    [['--frobnicate', '1'], /--frobnicate: unknown option/],
    [['--pg-listen'], /--pg-listen: needs a value/],
    [['--log-format', 'xml'], /--log-format: expected one of json, pretty, got "xml"/],
    [['--log-level', 'loud'], /--log-level: expected one of trace, debug, info, warn, error, fatal, silent/],
    [['--slow-query-threshold', 'slowish'], /--slow-query-threshold: expected a duration/],
  ];
  for (const [argv, pattern] of cases) {
    try {
      loadConfig(argv, {});
      assert.unreachable(argv.join(' '));
    } catch (err) {
      assert.instance(err, ConfigError);
      assert.match((err as Error).message, pattern);
    }
  }
});

test('fleet settings: --redis or --redis-cluster (not both), one password source, a plain key prefix', () => {
  const defaults = loadConfig([], {}).config;
  assert.equal([defaults.redis, defaults.redisCluster, defaults.redisKeyPrefix, defaults.fleetStreamMaxLength, defaults.fleetLeaseMs], [null, null, 'sidecache', 100_000, 5000]);
  const { config } = loadConfig(['--redis', 'redis://127.0.0.1:6390'], { SIDECACHE_REDIS_PASSWORD: 'from-env' });
  assert.equal([config.redis?.nodes, config.redisPassword], [[{ host: '127.0.0.1', port: 6390 }], 'from-env']);
  assert.equal(loadConfig(['--redis-cluster', '127.0.0.1:7000,127.0.0.1:7001'], {}).config.redisCluster?.nodes.length, 2);
  const refused: [string[], RegExp][] = [
    [['--redis', 'redis://a:1', '--redis-cluster', 'b:2'], /--redis-cluster: give either --redis or --redis-cluster/],
    [['--redis', 'redis://a:1', '--redis-password', 'x', '--redis-password-file', '/run/secret'], /--redis-password-file: give either/],
    [['--redis-key-prefix', '{app}'], /--redis-key-prefix: expected 1 to 64 letters/],
    [['--redis', 'redis://:pw@a:1,b:2'], /--redis: name one host/],
    [['--l2', 'on'], /--l2: the second tier lives in the fleet's Redis/],
  ];
  assert.is(defaults.l2, 'off');
  assert.is(loadConfig(['--redis-cluster', 'a:1', '--l2', 'on'], {}).config.l2, 'on');
  for (const [argv, pattern] of refused) assert.throws(() => loadConfig(argv, {}), pattern);
});

test('log settings and the slow-query threshold: defaults, environment, "off"', () => {
  const defaults = loadConfig([], {}).config;
  assert.is(defaults.logFormat, 'json');
  assert.is(defaults.logLevel, 'info');
  assert.is(defaults.slowQueryThresholdMs, 1000);
  const { config } = loadConfig(['--slow-query-threshold', 'off'], { SIDECACHE_LOG_FORMAT: 'Pretty', SIDECACHE_LOG_LEVEL: 'debug' });
  assert.is(config.logFormat, 'pretty');
  assert.is(config.logLevel, 'debug');
  assert.is(config.slowQueryThresholdMs, 0);
  assert.is(loadConfig(['--slow-query-threshold=250ms'], {}).config.slowQueryThresholdMs, 250);
  assert.is(loadConfig(['--slow-query-threshold=0'], {}).config.slowQueryThresholdMs, 0);
});

test('--admin-allowed-hosts: names without ports, brackets or trailing dots; null when unset', () => {
  assert.is(loadConfig([], {}).config.adminAllowedHosts, null);
  const { config } = loadConfig([], { SIDECACHE_ADMIN_ALLOWED_HOSTS: ' Sidecache.Internal., [::1],10.0.0.5,admin_ui ' });
  assert.equal(config.adminAllowedHosts, ['sidecache.internal', '::1', '10.0.0.5', 'admin_ui']);
  for (const bad of ['sidecache.internal:9180', '', 'a,,b', 'a b', 'http://a', '-a']) {
    assert.throws(() => loadConfig(['--admin-allowed-hosts', bad], {}), /--admin-allowed-hosts: expected host names separated by commas \(without ports\)/, bad);
  }
});

test('--help lists every setting with its environment variable', () => {
  assert.ok(loadConfig(['--help'], {}).help);
  const text = helpText();
  for (const s of SETTINGS) {
    assert.ok(text.includes(`--${s.flag}`), s.flag);
    assert.ok(text.includes(envName(s)), envName(s));
  }
});


test('change stream URLs take the login; the password comes from exactly one place and stays out of url', async () => {
  const base = ['--pg-upstream', 'postgres://db:5432', '--mysql-upstream', 'mysql://db:3306'];
  const fromUrl = loadConfig([...base, '--pg-cdc', 'postgres://repl:p%40ss@db:6000'], {}).config.pgCdc!;
  assert.equal(fromUrl, { url: 'postgres://repl@db:6000', host: 'db', port: 6000, user: 'repl', password: 'p@ss' });
  const fromEnv = loadConfig([...base, '--mysql-cdc', 'mysql://repl@db'], { SIDECACHE_MYSQL_CDC_PASSWORD: 'envpw' }).config.mysqlCdc!;
  assert.equal(fromEnv, { url: 'mysql://repl@db', host: 'db', port: 3306, user: 'repl', password: 'envpw' });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sidecache-settings-'));
  try {
    const file = path.join(dir, 'pw');
    await writeFile(file, 'filepw\nignored\n');
    assert.is(loadConfig([...base, '--pg-cdc', 'postgres://repl@db', '--pg-cdc-password-file', file], {}).config.pgCdc!.password, 'filepw');
    assert.throws(() => loadConfig([...base, '--pg-cdc', 'postgres://repl:a@db', '--pg-cdc-password-file', file], {}), /--pg-cdc: the password is given more than once/);
    assert.throws(() => loadConfig([...base, '--pg-cdc', 'postgres://repl@db', '--pg-cdc-password-file', path.join(dir, 'missing')], {}),
      /--pg-cdc-password-file: cannot read .*missing: ENOENT/);
    await writeFile(file, '\n');
    assert.throws(() => loadConfig([...base, '--pg-cdc', 'postgres://repl@db', '--pg-cdc-password-file', file], {}), /is empty/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.is(loadConfig([...base, '--pg-cdc', 'postgres://repl@db'], {}).config.pgCdc!.password, null);
  assert.is(loadConfig(base, {}).config.pgCdcPublication, 'sidecache');
  assert.is(loadConfig(base, {}).config.pgCdcDdl, 'off');
  assert.is(loadConfig(base, {}).config.mysqlCdcServerId, null);
  assert.is(loadConfig([...base, '--mysql-cdc-server-id', '4294967295'], {}).config.mysqlCdcServerId, 4294967295);
});

test('bad change stream settings name the flag and never echo a password', () => {
  const base = ['--pg-upstream', 'postgres://db:5432', '--mysql-upstream', 'mysql://db:3306'];
  const cases: [string[], RegExp][] = [
    [['--pg-cdc', 'mysql://repl:hunter2@db'], /--pg-cdc: expected postgres:\/\/USER\[:PASSWORD\]@HOST:PORT$/],
    [['--pg-cdc', 'postgres://db:5432'], /--pg-cdc: needs a user/],
    [['--mysql-cdc', 'postgres://repl:hunter2@db'], /--mysql-cdc: expected mysql:\/\/USER/],
    [['--mysql-cdc-server-id', '0'], /--mysql-cdc-server-id: expected a server id from 1 to 4294967295/],
    [['--mysql-cdc-server-id', '4294967296'], /--mysql-cdc-server-id: expected a server id/],
    [['--pg-cdc-publication', ''], /--pg-cdc-publication: expected a name of 1 to 63 bytes/],
    [['--pg-cdc-publication', 'x'.repeat(64)], /--pg-cdc-publication: expected a name of 1 to 63 bytes/],
    [['--pg-cdc-ddl', 'maybe'], /--pg-cdc-ddl: expected one of on, off/],
  ];
  for (const [args, pattern] of cases) {
    try {
      loadConfig([...base, ...args], {});
      assert.unreachable(`${args.join(' ')} was accepted`);
    } catch (err) {
      assert.instance(err, ConfigError);
      assert.match((err as Error).message, pattern);
      assert.not.match((err as Error).message, /hunter2/);
    }
  }
  assert.throws(() => loadConfig(['--pg-cdc', 'postgres://repl@db'], {}), /--pg-cdc: follows the pg-upstream server: set --pg-upstream too/);
  assert.throws(() => loadConfig(['--mysql-cdc', 'mysql://repl@db'], {}), /--mysql-cdc: follows the mysql-upstream server/);
});

test('PostgreSQL login settings: the auth file is checked at start, the auth query takes $1, its password comes from one place', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sidecache-auth-'));
  try {
    const base = ['--pg-upstream', 'postgres://db:5432'];
    const list = path.join(dir, 'userlist.txt');
    await writeFile(list, '"app" "md5abcdef"\n');
    assert.throws(() => loadConfig([...base, '--pg-auth-file', list], {}), /--pg-auth-file: .*line 1: the entry for user "app" is an md5 hash/);
    assert.throws(() => loadConfig([...base, '--pg-auth-file', path.join(dir, 'missing')], {}), /--pg-auth-file: cannot read/);
    const defaults = loadConfig(base, {}).config;
    assert.equal([defaults.pgAuthFile, defaults.pgAuthUser, defaults.pgAuthDbname], [null, null, null]);
    assert.match(defaults.pgAuthQuery, /FROM pg_authid WHERE rolname = \$1/);
    assert.throws(() => loadConfig([...base, '--pg-auth-query', 'SELECT 1'], {}), /--pg-auth-query: expected a query taking the user name as its one parameter/);
    const secretFile = path.join(dir, 'pw');
    await writeFile(secretFile, 'from-file\n');
    assert.is(loadConfig([...base, '--pg-auth-user', 'auth', '--pg-auth-password-file', secretFile], {}).config.pgAuthPassword, 'from-file');
    assert.throws(() => loadConfig([...base, '--pg-auth-password', 'x', '--pg-auth-password-file', secretFile], {}), /give either --pg-auth-password or --pg-auth-password-file/);
    assert.throws(() => loadConfig(['--pg-auth-user', 'auth'], {}), /--pg-auth-user: runs its query on the pg-upstream server/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
