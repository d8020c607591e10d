// The --config file: keys, precedence against environment and flags, errors that name the key.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig } from './settings.js';

const dir = mkdtempSync(path.join(tmpdir(), 'sidecache-config-'));
let n = 0;
function file(text: string): string {
  const p = path.join(dir, `c${n++}.yaml`);
  writeFileSync(p, text);
  return p;
}

function failure(argv: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    loadConfig(argv, env);
  } catch (err) {
    assert.instance(err, ConfigError);
    return (err as Error).message;
  }
  return assert.unreachable(`accepted ${argv.join(' ')}`) as never;
}

test('the file sets settings under their flag names', () => {
  const p = file('pg-upstream: postgres://db.internal:6543\ncache-ttl: 5s\ncache-max-bytes: 1MiB\nmax-client-connections: 7\nlogin-timeout: 2\n');
  const { config, explicit } = loadConfig(['--config', p], {});
  assert.is(config.configFile, p);
  assert.equal(config.pgUpstream, { url: 'postgres://db.internal:6543', host: 'db.internal', port: 6543, tls: { mode: 'prefer', ca: null, cert: null, key: null } });
  assert.is(config.cacheTtlMs, 5000);
  assert.is(config.cacheMaxBytes, 1 << 20);
  assert.is(config.maxClientConnections, 7);
  assert.is(config.loginTimeoutMs, 2000, 'a YAML number is read as the flag would read it');
  assert.ok(explicit.has('cacheTtlMs') && explicit.has('configFile'));
  assert.is(config.messageStallTimeoutMs, 60_000, 'what the file leaves out keeps its default');
});

test('precedence: defaults < file < environment < flags; SIDECACHE_CONFIG names the file', () => {
  const p = file('cache-ttl: 5s\nlogin-timeout: 5s\nmax-client-connections: 5\n');
  const env = { SIDECACHE_CONFIG: p, SIDECACHE_LOGIN_TIMEOUT: '6s', SIDECACHE_MAX_CLIENT_CONNECTIONS: '6' };
  const { config } = loadConfig(['--max-client-connections', '7'], env);
  assert.is(config.cacheTtlMs, 5000, 'file over default');
  assert.is(config.loginTimeoutMs, 6000, 'environment over file');
  assert.is(config.maxClientConnections, 7, 'flag over environment');
  const other = file('cache-ttl: 9s\n');
  assert.is(loadConfig(['--config', other], env).config.cacheTtlMs, 9000, '--config wins over SIDECACHE_CONFIG');
});

test('an empty file and a null value mean defaults', () => {
  assert.is(loadConfig(['--config', file('')], {}).config.cacheTtlMs, 60_000);
  assert.is(loadConfig(['--config', file('# nothing yet\n')], {}).config.cacheTtlMs, 60_000);
  assert.is(loadConfig(['--config', file('pg-upstream:\ncache-ttl: ~\n')], {}).config.pgUpstream, null);
});

test('errors name the file key and what is wrong', () => {
  const bad = file('cache-ttl: soon\n');
  assert.is(failure(['--config', bad]), `cache-ttl in ${bad}: expected a duration such as 30s or 500ms, got "soon"`);
  const unknown = file('cache-ttl: 5s\ncahce-max-bytes: 1MiB\n');
  assert.match(failure(['--config', unknown]), `cahce-max-bytes in ${unknown}: unknown key`);
  const nested = file('pg-listen:\n  host: x\n  port: 1\n');
  assert.match(failure(['--config', nested]), `pg-listen in ${nested}: expected a single value`);
  const self = file('config: other.yaml\n');
  assert.match(failure(['--config', self]), `config in ${self}: unknown key`);
  const list = file('- cache-ttl: 5s\n');
  assert.match(failure(['--config', list]), `${list}: expected a mapping`);
  const yaml = file('cache-ttl: 5s\ncache-ttl: 6s\n');
  assert.match(failure(['--config', yaml]), `${yaml}: not valid YAML`);
  const broken = file('cache-ttl: [5s\n');
  assert.match(failure(['--config', broken]), `${broken}: not valid YAML`);
  assert.match(failure(['--config', path.join(dir, 'missing.yaml')]), /^--config: cannot read .*missing\.yaml/);
  assert.match(failure([], { SIDECACHE_CACHE_TTL: 'soon' }), /^SIDECACHE_CACHE_TTL: expected a duration/);
});

test('a value the file gets wrong is no error when the environment or a flag overrides it', () => {
  const bad = file('cache-ttl: soon\n');
  assert.is(loadConfig(['--config', bad, '--cache-ttl', '1s'], {}).config.cacheTtlMs, 1000);
});

test('docs/config.example.yaml is a valid config', () => {
  const example = fileURLToPath(new URL('../../docs/config.example.yaml', import.meta.url));
  const { config, explicit } = loadConfig(['--config', example], {});
  assert.is(config.cacheTtlMs, 60_000);
  assert.ok(explicit.has('maxClientConnections'), 'it sets the live settings explicitly');
  assert.is(config.cacheRules.size, 4, 'its example rules are valid');
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
