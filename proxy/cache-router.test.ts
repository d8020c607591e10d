// The cache router's verdicts, as a table: session state, statement facts, stored decision, rule
// and fences in; hit, park, fill, probe or forward (with its reason) out.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  BlockState, ContextState, IdentityState, route, type FenceState, type RouteInput, type RuleView, type SessionView, type StatementFacts, type StoredDecision,
} from './cache-router.js';

const QUIET: SessionView = {
  quiet: true, idle: true, behindReads: false, context: ContextState.Known, block: BlockState.None, identity: IdentityState.Verified, probeBackedOff: false, fillForbidden: null,
};
const READ: StatementFacts = { readCacheable: true, needsCatalog: true };
const WRITE: StatementFacts = { readCacheable: false, needsCatalog: false };
const CACHEABLE: StoredDecision = { cacheable: true, reason: null };
const ANY_RULE: RuleView = { never: false, inReadOnlyTransactions: false };
const OPEN: FenceState = { change: null, busDown: false };

function input(over: Partial<Omit<RouteInput<string>, 'rule' | 'fence' | 'session'>> & { session?: Partial<SessionView>; rule?: RuleView; fence?: FenceState } = {}): RouteInput<string> {
  const rule = over.rule ?? ANY_RULE;
  const fence = over.fence ?? OPEN;
  return {
    facts: over.facts === undefined ? READ : over.facts,
    session: { ...QUIET, ...over.session },
    entry: over.entry,
    decision: 'decision' in over ? over.decision : CACHEABLE,
    rule: () => rule,
    fence: () => fence,
    mayPark: over.mayPark ?? true,
  };
}

