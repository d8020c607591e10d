// What one PostgreSQL session knows for the cache, and how it learns it: its context (the probe's
// view of the session plus what it reported, PgCache.context), the settings it set, whether its
// server is the known one (the identity check), its transaction block, and the writes to
// invalidate. The relay (relay.ts) asks it for the session view the router decides on and tells it
// what each reply was; it does no I/O of its own.
import type { Logger } from '../../telemetry/log.js';
import { buildProbeSql, probeFailureIsPassing, probeQuery, readProbeRow, sameContext, type ProbeResult } from '../../invalidation/pg-probe.js';
import { BlockState, ContextState, IdentityState, contextUsable, inReadOnlyBlock, type FenceState, type SessionView } from '../cache-router.js';
import { WriteScope, type OutstandingRequest, type ProbeAction, type RequestLedger } from '../request-ledger.js';
import { SessionCacheState } from '../session-cache.js';
import { IdentityError, PG_IDENTITY_COLUMNS, identityOf, readPgIdentity } from '../upstream-identity.js';
import { entryKey } from './cache-key.js';
import type { CacheableBatch } from './cacheable-batch.js';
import { queryMessage, startsWithAscii } from './messages.js';
import { KEYED_PARAMETERS, type Decision, type PgCache, type PgContext, type SessionIdentity, type StatementInfo } from './pg-cache.js';
import { TxStatus, type PgSessionState } from './session-state.js';
import { withoutDescriptions } from './stored-reply.js';

/** One request awaiting its ReadyForQuery (a Query, a FunctionCall, the messages up to a Sync). */
export interface PgRequest extends OutstandingRequest<StatementInfo> {
  /** Statements executed, for invalidation; null for one the proxy cannot attribute (may write anything). */
  readonly executed: (StatementInfo | null)[];
  /** Sent while idle as one simple statement: its CommandComplete means committed. */
  autocommit: boolean;
  /** Parses (Closes) sent upstream in this request so far, the client's and the proxy's own. */
  parsesSent: number;
  closesSent: number;
  /** ParseCompletes (CloseCompletes) the server sent for this request so far. */
  parsesAnswered: number;
  closesAnswered: number;
  /**
   * Where the proxy's own Parses (a replayed statement, the read that begins an implicit
   * transaction) and Closes (before a replayed Parse) are among those sent, ascending; null for
   * none. Their replies are swallowed, and only theirs: a client's Parse before one is answered
   * first, and a client's after one may fail (42P05) and send no ParseComplete at all.
   */
  ownParses: number[] | null;
  ownCloses: number[] | null;
  /**
   * The proxy's own read in front of the request (relay.ts, beginImplicitTransaction): 2 while its
   * BindComplete and CommandComplete are to come, 1 its CommandComplete; both swallowed (its
   * ParseComplete is one of ownParses).
   */
  swallowRead: number;
  /** ParseCompletes relayed but not captured (a stored reply leaves them out). */
  skipParse: number;
  /** The server ended the transaction block without committing it (ROLLBACK, or COMMIT of a failed block). */
  rolledBack: boolean;
  /** Its writes were invalidated at its CommandComplete (autocommit). */
  invalidated: boolean;
  /** CommandCompletes seen: a fill is stored only for exactly one. */
  completes: number;
  /**
   * A Sync group of several reads (or the reads held before a Flush) whose statements are filled
   * one by one: a request of its own for each statement, in order (never queued: the group's
   * ReadyForQuery ends them all), null for any other request. The reply of `members[memberAt]` is coming (-1: none yet); the
   * server's BindComplete starts each statement's reply (reply-route.ts).
   */
  members: PgRequest[] | null;
  memberAt: number;
}

/** The proxy sends a Parse of its own in `p` now: its ParseComplete is not the client's. */
export function ownParse(p: PgRequest): void {
  (p.ownParses ??= []).push(p.parsesSent++);
}

/** The proxy sends a Close of its own in `p` now: its CloseComplete is not the client's. */
export function ownClose(p: PgRequest): void {
  (p.ownCloses ??= []).push(p.closesSent++);
}

/** A wide write names no tables. */
const NO_TABLES: readonly string[] = Object.freeze([]);

