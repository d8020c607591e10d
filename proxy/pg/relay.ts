// The traffic of one PostgreSQL session once the client is authenticated, both ways. For each
// client request the cache router (../cache-router.ts) gives a verdict from what the session
// knows (cache-session.ts); the relay carries it out: answers from the cache, or sends the request
// upstream (with the proxy's own probe or a replayed Parse in front when needed), and routes each
// server message (relay, relay and capture for the cache, or swallow the reply to the proxy's own
// request). Writes invalidate what they made stale before their acknowledgement reaches the client.
//
// Every request that produces a ReadyForQuery (a Query, a FunctionCall, the messages up to a Sync)
// has one entry in the request ledger (../request-ledger.ts), queued in the order the server
// answers; a server message belongs to the head entry. The cache answers at once when nothing is
// outstanding; behind outstanding plain reads (a pipeline), a hit takes its place in that queue as
// a cached reply, written where the reply before it ends, so replies never reorder. It answers only
// once the session's server is known to be the one the entries came from (the identity check,
// upstream-identity.ts, pipelined ahead of the session's first request).
import type { StatementSource } from '../../telemetry/query-stats.js';
import type { Logger } from '../../telemetry/log.js';
import {
  BlockState, ContextState, ProbePurpose, IdentityState, answersInBlock, mayLookUp, mayLookUpInBlock, route, unreachable, type FenceState, type RuleView, type SessionView, type Verdict,
} from '../cache-router.js';
import { CoalescedWait } from '../coalesced-wait.js';
import { ParkedRequest } from '../parked-request.js';
import { Route, ReplyRouter } from '../reply-router.js';
import { RequestLedger, forwardAction, isIdentityCheck, type CacheAction } from '../request-ledger.js';
import { SecondTierAsk, SecondTierMove } from '../second-tier-ask.js';
import { PG_IDENTITY_SQL } from '../upstream-identity.js';
import { pgContextColumns } from '../../invalidation/pg-probe.js';
import type { BackendSink } from './backend-scanner.js';
import { entryKey, simpleQueryKey } from './cache-key.js';
import { ownParse, PgCacheSession, type PgRequest } from './cache-session.js';
import { capturing, replyRoute, watched } from './reply-route.js';
import { cacheableBatch, cacheableGroup, heldCopies, type CacheableBatch, type Held } from './cacheable-batch.js';
import { Backend, Frontend } from './codes.js';
import { BIND_UNNAMED, EXECUTE_UNNAMED, PARSE_COMPLETE, bindPortal, decodeTextRow, equalsName, errorCodeOf, errorMessageOf, parseMessage, queryMessage, queryText } from './messages.js';
import type { Decision, PgCache, PgContext, StatementInfo } from './pg-cache.js';
import { StatementReplay } from './statement-replay.js';
import { PgSessionState, TxStatus } from './session-state.js';
import { READY_IDLE, READY_IN_BLOCK, endsIdle, readyAsIdle, withoutReady } from './stored-reply.js';

/** A stored reply found for a statement. */
type StoredEntry = { bytes: Buffer; identity: StatementInfo['identity'] };

export interface RelayIo extends StatementSource {
  toUpstream(bytes: Buffer): void;
  /** Writes to the client; a second buffer goes in the same write. */
  toClient(bytes: Buffer, more?: Buffer): void;
  /** The server refused the login (an ErrorResponse before the first ReadyForQuery). */
  loginRefused(message: string): void;
}

/**
 * The identity check, then the session's context columns (pgContextColumns): a login's defaults
 * can change under a context adopted at login (ALTER ROLE/DATABASE ... SET search_path), which
 * only this session's own values tell (PgCacheSession.checkDone).
 */
const IDENTITY_QUERY = queryMessage(`SELECT i.*, ${pgContextColumns()} FROM (${PG_IDENTITY_SQL}) i`);
/**
 * What the proxy runs to begin the implicit transaction a Flush group answered from the cache
 * would have begun (beginImplicitTransaction): a read that takes a snapshot and returns nothing.
 */
const IMPLICIT_READ = [parseMessage('', 'SELECT WHERE false\0\0\0'), BIND_UNNAMED, EXECUTE_UNNAMED];
const IN_TRANSACTION = forwardAction<StatementInfo>('in-transaction', false);
/** A group filled statement by statement: its statements' requests count, not the group's. */
const GROUP = forwardAction<StatementInfo>(null, false);
/** For a lookup that needs neither (a stored entry answers or waits, whatever the rule and fences). */
const NO_RULE: RuleView = Object.freeze({ never: false, inReadOnlyTransactions: false });
const NO_FENCE: FenceState = Object.freeze({ change: null, busDown: false });
/**
 * Outstanding requests a hit may be queued behind; beyond, it is relayed. Bounds the look over
 * what is outstanding that each pipelined request costs.
 */
const MAX_ANSWER_BEHIND = 64;

