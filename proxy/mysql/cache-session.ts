// What one MySQL session knows for the cache, and how it learns it: its context (the probe's view
// of the session plus the capabilities that shape result bytes, MySqlCache.context), the temporary
// tables it made, the sql_mode dialect its texts are read under, whether its server is the known
// one (the identity check), its transaction, and the writes to invalidate. The relay (relay.ts)
// asks it for the session view the router decides on and tells it what each reply was; it does
// no I/O of its own.
import type { Logger } from '../../telemetry/log.js';
import type { MysqlAnalysisOptions, MysqlQualifiedName } from '../../invalidation/mysql-analysis.js';
import { serverDialect } from '../../invalidation/mysql-lexer.js';
import { BlockState, ContextState, IdentityState, contextUsable, type SessionView, type StatementFacts, type StoredDecision } from '../cache-router.js';
import { BlockWrites, WriteScope, type OutstandingRequest, type ProbeAction } from '../request-ledger.js';
import { SessionCacheState } from '../session-cache.js';
import { IdentityError, MYSQL_IDENTITY_COLUMNS, identityOf, mysqlIdentitySql, readMysqlIdentity } from '../upstream-identity.js';
import { keyedCapabilities } from './cache-key.js';
import { MySqlProbeError, mySqlContextColumns, mySqlContextText, mysqlProbeFailureIsPassing, type MySqlProbeResult } from '../../invalidation/mysql-probe.js';
import { SessionEffect, type MySqlCache, type MySqlContext, type MySqlStatementInfo } from './mysql-cache.js';
import { PayloadReader } from './packets.js';
import { decodeErr } from './server-packets.js';
import type { PreparedStatement } from './prepared-statements.js';
import type { MySqlSessionState } from './session-state.js';
import { TRANSACTION_FLAGS } from './stored-reply.js';

/** The identity check of each server kind, then the session's context columns (identitySql): built once. */
const IDENTITY_SQL = {
  mariadb: `${mysqlIdentitySql(true)}, ${mySqlContextColumns(true).join(', ')}`,
  mysql: `${mysqlIdentitySql(false)}, ${mySqlContextColumns(false).join(', ')}`,
};

/** How much of a failed probe's error message the log keeps. */
const MAX_LOGGED_MESSAGE = 300;

/** One command awaiting its reply. */
export interface MySqlRequest extends OutstandingRequest<MySqlStatementInfo> {
  readonly command: number;
  /** Packets of the reply seen so far. */
  packets: number;
  /** A command the proxy cannot analyse that may write: UNKNOWN_WRITES when it is answered. */
  readonly unknownWrites: boolean;
  /** Sent with nothing outstanding and no transaction open: it may start one whose snapshot is not taken yet. */
  readonly sentOutsideBlock: boolean;
  /**
   * COM_STMT_PREPARE: its payload as latin1 (the command byte, then the statement's bytes, as
   * cache-key.ts' queryKey reads it), for the statement id its reply assigns.
   */
  readonly preparePayload: string | null;
  /** A probe's column count, once read. */
  probeColumns: number;
  /** The error number of the ERR packet a probe or identity check failed with (0: none, or unreadable). */
  errorCode: number;
}

/** What a statement, or a command the proxy cannot read, may have written. */
export type Writes = Pick<MySqlStatementInfo, 'writes' | 'writesUnlisted' | 'catalogChanged' | 'rollsBack'>;
/** A command that may have written anything: every entry is dropped at its OK. */
export const UNKNOWN_WRITES: Writes = Object.freeze({ writes: [], writesUnlisted: true, catalogChanged: true, rollsBack: false });

let nextSessionId = 1;

export class MySqlCacheSession {
  readonly state = new SessionCacheState();
  /** The context as last learned (kept while stale: a fill's accounting still reads its decisions). */
  ctx: MySqlContext | null = null;
  private readonly id = nextSessionId++;
  /** Set once the session changed what the probe cannot read: its contexts are keyed by its own id. */
  private owner: number | null = null;
  /** The latest probe found no current database and nothing changed since: probing again finds none. */
  private noDatabase = false;
  /**
   * The context an earlier session with the same login was probed into, adopted at login; null
   * once this session's identity check has read its own (checkDone).
   */
  private adoptedAtLogin: MySqlProbeResult | null = null;
  /** Temporary tables this session made: reads naming one are never cached, and nothing is looked up. */
  private readonly temporaryTables = new Set<string>();
  /** The writes of the open transaction, invalidated again when it commits. */
  readonly blockWrites = new BlockWrites<MysqlQualifiedName>();
  dialect: MysqlAnalysisOptions;
  private dialectKey = '00';
  private readonly preparedInfos = new WeakMap<PreparedStatement, MySqlStatementInfo>();
  readonly mariadb: boolean;
  /** The login's facts that shape a new session's state (user, database, charset, capabilities, server). */
  private readonly startupKey: string;
  private readonly capabilities: string;
  private readonly view: { -readonly [K in keyof SessionView]: SessionView[K] } = {
    quiet: false, idle: false, behindReads: false, context: ContextState.Unknown, block: BlockState.None, identity: IdentityState.Unchecked,
    probeBackedOff: false, fillForbidden: null, shadowed: false,
  };