/** Custom settings a session may set before it stops sharing entries with other sessions. */
const MAX_CUSTOM_SETTINGS = 32;

let nextSessionId = 1;

export class PgCacheSession {
  readonly state = new SessionCacheState();
  /** The context as last learned; kept while stale, as its decisions still judge functions. */
  ctx: PgContext | null = null;
  /** Tells this session apart in a context of its own (see PgCache.context). */
  private readonly id = nextSessionId++;
  private lastProbe: ProbeResult | null = null;
  /**
   * The context an earlier session with the same startup was probed into, adopted at login; null
   * once this session's identity check has read its own (checkDone).
   */
  private adoptedAtLogin: ProbeResult | null = null;
  /**
   * The versions of the cache's startup probes and of the session's parameters when
   * adoptStartupContext last found no probe for this session: a probe remembered since, or a
   * parameter changed, makes it look again. A remembered probe found stale (DDL since) stays
   * stale until it is remembered again, which moves the version.
   */
  private readonly startupTried = { probes: -1, parameters: -1 };
  /** Custom settings (a dot in the name) this session has set: part of its context. */
  private readonly customSettings = new Set<string>();
  /** The session changed what the probe cannot read: it shares no entries. */
  private ownContext = false;
  private readonly view: { -readonly [K in keyof SessionView]: SessionView[K] } = {
    quiet: false, idle: false, behindReads: false, context: ContextState.Unknown, block: BlockState.None, identity: IdentityState.Unchecked, probeBackedOff: false, fillForbidden: null,
  };

  constructor(
    private readonly cache: PgCache,
    private readonly session: PgSessionState,
    private readonly ledger: RequestLedger<StatementInfo, PgRequest>,
    private readonly database: string,
    /** The StartupMessage's parameters that shape the session's initial state, as one string. */
    private readonly startupKey: string,
    private readonly log: Logger,
  ) {}

  /** The session as the router sees it now (one object, reused). */
  sessionView(quiet: boolean, idle: boolean, behindReads: boolean): SessionView {
    const v = this.view;
    v.quiet = quiet;
    v.idle = idle;
    v.behindReads = behindReads;
    v.context = this.state.context;
    v.block = this.state.block;
    v.identity = this.state.identity(this.cache.serverEpoch);
    v.probeBackedOff = this.state.probeBackedOff;
    return v;
  }

  /** The context, when it can key entries now. */
  get keyContext(): PgContext | null {
    return contextUsable(this.state.context) ? this.ctx : null;
  }

  get inReadOnlyBlock(): boolean {
    return inReadOnlyBlock(this.state.block);
  }

  /** What stops fills in this session now: the change stream of its database, the fleet's bus. */
  fences(): FenceState {
    return this.cache.fences(this.database);
  }

  get off(): boolean {
    return this.state.context === ContextState.Off;
  }

  /** This session's server is the one the cache's entries came from. */
  get verified(): boolean {
    return this.state.identity(this.cache.serverEpoch) === IdentityState.Verified;
  }

  /** The decision for `info` in the current context, when the context is known and the statement judged. */
  decision(info: StatementInfo): Decision | undefined {
    const ctx = this.keyContext;
    return ctx === null ? undefined : this.cache.decision(ctx, info);
  }

  /**
   * A read judged cacheable in this context: it writes nothing and leaves the session (settings,
   * transaction status) as it is, whatever its result. A cached reply may be queued behind it.
   */
  plainRead(info: StatementInfo): boolean {
    return info.readCacheable && this.decision(info)?.cacheable === true;
  }

  /**
   * The stored reply for a batch whose statement is known cacheable in context `ctx` (the
   * session's, when it can key entries now): its own
   * entry, or for a batch without Describe the entry of the same execution with one, its
   * descriptions cut.
   */
  storedReply(info: StatementInfo, batch: CacheableBatch, ctx = this.keyContext): { bytes: Buffer; identity: StatementInfo['identity'] } | undefined {
    if (ctx === null || this.cache.decision(ctx, info)?.cacheable !== true) return undefined;
    const store = this.cache.store;
    const entry = store.get(entryKey(ctx.keyPrefix, batch.keySuffix));
    if (entry !== undefined) return { bytes: entry.bytes, identity: entry.meta.identity };
    for (const suffix of batch.describedKeySuffixes) {
      const described = store.get(entryKey(ctx.keyPrefix, suffix));
      const bytes = described === undefined ? null : withoutDescriptions(described.bytes);
      if (bytes !== null) return { bytes, identity: described!.meta.identity };
    }
    return undefined;
  }

