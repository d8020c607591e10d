import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { createMetrics } from '../telemetry/metrics.js';
import { Backoff, FIRST_MS, HEALTHY_AFTER_MS, MAX_MS } from './backoff.js';
import { CDC_DOWN, ChangeFence } from './change-fence.js';
import { EchoBuffer } from './echo.js';
import { Follower, type ChangeSink, type ChangeStream, type FollowTarget } from './follower.js';

const silent = pino({ level: 'silent' });

/** A stream the test drives: start it, end it, and push invalidations through its sink. */
class ScriptedStream implements ChangeStream {
  readonly started: Promise<void>;
  readonly ended: Promise<Error>;
  start!: () => void;
  refuse!: (why: Error) => void;
  end!: (why: Error) => void;
  closed = false;

  constructor(readonly sink: ChangeSink<string>) {
    this.started = new Promise((resolve, reject) => {
      this.start = resolve;
      this.refuse = reject;
    });
    this.ended = new Promise((resolve) => {
      this.end = resolve;
    });
  }

  position(): string | null {
    return 'here';
  }

  close(): void {
    this.closed = true;
    this.end(new Error('closed'));
  }
}

function harness(): { follower: Follower<string>; streams: ScriptedStream[]; log: string[] } {
  const streams: ScriptedStream[] = [];
  const log: string[] = [];
  const target: FollowTarget<string> = {
    apply: (inv) => log.push(`apply ${inv}`),
    drop: () => log.push('drop'),
    merge: (invs) => invs.join('+'),
  };
  const follower = new Follower<string>('postgres', 'app', (sink) => {
    const s = new ScriptedStream(sink);
    streams.push(s);
    return s;
  }, target, silent);
  return { follower, streams, log };
}

const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('the fence opens only while the stream is up; every change of state drops the target', async () => {
  const { follower, streams, log } = harness();
  follower.start();
  await tick();
  assert.is(follower.state, 'starting');
  assert.not.ok(follower.up);
  assert.equal(log, ['drop']);
  streams[0]!.start();
  await tick();
  assert.is(follower.state, 'up');
  assert.equal(log, ['drop', 'drop'], 'coming up drops too: fills sent before it are refused');
  streams[0]!.sink.invalidate('t1');
  assert.equal(log.slice(2), ['apply t1']);
  assert.is(follower.invalidations, 1);
  streams[0]!.end(new Error('walsender terminated'));
  await tick();
  assert.is(follower.state, 'down');
  assert.is(follower.lastError, 'walsender terminated');
  assert.is(follower.failures, 1);
  assert.equal(log.slice(3), ['drop']);
  await follower.stop();
});

test('a stream that cannot start is down with its reason, and is tried again after the back-off', async () => {
  const { follower, streams } = harness();
  follower.start();
  await tick();
  streams[0]!.refuse(new Error('wal_level is replica'));
  await tick();
  assert.is(follower.state, 'down');
  assert.is(follower.lastError, 'wal_level is replica');
  assert.is(streams.length, 1);
  await tick(FIRST_MS + 100);
  assert.is(streams.length, 2, 'retried');
  assert.is(follower.state, 'starting');
  await follower.stop();
  assert.ok(streams[1]!.closed, 'stop closes the stream in progress');
});

test('lag samples and decoded counts reach the reading', async () => {
  const { follower, streams } = harness();
  follower.start();
  await tick();
  streams[0]!.start();
  await tick();
  streams[0]!.sink.decoded(3);
  streams[0]!.sink.lag(0.004);
  streams[0]!.sink.lag(-1);
  assert.is(follower.events, 3);
  assert.is(follower.lag.count, 2);
  assert.is(follower.lastLagMs, 0, 'a negative lag (clock skew) reads as 0');
  assert.is(follower.position, 'here');
  await follower.stop();
});

test('the echo applies what the stream invalidated once more, merged, one to two ticks later', async () => {
  const { follower, streams, log } = harness();
  follower.start();
  await tick();
  streams[0]!.start();
  await tick();
  streams[0]!.sink.invalidate('a');
  streams[0]!.sink.invalidate('b');
  await tick(200);
  assert.ok(log.includes('apply a+b'), log.join(', '));
  assert.is(log.filter((l) => l === 'apply a+b').length, 1);
  await follower.stop();
});

test('EchoBuffer: nothing before a tick has passed, the merged list after, nothing twice', () => {
  const echo = new EchoBuffer<string>((invs) => invs.join('+'));
  echo.add('x');
  assert.is(echo.tick(), null);
  echo.add('y');
  assert.is(echo.tick(), 'x');
  echo.add('z');
  echo.add('w');
  assert.is(echo.tick(), 'y');
  assert.is(echo.tick(), 'z+w');
  assert.is(echo.tick(), null);
  echo.add('q');
  echo.clear();
  echo.tick();
  assert.is(echo.tick(), null);
});

test('Backoff doubles up to its ceiling and starts over after a healthy run', () => {
  const b = new Backoff();
  const waits = Array.from({ length: 10 }, () => b.next(0));
  assert.is(waits[0], FIRST_MS);
  assert.is(waits[1], FIRST_MS * 2);
  assert.is(Math.max(...waits), MAX_MS);
  assert.is(b.next(HEALTHY_AFTER_MS), FIRST_MS);
});

test('ChangeFence starts a follower per target on first use, answers cdc-down until it is up, and registers it for /stats', async () => {
  const metrics = createMetrics();
  const streams: ScriptedStream[] = [];
  const target: FollowTarget<string> = { apply: () => undefined, drop: () => undefined, merge: (i) => i[0]! };
  const fence = new ChangeFence((db) => db, (db) => new Follower<string>('postgres', db, (sink) => {
    const s = new ScriptedStream(sink);
    streams.push(s);
    return s;
  }, target, silent), metrics, silent);
  assert.is(fence.fence('a'), CDC_DOWN);
  assert.is(fence.fence(null), CDC_DOWN, 'no database, no stream');
  await tick();
  assert.is(streams.length, 1);
  assert.is(fence.fence('a'), CDC_DOWN);
  assert.is(streams.length, 1, 'one follower per target');
  streams[0]!.start();
  await tick();
  assert.is(fence.fence('a'), null);
  assert.equal(fence.upTargets(), ['a']);
  assert.is(fence.fence('b'), CDC_DOWN, 'each database has its own stream');
  assert.is(metrics.changeStreams.size, 2);
  await fence.stop();
  assert.is(fence.fence('c'), CDC_DOWN);
  assert.is(metrics.changeStreams.size, 0, 'nothing is followed once stopped, and stopped streams are not reported');
});

test.run();
