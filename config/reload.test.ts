// What a reload keeps and applies.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigReloader } from './reload.js';
import { ConfigError, loadConfig } from './settings.js';

const dir = mkdtempSync(path.join(tmpdir(), 'sidecache-reload-'));
const file = path.join(dir, 'sidecache.yaml');

test('live settings apply; listeners and upstreams are reported as needing a restart and keep their values', () => {
  writeFileSync(file, 'pg-listen: 127.0.0.1:7000\ncache-ttl: 5s\nmax-client-connections: 10\n');
  const argv = ['--config', file];
  const initial = loadConfig(argv, {}).config;
  const reloader = new ConfigReloader(argv, {}, initial);
  writeFileSync(file, 'pg-listen: 127.0.0.1:7001\npg-upstream: postgres://elsewhere\ncache-ttl: 1s\nmax-client-connections: 2\n');
  const report = reloader.reload(initial);
  assert.equal([...report.applied].sort(), ['cache-ttl', 'max-client-connections']);
  assert.equal([...report.needsRestart].sort(), ['pg-listen', 'pg-upstream']);
  assert.is(report.config.cacheTtlMs, 1000);
  assert.is(report.config.maxClientConnections, 2);
  assert.equal(report.config.pgListen, { host: '127.0.0.1', port: 7000 });
  assert.is(report.config.pgUpstream, null);
  assert.ok(Object.isFrozen(report.config));
});

test('an invalid file throws ConfigError naming the key; the next good reload compares with the last good one', () => {
  writeFileSync(file, 'cache-ttl: 5s\n');
  const argv = ['--config', file];
  const initial = loadConfig(argv, {}).config;
  const reloader = new ConfigReloader(argv, {}, initial);
  writeFileSync(file, 'cache-ttl: 5 fortnights\n');
  assert.throws(() => reloader.reload(initial), (e: unknown) => e instanceof ConfigError && e.message.startsWith(`cache-ttl in ${file}:`));
  writeFileSync(file, 'cache-ttl: 5s\n');
  assert.equal(reloader.reload(initial).applied, []);
});

test('environment and flags keep winning over the reloaded file', () => {
  writeFileSync(file, 'cache-ttl: 5s\n');
  const argv = ['--config', file, '--cache-ttl', '2s'];
  const initial = loadConfig(argv, {}).config;
  writeFileSync(file, 'cache-ttl: 9s\n');
  const report = new ConfigReloader(argv, {}, initial).reload(initial);
  assert.is(report.config.cacheTtlMs, 2000);
  assert.equal(report.applied, []);
});

test('a running value moved by the process (quick start port fallback) is not a change', () => {
  writeFileSync(file, 'cache-ttl: 5s\n');
  const argv = ['--config', file];
  const initial = loadConfig(argv, {}).config;
  const running = Object.freeze({ ...initial, pgListen: { host: '0.0.0.0', port: 15432 } });
  writeFileSync(file, 'cache-ttl: 6s\n');
  const report = new ConfigReloader(argv, {}, initial).reload(running);
  assert.equal(report.needsRestart, []);
  assert.equal(report.config.pgListen, { host: '0.0.0.0', port: 15432 });
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
