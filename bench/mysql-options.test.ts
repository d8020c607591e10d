import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseMysqlOptions } from './mysql-options.js';
import { UsageError } from './options.js';

test('defaults: every workload and target on the shared server, no hop; BENCH_SECONDS when --seconds is absent', () => {
  const options = parseMysqlOptions([], { BENCH_SECONDS: '30' })!;
  assert.is(options.seconds, 30);
  assert.is(options.rounds, 2);
  assert.is(options.threads, 8);
  assert.equal(options.workloads.map((w) => w.key), ['hot-prepared', 'hot-text', 'read-write']);
  assert.equal(options.targets, ['direct', 'forwarder', 'sidecache', 'qcache']);
  assert.is(options.rttUs, undefined);
  assert.is(parseMysqlOptions(['--help'], {}), undefined);
});

test('--rtt puts MariaDB behind a hop of that round trip; targets keep the report order', () => {
  const options = parseMysqlOptions(['--rtt', '1ms', '--targets', 'sidecache,direct', '--seconds', '4'], {})!;
  assert.is(options.rttUs, 1000);
  assert.is(options.seconds, 4);
  assert.equal(options.targets, ['direct', 'sidecache']);
  assert.is(parseMysqlOptions(['--rtt', '0.4ms'], {})!.rttUs, 400);
});

test('a wrong --rtt, count or name is a usage error', () => {
  for (const argv of [['--rtt', '1s'], ['--rtt', '5us'], ['--threads', '0'], ['--workloads', 'tpcb'], ['--targets', 'forwarder']]) {
    assert.throws(() => parseMysqlOptions(argv, {}), (e: Error) => e instanceof UsageError, argv.join(' '));
  }
});

test.run();
