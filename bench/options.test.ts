import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError, positiveInt, targetList, workloadList } from './options.js';

test('counts are positive integers; anything else is a usage error naming the flag', () => {
  assert.is(positiveInt('--rounds', '3'), 3);
  for (const bad of ['0', '-1', '2.5', 'x', '']) assert.throws(() => positiveInt('--rounds', bad), (e: Error) => e instanceof UsageError && e.message.startsWith('--rounds'));
});

test('lists keep their order; unknown names and a target list without direct are usage errors', () => {
  const all = [{ key: 'a' }, { key: 'b' }];
  assert.equal(workloadList('b, a', all), [all[1], all[0]]);
  assert.throws(() => workloadList('a,c', all), /unknown workload "c"/);
  assert.equal(targetList('sidecache,direct', ['direct', 'sidecache', 'forwarder'] as const), ['sidecache', 'direct']);
  assert.throws(() => targetList('direct,nope', ['direct', 'sidecache']), /unknown target "nope"/);
  assert.throws(() => targetList('sidecache', ['direct', 'sidecache']), /must include direct/);
});

test.run();
