import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FillFlights, FlightEnd, MAX_UNSTORABLE_KEYS, type FlightTimers, type Waiting } from './fill-flights.js';

/** A clock moved by hand and timers fired by it. */
class FakeTimers implements FlightTimers {
  time = 0;
  private next = 1;
  private readonly pending = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): ReturnType<typeof setTimeout> {
    const id = this.next++;
    this.pending.set(id, { at: this.time + ms, fn });
    return id as unknown as ReturnType<typeof setTimeout>;
  }

  clearTimeout(timer: ReturnType<typeof setTimeout>): void {
    this.pending.delete(timer as unknown as number);
  }

  get armed(): number {
    return this.pending.size;
  }

  advance(ms: number): void {
    this.time += ms;
    for (const [id, t] of [...this.pending]) {
      if (t.at <= this.time) {
        this.pending.delete(id);
        t.fn();
      }
    }
  }
}

/** Lets the microtasks that call the waiters run. */
const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function setup(waitMs = 100, maxWaiters = 3) {
  const timers = new FakeTimers();
  const flights = new FillFlights(waitMs, maxWaiters, timers);
  const ends: [string, FlightEnd][] = [];
  const waiter = (name: string) => (end: FlightEnd) => ends.push([name, end]);
  return { timers, flights, ends, waiter };
}

test('waiters of a stored fill are told once, after the owner settled it', async () => {
  const { flights, ends, waiter, timers } = setup();
  const flight = flights.begin('k')!;
  assert.ok(flight !== null);
  assert.is(flights.begin('k'), null, 'a second fill of the key leads no one');
  assert.ok(typeof flights.join('k', waiter('a')) === 'object');
  assert.ok(typeof flights.join('k', waiter('b')) === 'object');
  assert.is(timers.armed, 1, 'one timer per flight');
  assert.is(flights.waiting, 2);
  flights.settle(flight, 'stored');
  assert.is(flights.waiting, 0);
  assert.equal(ends, [], 'not inside the owner\'s own work');
  await settled();
  assert.equal(ends, [['a', FlightEnd.Stored], ['b', FlightEnd.Stored]]);
  assert.is(timers.armed, 0);
  assert.is(flights.size, 0);
  flights.settle(flight, 'refused');
  timers.advance(1000);
  await settled();
  assert.is(ends.length, 2, 'settling again or a late timer tells nobody twice');
});

test('a fill not stored sends its waiters to the database; a later miss may lead a new flight', async () => {
  const { flights, ends, waiter } = setup();
  const flight = flights.begin('k')!;
  flights.join('k', waiter('a'));
  flights.settle(flight, 'refused');
  assert.is(flights.join('k', waiter('late')), 'none', 'an ended flight takes no one');
  await settled();
  assert.equal(ends, [['a', FlightEnd.NotStored]]);
  assert.ok(flights.begin('k') !== null);
});

test('keys are told apart: a waiter never hears of another key\'s fill', async () => {
  const { flights, ends, waiter } = setup();
  const a = flights.begin('ctx1\u0001Qselect 1')!;
  flights.begin('ctx2\u0001Qselect 1');
  assert.is(flights.join('ctx3\u0001Qselect 1', waiter('x')), 'none');
  flights.join('ctx2\u0001Qselect 1', waiter('two'));
  flights.settle(a, 'stored');
  await settled();
  assert.equal(ends, []);
});

test('waiters per flight are bounded', () => {
  const { flights, waiter } = setup(100, 2);
  flights.begin('k');
  assert.ok(typeof flights.join('k', waiter('a')) === 'object');
  assert.ok(typeof flights.join('k', waiter('b')) === 'object');
  assert.is(flights.join('k', waiter('c')), 'waiters-full');
});

test('the wait is bounded from the start of the fill: waiters time out, the flight takes no one after', async () => {
  const { flights, ends, waiter, timers } = setup(100);
  const flight = flights.begin('k')!;
  timers.advance(60);
  flights.join('k', waiter('a'));
  timers.advance(39);
  await settled();
  assert.equal(ends, []);
  timers.advance(1);
  await settled();
  assert.equal(ends, [['a', FlightEnd.TimedOut]]);
  assert.is(flights.join('k', waiter('b')), 'none');
  assert.ok(flights.begin('k') !== null, 'a new fill leads the key again');
  flights.settle(flight, 'stored');
  await settled();
  assert.is(ends.length, 1, 'the late owner\'s settle tells no one');
});