export class PgRelay {
  readonly state = new PgSessionState();
  private readonly ledger: RequestLedger<StatementInfo, PgRequest> | null = null;
  private readonly cs: PgCacheSession | null = null;
  /** Extended-protocol messages held until their Sync, the request relayed message by message, Parse replays. */
  private readonly extended: StatementReplay;
  /** A request the cache may answer once the identity check (or the probe, or Redis) is back, as copies. */
  private readonly parked = new ParkedRequest<Held[]>();
  private readonly tier: SecondTierAsk<Held[]> | null = null;
  /** Waits for the fill of the same key another session has in flight (request coalescing). */
  private readonly coalesce: CoalescedWait | null = null;
  // Client -> upstream: the run of whole messages of the current chunk, written at once.
  private runBuf: Buffer | null = null;
  private runStart = 0;
  private runEnd = 0;
  /** Upstream -> client: where each reply's bytes go. */
  private readonly replies = new ReplyRouter((bytes) => this.io.toClient(bytes), () => this.cache?.maxEntryBytes ?? 0);
  /** The last whole cache key built (fullKey). */
  private readonly lastKey = { prefix: '', suffix: '', key: '' };
  /**
   * A Flush group was answered from the cache (answeredFlush) and nothing has ended the implicit
   * transaction its reads would have begun on the server, which never saw them: what is relayed
   * next in it is preceded by a read of the proxy's own (beginImplicitTransaction); a lone Sync
   * or a reply answered from the cache with its ReadyForQuery ends it without one.
   */
  private flushAnswered = false;

  constructor(
    private readonly io: RelayIo,
    private readonly cache: PgCache | null,
    database: string,
    /** The StartupMessage's parameters that shape the session's initial state, as one string. */
    startupKey: string,
    log: Logger,
  ) {
    if (cache !== null) {
      this.ledger = new RequestLedger<StatementInfo, PgRequest>(cache, io);
      this.cs = new PgCacheSession(cache, this.state, this.ledger, database, startupKey, log);
      this.tier = new SecondTierAsk(cache);
      this.coalesce = new CoalescedWait(cache);
    }
    this.extended = new StatementReplay(this.state, cache, {
      forward: (code, buf, start, end) => this.forward(code, buf, start, end),
      inject: (message) => this.inject(message),
      request: (held) => this.flushedFill(held) ?? this.enqueue(forwardAction('pipelined', false), null),
    });
  }

  // ---------------------------------------------------------------- client -> upstream

  /** A whole client message of an authenticated session. */
  clientMessage(code: number, buf: Buffer, start: number, end: number): void {
    const cs = this.cs;
    if (cs === null) {
      this.forward(code, buf, start, end);
      return;
    }
    // The client did not wait: the parked request goes to the server first, so replies keep their order.
    // Taken up again now, it goes to the server before this message: no second-tier or fill wait.
    if (this.parked.waiting) this.tier!.withoutAsking(() => this.coalesce!.withoutWaiting(() => this.unpark()));
    // A session's first request carries the identity check in front of it, pipelined.
    if (cs.state.neverChecked && this.quiet) this.checkServer();
    const ext = this.extended;
    switch (code) {
      case Frontend.Query:
        if (ext.pending) {
          // After unsynced extended messages a Query shares their ReadyForQuery.
          ext.finishOpen().executed.push(this.cache!.info(queryText(buf, start, end)));
          this.forward(code, buf, start, end);
        } else {
          this.onQuery(buf, start, end);
        }
        return;
      case Frontend.FunctionCall:
        // A fast-path call may write anything.
        (ext.pending ? ext.finishOpen() : this.enqueue(forwardAction('function-call', false), null)).executed.push(null);
        this.forward(code, buf, start, end);
        return;
      case Frontend.Parse:
      case Frontend.Bind:
      case Frontend.Describe:
      case Frontend.Execute:
      case Frontend.Close:
        ext.extendedMessage(code, buf, start, end);
        return;
      case Frontend.Sync:
        if (ext.open !== null) ext.finishOpen();
        else if (!ext.holding) {
          // After a Flush group answered from the cache, the server, idle, answers the Sync with 'I' as it would after those reads.
          this.flushAnswered = false;
          this.enqueue(forwardAction('not-cacheable', false), null);
        } else {
          this.onBatch(buf, start, end);
          return;
        }
        this.forward(code, buf, start, end);
        return;
      default:
        if (code === Frontend.Flush && this.answeredFlush({ code, buf, start, end })) return;
        // Flush, COPY data, Terminate, anything unknown: relay now, after what was held.
        ext.releaseHeld();
        this.forward(code, buf, start, end);
    }
  }

  /** A client message that is relayed as is (authentication, cache off). */
  forward(code: number, buf: Buffer, start: number, end: number): void {
    this.state.onFrontend(code, buf, start, end, 'client');
    if (this.runBuf === buf && this.runEnd === start) {
      this.runEnd = end;
    } else {
      this.flushToUpstream();
      this.runBuf = buf;
      this.runStart = start;
      this.runEnd = end;
    }
  }

  /** The end of a client chunk: held messages go now unless they may wait (StatementReplay.endOfChunk). */
  endOfClientChunk(): void {
    this.extended.endOfChunk();
    this.flushToUpstream();
  }

  /** Writes what was gathered from the current client chunk. */
  flushToUpstream(): void {
    const buf = this.runBuf;
    if (buf === null) return;
    this.runBuf = null;
    this.io.toUpstream(this.runStart === 0 && this.runEnd === buf.length ? buf : buf.subarray(this.runStart, this.runEnd));
  }

  private inject(message: Buffer): void {
    this.flushToUpstream();
    this.state.onFrontend(message[0]!, message, 0, message.length, 'proxy');
    this.io.toUpstream(message);
  }

  private enqueue(action: CacheAction<StatementInfo>, info: StatementInfo | null): PgRequest {
    this.cs!.sending();
    const p = this.push(action, info, performance.now());
    if (this.flushAnswered) this.beginImplicitTransaction(p);
    return p;
  }

