// The cache state of one session, the same for both protocols: where its context stands, where its
// transaction block stands, whether its server is verified, and how long its probes back off.
// The relays read it through view() and change it only through the transition methods below.
import { BlockState, ContextState, IdentityState } from './cache-router.js';
import { IdentityError, type ServerIdentity } from './upstream-identity.js';

/** After probes failed in a row for passing reasons, statements relayed unprobed before the next try. */
export const MAX_PROBE_BACKOFF = 256;

/** A move the state machine does not allow: a bug in a relay, never the client's doing. */
export class IllegalMoveError extends Error {}

/**
 * Context moves (anything may also stay where it is):
 *
 *   Unknown ──probe/adopt──> Known | Private        Unknown ──session changed──> Stale
 *   Stale   ──probe──────> Known | Private
 *   Known | Private ──session changed / server epoch moved──> Stale
 *   Known <──> Private  (a probe found temporary relations, or none any more)
 *   Unknown | Stale | Known | Private ──unanalysable, probe failed (not passing)──> Off   (Off is final)
 *   nothing goes back to Unknown: once changed, a session is never taken for a fresh one
 */
const CONTEXT_MOVES: readonly (readonly ContextState[])[] = [
  /* Unknown */ [ContextState.Stale, ContextState.Known, ContextState.Private, ContextState.Off],
  /* Stale   */ [ContextState.Known, ContextState.Private, ContextState.Off],
  /* Known   */ [ContextState.Stale, ContextState.Private, ContextState.Off],
  /* Private */ [ContextState.Stale, ContextState.Known, ContextState.Off],
  /* Off     */ [],
];

/**
 * Block moves (anything may also stay where it is):
 *
 *   None ──BEGIN READ ONLY alone, nothing sent after──> ReadOnlySnapshotFree
 *   None ──BEGIN READ ONLY and plain reads──────────> ReadOnly
 *   None ──any other BEGIN (MySQL: autocommit off)──> Other
 *   ReadOnlySnapshotFree ──something went upstream──> ReadOnly
 *   ReadOnlySnapshotFree | ReadOnly ──not a plain read, an error──> Other
 *   ReadOnlySnapshotFree | ReadOnly | Other ──COMMIT, ROLLBACK──> None
 *
 * A block never becomes read-only once open: PostgreSQL accepts SET TRANSACTION READ WRITE until
 * the block's first query, which a hit never was.
 */
const BLOCK_MOVES: readonly (readonly BlockState[])[] = [
  /* None                 */ [BlockState.ReadOnlySnapshotFree, BlockState.ReadOnly, BlockState.Other],
  /* ReadOnlySnapshotFree */ [BlockState.ReadOnly, BlockState.Other, BlockState.None],
  /* ReadOnly             */ [BlockState.Other, BlockState.None],
  /* Other                */ [BlockState.None],
];

const CONTEXT_NAMES = ['Unknown', 'Stale', 'Known', 'Private', 'Off'];
const BLOCK_NAMES = ['None', 'ReadOnlySnapshotFree', 'ReadOnly', 'Other'];

export class SessionCacheState {
  private contextState = ContextState.Unknown;
  private blockState = BlockState.None;
  /** Nothing has changed the session since it started: its probe describes every session with the same startup. */
  private pristineSession = true;
  /** The server epoch of the cache under which the session's server was found to be the known one; -1: not yet. */
  private serverEpoch = -1;
  private checking = false;
  private identityFailed = false;
  /** Identity checks that failed for a passing reason (interrupted, resources): the check is sent again. */
  private checkFailures = 0;
  /** The server epoch the context was learned under: one learned under another is read again. */
  private contextEpoch = -1;
  /** Probes failed in a row for a passing reason (cancelled, lock, resources): the next waits longer. */
  private probeFailures = 0;
  /** Statements still to relay unprobed before the next probe is tried. */
  private probeBackoff = 0;

  get context(): ContextState {
    return this.contextState;
  }

  get block(): BlockState {
    return this.blockState;
  }

  get pristine(): boolean {
    return this.pristineSession;
  }

  /** The cache neither answers nor fills in this session (see off()). */
  get isOff(): boolean {
    return this.contextState === ContextState.Off;
  }

  /** The one way the context state changes; throws on a move the comment above does not list. */
  moveContext(to: ContextState): void {
    const from = this.contextState;
    if (from === to) return;
    if (!CONTEXT_MOVES[from]!.includes(to)) throw new IllegalMoveError(`context: ${CONTEXT_NAMES[from]} -> ${CONTEXT_NAMES[to]}`);
    this.contextState = to;
  }

