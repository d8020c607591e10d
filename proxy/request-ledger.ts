// The requests of one session awaiting their reply, in the order the server answers, each with
// what the cache does with it (in the spirit of PgBouncer's OutstandingRequest {type, action}),
// and what both relays do around them: the fill lifecycle (token when sent, capture, store on a
// clean reply), the hit/miss/write/bypass accounting, and the writes of a transaction block kept
// until it ends. A server reply belongs to the head request.
import type { StatementIdentity, StatementSource } from '../telemetry/query-stats.js';
import type { FillToken } from '../cache/tag-versions.js';
import type { Flight } from '../cache/fill-flights.js';
import type { L2FillToken } from '../fleet/l2.js';
import { ProbePurpose, unreachable, type BypassReason, type StoredDecision } from './cache-router.js';
import type { Capture } from './reply-router.js';
import type { ResultCache, RuledStatement } from './result-cache.js';

/** What the ledger needs of either protocol's statement info. */
export interface LedgerStatement extends RuledStatement {
  /** Relations a commit of the statement makes stale (names; MySQL: qualified names). */
  readonly writes: readonly unknown[];
  /** It may write what no list names (DDL, a statement not understood). */
  readonly writesUnlisted: boolean;
}

/** The proxy's own query: its reply is read here and never reaches the client. */
export interface ProbeAction<I> {
  readonly kind: 'probe';
  readonly purpose: ProbePurpose;
  /** The statement a catalog probe is for. */
  readonly statement: I | null;
  /** The catalog generation when it was sent (a probe DDL overtook teaches nothing). */
  readonly generation: number;
  /** The row it returned, once read. */
  row: (string | null)[] | null;
  /** The error it failed with (PostgreSQL: SQLSTATE), once read. */
  error: string;
}

export interface FillAction {
  readonly kind: 'fill';
  /** Inside a read-only block: stored only while the block still is one. */
  readonly inBlock: boolean;
  /** The entry's key without the context prefix (cache-key.ts). */
  readonly keySuffix: string;
  /**
   * The whole key under the context prefix it was sent with (null without one), built once: each
   * build of a fresh key string costs a copy and a hash at its first map lookup. storeFills uses
   * it when the prefix is still the same.
   */
  readonly key: string | null;
  readonly keyPrefix: string | null;
  /** Taken when the request was sent: a write invalidated after it refuses the entry. */
  readonly token: FillToken;
  /** Where the fleet's bus stood when it was sent (--l2 on, bus live): the entry goes to the second tier too. */
  readonly l2: L2FillToken | null;
  readonly capture: Capture;
  /** Identical misses of other sessions may wait for it (request coalescing); settled once it is stored or not. */
  readonly flight: Flight | null;
}

/**
 * A hit found while requests are outstanding: its slot in the reply order. The server never sees
 * it; its stored reply is written when every reply before it is complete (writeAnswersDue).
 */
export interface CachedReply {
  readonly kind: 'answered-here';
  /** The bytes the client gets, in order (a ParseComplete the stored reply leaves out, the reply). */
  readonly reply: readonly Buffer[];
  readonly identity: StatementIdentity;
}

/** What the cache does with an outstanding request. */
export type CacheAction<I> =
  /** Relayed as is, with the reason it was not cached; `lookedUp`: a miss inside a read-only block. */
  | { readonly kind: 'forward'; readonly reason: BypassReason | null; readonly lookedUp: boolean }
  /** Relayed and captured: the reply may be stored. */
  | FillAction
  | ProbeAction<I>
  /** The proxy answers it from the cache; nothing goes upstream. Queued only behind outstanding requests. */
  | CachedReply;

export interface OutstandingRequest<I> {
  readonly action: CacheAction<I>;
  readonly startedAt: number;
  /** The statement measured for stats, if known. */
  readonly info: I | null;
  /** The server answered with an error: a fill is not stored, a probe tells nothing. */
  errored: boolean;
  /** Statements of the request filled one by one, each its own request, never queued (PostgreSQL: a Sync group). */
  readonly members?: readonly OutstandingRequest<I>[] | null;
}

/** How far a commit's writes reach: the relations listed, their whole database, or every database of the server. */
export const enum WriteScope {
  Tables,
  Database,
  Server,
}

/**
 * The writes of the current transaction block: invalidated when it commits, before the COMMIT's
 * acknowledgement reaches the client, and forgotten when it rolls back.
 */
export class BlockWrites<T = string> {
  private readonly tables = new Set<T>();
  private scope = WriteScope.Tables;
  private catalog = false;

