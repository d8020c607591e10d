import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoarseClock, ManualClock } from './clock.js';

test('CoarseClock returns one reading within a burst and a later one after its resolution', async () => {
  const clock = new CoarseClock(5);
  const first = clock.now();
  const busyUntil = performance.now() + 20;
  while (performance.now() < busyUntil); // the timer cannot fire while the loop is busy
  assert.is(clock.now(), first, 'a synchronous burst shares one reading');
  await sleep(20);
  const later = clock.now();
  assert.ok(later >= first + 20, `expected time to move on by 20 ms, got ${later - first}`);
});

test('CoarseClock keeps no timer alive once idle, so a process can exit', () => {
  const script = `import('${new URL('./clock.js', import.meta.url).href}').then(({ CoarseClock }) => new CoarseClock(1e9).now())`;
  // With a ref'd timer the child would wait 1e9 ms and execFileSync would throw at the timeout.
  execFileSync(process.execPath, ['-e', script], { timeout: 10_000 });
});

test('ManualClock moves only when advanced', () => {
  const clock = new ManualClock(10);
  assert.is(clock.now(), 10);
  clock.advance(5);
  assert.is(clock.now(), 15);
});

test.run();