  /**
   * The first request relayed after a Flush group answered from the cache, before its Sync: the
   * server would be inside the implicit transaction those reads began (snapshot taken, the
   * pipeline flag set), which changes what some statements do there (SET TRANSACTION ISOLATION
   * LEVEL and BEGIN ISOLATION LEVEL fail "before any query", VACUUM "within a pipeline"), and
   * would hold a completed unnamed portal. A read of the proxy's own, sent ahead of the request,
   * puts it there; its replies are swallowed. The unnamed statement it leaves is the proxy's, so
   * the client's is parsed again before it is needed (statement-replay.ts).
   */
  private beginImplicitTransaction(p: PgRequest): void {
    this.flushAnswered = false;
    for (const m of IMPLICIT_READ) this.inject(m);
    ownParse(p);
    p.swallowRead = 2;
  }

  /** A new entry at the end of the ledger: a request sent, or a cached reply's slot. */
  private push(action: CacheAction<StatementInfo>, info: StatementInfo | null, startedAt: number): PgRequest {
    return this.ledger!.push(request(action, info, startedAt));
  }

  /** Nothing outstanding but the identity check, outside transaction blocks, statements analysable. */
  private get quiet(): boolean {
    return this.ledger!.quiet && this.extended.open === null && this.state.txStatus === TxStatus.Idle && !this.cs!.off && !this.flushAnswered;
  }

  private view(): SessionView {
    const quiet = this.quiet;
    return this.cs!.sessionView(quiet, this.ledger!.length === 0 && this.extended.open === null && !this.flushAnswered, !quiet && this.behindReads());
  }

  /**
   * Everything outstanding is a plain read (or a cached reply) and the session was idle at the
   * last ReadyForQuery: their replies leave it idle with the same settings and nothing written, so
   * a whole batch answered behind them (its own Sync, its own implicit transaction) gets the reply
   * the server would give. A request that executed nothing (Parse, Describe, Close up to a Sync)
   * changes neither. A write, a transaction command, a setting, a call the proxy cannot attribute,
   * or a statement not yet judged by the probe: no. Reads answered before a Flush count as
   * outstanding plain reads until the implicit transaction they began ends.
   */
  private behindReads(): boolean {
    const cs = this.cs!;
    return this.extended.open === null && this.state.txStatus === TxStatus.Idle && !cs.off
      && (this.ledger!.length === 0 ? this.flushAnswered
        : this.ledger!.onlyReadsOutstanding(MAX_ANSWER_BEHIND, (r) => r.action.kind === 'probe' || r.executed.every((info) => info !== null && cs.plainRead(info))));
  }

  /** Sends the identity check ahead of what goes next, unless the server is verified or a check is in flight. */
  private checkServer(): void {
    if (!this.cs!.needsCheck) return;
    this.enqueue(this.ledger!.probeAction(ProbePurpose.Identity, null, 0), null);
    this.cs!.state.checkSent();
    this.inject(IDENTITY_QUERY);
  }

  /**
   * A stored reply under the request's key, outside blocks: 'hit' when the server is verified,
   * 'park' when the request waits for the identity check (one round trip) instead of going to the
   * server (anything else the client sends meanwhile sends it on first), else null: go on.
   */
  private answerOrPark(view: SessionView, entry: unknown, messages: readonly Held[]): 'hit' | null | 'park' {
    if (view.identity !== IdentityState.Verified && !this.parked.mayPark) return null;
    const verdict = route({ facts: null, session: view, entry, decision: undefined, rule: () => NO_RULE, fence: () => NO_FENCE, mayPark: true });
    if (verdict.kind === 'park') {
      this.checkServer();
      this.parked.park(heldCopies(messages));
    }
    return verdict.kind === 'hit' || verdict.kind === 'park' ? verdict.kind : null;
  }

  /**
   * With the fleet's second tier (--l2 on), a read about to be filled may ask Redis first, parked
   * meanwhile (../second-tier-ask.ts); one that needs the identity check or the probe first sends
   * them alone and waits (a new proxy's first reads). True when it parked.
   */
  private viaSecondTier(verdict: Verdict<unknown>, view: SessionView, info: StatementInfo, keySuffix: string, messages: readonly Held[]): boolean {
    const ctx = this.cs!.ctx;
    switch (this.tier!.move(verdict, view, ctx)) {
      case SecondTierMove.No:
        return false;
      case SecondTierMove.WaitFirst: {
        if (!this.parked.mayPark) return false;
        this.checkServer();
        if (verdict.kind === 'probe-then-fill') this.sendProbe(info);
        this.parked.park(heldCopies(messages));
        return true;
      }
      case SecondTierMove.Ask: {
        const copies = heldCopies(messages);
        this.parked.park(copies);
        this.tier!.start(ctx!, keySuffix, info.identity, copies, (c) => this.parked.holds(c), () => this.unpark());
        return true;
      }
    }
  }

  /**
   * Request coalescing (../coalesced-wait.ts): a read about to be filled waits, parked, for the
   * fill of its key another session has in flight. True when it parked.
   */
  private waitForFill(verdict: Verdict<unknown>, view: SessionView, keySuffix: string, messages: readonly Held[]): boolean {
    const ctx = this.cs!.keyContext;
    if (ctx === null || !this.coalesce!.wait(verdict, view, this.fullKey(ctx.keyPrefix, keySuffix), this.takeUpWaiter)) return false;
    this.parked.park(heldCopies(messages));
    return true;
  }

  /** Takes a request up after its wait for a fill: true when it was answered, nothing sent upstream (nor parked again). */
  private readonly takeUpWaiter = (): boolean => {
    const sent = this.ledger!.length;
    this.unpark();
    return this.ledger!.length === sent && !this.parked.waiting;
  };

