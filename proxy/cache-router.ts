// What the cache does with one client request, for both protocols: answer it, fill from its reply,
// probe the catalog first, or relay it untouched, and why. A pure function of what the relay knows
// (the statement's facts, the session's cache state, the stored decision and entry, the rule, the
// fences); no I/O. The relays carry the verdict out (proxy/pg/relay.ts, proxy/mysql/relay.ts).
import type { NotCacheableReason } from '../invalidation/pg-analysis.js';
import type { MysqlNotCacheableReason } from '../invalidation/mysql-analysis.js';
import type { CatalogReason } from '../invalidation/pg-facts.js';

/**
 * Where the session's context stands: what its results depend on besides the statement (user,
 * database, settings), under which entries are keyed. Transitions: session-cache.ts.
 */
export const enum ContextState {
  /** Nothing learned yet: a cacheable read is probed first (or adopts the context of a session with the same startup). */
  Unknown,
  /** Learned, then something changed (a setting, the role, the server epoch): probed again before use. */
  Stale,
  /** Learned and current, shared with every session in the same state. */
  Known,
  /** Learned and current, the session's own (temporary relations, a change the probe cannot read). */
  Private,
  /** The cache neither answers nor fills in this session (its statements cannot be analysed, its probe failed). */
  Off,
}

/** Where the session's transaction block (MySQL: transaction) stands. Transitions: session-cache.ts. */
export const enum BlockState {
  /** Outside any block. */
  None,
  /** A block opened READ ONLY and nothing went upstream since: its snapshot is taken by the next statement. */
  ReadOnlySnapshotFree,
  /** A block known read-only: only plain reads ran in it since it was opened READ ONLY. */
  ReadOnly,
  /** Any other block (read-write, failed, unknown access mode; MySQL: autocommit off). */
  Other,
}

/** Whether the session's server is known to be the one the cache's entries came from (upstream-identity.ts). */
export const enum IdentityState {
  /** Not checked under the cache's current server epoch (the check goes ahead of the next cached read). */
  Unchecked,
  /** The check is in flight. */
  Checking,
  Verified,
  /** The check failed: the cache neither answers nor fills in this session. */
  Failed,
}

/** The reasons a statement's result is not stored, as the definitions behind a statement tell (pg-facts.ts, mysql-cache.ts). */
export type CatalogBypassReason =
  | CatalogReason
  /** MySQL: the table is a view, not a base table. */
  | 'view'
  /** MySQL: a table type whose rows change outside transactions (MEMORY, ...), or an unknown one. */
  | 'table-type'
  /** MySQL: a temporary table, or one that does not exist. */
  | 'unknown-table'
  /** MySQL: a function that may read or write data (not NO SQL / CONTAINS SQL). */
  | 'user-function';

/**
 * Why a statement went upstream without the cache: the `reason` label of sidecache_cache_bypass_total
 * and of /stats. A closed set, so the metric has bounded series.
 */
export type BypassReason =
  /**
   * Sent while other requests are outstanding and not answered from the cache behind them: a miss,
   * or a request behind one that may change what it reads (a write, a transaction, a setting).
   */
  | 'pipelined'
  /** Inside a transaction block that is not read-only, or whose statement no rule opted in. */
  | 'in-transaction'
  /** No statement the cache could answer (a Sync alone, an extended batch of another shape). */
  | 'not-cacheable'
  /** A cache rule says "never". */
  | 'rule'
  /** CDC (changes/): the change stream covering the database is not up. */
  | 'cdc-down'
  /** Fleet (fleet/): the invalidation bus is lost; nothing is stored until it is back and caught up. */
  | 'bus-down'
  /** The session's statements cannot be analysed (standard_conforming_strings off, the probe failed). */
  | 'unanalysable'
  /** The session's server could not be identified. */
  | 'unidentified-server'
  /** Probes failed in a row for a passing reason: statements are relayed unprobed for a while. */
  | 'probe-failed'
  /** PostgreSQL fast-path function call. */
  | 'function-call'
  /** MySQL: the session has no current database, so it has no context. */
  | 'no-database'
  /** MySQL: the read names a temporary table of the session. */
  | 'temporary-table'
  /** MySQL: an execution with a cursor or long data. */
  | 'cursor-or-long-data'
  | NotCacheableReason
  | MysqlNotCacheableReason
  | CatalogBypassReason;

/** What the cache decided for a statement in the session's context (a probe's verdict, or known facts). */
export interface StoredDecision {
  readonly cacheable: boolean;
  /** MySQL's decisions carry the analysis' reason of a statement that is not a plain read. */
  readonly reason: BypassReason | null;
}