  add(tables: readonly T[], scope: WriteScope, catalogChanged: boolean): void {
    if (scope > this.scope) this.scope = scope;
    this.catalog ||= catalogChanged;
    if (scope === WriteScope.Tables) for (let i = 0; i < tables.length; i++) this.tables.add(tables[i]!);
  }

  get empty(): boolean {
    return this.scope === WriteScope.Tables && this.tables.size === 0 && !this.catalog;
  }

  /** The block committed: `invalidate` gets what it wrote (unless nothing), then it is forgotten. */
  commit(invalidate: (tables: ReadonlySet<T>, scope: WriteScope, catalogChanged: boolean) => void): void {
    if (this.scope !== WriteScope.Tables || this.tables.size > 0) invalidate(this.tables, this.scope, this.catalog);
    this.discard();
  }

  /** The block rolled back: its writes changed nothing. */
  discard(): void {
    // Clearing allocates a new table even when empty; most requests wrote nothing.
    if (this.tables.size > 0) this.tables.clear();
    this.scope = WriteScope.Tables;
    this.catalog = false;
  }
}

/** How a finished fill is stored: under which context prefix, which bytes, with which tags; null: not stored. */
export interface StoreAs {
  readonly keyPrefix: string;
  /** The context's prefix in the fleet's second tier; null: not kept there. */
  readonly sharedPrefix: string | null;
  readonly parts: readonly Buffer[];
  readonly tags: readonly string[];
}

export class RequestLedger<I extends LedgerStatement, R extends OutstandingRequest<I>> {
  private readonly queue: R[] = [];
  /** Fills whose reply is complete, stored once their bytes are routed (storeFills). */
  private finished: R[] = [];
  readonly blockWrites = new BlockWrites();

  constructor(
    private readonly cache: ResultCache<I>,
    private readonly source: StatementSource,
  ) {}

  get head(): R | undefined {
    return this.queue[0];
  }

  get length(): number {
    return this.queue.length;
  }

  /** Nothing outstanding but the identity check (which changes nothing in the session). */
  get quiet(): boolean {
    const q = this.queue;
    return q.length === 0 || (q.length === 1 && isIdentityCheck(q[0]!.action));
  }

  push(request: R): R {
    this.queue.push(request);
    return request;
  }

  shift(): R | undefined {
    return this.queue.shift();
  }

  /**
   * A fill: the token is taken now, as the request goes upstream. With `keyPrefix` (the context
   * it is keyed under now, outside blocks), identical misses of other sessions may wait for it.
   */
  fillAction(keySuffix: string, inBlock: boolean, keyPrefix: string | null = null, key: string | null = keyPrefix === null ? null : keyPrefix + keySuffix): FillAction {
    const l2 = inBlock ? null : this.cache.secondTier?.fillToken() ?? null;
    const flight = key === null || inBlock ? null : this.cache.flights.begin(key);
    return {
      kind: 'fill', inBlock, keySuffix, key, keyPrefix, token: this.cache.store.startFill(), l2, capture: { parts: [], size: 0, poisoned: false }, flight,
    };
  }

  /**
   * The session is gone: the fills it still awaited will not be stored, so whoever waits for them
   * goes to the database now rather than at the wait bound.
   */
  abandon(): void {
    for (const request of this.queue) {
      for (const r of request.members ?? [request]) {
        const flight = r.action.kind === 'fill' ? r.action.flight : null;
        if (flight !== null) this.cache.flights.settle(flight, 'refused');
      }
    }
  }

  probeAction(purpose: ProbePurpose, statement: I | null, generation: number): ProbeAction<I> {
    return { kind: 'probe', purpose, statement, generation, row: null, error: '' };
  }

  /**
   * Are there outstanding requests, at most `limit`, each one `readsOnly` says leaves the session
   * as it is, or a cached reply? (Bounded: a longer pipeline is relayed.)
   */
  onlyReadsOutstanding(limit: number, readsOnly: (request: R) => boolean): boolean {
    const q = this.queue;
    if (q.length === 0 || q.length > limit) return false;
    for (const r of q) if (r.action.kind !== 'answered-here' && !readsOnly(r)) return false;
    return true;
  }

  /**
   * Writes the cached replies whose turn has come (at the head: every reply before them is
   * complete) and counts their hits; the relay calls it where the previous reply's bytes end.
   */
  writeAnswersDue(write: (bytes: Buffer) => void): void {
    let head = this.queue[0];
    while (head !== undefined && head.action.kind === 'answered-here') {
      this.queue.shift();
      for (const bytes of head.action.reply) write(bytes);
      this.answered(head.action.identity, head.startedAt);
      head = this.queue[0];
    }
  }

