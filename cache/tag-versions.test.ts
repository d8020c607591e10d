import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TagVersions } from './tag-versions.js';

test('a token is current until one of its tags is bumped', () => {
  const versions = new TagVersions(100);
  const token = versions.token();
  assert.ok(versions.isCurrent(token, ['a', 'b']));
  versions.bump(['c']);
  assert.ok(versions.isCurrent(token, ['a', 'b']), 'an unrelated bump leaves it current');
  versions.bump(['b']);
  assert.not.ok(versions.isCurrent(token, ['a', 'b']));
  assert.ok(versions.isCurrent(token, ['a']));
  assert.ok(versions.isCurrent(versions.token(), ['a', 'b']), 'a token taken after the bump is current');
});

test('a fill with no tags is refused only by bumpAll', () => {
  const versions = new TagVersions(100);
  const token = versions.token();
  versions.bump(['a']);
  assert.ok(versions.isCurrent(token, []));
  versions.bumpAll();
  assert.not.ok(versions.isCurrent(token, []));
  assert.ok(versions.isCurrent(versions.token(), ['a']));
});

test('bumpAll makes every earlier token stale and forgets per-tag history', () => {
  const versions = new TagVersions(100);
  versions.bump(['a', 'b']);
  const token = versions.token();
  versions.bumpAll();
  assert.is(versions.trackedTags, 0);
  assert.not.ok(versions.isCurrent(token, ['z']));
});

test('past maxTrackedTags the history is dropped: older tokens are refused, newer ones are judged normally', () => {
  const versions = new TagVersions(2);
  const old = versions.token();
  versions.bump(['a']);
  versions.bump(['b']);
  assert.is(versions.trackedTags, 2);
  const middle = versions.token();
  versions.bump(['c']); // third tag: the map is forgotten
  assert.is(versions.trackedTags, 0);
  assert.not.ok(versions.isCurrent(old, ['unrelated']), 'cannot tell what changed since, so refuse');
  assert.not.ok(versions.isCurrent(middle, ['unrelated']));
  const fresh = versions.token();
  assert.ok(versions.isCurrent(fresh, ['a', 'b', 'c']));
  versions.bump(['a']);
  assert.not.ok(versions.isCurrent(fresh, ['a']));
  assert.ok(versions.isCurrent(fresh, ['b']));
});

test('bumping the same tags repeatedly does not grow the history', () => {
  const versions = new TagVersions(10);
  for (let i = 0; i < 1000; i++) versions.bump(['a', 'b']);
  assert.is(versions.trackedTags, 2);
});

test('while suspended no token is current; after resume, tokens taken before or during it stay refused', () => {
  const versions = new TagVersions(100);
  const before = versions.token();
  versions.suspend();
  assert.not.ok(versions.isCurrent(before, []));
  const during = versions.token();
  assert.not.ok(versions.isCurrent(during, ['a']));
  versions.bump(['a', 'b', 'c']); // bumps while suspended, even past a history reset, keep it suspended
  versions.bumpAll();
  assert.not.ok(versions.isCurrent(versions.token(), []));
  versions.resume();
  assert.not.ok(versions.isCurrent(before, []));
  assert.not.ok(versions.isCurrent(during, []));
  assert.ok(versions.isCurrent(versions.token(), ['a']));
});

test.run();