/** What the router needs of a statement's analysis. */
export interface StatementFacts {
  /** The text alone allows caching the result (a single plain read). */
  readonly readCacheable: boolean;
  /** The catalog must be probed before the statement is cached or its functions judged. */
  readonly needsCatalog: boolean;
  /** Why the text alone forbids caching (MySQL's analysis says), when no decision says; else 'not-cacheable'. */
  readonly notCacheable?: BypassReason;
}

/** What the router needs of the session. */
export interface SessionView {
  /** Nothing outstanding (the identity check aside), outside any block, statements analysable. */
  readonly quiet: boolean;
  /** Nothing outstanding at all. */
  readonly idle: boolean;
  /**
   * Not quiet only because requests are outstanding, each a plain read (or a cached reply queued
   * behind them) sent outside blocks: they leave the session as it is (idle, same settings, nothing
   * written), so a stored reply queued behind their replies is what the client would read after them.
   */
  readonly behindReads: boolean;
  readonly context: ContextState;
  readonly block: BlockState;
  readonly identity: IdentityState;
  /** The next probe is still backed off (probeFailed in session-cache.ts). */
  readonly probeBackedOff: boolean;
  /** A reason of the protocol's own that forbids filling (MySQL: temporary-table, no-database), or null. */
  readonly fillForbidden: BypassReason | null;
  /** MySQL: the session has temporary tables, which may shadow the tables a stored reply read: nothing is looked up. */
  readonly shadowed?: boolean;
}

/** What the cache rule matching the statement says (config/rules.ts). */
export interface RuleView {
  readonly never: boolean;
  readonly inReadOnlyTransactions: boolean;
}

/** Fences that stop fills: a change stream down, the fleet's bus lost (result-cache.ts). */
export interface FenceState {
  /** `cdc-down` while the database's change stream is not up, else null. */
  readonly change: BypassReason | null;
  /** The store is suspended: its fleet lost the bus. */
  readonly busDown: boolean;
}

export const enum ProbePurpose {
  /** The catalog facts of a statement and the session's context (pg-probe.ts, the MySQL probe). */
  Catalog,
  /** Which server the session talks to (upstream-identity.ts). */
  Identity,
}

export type Verdict<E> =
  /** Answer from the cache; nothing goes upstream. */
  | { readonly kind: 'hit'; readonly entry: E }
  /** The cache holds the answer but the server is not verified yet: wait for the identity check. */
  | { readonly kind: 'park' }
  /** Relay and capture the reply for the cache. `inBlock`: inside a read-only block. */
  | { readonly kind: 'fill'; readonly inBlock: boolean }
  /** Probe the catalog first, then relay and capture. */
  | { readonly kind: 'probe-then-fill'; readonly purpose: ProbePurpose.Catalog }
  /** Probe the catalog first (what it learns serves later statements), then relay with `reason`. */
  | { readonly kind: 'probe-then-forward'; readonly purpose: ProbePurpose.Catalog; readonly reason: BypassReason }
  /**
   * Relay. `reason` null: the statement was never a candidate (a write, a session command).
   * `lookedUp`: it was looked up in a read-only block and missed: counted as a miss, not a bypass.
   */
  | { readonly kind: 'forward'; readonly reason: BypassReason | null; readonly lookedUp: boolean };

/** Everything route() reads. `entry`: the stored reply under the request's key, looked up when mayLookUp() said so. */
export interface RouteInput<E> {
  /** null: not analysed yet (a hit needs no analysis). */
  readonly facts: StatementFacts | null;
  readonly session: SessionView;
  readonly entry: E | undefined;
  /** The decision for the statement in the session's context, if one is known. */
  readonly decision: StoredDecision | undefined;
  /** Evaluated only for a statement that may be stored (once per shape in the cache anyway). */
  readonly rule: () => RuleView;
  /** Asked only for a statement that may be stored (asking starts following a database's change stream). */
  readonly fence: () => FenceState;
  /** The request may wait for the identity check (not when it is being taken up again after one). */
  readonly mayPark: boolean;
}

/** The context can key entries now. */
export function contextUsable(state: ContextState): boolean {
  switch (state) {
    case ContextState.Known:
    case ContextState.Private:
      return true;
    case ContextState.Unknown:
    case ContextState.Stale:
    case ContextState.Off:
      return false;
    default:
      return unreachable(state);
  }
}

export function inReadOnlyBlock(block: BlockState): boolean {
  switch (block) {
    case BlockState.ReadOnly:
    case BlockState.ReadOnlySnapshotFree:
      return true;
    case BlockState.None:
    case BlockState.Other:
      return false;
    default:
      return unreachable(block);
  }
}

/** Should the relay look the request's key up before analysing it (outside blocks; maybe behind reads)? */
export function mayLookUp(session: SessionView): boolean {
  return (session.quiet || session.behindReads) && contextUsable(session.context) && session.identity !== IdentityState.Failed && session.shadowed !== true;
}