  /** The one way the block state changes; throws on a move the comment above does not list. */
  moveBlock(to: BlockState): void {
    const from = this.blockState;
    if (from === to) return;
    if (!BLOCK_MOVES[from]!.includes(to)) throw new IllegalMoveError(`block: ${BLOCK_NAMES[from]} -> ${BLOCK_NAMES[to]}`);
    this.blockState = to;
  }

  /** Something changed what the session's results depend on: the context is read again before use. */
  sessionChanged(): void {
    this.pristineSession = false;
    if (this.contextState !== ContextState.Off) this.moveContext(ContextState.Stale);
  }

  /** A probe (or a session with the same startup) gave the context, learned under `epoch` (-1: unverified). */
  contextLearned(own: boolean, epoch: number): void {
    this.moveContext(own ? ContextState.Private : ContextState.Known);
    this.contextEpoch = epoch;
  }

  /** A probe found no context (too many contexts, MySQL: no database): the next cached read probes again. */
  contextMissing(epoch: number): void {
    if (this.contextState !== ContextState.Unknown) this.moveContext(ContextState.Stale);
    this.contextEpoch = epoch;
  }

  /** The cache neither answers nor fills in this session from now on. */
  off(): void {
    this.moveContext(ContextState.Off);
  }

  // ---------------------------------------------------------------- the identity check

  identity(cacheEpoch: number): IdentityState {
    if (this.identityFailed) return IdentityState.Failed;
    if (this.serverEpoch === cacheEpoch) return IdentityState.Verified;
    return this.checking ? IdentityState.Checking : IdentityState.Unchecked;
  }

  /** The session's server is the one the cache's entries came from, under the cache's current server epoch. */
  verified(cacheEpoch: number): boolean {
    return this.identity(cacheEpoch) === IdentityState.Verified;
  }

  /**
   * No check was answered yet in this session. After one failed for a passing reason this is
   * false: the next check goes with the next read that needs it, not with every command.
   */
  get neverChecked(): boolean {
    return this.serverEpoch === -1 && this.checkFailures === 0;
  }

  /** The server epoch the session verified under, to learn under (-1 when not verified). */
  verifiedEpoch(cacheEpoch: number): number {
    return this.serverEpoch === cacheEpoch ? cacheEpoch : -1;
  }

  /** The identity check is in flight. */
  get checkInFlight(): boolean {
    return this.checking;
  }

  checkSent(): void {
    this.checking = true;
  }

  /** The check is back: the server is the known one under `epoch`, or it could not be identified (`epoch` null). */
  checkDone(epoch: number | null): void {
    this.checking = false;
    if (epoch === null) {
      this.identityFailed = true;
      return;
    }
    this.serverEpoch = epoch;
    // A context learned under another server's epoch (adopted at login) is read again.
    if (this.contextEpoch !== epoch) this.contextOutdated();
  }

  /**
   * The context in use (learned or adopted at login) is not this session's: it is read again
   * before the next cached read. The session stays pristine: a login's defaults changed, not it.
   */
  contextOutdated(): void {
    if (this.contextState === ContextState.Known || this.contextState === ContextState.Private) this.moveContext(ContextState.Stale);
  }

  /**
   * The check failed for a passing reason (interrupted, a timeout, resources): the server is still
   * unchecked, so the next read that needs the answer sends it again. True for the first such
   * failure of the session (say it once).
   */
  checkFailedPassing(): boolean {
    this.checking = false;
    return ++this.checkFailures === 1;
  }

  /**
   * The identity check's reply, for either protocol: the cache drops every entry when `seen` is
   * another server than they came from, and the session may use the cache from now on; a reply
   * that names no server turns the cache off for the session. Returns that error, or how many
   * entries were dropped (null: the server is the known one).
   */
  checkReplied(seen: ServerIdentity | IdentityError, cache: { serverSeen(seen: ServerIdentity): number | null; readonly serverEpoch: number }): IdentityError | number | null {
    if (seen instanceof IdentityError) {
      this.checkDone(null);
      return seen;
    }
    const dropped = cache.serverSeen(seen);
    this.checkDone(cache.serverEpoch);
    return dropped;
  }

  // ---------------------------------------------------------------- probe backoff

  /** The next probe waits: true while statements are still to be relayed unprobed. */
  get probeBackedOff(): boolean {
    return this.probeBackoff > 0;
  }

  /** A statement was relayed unprobed while backed off. */
  probeSkipped(): void {
    if (this.probeBackoff > 0) this.probeBackoff--;
  }

  /**
   * A probe failed for a passing reason (cancelled, a lock, resources): the next one waits for
   * twice as many statements as the last time. True for the first failure of a run (say it once).
   */
  probeFailed(): boolean {
    this.probeFailures++;
    this.probeBackoff = Math.min(2 ** this.probeFailures, MAX_PROBE_BACKOFF);
    return this.probeFailures === 1;
  }

  probeSucceeded(): void {
    this.probeFailures = 0;
  }
}
