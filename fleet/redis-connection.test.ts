// test-timeout: 90
//
// Reaching the fleet's Redis: the password from the URL, the environment or a file (the file wins),
// TLS with the CA of ?ca=, and errors that name the file but never the secret.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../config/settings.js';
import { startRedis, type RedisServer } from '../e2e/support/redis-server.js';
import { FleetConfigError, openRedis, redisAccess } from './redis-connection.js';

const SECRET = 'tls-redis-secret-7f3a';
let server: RedisServer;
const dir = mkdtempSync(path.join(os.tmpdir(), 'sidecache-redis-access-'));

test.before(async () => {
  server = await startRedis({ password: SECRET, tls: true });
});

test.after(async () => {
  await server.stop();
});

test('no fleet without --redis or --redis-cluster', () => {
  assert.is(redisAccess(loadConfig([], {}).config), null);
});

test('the password comes from the file, else the setting, else the URL', () => {
  const file = path.join(dir, 'password');
  writeFileSync(file, 'from-file\n');
  const url = 'redis://app:from-url@127.0.0.1:1';
  assert.is(redisAccess(loadConfig(['--redis', url], {}).config)!.password, 'from-url');
  assert.is(redisAccess(loadConfig(['--redis', url], { SIDECACHE_REDIS_PASSWORD: 'from-env' }).config)!.password, 'from-env');
  assert.is(redisAccess(loadConfig(['--redis', url, '--redis-password-file', file], {}).config)!.password, 'from-file');
});

test('an unreadable password or CA file stops the start, naming the file', () => {
  assert.throws(() => redisAccess(loadConfig(['--redis', 'redis://127.0.0.1:1', '--redis-password-file', path.join(dir, 'missing')], {}).config),
    (err: Error) => err instanceof FleetConfigError && /--redis-password-file .*missing: ENOENT/.test(err.message));
  assert.throws(() => redisAccess(loadConfig(['--redis', `rediss://:${SECRET}@127.0.0.1:1?ca=${path.join(dir, 'no-ca.pem')}`], {}).config),
    (err: Error) => err instanceof FleetConfigError && /\?ca= .*no-ca\.pem/.test(err.message) && !err.message.includes(SECRET));
});

test('TLS with the CA of ?ca= and the password: commands work; a wrong password is refused', async () => {
  const url = `rediss://:${SECRET}@127.0.0.1:${server.port}?ca=${server.caFile}`;
  const good = openRedis(redisAccess(loadConfig(['--redis', url], {}).config)!, 'test', 5000);
  try {
    await new Promise((resolve) => good.once('ready', resolve));
    assert.is(await good.call('PING'), 'PONG');
  } finally {
    good.disconnect();
  }
  const bad = openRedis(redisAccess(loadConfig(['--redis', url, '--redis-password', 'wrong'], {}).config)!, 'test', 5000);
  try {
    const err = await new Promise<Error>((resolve) => bad.once('error', resolve));
    assert.match(err.message, /WRONGPASS|invalid password|NOAUTH/i);
    assert.not.ok(err.message.includes(SECRET));
  } finally {
    bad.disconnect();
  }
});

test.run();