  /**
   * Request coalescing for a Sync group that could be answered whole but for statements whose
   * fill another session has in flight: each statement a read judged cacheable in this context,
   * stored or in flight, under read committed (else the group is never answered whole). The
   * group waits, parked, for the first missing statement's fill, then comes here again for the
   * next (CoalescedWait.waitForGroup bounds the waits); answered once all are stored, else relayed
   * and filled as usual. True when it parked.
   */
  private waitForGroupFills(group: readonly CacheableBatch[], view: SessionView, messages: readonly Held[]): boolean {
    const cache = this.cache!;
    const cs = this.cs!;
    const ctx = cs.keyContext;
    if (ctx === null || !ctx.snapshotPerStatement) return false;
    let key: string | null = null;
    for (const shape of group) {
      const info = cache.info(shape.text);
      if (!cs.plainRead(info)) return false;
      if (cs.storedReply(info, shape, ctx) !== undefined) continue;
      const k = entryKey(ctx.keyPrefix, shape.keySuffix);
      if (!cache.flights.live(k)) return false;
      key ??= k;
    }
    if (key === null || !this.coalesce!.waitForGroup(view, key, group.length, this.takeUpWaiter)) return false;
    this.parked.park(heldCopies(messages));
    return true;
  }

  /**
   * The entry key of `suffix` under `prefix`. A statement's lookup, its coalescing wait and its
   * fill (flight, store) use the same key: built once and reused, since each fresh string costs a
   * copy and a hash at its first map lookup, on every miss (the -S path). Compared by value, so
   * a stale memo can only cost a build, never give another key.
   */
  private fullKey(prefix: string, suffix: string): string {
    const last = this.lastKey;
    if (last.prefix !== prefix || last.suffix !== suffix) {
      last.prefix = prefix;
      last.suffix = suffix;
      last.key = entryKey(prefix, suffix);
    }
    return last.key;
  }

  /** The session ends: fills it leads are not stored, a wait in progress is left. */
  closed(): void {
    this.ledger?.abandon();
    this.coalesce?.forget(false);
  }

  /** Takes the parked request up again: answered from the cache once verified, else sent on. */
  private unpark(): void {
    this.tier?.forget();
    this.coalesce?.forget(true);
    this.parked.resume((messages) => {
      for (const m of messages) this.clientMessage(m.code, m.buf, m.start, m.end);
    });
    this.flushToUpstream();
  }

  /**
   * Sends a stored reply (which ends with ReadyForQuery 'I') as the answer: after the ParseComplete
   * of the batch's Parse (stored replies leave it out), ending with 'T' inside a read-only block.
   * Behind outstanding requests (plain reads, never in a block) it is queued in their reply order.
   */
  private answer(entry: { bytes: Buffer; identity: StatementInfo['identity'] }, started: number, parseComplete: boolean, inBlock: boolean): void {
    const bytes = entry.bytes;
    // Its ReadyForQuery ends the implicit transaction of reads answered before a Flush.
    this.flushAnswered = false;
    if (this.ledger!.length > 0) {
      this.queueAnswer(parseComplete ? [PARSE_COMPLETE, bytes] : [bytes], entry.identity, started);
      return;
    }
    if (inBlock) {
      const body = withoutReady(bytes);
      if (parseComplete) this.io.toClient(PARSE_COMPLETE, body);
      this.io.toClient(parseComplete ? READY_IN_BLOCK : body, parseComplete ? undefined : READY_IN_BLOCK);
    } else if (parseComplete) {
      this.io.toClient(PARSE_COMPLETE, bytes);
    } else {
      this.io.toClient(bytes);
    }
    this.ledger!.answered(entry.identity, started);
  }

  /** A cached reply's slot in the reply order; nothing goes upstream. */
  private queueAnswer(reply: Buffer[], identity: StatementInfo['identity'], started: number): void {
    this.push({ kind: 'answered-here', reply, identity }, null, started);
  }

  /** The reply before the queued cached ones ended at chunk position `pos` (or the chunk's end): they go now. */
  private writeAnswersDue(pos: number): void {
    this.replies.writeUpTo(pos);
    this.ledger!.writeAnswersDue(this.toClient);
  }

  private readonly toClient = (bytes: Buffer): void => this.io.toClient(bytes);

  private onQuery(buf: Buffer, start: number, end: number): void {
    const cache = this.cache!;
    const cs = this.cs!;
    if (cs.off) {
      this.enqueue(forwardAction('unanalysable', false), null).executed.push(null);
      this.forward(Frontend.Query, buf, start, end);
      return;
    }
    const text = queryText(buf, start, end);
    if (this.inReadWriteBlock) {
      this.relayInBlock(cache.info(text), buf, start, end);
      return;
    }
    const key = simpleQueryKey(text);
    const started = performance.now();
    const view = this.view();
    // An entry exists only for a text found cacheable under this context: no analysis on a hit.
    if (mayLookUp(view)) {
      const entry = cache.store.get(this.fullKey(cs.ctx!.keyPrefix, key));
      const done = entry === undefined ? null : this.answerOrPark(view, entry, [{ code: Frontend.Query, buf, start, end }]);
      if (done === 'hit') {
        this.state.answeredQuery();
        this.answer({ bytes: entry!.bytes, identity: entry!.meta.identity }, started, false, false);
      }
      if (done !== null) return;
    }
    const info = cache.info(text);
    const rule = (): RuleView => cache.rule(info);
    const stored = answersInBlock(view, info, rule) ? cache.store.get(this.fullKey(cs.ctx!.keyPrefix, key)) : undefined;
    const entry = stored !== undefined && endsIdle(stored.bytes) ? stored : undefined;
    const verdict = route({ facts: info, session: view, entry, decision: cs.decision(info), rule, fence: () => cs.fences(), mayPark: false });
    if (verdict.kind === 'hit') {
      this.state.answeredQuery();
      this.answer({ bytes: verdict.entry!.bytes, identity: verdict.entry!.meta.identity }, started, false, true);
      return;
    }
    if (this.waitForFill(verdict, view, key, [{ code: Frontend.Query, buf, start, end }])) return;
    if (cache.secondTier !== null && this.viaSecondTier(verdict, view, info, key, [{ code: Frontend.Query, buf, start, end }])) return;
    const p = this.carryOut(verdict, info, key, view.quiet);
    p.autocommit = view.quiet && info.analysis.statements.length === 1;
    if (info.changesSession) cs.state.sessionChanged();
    this.forward(Frontend.Query, buf, start, end);
  }