  constructor(
    private readonly cache: MySqlCache,
    private readonly session: MySqlSessionState,
    private readonly log: Logger,
  ) {
    const server = serverDialect(session.serverVersion);
    this.mariadb = server.mariadb === true;
    this.dialect = server;
    this.capabilities = keyedCapabilities(session.capabilities, session.mariaDbCapabilities);
    this.startupKey = [session.user, session.database ?? '', session.charset, this.capabilities, session.serverVersion].join('\u0000');
    // A session with the same login was probed before it changed anything: start from its context,
    // so even a short-lived connection's first read can be a hit.
    const known = cache.startupProbe(this.startupKey);
    if (known !== undefined && this.adopt(known, cache.serverEpoch)) this.adoptedAtLogin = known;
    this.syncBlock(false);
  }

  /** The session as the router sees it for `info` (one object, reused). */
  sessionView(quiet: boolean, idle: boolean, info: MySqlStatementInfo | null, behindReads = false): SessionView {
    const v = this.view;
    v.quiet = quiet;
    v.idle = idle;
    v.behindReads = behindReads;
    v.context = this.state.context;
    v.block = this.state.block;
    v.identity = this.state.identity(this.cache.serverEpoch);
    v.probeBackedOff = this.state.probeBackedOff;
    v.shadowed = this.temporaryTables.size > 0;
    v.fillForbidden = info !== null && this.readsTemporaryTable(info) ? 'temporary-table' : this.noDatabase ? 'no-database' : null;
    return v;
  }

  /**
   * The identity check, then the session's context columns: a login's defaults can change under
   * a context adopted at login (SET GLOBAL time_zone, a new default role, init_connect), which
   * only this session's own values tell (checkDone).
   */
  identitySql(): string {
    return IDENTITY_SQL[this.mariadb ? 'mariadb' : 'mysql'];
  }

  /** The catalog probe for `info` in this session's current database. */
  probeSql(info: MySqlStatementInfo): string {
    return this.cache.probeSql(info, this.mariadb, this.session.database);
  }

  /** What the router needs of a statement: a plain read is probed first unless the session has no database to probe in. */
  facts(info: MySqlStatementInfo): StatementFacts {
    return { readCacheable: info.readCacheable, needsCatalog: info.readCacheable && !this.noDatabase, notCacheable: info.analysis.reasonNotCacheable };
  }

  /** The context, when it can key entries now. */
  get keyContext(): MySqlContext | null {
    return contextUsable(this.state.context) ? this.ctx : null;
  }

  /** The decision for `info` in the current context, when it is known and the statement judged. */
  decision(info: MySqlStatementInfo): StoredDecision | undefined {
    const ctx = this.keyContext;
    return ctx === null ? undefined : this.cache.decision(ctx, info);
  }

  /**
   * A read judged cacheable in this context that changes nothing in the session: it writes
   * nothing and leaves the transaction state as it is. A cached reply may be queued behind it.
   */
  plainRead(info: MySqlStatementInfo): boolean {
    return info.readCacheable && info.sessionEffect === SessionEffect.None && this.decision(info)?.cacheable === true;
  }

  /** The analysis of a text under the session's dialect (sql_mode quoting rules). */
  info(text: string): MySqlStatementInfo {
    return this.cache.info(text, this.dialect, this.dialectKey);
  }

  /**
   * The analysis of a prepared statement's text, kept per statement while the dialect holds: an
   * execution then costs no lookup by text (building and hashing the dialect-prefixed text).
   */
  preparedInfo(statement: PreparedStatement): MySqlStatementInfo {
    const known = this.preparedInfos.get(statement);
    if (known !== undefined && known.dialectKey === this.dialectKey) return known;
    const info = this.info(statement.text);
    this.preparedInfos.set(statement, info);
    return info;
  }

  /** Does `info` write a table not looked up in this context since the last DDL (or is the context unknown)? */
  writesUnknownTables(info: MySqlStatementInfo): boolean {
    if (info.writes.length === 0 || info.writesUnlisted) return false;
    const ctx = this.keyContext;
    return ctx !== null ? !this.cache.knowsWrittenTables(ctx, info) : !this.noDatabase;
  }