test('an expired flight nobody joined is replaced by the next fill; its late settle leaves the new one alone', async () => {
  const { flights, ends, waiter, timers } = setup(100);
  const old = flights.begin('k')!;
  timers.advance(100);
  assert.is(flights.join('k', waiter('a')), 'none', 'too old to wait for');
  const fresh = flights.begin('k')!;
  assert.ok(fresh !== null && fresh !== old);
  flights.join('k', waiter('b'));
  flights.settle(old, 'stored');
  await settled();
  assert.equal(ends, [], 'the old fill\'s end is not the new one\'s');
  flights.settle(fresh, 'stored');
  await settled();
  assert.equal(ends, [['b', FlightEnd.Stored]]);
});

test('a waiter that leaves is not told', async () => {
  const { flights, ends, waiter } = setup();
  const flight = flights.begin('k')!;
  const w = flights.join('k', waiter('a')) as Waiting;
  flights.join('k', waiter('b'));
  flights.leave(w);
  flights.leave(w);
  assert.is(flights.waiting, 1, 'leaving twice counts once');
  flights.settle(flight, 'stored');
  await settled();
  assert.equal(ends, [['b', FlightEnd.Stored]]);
});

test('0 ms turns coalescing off', () => {
  const { flights } = setup(0);
  assert.not.ok(flights.enabled);
  assert.is(flights.begin('k'), null);
  assert.is(flights.join('k', () => undefined), 'none');
});

test('flights whose owner never settled are swept when the map grows', () => {
  const { flights, timers } = setup(10);
  for (let i = 0; i < 1024; i++) flights.begin(`k${i}`);
  assert.is(flights.size, 1024);
  timers.advance(10);
  flights.begin('new');
  assert.is(flights.size, 1, 'only the new flight is left');
});

test('a key whose fill could not be stored is not waited for until one of its fills is stored', async () => {
  const { flights, ends, waiter } = setup();
  const first = flights.begin('big')!;
  flights.join('big', waiter('a'));
  flights.settle(first, 'unstorable');
  await settled();
  assert.equal(ends, [['a', FlightEnd.NotStored]]);
  const second = flights.begin('big')!;
  assert.is(flights.join('big', waiter('b')), 'none', 'its next miss goes to the database at once');
  flights.settle(second, 'stored');
  flights.begin('big');
  assert.ok(typeof flights.join('big', waiter('c')) === 'object', 'stored once: waited for again');
  const stale = flights.begin('other')!;
  flights.settle(stale, 'refused');
  flights.begin('other');
  assert.ok(typeof flights.join('other', waiter('d')) === 'object', 'a fill refused by a write marks nothing');
});

test('the unstorable marks are bounded, the oldest forgotten first', () => {
  const { flights, waiter } = setup();
  for (let i = 0; i <= MAX_UNSTORABLE_KEYS; i++) flights.settle(flights.begin(`k${i}`)!, 'unstorable');
  flights.begin('k0');
  assert.ok(typeof flights.join('k0', waiter('a')) === 'object', 'k0 forgotten');
  flights.begin('k1');
  assert.is(flights.join('k1', waiter('b')), 'none');
});

test('live: a fill a request may still join, not one ended, past its bound or of a key marked unstorable', () => {
  const { flights, timers } = setup();
  assert.is(flights.live('k'), false);
  const flight = flights.begin('k')!;
  assert.is(flights.live('k'), true);
  timers.advance(100);
  assert.is(flights.live('k'), false, 'past the wait bound');
  const again = flights.begin('k')!;
  assert.is(flights.live('k'), true);
  flights.settle(again, 'unstorable');
  assert.is(flights.live('k'), false);
  flights.begin('k');
  assert.is(flights.live('k'), false, 'its last fill could not be stored');
  flights.settle(flight, 'stored');
});

test.run();