  /**
   * The session is in a transaction block that is not known read-only (or a failed one), as of
   * the last ReadyForQuery. Nothing is looked up, filled or probed there: the router's verdict is
   * `forward('in-transaction')` whatever the statement (route(): not quiet, not behind reads,
   * no read-only block to answer in), so the statement skips the router and goes on as it would.
   */
  private get inReadWriteBlock(): boolean {
    return this.state.txStatus !== TxStatus.Idle && this.cs!.state.block === BlockState.Other;
  }

  /**
   * A statement of a read-write block (inReadWriteBlock): relayed with what the reply side needs
   * (its writes, collected for the commit; whether it changes the session) and nothing more:
   * the same request carryOut would queue for the router's `forward('in-transaction')`.
   */
  private relayInBlock(info: StatementInfo, buf: Buffer, start: number, end: number): void {
    this.enqueue(IN_TRANSACTION, info).executed.push(info);
    if (info.changesSession) this.cs!.state.sessionChanged();
    this.forward(Frontend.Query, buf, start, end);
  }

  /**
   * Queues the request for a statement about to be relayed as the verdict says: a fill when the
   * result may be stored, preceded by the probe when the catalog must judge the statement first.
   */
  private carryOut(verdict: Verdict<unknown>, info: StatementInfo, keySuffix: string, quiet: boolean): PgRequest {
    // What the probe learns and a fill stores count once the server is verified: the check goes first.
    if (quiet && (info.readCacheable || info.needsCatalog)) this.checkServer();
    const p = this.enqueue(this.actionFor(verdict, info, keySuffix, true), info);
    p.executed.push(info);
    return p;
  }

  /**
   * The action of a statement about to be relayed as the verdict says; the catalog probe the
   * verdict asks for is sent first (unless `probe` is false: one was sent for the same statement).
   */
  private actionFor(verdict: Verdict<unknown>, info: StatementInfo, keySuffix: string, probe: boolean): CacheAction<StatementInfo> {
    const ledger = this.ledger!;
    switch (verdict.kind) {
      case 'probe-then-fill':
      case 'probe-then-forward': {
        if (probe) this.sendProbe(info);
        return verdict.kind === 'probe-then-fill' ? ledger.fillAction(keySuffix, false) : forwardAction(verdict.reason, false);
      }
      case 'fill': {
        const prefix = this.cs!.keyContext?.keyPrefix ?? null;
        return ledger.fillAction(keySuffix, verdict.inBlock, prefix, prefix === null ? null : this.fullKey(prefix, keySuffix));
      }
      case 'forward':
        if (verdict.reason === 'probe-failed') this.cs!.state.probeSkipped();
        return forwardAction(verdict.reason, verdict.lookedUp);
      case 'hit':
      case 'park':
        throw new Error(`carryOut: a ${verdict.kind} is answered before`);
      default:
        return unreachable(verdict);
    }
  }

  /** Sends the catalog probe for `info` ahead of what follows, its reply awaited in the ledger. */
  private sendProbe(info: StatementInfo): void {
    const probe = this.cs!.probeFor(info);
    this.enqueue(this.ledger!.probeAction(ProbePurpose.Catalog, info, probe.generation), null);
    this.inject(probe.message);
  }