  /** Is the head a cached reply waiting for its turn? */
  get answerDue(): boolean {
    return this.queue[0]?.action.kind === 'answered-here';
  }

  /** A hit: the stored reply went to the client. */
  answered(identity: I['identity'], startedAt: number): void {
    this.cache.stats.hit(identity, (performance.now() - startedAt) / 1000, this.source);
  }

  /**
   * A request's reply is complete: it is counted, and a fill waits for storeFills. `decisionNow`:
   * the statement's decision in the session's context now (a fill sent before the probe's verdict
   * is a bypass when the verdict was "not cacheable").
   */
  completed(request: R, decisionNow: StoredDecision | undefined): void {
    const seconds = (performance.now() - request.startedAt) / 1000;
    const { action, info } = request;
    const stats = this.cache.stats;
    switch (action.kind) {
      case 'probe':
      case 'answered-here':
        return;
      case 'fill':
        if (decisionNow !== undefined && !decisionNow.cacheable) {
          stats.bypass(info!.identity, decisionNow.reason ?? 'not-cacheable', seconds, this.source);
          if (action.flight !== null) this.cache.flights.settle(action.flight, 'unstorable');
        } else {
          this.finished.push(request);
          stats.miss(info!.identity, seconds, this.source);
        }
        return;
      case 'forward':
        if (action.lookedUp) stats.miss(info!.identity, seconds, this.source);
        else if (info !== null && (info.writes.length > 0 || info.writesUnlisted)) stats.write(info.identity, seconds, this.source);
        else if (action.reason !== null) stats.bypass(info?.identity ?? null, action.reason, seconds, this.source);
        return;
      default:
        unreachable(action);
    }
  }

  /**
   * Stores the fills whose reply is complete, once their bytes are routed; `storeAs` says whether
   * and how each is stored (null: the reply or the session's state forbids it).
   */
  storeFills(storeAs: (request: R, fill: FillAction) => StoreAs | null): void {
    if (this.finished.length === 0) return;
    const cache = this.cache;
    for (const request of this.finished) {
      const fill = request.action as FillAction;
      const unstorable = fill.capture.poisoned || request.errored;
      const as = unstorable ? null : storeAs(request, fill);
      if (as !== null) {
        const info = request.info!;
        // A cache rule may give this statement its own TTL or a smaller entry limit.
        const rule = cache.rule(info);
        // Kept in the fleet's second tier too: the reply joined once, for both stores.
        const shared = fill.l2 !== null && as.sharedPrefix !== null && cache.secondTier !== null;
        const parts = shared && as.parts.length > 1 ? [Buffer.concat(as.parts, fill.capture.size)] : as.parts;
        const key = fill.key !== null && fill.keyPrefix === as.keyPrefix ? fill.key : as.keyPrefix + fill.keySuffix;
        const outcome = cache.store.setParts(key, parts, fill.capture.size, { identity: info.identity },
          { token: fill.token, tags: as.tags, ttlMs: rule.ttlMs }, rule.maxEntryBytes);
        if (fill.flight !== null) cache.flights.settle(fill.flight, outcome === 'stored' ? 'stored' : outcome === 'too-large' ? 'unstorable' : 'refused');
        if (shared && outcome === 'stored') {
          cache.secondTier!.put(cache.protocol, as.sharedPrefix! + fill.keySuffix, fill.l2!, {
            bytes: parts.length === 1 ? parts[0]! : Buffer.concat(parts, fill.capture.size), tags: as.tags, fingerprint: info.fingerprint, ttlMs: rule.ttlMs ?? cache.ttlMs,
          });
        }
      } else if (fill.flight !== null) {
        cache.flights.settle(fill.flight, unstorable ? 'unstorable' : 'refused');
      }
      fill.capture.parts = [];
    }
    this.finished = [];
  }
}

const FORWARDS = new Map<BypassReason | null, readonly [CacheAction<never>, CacheAction<never>]>();

/** The forward action for a reason (shared, immutable: a forward needs no state of its own). */
export function forwardAction<I>(reason: BypassReason | null, lookedUp: boolean): CacheAction<I> {
  let pair = FORWARDS.get(reason);
  if (pair === undefined) {
    pair = [Object.freeze({ kind: 'forward', reason, lookedUp: false }), Object.freeze({ kind: 'forward', reason, lookedUp: true })];
    FORWARDS.set(reason, pair);
  }
  return pair[lookedUp ? 1 : 0]!;
}

export function isIdentityCheck<I>(action: CacheAction<I>): action is ProbeAction<I> {
  return action.kind === 'probe' && action.purpose === ProbePurpose.Identity;
}
