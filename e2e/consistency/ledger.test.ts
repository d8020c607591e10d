// The stale-read checker's oracle: it must flag a value older than what was acknowledged before the
// read, a rolled-back version, a version never handed out and a result with the wrong rows, and must
// accept a value newer than the floor (a write committed but not yet acknowledged).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VersionLedger } from './ledger.js';

test('a read sent after an acknowledgement must return at least that version', () => {
  const ledger = new VersionLedger(2);
  const v1 = ledger.issue();
  const v2 = ledger.issue();
  ledger.acknowledge(0, v2);
  const floors = ledger.floors();
  assert.is(ledger.judge(0, v2, floors, 'r'), null);
  assert.equal(ledger.judge(0, v1, floors, 'r'), { kind: 'stale', key: 0, returned: v1, required: v2, how: 'r' });
  assert.is(ledger.judge(1, 0, floors, 'r'), null, 'another key is not held to it');
});

test('floors are taken before the read: a later acknowledgement does not raise them', () => {
  const ledger = new VersionLedger(1);
  const v1 = ledger.issue();
  ledger.acknowledge(0, v1);
  const floors = ledger.floors();
  ledger.acknowledge(0, ledger.issue());
  assert.is(ledger.judge(0, v1, floors, 'r'), null);
});

test('floors as of a moment in the past hold reads to what was acknowledged by then (a fleet\'s allowed lag)', () => {
  const ledger = new VersionLedger(2);
  const v1 = ledger.issue();
  const v2 = ledger.issue();
  ledger.acknowledge(0, v1, 100);
  ledger.acknowledge(0, v2, 200);
  ledger.acknowledge(1, ledger.issue(), 300);
  assert.equal(ledger.floors(99), [0, 0]);
  assert.equal(ledger.floors(150), [v1, 0]);
  assert.equal(ledger.floors(250), [v2, 0]);
  assert.equal(ledger.floors(300), [v2, 3]);
  assert.equal(ledger.floors(), [v2, 3]);
});

test('given the bus position a reader\'s proxy had applied, a read is held only to writes whose invalidation it had applied', () => {
  const ledger = new VersionLedger(1);
  const v1 = ledger.issue();
  const v2 = ledger.issue();
  const v3 = ledger.issue();
  ledger.acknowledge(0, v1, 100)!.mark = 10;
  ledger.acknowledge(0, v2, 200)!.mark = 12;
  const pending = ledger.acknowledge(0, v3, 300)!;
  assert.equal(ledger.floors(1000, 9), [0], 'the proxy had applied none of them');
  assert.equal(ledger.floors(1000, 11), [v1]);
  assert.equal(ledger.floors(1000, 50), [v2], 'a mark not read yet does not count');
  assert.equal(ledger.floors(150, 50), [v1], 'nor a write acknowledged within the allowed lag');
  pending.mark = null;
  assert.equal(ledger.floors(1000, 11), [v3], 'a mark that could not be read: the allowed lag alone');
  assert.equal(ledger.floors(1000), [v3], 'no position given: the allowed lag alone');
});

test('an acknowledgement arriving late never lowers the floor', () => {
  const ledger = new VersionLedger(1);
  const v1 = ledger.issue();
  const v2 = ledger.issue();
  ledger.acknowledge(0, v2);
  ledger.acknowledge(0, v1);
  assert.is(ledger.ackedOf(0), v2);
});

test('a version newer than the floor (committed, not yet acknowledged) is fine', () => {
  const ledger = new VersionLedger(1);
  const v1 = ledger.issue();
  assert.is(ledger.judge(0, v1, ledger.floors(), 'r'), null);
});

test('a rolled-back version is a violation even when it is above the floor', () => {
  const ledger = new VersionLedger(1);
  const v1 = ledger.issue();
  ledger.doom(v1);
  assert.is(ledger.judge(0, v1, ledger.floors(), 'r')?.kind, 'rolled-back');
});

test('a version never handed out is a violation', () => {
  const ledger = new VersionLedger(1);
  ledger.issue();
  assert.is(ledger.judge(0, 7, ledger.floors(), 'r')?.kind, 'unknown');
});

test('a result must hold exactly the rows asked for', () => {
  const ledger = new VersionLedger(3);
  const floors = ledger.floors();
  assert.equal(ledger.judgeRows([{ key: 1, version: 0 }], 1, floors, 'r'), []);
  assert.equal(ledger.judgeRows([0, 1, 2].map((key) => ({ key, version: 0 })), null, floors, 'r'), []);
  assert.is(ledger.judgeRows([], 1, floors, 'r')[0]?.kind, 'rows');
  assert.is(ledger.judgeRows([{ key: 0, version: 0 }, { key: 2, version: 0 }], null, floors, 'r')[0]?.kind, 'rows');
});

test('every stale row of an all-keys read is reported', () => {
  const ledger = new VersionLedger(2);
  ledger.acknowledge(0, ledger.issue());
  ledger.acknowledge(1, ledger.issue());
  const found = ledger.judgeRows([{ key: 0, version: 0 }, { key: 1, version: 0 }], null, ledger.floors(), 'r');
  assert.equal(found.map((v) => [v.kind, v.key]), [['stale', 0], ['stale', 1]]);
});

test('with an allowed lag, a read is held only to what was acknowledged that long before it', () => {
  const lag = 100;
  const ledger = new VersionLedger(1);
  const v1 = ledger.issue();
  const v2 = ledger.issue();
  ledger.acknowledge(0, v1, 1000);
  ledger.acknowledge(0, v2, 1150);
  assert.equal(ledger.floors(1050 - lag), [0], 'v1 is only 50 ms old');
  assert.equal(ledger.floors(1120 - lag), [v1]);
  assert.equal(ledger.floors(1200 - lag), [v1], 'v2 is only 50 ms old');
  assert.equal(ledger.floors(1260 - lag), [v2]);
  assert.equal(ledger.judge(0, v1, ledger.floors(1260 - lag), 'r')?.kind, 'stale');
  for (let t = 2000; t < 100_000; t += 10) ledger.acknowledge(0, ledger.issue(), t);
  assert.equal(ledger.floors(99_000 - lag).length, 1, 'old history is pruned, the floors still answer');
  assert.ok(ledger.floors(99_000 - lag)[0]! > v2);
});

test.run();