  /** A Sync ends a batch held since the last one: answer it from the cache, fill, or relay it. */
  private onBatch(syncBuf: Buffer, syncStart: number, syncEnd: number): void {
    const cache = this.cache!;
    const cs = this.cs!;
    const started = performance.now();
    const batch = this.extended.takeHeld();
    const sync: Held = { code: Frontend.Sync, buf: syncBuf, start: syncStart, end: syncEnd };
    const view = this.view();
    const candidate = view.quiet || view.behindReads || mayLookUpInBlock(view) ? cacheableBatch(batch, this.state.client) : null;
    const info = candidate === null ? null : cache.info(candidate.text);
    const rule = (): RuleView => cache.rule(info!);
    // Inside a read-only block only a statement whose rule opts in is looked up, bound to the unnamed portal.
    const inBlock = info !== null && candidate!.portal === '' && answersInBlock(view, info, rule);
    const shape = view.quiet || view.behindReads || inBlock ? candidate : null;
    if (shape !== null && info !== null) {
      const found = info.readCacheable ? cs.storedReply(info, shape) : undefined;
      const entry = found !== undefined && (!inBlock || endsIdle(found.bytes)) ? found : undefined;
      let verdict: Verdict<typeof found> | null = null;
      if (view.quiet && entry !== undefined && mayLookUp(view)) {
        const done = this.answerOrPark(view, entry, [...batch, sync]);
        if (done === 'park') return;
        if (done === 'hit') verdict = { kind: 'hit', entry };
      }
      verdict ??= route({
        facts: info, session: view, entry: view.quiet ? undefined : entry, decision: cs.decision(info), rule, fence: () => cs.fences(), mayPark: false,
      });
      if (verdict.kind === 'hit') {
        if (shape.parse !== null) this.state.answeredParse(shape.parse.name, { text: shape.parse.text, sig: shape.parse.sig });
        this.answer(verdict.entry!, started, shape.parse !== null, inBlock);
        return;
      }
      if (this.waitForFill(verdict, view, shape.keySuffix, [...batch, sync])) return;
      if (cache.secondTier !== null && this.viaSecondTier(verdict, view, info, shape.keySuffix, [...batch, sync])) return;
      const p = this.carryOut(verdict, info, shape.keySuffix, view.quiet);
      // The stored reply leaves out the ParseComplete, so batches with and without the Parse share it.
      if (shape.parse !== null) p.skipParse = 1;
      this.extended.relayBatch(batch, p, false);
    } else {
      // Several statements, read once for both: answered whole, or relayed and filled one by one.
      const group = candidate === null && (view.quiet || mayLookUp(view) || mayLookUpInBlock(view)) ? cacheableGroup(batch, this.state.client) : null;
      if (group !== null && this.answeredGroup(group, batch, sync, view, started)) return;
      if (group !== null && view.quiet && this.waitForGroupFills(group, view, [...batch, sync])) return;
      const filled = group !== null && view.quiet ? this.groupFill(group, view) : null;
      const reason = view.quiet || view.behindReads ? 'not-cacheable' : view.block === BlockState.None ? 'pipelined' : 'in-transaction';
      this.extended.relayBatch(batch, filled ?? this.enqueue(forwardAction(reason, false), null), true);
    }
    this.forward(Frontend.Sync, syncBuf, syncStart, syncEnd);
  }

  /**
   * A Sync group of several statements (psycopg 3's pipeline mode, a pgJDBC multi-statement query)
   * in which each is a cacheable read with a stored reply, outside blocks (maybe behind plain
   * reads): answered wholly from the cache, each statement's reply in order, then one
   * ReadyForQuery; the server never sees it. The group is one implicit transaction; under read
   * committed each statement takes its own snapshot in it, and reads leave nothing to commit or
   * roll back, so the group's reply is each read's alone, joined (a stored reply is never an
   * error, so no statement is skipped). Under repeatable read or serializable the reads share one
   * snapshot, which entries stored at different times need not be: relayed. A miss, a write,
   * anything else in the group: relayed whole. Inside a known read-only block, between requests,
   * the group is answered (ending with ReadyForQuery 'T') exactly when each of its statements
   * would be answered alone there (its rule opts in, an entry stored outside blocks), whatever the
   * isolation level, as lone statements are: a block's statements are not committed at the Sync,
   * so the group's reply is theirs in order. True when answered, or parked for the identity check.
   */
  private answeredGroup(group: readonly CacheableBatch[], batch: readonly Held[], sync: Held, view: SessionView, started: number): boolean {
    if (mayLookUpInBlock(view)) {
      const cache = this.cache!;
      const inBlock = group.every((shape) => shape.portal === '')
        ? this.groupEntries(group, this.cs!.keyContext, (info) => answersInBlock(view, info, () => cache.rule(info))) : null;
      if (inBlock !== null) this.answerStatements(group, inBlock, started, READY_IN_BLOCK);
      return inBlock !== null;
    }
    if (!mayLookUp(view)) return view.quiet && this.probeForGroup(group, batch, sync, view);
    const ctx = this.cs!.keyContext!;
    const entries = ctx.snapshotPerStatement ? this.groupEntries(group, ctx) : null;
    if (entries === null) return false;
    const done = view.quiet ? this.answerOrPark(view, entries[0], [...batch, sync]) : view.identity === IdentityState.Verified ? 'hit' : null;
    if (done !== 'hit') return done === 'park';
    this.flushAnswered = false;
    this.answerStatements(group, entries, started, READY_IDLE);
    return true;
  }

  /**
   * Writes each statement's stored reply in order (after the ParseComplete of its Parse), then
   * `ready`, the ReadyForQuery of a Sync group (a Flush gets none); behind outstanding requests
   * each statement takes a slot of its own in their reply order (a hit each), written together.
   */
  private answerStatements(group: readonly CacheableBatch[], entries: readonly StoredEntry[], started: number, ready: Buffer | null): void {
    const queued = this.ledger!.length > 0;
    const now: Buffer[] = [];
    group.forEach((shape, i) => {
      const parse = shape.parse;
      if (parse !== null) this.state.answeredParse(parse.name, { text: parse.text, sig: parse.sig });
      const reply = [...(parse !== null ? [PARSE_COMPLETE] : []), withoutReady(entries[i]!.bytes), ...(ready !== null && i === group.length - 1 ? [ready] : [])];
      if (queued) this.queueAnswer(reply, entries[i]!.identity, started);
      else now.push(...reply);
    });
    if (queued) return;
    this.io.toClient(Buffer.concat(now));
    for (const entry of entries) this.ledger!.answered(entry.identity, started);
  }

