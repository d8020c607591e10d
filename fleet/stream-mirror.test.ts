// The change-stream fence of a proxy that does not lead: fills only for what the leader's last
// report says is up, every change of that view drops the target here, a report not renewed within
// the trust ends it, and asking the leader to follow a database is rate-limited.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CDC_DOWN } from '../changes/change-fence.js';
import { StreamMirror } from './stream-mirror.js';

function mirror(trustMs = 60_000, askEveryMs = 60_000) {
  const dropped: string[] = [];
  const asked: string[] = [];
  const m = new StreamMirror({ trustMs, targetOf: (db) => db, drop: (t) => dropped.push(t), ask: (t) => asked.push(t), askEveryMs });
  return { m, dropped, asked };
}

test('cdc-down until the leader reports the database up; each change of the view drops that database', () => {
  const { m, dropped } = mirror();
  assert.is(m.fence('app'), CDC_DOWN);
  assert.is(m.fence(null), CDC_DOWN, 'no database, no stream');
  m.report(['app'], 'leader-1');
  assert.is(m.fence('app'), null);
  assert.is(m.fence('billing'), CDC_DOWN);
  assert.equal(dropped, ['app'], 'down to up drops too: a fill sent before is refused');
  m.report(['app', 'billing'], 'leader-1');
  assert.equal(dropped, ['app', 'billing'], 'a database that stays up keeps its entries');
  m.report(['billing'], 'leader-1');
  assert.is(m.fence('app'), CDC_DOWN);
  assert.equal(dropped, ['app', 'billing', 'app']);
  assert.equal(m.view().leader, 'leader-1');
  assert.equal(m.view().up, ['billing']);
  m.clear();
  assert.is(m.fence('billing'), CDC_DOWN);
  assert.equal(dropped, ['app', 'billing', 'app', 'billing']);
  assert.equal(m.view(), { leader: null, up: [], ageMs: null });
});

test('the view is dropped when the fence changes, not after: the drop sees the new view', () => {
  const seen: (string | null)[] = [];
  const m: StreamMirror = new StreamMirror({ trustMs: 60_000, targetOf: (db) => db, drop: (t) => seen.push(m.fence(t)), ask: () => undefined, askEveryMs: 60_000 });
  m.report(['app'], 'l');
  m.report([], 'l');
  assert.equal(seen, [null, CDC_DOWN]);
});

test('a report not renewed within the trust ends: the entries go and reads bypass', async () => {
  const { m, dropped } = mirror(80);
  m.report(['app'], 'l');
  await new Promise((r) => setTimeout(r, 40));
  m.report(['app'], 'l');
  await new Promise((r) => setTimeout(r, 50));
  assert.is(m.fence('app'), null, 'a renewed report is trusted again from its arrival');
  await new Promise((r) => setTimeout(r, 150));
  assert.is(m.fence('app'), CDC_DOWN);
  assert.equal(dropped, ['app', 'app']);
});

test('a read of a database not up asks the leader to follow it, once per interval per database', async () => {
  const { m, asked } = mirror(60_000, 50);
  m.fence('app');
  m.fence('app');
  m.fence('billing');
  assert.equal(asked, ['app', 'billing']);
  await new Promise((r) => setTimeout(r, 70));
  m.fence('app');
  assert.equal(asked, ['app', 'billing', 'app']);
  m.report(['app'], 'l');
  await new Promise((r) => setTimeout(r, 70));
  m.fence('app');
  assert.equal(asked.length, 3, 'a database up is not asked for');
});

test.run();