  /** The identity check should go out before what goes next. */
  get needsCheck(): boolean {
    return this.state.identity(this.cache.serverEpoch) === IdentityState.Unchecked;
  }

  /** The catalog probe for `info`, and the catalog generation it is sent under. */
  probeFor(info: StatementInfo): { message: Buffer; generation: number } {
    const select = buildProbeSql(info.analysis, [...this.customSettings]);
    return {
      message: queryMessage(probeQuery(select, this.session.parameters.get('server_version') ?? '')),
      generation: this.cache.generation(this.currentDatabase),
    };
  }

  // ---------------------------------------------------------------- replies

  /** At each ReadyForQuery before it is handled: at login, the context a session with the same startup was found in. */
  adoptStartupContext(): void {
    if (this.state.context !== ContextState.Unknown) return;
    // A session that never probes (pgbench's TPC-B) stays Unknown: its lookup is repeated only when it may find something new.
    const tried = this.startupTried;
    if (tried.probes === this.cache.startupProbesVersion && tried.parameters === this.session.parametersVersion) return;
    const probe = this.cache.startupProbe(this.startupKeyWithParameters(), this.database);
    if (probe === undefined) {
      tried.probes = this.cache.startupProbesVersion;
      tried.parameters = this.session.parametersVersion;
      return;
    }
    this.lastProbe = probe;
    this.learn(probe, this.cache.serverEpoch);
    if (this.ctx !== null) this.adoptedAtLogin = probe;
  }