  /**
   * A Flush ends messages held since the last Sync or Flush, none open before them (psycopg 3's
   * pipeline mode reading results before its Sync, pgJDBC in some modes): when each statement is
   * a cacheable read with a stored reply, bound to the unnamed portal, outside blocks (maybe
   * behind plain reads), under read committed, and the server verified, they are answered from
   * the cache in order with no ReadyForQuery, and the server sees neither them nor the Flush. The
   * implicit transaction they would have begun is not begun until something is relayed in it
   * (flushAnswered); each read's reply is its own, as in a Sync group (answeredGroup), and under
   * read committed what runs after them in that transaction takes its own snapshot too. A
   * named portal stays with the server (a later Bind of its name must fail there): relayed.
   */
  private answeredFlush(flush: Held): boolean {
    const ext = this.extended;
    if (!ext.holding || ext.open !== null) return false;
    const view = this.view();
    const ctx = this.cs!.keyContext;
    if (!mayLookUp(view) || (!view.quiet && view.identity !== IdentityState.Verified) || ctx === null || !ctx.snapshotPerStatement) return false;
    const held = ext.heldMessages;
    if (held.some((m) => m.code === Frontend.Bind && bindPortal(m.buf, m.start) !== '')) return false;
    const one = cacheableBatch(held, this.state.client);
    const group = one !== null ? [one] : cacheableGroup(held, this.state.client);
    const entries = group === null ? null : this.groupEntries(group, ctx);
    if (entries === null) return false;
    // A session's first request waits for the identity check (one round trip), then comes here again.
    const done = view.quiet ? this.answerOrPark(view, entries[0], [...held, flush]) : 'hit';
    if (done === null) return false;
    if (done === 'park') {
      ext.takeHeld();
      return true;
    }
    const started = performance.now();
    ext.takeHeld();
    this.answerStatements(group!, entries, started, null);
    // The client's unnamed portal is one the server never bound: an Execute of it before another Bind cannot be attributed.
    ext.portals.delete('');
    this.flushAnswered = true;
    return true;
  }

  /**
   * The request of a Sync group of several cacheable reads the cache could not answer whole, sent
   * while quiet, or of the reads held before a Flush (flushedFill; the client waits for their
   * replies before its Sync, so they are never answered): queued for the batch about to be
   * relayed, each statement's reply to be stored as the same statement's alone would be, under
   * the same rules (its own fill: token taken now, before the send; probed first when the catalog
   * must judge it; refused when a tag moved, when it errored; not stored when an error skipped
   * it). Each read's reply is its own: reads leave nothing to commit or roll back, and each result
   * is from a snapshot taken after the tokens, as a lone read's; what the request runs after them
   * (after a Flush) commits at the Sync, whose writes are invalidated before the fills are stored.
   * No coalescing wait or second-tier ask (the group goes as one), but other sessions may wait for
   * its fills. Null when no statement may be stored, or any is not a cacheable read.
   */
  private groupFill(group: readonly CacheableBatch[], view: SessionView): PgRequest | null {
    const cache = this.cache!;
    const cs = this.cs!;
    const infos = group.map((shape) => cache.info(shape.text));
    if (!infos.every((info) => info.readCacheable)) return null;
    const verdicts = infos.map((info) => route({
      facts: info, session: view, entry: undefined, decision: cs.decision(info), rule: () => cache.rule(info), fence: () => cs.fences(), mayPark: false,
    }));
    if (!verdicts.some((v) => v.kind === 'fill' || v.kind === 'probe-then-fill')) return null;
    this.checkServer();
    const started = performance.now();
    const probed = new Set<StatementInfo>();
    const members = group.map((shape, i) => {
      const info = infos[i]!;
      const action = this.actionFor(verdicts[i]!, info, shape.keySuffix, !probed.has(info));
      probed.add(info);
      return request(action, info, started);
    });
    const p = this.enqueue(GROUP, null);
    p.members = members;
    return p;
  }

  /**
   * The request of the messages held before a Flush when they are cacheable reads sent while quiet
   * (one may do: the client waits for their replies before its Sync), filled as a group.
   */
  private flushedFill(held: readonly Held[]): PgRequest | null {
    if (!this.quiet) return null;
    const one = cacheableBatch(held, this.state.client);
    const group = one !== null ? [one] : cacheableGroup(held, this.state.client);
    return group === null ? null : this.groupFill(group, this.view());
  }

  /** The stored replies of every statement of `group` under `ctx`, or null when one is missing or not `admitted`. */
  private groupEntries(group: readonly CacheableBatch[], ctx: PgContext | null, admitted = (info: StatementInfo): boolean => info.readCacheable): StoredEntry[] | null {
    const entries = [];
    for (const shape of group) {
      const info = this.cache!.info(shape.text);
      const entry = admitted(info) ? this.cs!.storedReply(info, shape, ctx) : undefined;
      if (entry === undefined || !endsIdle(entry.bytes)) return null;
      entries.push(entry);
    }
    return entries;
  }

  /**
   * A group of cacheable reads in a session whose context must be probed first (not learned yet,
   * or a setting changed: pgJDBC sets two at login): the probe goes alone and the group waits for
   * it (one round trip), to be answered once the context is known if every statement has a stored
   * reply then. With a context learned before, only when every statement has one under it (the
   * same context comes back, most often). True when it parked.
   */
  private probeForGroup(group: readonly CacheableBatch[], batch: readonly Held[], sync: Held, view: SessionView): boolean {
    const cs = this.cs!;
    const before = cs.ctx;
    if (!this.parked.mayPark || (view.context !== ContextState.Stale && view.context !== ContextState.Unknown) || view.probeBackedOff
      || view.identity === IdentityState.Failed || (before !== null && !before.snapshotPerStatement)) return false;
    if (!group.every((shape) => this.cache!.info(shape.text).readCacheable)) return false;
    if (before !== null && this.groupEntries(group, before) === null) return false;
    this.checkServer();
    this.sendProbe(this.cache!.info(group[0]!.text));
    this.parked.park(heldCopies([...batch, sync]));
    return true;
  }

  // ---------------------------------------------------------------- upstream -> client

