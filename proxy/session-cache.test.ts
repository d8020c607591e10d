// The session cache state machine: the legal moves of both enums, the illegal ones refused, and
// what the identity check and probe backoff do to it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlockState, ContextState, IdentityState } from './cache-router.js';
import { IllegalMoveError, MAX_PROBE_BACKOFF, SessionCacheState } from './session-cache.js';
import { IdentityError, type ServerIdentity } from './upstream-identity.js';


function contextAfter(...moves: ContextState[]): SessionCacheState {
  const s = new SessionCacheState();
  for (const m of moves) s.moveContext(m);
  return s;
}

function blockAfter(...moves: BlockState[]): SessionCacheState {
  const s = new SessionCacheState();
  for (const m of moves) s.moveBlock(m);
  return s;
}

test('legal context moves', () => {
  assert.is(contextAfter(ContextState.Known).context, ContextState.Known);
  assert.is(contextAfter(ContextState.Stale, ContextState.Private).context, ContextState.Private);
  assert.is(contextAfter(ContextState.Known, ContextState.Stale, ContextState.Private, ContextState.Stale, ContextState.Known).context, ContextState.Known);
  assert.is(contextAfter(ContextState.Known, ContextState.Known).context, ContextState.Known, 'staying is no move');
  assert.is(contextAfter(ContextState.Private, ContextState.Off).context, ContextState.Off);
  assert.is(contextAfter(ContextState.Known, ContextState.Private, ContextState.Known).context, ContextState.Known, 'a probe found temporary relations, then none');
});

test('illegal context moves throw', () => {
  for (const moves of [[ContextState.Off, ContextState.Private], [ContextState.Off, ContextState.Stale], [ContextState.Off, ContextState.Known], [ContextState.Known, ContextState.Unknown], [ContextState.Stale, ContextState.Unknown]]) {
    assert.throws(() => contextAfter(...moves), (e: unknown) => e instanceof IllegalMoveError, moves.join(' -> '));
  }
});

test('off and verified, as the relays read them', () => {
  const s = new SessionCacheState();
  assert.equal([s.isOff, s.verified(3)], [false, false]);
  s.checkSent();
  s.checkDone(3);
  assert.equal([s.verified(3), s.verified(4)], [true, false], 'verified under one server epoch only');
  s.off();
  assert.is(s.isOff, true);
});

test('the identity check\'s reply: verified under the cache\'s epoch, or failed for good', () => {
  let epoch = 1;
  const cache = { serverSeen: (seen: ServerIdentity) => (seen.server === 'other' ? (epoch++, 5) : null), get serverEpoch() { return epoch; } };
  const s = new SessionCacheState();
  assert.is(s.checkReplied({ server: 'known', startedAtMs: 0 }, cache), null);
  assert.is(s.identity(1), IdentityState.Verified);
  assert.is(s.checkReplied({ server: 'other', startedAtMs: 0 }, cache), 5, 'another server: its entries were dropped');
  assert.equal([s.identity(2), s.identity(1)], [IdentityState.Verified, IdentityState.Unchecked]);
  const failed = s.checkReplied(new IdentityError('no row'), cache);
  assert.ok(failed instanceof IdentityError);
  assert.is(s.identity(2), IdentityState.Failed);
});

test('legal block moves', () => {
  assert.is(blockAfter(BlockState.ReadOnlySnapshotFree, BlockState.ReadOnly, BlockState.Other, BlockState.None).block, BlockState.None);
  assert.is(blockAfter(BlockState.ReadOnly, BlockState.None, BlockState.Other, BlockState.None, BlockState.ReadOnlySnapshotFree, BlockState.None).block, BlockState.None);
});

test('illegal block moves throw: a block never becomes read-only once open', () => {
  for (const moves of [[BlockState.Other, BlockState.ReadOnly], [BlockState.Other, BlockState.ReadOnlySnapshotFree], [BlockState.ReadOnly, BlockState.ReadOnlySnapshotFree]]) {
    assert.throws(() => blockAfter(...moves), (e: unknown) => e instanceof IllegalMoveError, moves.join(' -> '));
  }
});

test('a session change makes the context stale and the session no longer pristine; Off stays Off', () => {
  const s = contextAfter(ContextState.Known);
  assert.ok(s.pristine);
  s.sessionChanged();
  assert.equal([s.context, s.pristine], [ContextState.Stale, false]);
  s.off();
  s.sessionChanged();
  assert.is(s.context, ContextState.Off);
});

test('the identity check: unchecked, checking, verified under an epoch; a context learned under another is stale', () => {
  const s = new SessionCacheState();
  s.contextLearned(false, 1);
  assert.equal([s.identity(2), s.neverChecked], [IdentityState.Unchecked, true]);
  s.checkSent();
  assert.is(s.identity(2), IdentityState.Checking);
  s.checkDone(2);
  assert.equal([s.identity(2), s.context, s.verifiedEpoch(2), s.verifiedEpoch(3)], [IdentityState.Verified, ContextState.Stale, 2, -1]);
  s.contextLearned(true, 2);
  s.checkDone(2);
  assert.is(s.context, ContextState.Private, 'learned under the verified epoch: kept');
  assert.is(s.identity(3), IdentityState.Unchecked, 'the cache saw another server since');
  s.checkDone(null);
  assert.is(s.identity(3), IdentityState.Failed);
});

test('an identity check that failed for a passing reason leaves the server unchecked, to be asked again', () => {
  const s = new SessionCacheState();
  s.checkSent();
  assert.is(s.checkFailedPassing(), true, 'the first such failure is said');
  assert.equal([s.identity(1), s.neverChecked, s.checkInFlight], [IdentityState.Unchecked, false, false]);
  s.checkSent();
  assert.is(s.checkFailedPassing(), false);
  s.checkSent();
  s.checkDone(1);
  assert.is(s.identity(1), IdentityState.Verified);
});

test('probe backoff doubles per failure up to the bound and resets on success', () => {
  const s = new SessionCacheState();
  assert.is(s.probeFailed(), true, 'the first failure of a run is said');
  let skipped = 0;
  while (s.probeBackedOff) {
    s.probeSkipped();
    skipped++;
  }
  assert.is(skipped, 2);
  assert.is(s.probeFailed(), false);
  for (let i = 0; i < 20; i++) s.probeFailed();
  skipped = 0;
  while (s.probeBackedOff) {
    s.probeSkipped();
    skipped++;
  }
  assert.is(skipped, MAX_PROBE_BACKOFF);
  s.probeSucceeded();
  assert.is(s.probeFailed(), true);
});

test.run();