const rows: [string, RouteInput<string>, unknown][] = [
  ['stored entry, server verified: hit', input({ entry: 'E', facts: null }), { kind: 'hit', entry: 'E' }],
  ['stored entry, server not verified: park', input({ entry: 'E', session: { identity: IdentityState.Checking } }), { kind: 'park' }],
  ['stored entry, unverified, being taken up again: fill', input({ entry: 'E', session: { identity: IdentityState.Unchecked }, mayPark: false }), { kind: 'fill', inBlock: false }],
  ['stored entry, context stale: not looked up, probed', input({ entry: 'E', session: { context: ContextState.Stale } }), { kind: 'probe-then-fill', purpose: 0 }],
  ['context private: hit', input({ entry: 'E', session: { context: ContextState.Private } }), { kind: 'hit', entry: 'E' }],
  ['caching off', input({ entry: 'E', session: { context: ContextState.Off, quiet: false } }), { kind: 'forward', reason: 'unanalysable', lookedUp: false }],
  ['server unidentified', input({ entry: 'E', session: { identity: IdentityState.Failed } }), { kind: 'forward', reason: 'unidentified-server', lookedUp: false }],
  ['decision known, cacheable: fill', input(), { kind: 'fill', inBlock: false }],
  ['decision unknown: probe then fill', input({ decision: undefined }), { kind: 'probe-then-fill', purpose: 0 }],
  ['decision unknown, probes backed off', input({ decision: undefined, session: { probeBackedOff: true } }), { kind: 'forward', reason: 'probe-failed', lookedUp: false }],
  ['decision not cacheable', input({ decision: { cacheable: false, reason: 'function' } }), { kind: 'forward', reason: 'function', lookedUp: false }],
  ['a write', input({ facts: WRITE, decision: undefined }), { kind: 'forward', reason: 'not-cacheable', lookedUp: false }],
  ['a write calling functions: probed', input({ facts: { readCacheable: false, needsCatalog: true }, decision: undefined }),
    { kind: 'probe-then-forward', purpose: 0, reason: 'not-cacheable' }],
  ['rule "never"', input({ rule: { never: true, inReadOnlyTransactions: false } }), { kind: 'forward', reason: 'rule', lookedUp: false }],
  ['rule "never", decision unknown: probed all the same', input({ decision: undefined, rule: { never: true, inReadOnlyTransactions: false } }),
    { kind: 'probe-then-forward', purpose: 0, reason: 'rule' }],
  ['change stream down', input({ fence: { change: 'cdc-down', busDown: false } }), { kind: 'forward', reason: 'cdc-down', lookedUp: false }],
  ['fleet bus down', input({ fence: { change: null, busDown: true } }), { kind: 'forward', reason: 'bus-down', lookedUp: false }],
  ['protocol forbids (temporary table)', input({ session: { fillForbidden: 'temporary-table' } }), { kind: 'forward', reason: 'temporary-table', lookedUp: false }],
  ['pipelined', input({ entry: 'E', session: { quiet: false, idle: false } }), { kind: 'forward', reason: 'pipelined', lookedUp: false }],
  ['behind outstanding plain reads, stored: hit (queued)', input({ entry: 'E', facts: null, session: { quiet: false, idle: false, behindReads: true } }), { kind: 'hit', entry: 'E' }],
  ['behind plain reads, not stored: pipelined', input({ session: { quiet: false, idle: false, behindReads: true } }), { kind: 'forward', reason: 'pipelined', lookedUp: false }],
  ['behind plain reads, server not verified: no park, pipelined', input({ entry: 'E', session: { quiet: false, idle: false, behindReads: true, identity: IdentityState.Checking } }),
    { kind: 'forward', reason: 'pipelined', lookedUp: false }],
  ['behind plain reads, context stale: pipelined', input({ entry: 'E', session: { quiet: false, idle: false, behindReads: true, context: ContextState.Stale } }),
    { kind: 'forward', reason: 'pipelined', lookedUp: false }],
  ['in a read-write block', input({ session: { quiet: false, block: BlockState.Other } }), { kind: 'forward', reason: 'in-transaction', lookedUp: false }],
  ['read-only block, rule does not opt in', input({ entry: 'E', session: { quiet: false, block: BlockState.ReadOnly } }),
    { kind: 'forward', reason: 'in-transaction', lookedUp: false }],
  ['read-only block, rule opts in, stored: hit', input({ entry: 'E', session: { quiet: false, block: BlockState.ReadOnly }, rule: { never: false, inReadOnlyTransactions: true } }),
    { kind: 'hit', entry: 'E' }],
  ['read-only block, not stored, snapshot taken: a miss', input({ session: { quiet: false, block: BlockState.ReadOnly }, rule: { never: false, inReadOnlyTransactions: true } }),
    { kind: 'forward', reason: 'in-transaction', lookedUp: true }],
  ['read-only block, first statement: fill', input({ session: { quiet: false, block: BlockState.ReadOnlySnapshotFree }, rule: { never: false, inReadOnlyTransactions: true } }),
    { kind: 'fill', inBlock: true }],
  ['read-only block, first statement, stream down: a miss', input({ session: { quiet: false, block: BlockState.ReadOnlySnapshotFree }, rule: { never: false, inReadOnlyTransactions: true }, fence: { change: 'cdc-down', busDown: false } }),
    { kind: 'forward', reason: 'in-transaction', lookedUp: true }],
  ['read-only block, decision not cacheable: a bypass', input({ decision: { cacheable: false, reason: 'temporary-table' }, session: { quiet: false, block: BlockState.ReadOnlySnapshotFree }, rule: { never: false, inReadOnlyTransactions: true } }),
    { kind: 'forward', reason: 'temporary-table', lookedUp: false }],
  ['read-only block, something outstanding', input({ entry: 'E', session: { quiet: false, idle: false, block: BlockState.ReadOnly }, rule: { never: false, inReadOnlyTransactions: true } }),
    { kind: 'forward', reason: 'in-transaction', lookedUp: false }],
  ['read-only block, server unverified', input({ entry: 'E', session: { quiet: false, identity: IdentityState.Unchecked, block: BlockState.ReadOnly }, rule: { never: false, inReadOnlyTransactions: true } }),
    { kind: 'forward', reason: 'in-transaction', lookedUp: false }],
];

for (const [name, given, expected] of rows) {
  test(name, () => {
    assert.equal(route(given), expected);
  });
}

test('a request the cache cannot answer needs its facts', () => {
  assert.throws(() => route(input({ facts: null })), /needs its facts/);
});

test('the rule and the fence are asked only for a statement that may be stored', () => {
  let asked = 0;
  const counting = { ...input({ facts: WRITE, decision: undefined }), rule: () => (asked++, ANY_RULE), fence: () => (asked++, OPEN) };
  route(counting);
  route({ ...counting, session: { ...QUIET, quiet: false, idle: false } });
  assert.is(asked, 0);
  route({ ...counting, facts: READ, decision: CACHEABLE });
  assert.is(asked, 2);
});

test.run();