  /** Routes one chunk from the server: relays, captures and swallows per message. */
  upstreamChunk(chunk: Buffer, scanner: { feed(chunk: Buffer, sink: BackendSink): void }): void {
    this.replies.begin(chunk);
    scanner.feed(chunk, this.sink);
    this.replies.end();
    if (this.ledger?.answerDue) this.ledger.writeAnswersDue(this.toClient);
    this.storeFills();
    // What the parked request waited for is back (the identity check, or the catalog probe sent
    // alone), and nothing was sent after it: the request goes on. Not while Redis is asked or another
    // session's fill of its key is awaited.
    if (this.parked.waiting && !this.tier!.pending && !this.coalesce!.pending && this.ledger!.length === 0) this.unpark();
  }

  /** The server message being read is not the client's (begin() routed it to Route.Drop). */
  private dropped = false;

  private readonly sink: BackendSink = {
    begin: (code, pos) => {
      if (this.ledger?.answerDue) this.writeAnswersDue(pos);
      const head = this.ledger?.head;
      const want = watched(code, head);
      const route = replyRoute(code, head);
      this.replies.switchTo(route, route === Route.Capture ? capturing(head!)!.capture : null, pos);
      this.dropped = route === Route.Drop;
      return want;
    },
    message: (code, buf, start, end) => {
      this.state.onBackend(code, buf, start, end);
      const head = this.ledger?.head;
      switch (code) {
        case Backend.ReadyForQuery:
          this.onReady();
          return;
        case Backend.ErrorResponse:
          if (head !== undefined) head.errored = true;
          // In a group, the statement whose reply is open; one not begun is not stored anyway (no CommandComplete).
          if (head?.members != null && capturing(head) !== null) head.members[head.memberAt]!.errored = true;
          if (head?.action.kind === 'probe') head.action.error = errorCodeOf(buf, start, end);
          if (!this.state.ready) this.io.loginRefused(errorMessageOf(buf, start, end));
          return;
        case Backend.CommandComplete:
          // Not the proxy's own read's (a probe's counts nothing either).
          if (head !== undefined && !this.dropped) this.cs!.commandComplete(head, buf, start, end);
          return;
        case Backend.DataRow:
          if (head?.action.kind === 'probe') head.action.row = decodeTextRow(buf, start, end);
          return;
        case Backend.ParameterStatus:
          // A setting changed: the context must be read again before the next cached read. A
          // server may repeat values it reported at login (PGlite does at its first query): no change.
          if (this.state.ready && this.state.parameterChanged) this.cs?.state.sessionChanged();
          if (equalsName(buf, start, 'standard_conforming_strings') && this.state.parameters.get('standard_conforming_strings') !== 'on') {
            this.cs?.state.off();
          }
          return;
      }
    },
  };

  private onReady(): void {
    const cs = this.cs;
    if (cs === null) return;
    cs.adoptStartupContext();
    const p = this.ledger!.shift();
    // Clearing allocates a new table even when empty; simple Queries bind no portals.
    if (this.state.txStatus === TxStatus.Idle && this.extended.portals.size > 0) this.extended.portals.clear();
    cs.trackBlock(p, this.ledger!.length === 0 && this.extended.open === null);
    if (p === undefined) return;
    const action = p.action;
    if (action.kind === 'probe') {
      if (isIdentityCheck(action)) cs.checkDone(p, action);
      else cs.probeDone(p, action);
      return;
    }
    cs.requestDone(p);
    this.ledger!.completed(p, this.decisionNow(p));
    if (p.members === null) return;
    for (const m of p.members) {
      // A statement's reply is stored as a lone statement's: ending with the group's ReadyForQuery 'I'.
      if (m.action.kind === 'fill' && m.completes === 1 && this.state.txStatus === TxStatus.Idle) {
        m.action.capture.parts.push(READY_IDLE);
        m.action.capture.size += READY_IDLE.length;
      }
      this.ledger!.completed(m, this.decisionNow(m));
    }
  }

  /** For a fill whose reply is complete: the statement's decision in the session's context now. */
  private decisionNow(p: PgRequest): Decision | undefined {
    const ctx = this.cs!.ctx;
    return p.action.kind === 'fill' && ctx !== null ? this.cache!.decision(ctx, p.info!) : undefined;
  }

  /** Stores the results of fills whose reply is complete (called once their bytes are routed). */
  private storeFills(): void {
    const cs = this.cs;
    if (cs === null) return;
    this.ledger!.storeFills((p, fill) => {
      const ctx = cs.keyContext;
      // A fill inside a read-only block is kept only while the block still is one.
      const ok = p.completes === 1 && ctx !== null && cs.verified && (fill.inBlock ? cs.inReadOnlyBlock : this.state.txStatus === TxStatus.Idle);
      const d = ok && (!fill.inBlock || readyAsIdle(fill.capture.parts)) ? this.cache!.decision(ctx, p.info!) : undefined;
      return d !== undefined && d.cacheable ? { keyPrefix: ctx!.keyPrefix, sharedPrefix: ctx!.sharedPrefix, parts: fill.capture.parts, tags: d.tags } : null;
    });
  }
}

/** A request awaiting its reply (queued), or a statement of a group filled statement by statement (not). */
function request(action: CacheAction<StatementInfo>, info: StatementInfo | null, startedAt: number): PgRequest {
  return {
    action, startedAt, info, errored: false, executed: [], autocommit: false,
    parsesSent: 0, closesSent: 0, parsesAnswered: 0, closesAnswered: 0, ownParses: null, ownCloses: null, swallowRead: 0, skipParse: 0, rolledBack: false, invalidated: false, completes: 0, members: null, memberAt: -1,
  };
}
