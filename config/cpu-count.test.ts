import { test } from 'uvu';
import * as assert from 'uvu/assert';
import os from 'node:os';
import { cpuQuota, usableCpus } from './cpu-count.js';

test('cpu.max: a quota is worth quota/period CPUs; "max" or nothing is no limit', () => {
  assert.is(cpuQuota('25000 100000\n'), 0.25);
  assert.is(cpuQuota('200000 100000'), 2);
  assert.is(cpuQuota('max 100000\n'), null);
  assert.is(cpuQuota(null), null);
  assert.is(cpuQuota('garbage'), null);
});

test('usable CPUs: the quota rounded up, at least 1, never more than the affinity mask allows', () => {
  const cpus = os.availableParallelism();
  assert.is(usableCpus(() => '25000 100000'), 1);
  assert.is(usableCpus(() => 'max 100000'), cpus);
  assert.is(usableCpus(() => null), cpus);
  assert.is(usableCpus(() => `${(cpus + 4) * 100000} 100000`), cpus);
  if (cpus >= 2) assert.is(usableCpus(() => '150000 100000'), 2);
});

test.run();