  /** A catalog probe's reply. */
  probeDone(request: PgRequest, probe: ProbeAction<StatementInfo>): void {
    if (this.off) return;
    if (request.errored && probeFailureIsPassing(probe.error)) {
      // Cancelled (the client's cancel request met the probe), a lock, resources: try again later.
      if (this.state.probeFailed()) {
        this.log.warn({ database: this.database, sqlstate: probe.error }, 'pg: cache probe failed; it is tried again later');
      }
      return;
    }
    if (request.errored || probe.row === null) {
      this.log.warn({ database: this.database, sqlstate: probe.error }, 'pg: cache probe failed; caching off for this session');
      this.state.off();
      return;
    }
    this.state.probeSucceeded();
    let result: ProbeResult;
    try {
      result = readProbeRow(probe.row);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'pg: unreadable cache probe reply; caching off for this session');
      this.state.off();
      return;
    }
    this.lastProbe = result;
    // What a session learns counts for the others only while its server is the known one.
    const verified = this.verified;
    this.learn(result, verified ? this.cache.serverEpoch : -1);
    if (this.ctx !== null && verified) this.cache.decide(this.ctx, probe.statement!, result, probe.generation);
    if (this.state.pristine && verified) this.cache.rememberStartup(this.startupKeyWithParameters(), result);
  }

  /**
   * The identity check's reply: the cache drops everything when this is another server than its
   * entries came from, and the session may use the cache from now on.
   */
  checkDone(request: PgRequest, probe: ProbeAction<StatementInfo>): void {
    const row = probe.row;
    const outcome = this.state.checkReplied(identityOf(request.errored, row?.slice(0, PG_IDENTITY_COLUMNS) ?? null, readPgIdentity), this.cache);
    const adopted = this.adoptedAtLogin;
    this.adoptedAtLogin = null;
    // The login's defaults changed since the session whose context was adopted: this one's is read
    // again (still pristine: what its probe finds is the startup's new context).
    if (adopted !== null && row !== null && !sameContext(row.slice(PG_IDENTITY_COLUMNS), adopted)) {
      this.cache.forgetStartup(this.startupKeyWithParameters());
      this.state.contextOutdated();
    }
    if (outcome instanceof IdentityError) {
      this.log.warn({ database: this.database, err: outcome.message }, 'pg: cannot identify the upstream server; caching off for this session');
    } else if (outcome !== null) {
      this.log.warn({ dropped: outcome }, 'pg: the upstream server changed (restart, failover or restore); cached results dropped');
    }
  }

  private learn(probe: ProbeResult, epoch: number): void {
    this.ctx = this.cache.context(probe, this.identity());
    if (this.ctx === null) this.state.contextMissing(epoch);
    else this.state.contextLearned(probe.hasTempRelations || this.ownContext, epoch);
  }

  /**
   * A CommandComplete of `request` (body buf[start, end)): a single statement sent while idle
   * has committed when it is sent, and so has a block at its COMMIT's (COMMIT AND CHAIN too):
   * the writes are invalidated now, before this acknowledgement reaches the client.
   */
  commandComplete(request: PgRequest, buf: Buffer, start: number, end: number): void {
    request.completes++;
    // In a group, the statement whose reply is open; not one complete already (a simple Query sharing the request).
    const member = request.members?.[request.memberAt];
    if (member !== undefined && member.completes === 0) member.completes++;
    // ROLLBACK TO SAVEPOINT has the same tag: only a statement that ends the block counts.
    const ends = request.executed.length === 1 && endsBlock(request.executed[0]!);
    if (ends && end - start === 9 && startsWithAscii(buf, start, end, 'ROLLBACK')) request.rolledBack = true;
    const committed = request.autocommit || (ends && end - start === 7 && startsWithAscii(buf, start, end, 'COMMIT'));
    if (committed && !request.invalidated) {
      this.invalidate(request.executed);
      request.invalidated = true;
    }
  }

  /**
   * A request's ReadyForQuery: what it executed may have changed the session (settings, role,
   * temporary tables, user functions), and its writes are invalidated (committed), kept (in a
   * block) or forgotten (rolled back).
   */
  requestDone(request: PgRequest): void {
    // Indexed loops here and below: per request, where for...of went through the array iterator.
    const executed = request.executed;
    for (let i = 0; i < executed.length; i++) if (this.mayChangeSession(executed[i]!)) this.state.sessionChanged();
    // An autocommit statement's writes were invalidated at its CommandComplete already.
    if (request.invalidated) return;
    if (this.session.txStatus !== TxStatus.Idle) this.collectWrites(request.executed);
    else if (request.rolledBack) this.ledger.blockWrites.discard();
    else this.invalidate(request.executed);
  }

  /** Invalidates what `executed` wrote and what its block wrote before: it committed. */
  invalidate(executed: readonly (StatementInfo | null)[]): void {
    this.collectWrites(executed);
    this.ledger.blockWrites.commit(this.invalidateCommitted);
  }

  /** What a commit wrote goes from the cache (one function for every commit, not a closure per request). */
  private readonly invalidateCommitted = (tables: ReadonlySet<string>, scope: WriteScope, catalog: boolean): void => {
    this.cache.invalidate(this.currentDatabase, tables, scope, catalog);
  };

  /**
   * Follows whether the transaction block is known read-only, at each ReadyForQuery. The server's
   * status says a block began (I to T) with a request that ran BEGIN / START TRANSACTION ... READ
   * ONLY first (alone in its text) and plain reads after it, if anything. It stays known read-only
   * while only plain reads run: anything else ends it, and so does an error ('E') or the block's
   * end. `default_transaction_read_only` and SET TRANSACTION READ ONLY are not followed.
   * `nothingAfter`: nothing else is outstanding.
   */
  trackBlock(request: PgRequest | undefined, nothingAfter: boolean): void {
    const s = this.state;
    if (this.session.txStatus === TxStatus.Idle) s.moveBlock(BlockState.None);
    else if (this.session.txStatus !== TxStatus.InTransaction || request === undefined || request.action.kind === 'probe') s.moveBlock(BlockState.Other);
    else if (this.session.previousTxStatus === TxStatus.Idle) {
      const first = request.executed[0];
      const readOnly = first != null && first.analysis.statements.length === 1 && first.analysis.statements[0]!.readOnly === true
        && request.executed.every((info, i) => i === 0 || keepsReadOnly(info));
      // A simple Query of the BEGIN alone, nothing sent after it: no snapshot was taken yet.
      const snapshotFree = readOnly && request.autocommit && request.executed.length === 1 && nothingAfter;
      s.moveBlock(snapshotFree ? BlockState.ReadOnlySnapshotFree : readOnly ? BlockState.ReadOnly : BlockState.Other);
    } else if (inReadOnlyBlock(s.block)) {
      s.moveBlock(request.executed.every(keepsReadOnly) ? BlockState.ReadOnly : BlockState.Other);
    }
  }

  /** Something goes upstream: a read-only block's snapshot is taken by it. */
  sending(): void {
    if (this.state.block === BlockState.ReadOnlySnapshotFree) this.state.moveBlock(BlockState.ReadOnly);
  }

  private identity(): SessionIdentity {
    return { id: this.id, reported: this.reportedParameters(), startupKey: this.startupKey, ownContext: this.ownContext };
  }

  private startupKeyWithParameters(): string {
    return this.startupKey + '\u0000' + this.reportedParameters();
  }

  private reportedParameters(): string {
    return KEYED_PARAMETERS.map((k) => this.session.parameters.get(k) ?? '').join('\u0000');
  }

  /** The writes of statements executed in a transaction block, kept until it ends. */
  private collectWrites(executed: readonly (StatementInfo | null)[]): void {
    const writes = this.ledger.blockWrites;
    for (let i = 0; i < executed.length; i++) {
      const info = executed[i]!;
      const catalog = info === null || info.writesUnlisted;
      if (info !== null && info.writesServer) writes.add(NO_TABLES, WriteScope.Server, catalog);
      else if (this.writesWide(info)) writes.add(NO_TABLES, WriteScope.Database, catalog);
      else writes.add(info!.writes, WriteScope.Tables, catalog);
    }
  }

  /** Remembers custom settings the session sets, so the probe reads them (they may drive RLS policies). */
  private noteSettings(info: StatementInfo): void {
    // Indexed: it runs for every statement, nearly always over an empty list.
    const changes = info.analysis.sessionChanges;
    for (let i = 0; i < changes.length; i++) {
      const change = changes[i]!;
      if (change.setting === null) {
        // set_config() with a computed name: no probe can tell what changed.
        if (change.action === 'set') this.ownContext = true;
      } else if (change.setting.includes('.') && this.customSettings.size < MAX_CUSTOM_SETTINGS) {
        this.customSettings.add(change.setting);
      } else if (change.setting.includes('.')) {
        this.ownContext = true;
      }
    }
  }

  private mayChangeSession(info: StatementInfo | null): boolean {
    if (info !== null) this.noteSettings(info);
    if (info === null || info.changesSession) return true;
    return this.callsUserFunctions(info);
  }

  /**
   * The statement, or a view it reads, calls a function outside pg_catalog. The probe tells; a
   * statement it has not judged counts by the functions its text calls.
   */
  private callsUserFunctions(info: StatementInfo): boolean {
    const d = this.ctx !== null ? this.cache.decision(this.ctx, info) : undefined;
    return d !== undefined ? !d.functionsBuiltin : info.callsFunctions;
  }

  private get currentDatabase(): string {
    return this.ctx?.database ?? this.lastProbe?.database ?? this.database;
  }

  private writesWide(info: StatementInfo | null): boolean {
    if (info === null || info.writesUnlisted || this.off) return true;
    const writes = info.writes;
    for (let i = 0; i < writes.length; i++) if (this.cache.writeFansOut(this.currentDatabase, writes[i]!)) return true;
    // A function that is not built in may write anything; the probe said which are.
    return this.callsUserFunctions(info);
  }
}

/** A statement that can neither write nor change the block's access mode: a plain read. */
function keepsReadOnly(info: StatementInfo | null): boolean {
  return info !== null && info.analysis.kind === 'read' && info.writes.length === 0 && !info.writesUnlisted && !info.changesSession;
}

function endsBlock(info: StatementInfo | null): boolean {
  const t = info?.analysis.statements[0]?.transaction;
  return t === 'commit' || t === 'rollback';
}
