import { test } from 'uvu';
import * as assert from 'uvu/assert';
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
  assert.equal(loadConfig(['--pg-upstream', 'postgres://db.internal'], {}).config.pgUpstream, { url: 'postgres://db.internal', host: 'db.internal', port: 5432 });
  assert.equal(loadConfig(['--pg-upstream', 'postgresql://127.0.0.1:6543'], {}).config.pgUpstream?.port, 6543);
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
  ];
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

test('--help lists every setting with its environment variable', () => {
  assert.ok(loadConfig(['--help'], {}).help);
  const text = helpText();
  for (const s of SETTINGS) {
    assert.ok(text.includes(`--${s.flag}`), s.flag);
    assert.ok(text.includes(envName(s)), envName(s));
  }
});

test.run();