  /** Something changed what the session's results depend on: its context is read again before use. */
  changed(): void {
    this.state.sessionChanged();
    this.noDatabase = false;
  }

  /** COM_CHANGE_USER, COM_RESET_CONNECTION: the server forgot what the session had made. */
  reset(): void {
    this.state.sessionChanged();
    this.noDatabase = false;
    this.owner = null;
    this.temporaryTables.clear();
    this.blockWrites.discard();
  }

  /** A statement's reply: how it changed the session. */
  statementDone(info: MySqlStatementInfo): void {
    if (info.sessionEffect !== SessionEffect.None) this.changed();
    if (info.sessionEffect === SessionEffect.Private) this.owner = this.id;
    if (info.temporaryTables.length > 0) for (const t of info.temporaryTables) this.temporaryTables.add(t);
  }

  /**
   * After each reply of the client's: where the transaction stands now, from the server's status
   * flags (autocommit off counts as a transaction). `snapshotFree`: the reply was a lone BEGIN
   * READ ONLY with nothing behind it. A transaction that ended and another that began within one
   * reply (an implicit commit) pass through None.
   */
  syncBlock(snapshotFree: boolean): void {
    const s = this.session;
    let to = BlockState.None;
    if (s.inTransaction || !s.autocommit) {
      to = (s.status & TRANSACTION_FLAGS) !== TRANSACTION_FLAGS ? BlockState.Other : snapshotFree ? BlockState.ReadOnlySnapshotFree : BlockState.ReadOnly;
    }
    const from = this.state.block;
    if (from !== BlockState.None && to !== BlockState.None && to < from) this.state.moveBlock(BlockState.None);
    this.state.moveBlock(to);
  }

  /** Something goes upstream: a read-only transaction's snapshot is no longer free. */
  sent(): void {
    if (this.state.block === BlockState.ReadOnlySnapshotFree) this.state.moveBlock(BlockState.ReadOnly);
  }

  /**
   * The writes of a reply, before its last packet is relayed. A write is invalidated at once
   * (non-transactional tables change at once; a failed statement may have written part), and again
   * when its transaction commits (transactional readers may have filled entries from the snapshot
   * before the commit); forgotten at rollback. Whether the transaction ended shows in
   * SERVER_STATUS_IN_TRANS alone: with autocommit off the COMMIT's OK still has autocommit clear.
   */
  writesDone(w: Writes): void {
    const writes = w.writes.length > 0 || w.writesUnlisted;
    if (writes) this.invalidate(w.writes, w.writesUnlisted, w.catalogChanged);
    if (this.session.inTransaction) {
      if (writes) this.blockWrites.add(w.writes, w.writesUnlisted ? WriteScope.Server : WriteScope.Tables, w.catalogChanged);
    } else if (w.rollsBack) {
      this.blockWrites.discard();
    } else {
      this.blockWrites.commit((tables, scope, catalog) => this.invalidate(tables, scope !== WriteScope.Tables, catalog));
    }
  }

  private invalidate(tables: Iterable<MysqlQualifiedName>, wide: boolean, catalog: boolean): void {
    this.cache.invalidate(this.session.database ?? this.keyContext?.database ?? null, tables, wide, catalog);
  }

  /**
   * Whether a finished fill is stored, and under which prefix and tags: only under the context
   * and server it was filled for, outside a transaction (or inside the read-only one it was filled
   * in), and read under the sql_mode the probe found (after SET sql_mode the same text may name
   * other tables than the server read, so its decision and tags do not hold).
   */
  storable(info: MySqlStatementInfo, inBlock: boolean, stillInBlock: boolean): { ctx: MySqlContext; tags: readonly string[] } | null {
    const ctx = this.keyContext;
    if (ctx === null || !this.state.verified(this.cache.serverEpoch) || info.dialectKey !== this.dialectKey || (inBlock ? !stillInBlock : this.state.block !== BlockState.None)) return null;
    const d = this.cache.decision(ctx, info);
    return d?.cacheable === true ? { ctx, tags: d.tags } : null;
  }

  /** A reply packet of a probe or of the identity check: the column count, then the one text row. */
  probePacket(request: MySqlRequest, probe: ProbeAction<MySqlStatementInfo>, buf: Buffer, start: number, end: number): void {
    if (buf[start] === 0xff) {
      const err = decodeErr(buf, start, end, MAX_LOGGED_MESSAGE);
      request.errored = true;
      request.errorCode = err.code;
      probe.error = `${err.code}${err.sqlState === '' ? '' : ` ${err.sqlState}`} ${err.message}`;
      return;
    }
    if (request.packets === 1) {
      request.probeColumns = new PayloadReader(buf, start, end).lenenc();
      return;
    }
    if (request.packets !== request.probeColumns + (this.session.deprecateEof ? 2 : 3)) return;
    const r = new PayloadReader(buf, start, end);
    const row: (string | null)[] = [];
    for (let i = 0; i < request.probeColumns; i++) {
      if (buf[r.pos] === 0xfb) {
        r.skip(1);
        row.push(null);
      } else {
        row.push(r.lenencString());
      }
    }
    probe.row = row;
  }