/** Inside a read-only block, between requests, with the context known and the server verified. */
export function mayLookUpInBlock(session: SessionView): boolean {
  return session.idle && inReadOnlyBlock(session.block) && contextUsable(session.context) && session.identity === IdentityState.Verified
    && session.shadowed !== true;
}

/** The statement may be answered inside the read-only block: its rule opts in. */
export function answersInBlock(session: SessionView, facts: StatementFacts, rule: () => RuleView): boolean {
  return !session.quiet && facts.readCacheable && mayLookUpInBlock(session) && rule().inReadOnlyTransactions;
}

const FORWARD_UNANALYSABLE = Object.freeze({ kind: 'forward', reason: 'unanalysable', lookedUp: false } as const);
const PARK = Object.freeze({ kind: 'park' } as const);

/**
 * The verdict for one request. Outside blocks: a stored entry answers once the server is verified
 * (else the request parks for the check); a statement the catalog must judge is probed first; a
 * cacheable read fills unless a rule, a fence or the decision says otherwise. Behind outstanding
 * plain reads a stored entry answers (queued in reply order by the relay) when the server is
 * verified; anything else there is relayed as `pipelined`. Inside a read-only
 * block a statement whose rule opts in is answered or, as the block's first statement, filled; no
 * probe runs there. Anything else is relayed with its reason.
 */
export function route<E>(input: RouteInput<E>): Verdict<E> {
  const { session, entry, facts } = input;
  if (session.context === ContextState.Off) return FORWARD_UNANALYSABLE;
  if (session.quiet) {
    if (entry !== undefined && mayLookUp(session)) {
      if (session.identity === IdentityState.Verified) return { kind: 'hit', entry };
      if (input.mayPark) return PARK;
    }
    if (facts === null) throw new Error('route: a request the cache cannot answer needs its facts');
    return routeQuiet(input, facts);
  }
  if (session.behindReads && entry !== undefined && mayLookUp(session) && session.identity === IdentityState.Verified) return { kind: 'hit', entry };
  if (facts !== null && answersInBlock(session, facts, input.rule)) {
    if (entry !== undefined) return { kind: 'hit', entry };
    return routeInBlock(input);
  }
  return forward(session.block !== BlockState.None ? 'in-transaction' : 'pipelined');
}

function routeQuiet<E>(input: RouteInput<E>, facts: StatementFacts): Verdict<E> {
  const { session, decision } = input;
  if (session.identity === IdentityState.Failed) return forward('unidentified-server');
  const probe = facts.needsCatalog && (!contextUsable(session.context) || decision === undefined);
  if (probe && session.probeBackedOff) return forward('probe-failed');
  const reason = !facts.readCacheable || decision?.cacheable === false ? decision?.reason ?? facts.notCacheable ?? 'not-cacheable' : fillStopper(input);
  if (probe) return reason === null ? { kind: 'probe-then-fill', purpose: ProbePurpose.Catalog } : { kind: 'probe-then-forward', purpose: ProbePurpose.Catalog, reason };
  return reason === null ? { kind: 'fill', inBlock: false } : forward(reason);
}

/** Why a statement the cache could store is not filled now (a rule, a fence, the protocol), or null. */
function fillStopper<E>(input: RouteInput<E>): BypassReason | null {
  if (input.rule().never) return 'rule';
  const fence = input.fence();
  if (fence.change !== null) return fence.change;
  if (fence.busDown) return 'bus-down';
  return input.session.fillForbidden;
}

/**
 * A read the cache could not answer inside a read-only block. Its result is stored only when it
 * is the block's first statement the server sees: its snapshot is then taken after the fill's
 * token, as for a statement outside a block; a later one may read an older snapshot than writes
 * already acknowledged, which must not reach clients outside the block.
 */
function routeInBlock<E>(input: RouteInput<E>): Verdict<E> {
  const { decision } = input;
  const lookedUp = decision === undefined || decision.cacheable;
  // A fence makes it a miss (diverted to a bypass by the stats while the bus is down), as before.
  if (input.session.block === BlockState.ReadOnlySnapshotFree && decision !== undefined && decision.cacheable && unfenced(input.fence())) {
    return { kind: 'fill', inBlock: true };
  }
  return { kind: 'forward', reason: decision?.reason ?? 'in-transaction', lookedUp };
}

function unfenced(fence: FenceState): boolean {
  return fence.change === null && !fence.busDown;
}

function forward<E>(reason: BypassReason): Verdict<E> {
  return { kind: 'forward', reason, lookedUp: false };
}

/** For exhaustive switches: a new enum member or union kind fails to compile where it is not handled. */
export function unreachable(value: never): never {
  throw new Error(`unreachable: ${String(value)}`);
}