  /** A catalog probe's reply: the session's context and the statement's decision, or caching off. */
  probeDone(request: MySqlRequest, probe: ProbeAction<MySqlStatementInfo>): void {
    if (this.state.isOff) return;
    if (request.errored && mysqlProbeFailureIsPassing(request.errorCode)) {
      // Interrupted, a timeout (a pooled session's max_statement_time), a lock, resources: the
      // statement goes uncached and the probe is tried again later (cache-router.ts, probe-failed).
      if (this.state.probeFailed()) {
        this.log.warn({ connectionId: this.session.connectionId, err: probe.error }, 'mysql: cache probe failed; it is tried again later');
      }
      return;
    }
    if (request.errored || probe.row === null) {
      this.log.warn({ connectionId: this.session.connectionId, err: probe.error }, 'mysql: cache probe failed; caching off for this session');
      this.state.off();
      return;
    }
    this.state.probeSucceeded();
    let result: MySqlProbeResult;
    try {
      result = this.cache.readProbe(probe.row, probe.statement!);
    } catch (err) {
      if (!(err instanceof MySqlProbeError)) throw err;
      this.log.warn({ err: err.message }, 'mysql: unreadable cache probe reply; caching off for this session');
      this.state.off();
      return;
    }
    // What a session learns counts for the others only while its server is the known one.
    const verified = this.state.verified(this.cache.serverEpoch);
    if (!this.adopt(result, this.state.verifiedEpoch(this.cache.serverEpoch)) || !verified) return;
    this.cache.decide(this.ctx!, probe.statement!, result);
    if (this.state.pristine && this.state.context === ContextState.Known) this.cache.rememberStartup(this.startupKey, result);
  }

  /**
   * The identity check's reply: the cache drops everything when this is another server than its
   * entries came from, and the session may use the cache from now on. One that failed for a
   * passing reason is sent again with the next read that needs it.
   */
  checkDone(request: MySqlRequest, probe: ProbeAction<MySqlStatementInfo>): void {
    if (request.errored && mysqlProbeFailureIsPassing(request.errorCode)) {
      if (this.state.checkFailedPassing()) {
        this.log.warn({ connectionId: this.session.connectionId, err: probe.error }, 'mysql: cannot identify the upstream server now; it is asked again later');
      }
      return;
    }
    const row = probe.row;
    const outcome = this.state.checkReplied(identityOf(request.errored, row?.slice(0, MYSQL_IDENTITY_COLUMNS) ?? null, readMysqlIdentity), this.cache);
    const adopted = this.adoptedAtLogin;
    this.adoptedAtLogin = null;
    // The login's defaults changed since the session whose context was adopted: this one's is read
    // again (still pristine: what its probe finds is the login's new startup context).
    if (adopted !== null && row !== null && mySqlContextText(row.slice(MYSQL_IDENTITY_COLUMNS)) !== adopted.contextText) {
      this.cache.forgetStartup(this.startupKey);
      this.state.contextOutdated();
    }
    if (outcome instanceof IdentityError) {
      this.log.warn({ connectionId: this.session.connectionId, err: probe.error === '' ? outcome.message : `${outcome.message}: ${probe.error}` },
        'mysql: cannot identify the upstream server; caching off for this session');
    } else if (outcome !== null) {
      this.log.warn({ dropped: outcome }, 'mysql: the upstream server changed (restart, failover or restore); cached results dropped');
    }
  }

  /** Takes the context a probe found under server epoch `epoch`; false when it found none. */
  private adopt(result: MySqlProbeResult, epoch: number): boolean {
    this.ctx = this.cache.context(result, this.capabilities, this.owner);
    this.noDatabase = this.ctx === null;
    if (this.ctx === null) {
      this.state.contextMissing(epoch);
      return false;
    }
    this.state.contextLearned(this.owner !== null, epoch);
    this.dialect = { ...serverDialect(this.session.serverVersion), ...this.ctx.dialect };
    this.dialectKey = `${this.ctx.dialect.ansiQuotes ? 1 : 0}${this.ctx.dialect.noBackslashEscapes ? 1 : 0}`;
    return true;
  }

  private readsTemporaryTable(info: MySqlStatementInfo): boolean {
    if (this.temporaryTables.size === 0) return false;
    return info.analysis.tablesRead.some((t) => this.temporaryTables.has(t.name));
  }
}
