// The traffic of one logged-in MySQL session when caching is on, both ways: which commands the
// cache answers (COM_QUERY and COM_STMT_EXECUTE of a cacheable SELECT), which go upstream (with the
// proxy's own probe in front when the session's context or the statement's verdict is not known),
// and what happens to each server packet (relay, relay and capture for the cache, or swallow the
// reply to the proxy's probe). Writes invalidate what they made stale before their OK reaches the
// client.
//
// Every command that gets a reply has one Pending entry, queued in the order the server answers,
// mirroring the ReplyTracker's queue; a server packet belongs to the head entry and a reply ends
// when the tracker's queue shrinks. The cache answers only when nothing is outstanding, outside
// transactions and with autocommit on, so replies never reorder, and only once the session's server
// is known to be the one the entries came from (the identity check, upstream-identity.ts, pipelined
// ahead of the session's first command). Each command starts its own
// sequence at 0, so the probe is a command of its own and a stored reply (sequence ids from 1)
// replays as is for any later command.
import type { StatementSource } from '../../telemetry/query-stats.js';
import type { FillToken } from '../../cache/tag-versions.js';
import { serverDialect } from '../../invalidation/mysql-lexer.js';
import type { MysqlAnalysisOptions } from '../../invalidation/mysql-analysis.js';
import type { Logger } from '../../telemetry/log.js';
import { Command, MariaDbCapability, Capability, ServerStatus } from './codes.js';
import { MalformedPacketError, PayloadReader, encodePacket, payloadOf } from './packets.js';
import { Kind, ReplyRouter, Route } from '../reply-router.js';
import { PreparedStatements } from './prepared-statements.js';
import type { ReplyTracker } from './replies.js';
import { decodeOk } from './server-packets.js';
import { ServerScanner, type ServerPacketSink } from './server-scanner.js';
import type { MySqlSessionState } from './session-state.js';
import { STORED_TRANSACTION_FLAGS, TRANSACTION_FLAGS, withTransactionFlags } from './stored-reply.js';
import { SessionEffect, type MySqlCache, type MysqlContext, type MysqlStatementInfo } from './mysql-cache.js';
// Aliased so this change touches only imports; the relay's own rewrite takes the MySql spelling.
import { MySqlProbeError as MysqlProbeError, type MySqlProbeResult as MysqlProbeResult } from '../../invalidation/mysql-probe.js';
import type { Execution } from './prepared-statements.js';
import { IdentityError, identityOf, mysqlIdentitySql, readMysqlIdentity } from '../upstream-identity.js';

export interface MySqlRelayIo extends StatementSource {
  toUpstream(bytes: Buffer): void;
  toClient(bytes: Buffer): void;
}

/** One command awaiting its reply. */
interface Pending {
  kind: Kind;
  command: number;
  startedAt: number;
  /** The statement (COM_QUERY text or the prepared statement executed), if any. */
  info: MysqlStatementInfo | null;
  bypassReason: string;
  /** A command the proxy cannot analyse that may write: UNKNOWN_WRITES when it is answered. */
  unknownWrites: boolean;
  /** Looked up in the cache inside a read-only transaction (a rule opted in): a miss, never a bypass. */
  inTransaction: boolean;
  /** Sent with nothing outstanding and no transaction open: it may start one (trackTransactionStart). */
  sentOutsideTransaction: boolean;
  /** Packets of the reply seen so far. */
  packets: number;
  errored: boolean;
  // A fill: the key without the context prefix, the token taken when sent, the reply so far.
  keySuffix: string;
  token: FillToken | 0;
  parts: Buffer[];
  size: number;
  poisoned: boolean;
  // COM_STMT_PREPARE: the text, for the statement id its reply assigns.
  prepareText: string | null;
  // A probe: the statement it is for, the column count and the row it returned.
  probeFor: MysqlStatementInfo | null;
  probeColumns: number;
  probeRow: (string | null)[] | null;
}

/** Result bytes depend on these capabilities (EOF vs OK terminators, metadata, OK packet layout). */
const KEYED_CAPABILITIES = (Capability.DeprecateEof | Capability.Protocol41 | Capability.SessionTrack | Capability.LongPassword) >>> 0;
const KEYED_MARIADB_CAPABILITIES = (MariaDbCapability.ExtendedMetadata | MariaDbCapability.CacheMetadata) >>> 0;
/** What a statement, or a command the proxy cannot read, may have written. */
type Writes = Pick<MysqlStatementInfo, 'writes' | 'writesUnlisted' | 'catalogChanged' | 'rollsBack'>;
/** A command that may have written anything: every entry of the database is dropped at its OK. */
const UNKNOWN_WRITES: Writes = Object.freeze({ writes: [], writesUnlisted: true, catalogChanged: true, rollsBack: false });
/**
 * Commands that change no table: answered by the server from what it has (ping, statistics,
 * metadata, cursor fetches), or preparing, resetting or changing the session. Any other command
 * the proxy does not analyse counts as UNKNOWN_WRITES (COM_CREATE_DB, COM_DROP_DB, new ones).
 */
const WRITES_NOTHING = new Set<number>([
  Command.InitDb, Command.FieldList, Command.Refresh, Command.Shutdown, Command.Statistics, Command.ProcessInfo,
  Command.ProcessKill, Command.Debug, Command.Ping, Command.ChangeUser, Command.BinlogDump, Command.RegisterSlave,
  Command.StmtPrepare, Command.StmtReset, Command.SetOption, Command.StmtFetch, Command.BinlogDumpGtid,
  Command.ResetConnection,
]);
/** A command the cache may answer once the identity check is back: a copy of its packet. */
interface Parked {
  packet: Buffer;
  /** COM_STMT_EXECUTE: the execution read from it (reading it again would not give the same). */
  execution: Execution | null;
}

/** Commands after which the session's context must be read again. */
const RESETS_SESSION = new Set<number>([Command.ChangeUser, Command.ResetConnection]);

let nextRelayId = 1;

export class MySqlRelay implements ServerPacketSink {
  private readonly id = nextRelayId++;
  private readonly queue: Pending[] = [];
  private readonly prepared = new PreparedStatements();
  private ctx: MysqlContext | null = null;
  /** Something changed the session since the context was read: probe before the next cached read. */
  private ctxStale = false;
  /** The session changed what the probe cannot read: its context is its own. */
  private privateContext = false;
  /** Nothing has changed the session since login: its probe describes every session with the same login. */
  private pristine = true;
  /** The login's facts that shape a new session's state (user, database, charset, capabilities, server). */
  private readonly startupKey: string;
  /** Temporary tables this session made: reads naming one are never cached. */
  private readonly temporaryTables = new Set<string>();
  /** The probe failed: caching is off for this session. */
  private unanalysable = false;
  /** The latest probe found no context (no current database): no probing until the session changes. */
  private noContext = false;
  /** Written tables of the current transaction, invalidated again when it commits. */
  private pendingWrites: Writes[] = [];
  /** A read-only transaction began with the latest reply and nothing was sent since: no snapshot yet. */
  private transactionSnapshotFree = false;
  /** The cache's server epoch under which this session's server was found to be the known one; -1: not yet. */
  private serverEpoch = -1;
  /** The identity check in flight. */
  private checking: Pending | null = null;
  /** The identity check failed: the cache neither answers nor fills in this session. */
  private unidentified = false;
  /** The server epoch the context was learned under: one learned under another is read again. */
  private ctxEpoch = -1;
  private parked: Parked | null = null;
  /** The parked command is being taken up again: it does not park a second time. */
  private unparking = false;
  private dialect: MysqlAnalysisOptions;
  private dialectKey = '00';
  private readonly mariadb: boolean;
  // Upstream -> client: where each packet ends, where each reply's bytes go.
  private readonly scanner = new ServerScanner();
  private readonly replies = new ReplyRouter((bytes) => this.io.toClient(bytes), () => this.cache.maxEntryBytes);
  private finished: Pending[] = [];
  /** The entry whose reply the scanner is reading, and the tracker's count before it. */
  private head: Pending | undefined = undefined;
  private awaitingBefore = 0;
  /** The head's reply ended at the packet the scanner stopped after. */
  private replyEnded = false;

  constructor(
    private readonly io: MySqlRelayIo,
    private readonly cache: MySqlCache,
    private readonly state: MySqlSessionState,
    private readonly tracker: ReplyTracker,
    private readonly log: Logger,
  ) {
    const server = serverDialect(state.serverVersion);
    this.mariadb = server.mariadb === true;
    this.dialect = server;
    this.startupKey = [state.user, state.database ?? '', state.charset, this.keyedCapabilities(), state.serverVersion].join('\u0000');
    // A session with the same login was probed before it changed anything: start from its context,
    // so even a short-lived connection's first read can be a hit.
    const known = cache.startupProbe(this.startupKey);
    if (known !== undefined) this.adopt(known, cache.serverEpoch);
  }

  private markStale(): void {
    this.ctxStale = true;
    this.pristine = false;
  }

  private keyedCapabilities(): string {
    return `${(this.state.capabilities & KEYED_CAPABILITIES) >>> 0}:${(this.state.mariaDbCapabilities & KEYED_MARIADB_CAPABILITIES) >>> 0}`;
  }

  /** Takes the context a probe found under server epoch `epoch`; false when it found none. */
  private adopt(result: MysqlProbeResult, epoch: number): boolean {
    this.ctx = this.cache.context(result, this.keyedCapabilities(), this.privateContext ? this.id : null);
    this.ctxStale = false;
    this.ctxEpoch = epoch;
    this.noContext = this.ctx === null;
    if (this.ctx === null) return false;
    this.dialect = { ...serverDialect(this.state.serverVersion), ...this.ctx.dialect };
    this.dialectKey = `${this.ctx.dialect.ansiQuotes ? 1 : 0}${this.ctx.dialect.noBackslashEscapes ? 1 : 0}`;
    return true;
  }

  /** Between server packets: a packet of the proxy's own may be sent to the client here. */
  get atBoundary(): boolean {
    return this.scanner.atBoundary;
  }

  /** Sequence id of the latest server packet header seen. */
  get lastSeq(): number {
    return this.scanner.lastSeq;
  }

  // ---------------------------------------------------------------- client -> upstream

  /** A whole client packet of a logged-in session (not COM_QUIT). Throws MalformedPacketError. */
  clientPacket(buf: Buffer, start: number, end: number, payloadLength: number): void {
    // The client did not wait: the parked command goes to the server first, so replies keep their order.
    if (this.parked !== null) this.unpark();
    // A session's first command carries the identity check in front of it, pipelined.
    if (this.serverEpoch === -1 && this.quiet) this.checkServer();
    if (this.idleQueue && payloadLength > 0 && !this.unanalysable) {
      const command = buf[start + 4]!;
      if (command === Command.Query) return this.onQuery(buf, start, end);
      if (command === Command.StmtExecute) return this.onExecute(buf, start, end);
    }
    this.relayPacket(buf, start, end, payloadLength);
  }

  /** Relays a client packet, queueing what its reply means (no cache lookup). */
  private relayPacket(buf: Buffer, start: number, end: number, payloadLength: number): void {
    const kind = this.tracker.clientPacket(buf, start, end, payloadLength);
    if (kind === 'command') {
      const command = buf[start + 4]!;
      const p = this.pending(Kind.Forward, command, null, 'pipelined');
      switch (command) {
        case Command.Query:
          p.info = this.info(payloadOf(buf, start, end).toString('utf8', 1));
          if (p.info.sessionEffect !== SessionEffect.None) this.markStale();
          p.bypassReason = this.inTransaction ? 'in-transaction' : this.unanalysable ? 'unanalysable' : 'pipelined';
          break;
        case Command.StmtExecute: {
          const payload = payloadOf(buf, start, end);
          const ex = this.prepared.execution(payload);
          p.info = ex === null ? null : this.info(ex.statement.text);
          if (ex === null) p.unknownWrites = true;
          p.bypassReason = this.inTransaction ? 'in-transaction' : 'pipelined';
          const replacement = ex === null ? null : this.prepared.forUpstream(payload, ex);
          this.queue.push(p);
          this.io.toUpstream(replacement ?? buf.subarray(start, end));
          return;
        }
        case Command.StmtBulkExecute: {
          // MariaDB's array binding (Connector/J's batches): one execution of the statement per
          // row of parameters, so it writes what the statement writes.
          const text = payloadLength >= 5 ? this.prepared.textOf(buf.readUInt32LE(start + 5)) : null;
          if (text !== null) p.info = this.info(text);
          else p.unknownWrites = true;
          p.bypassReason = this.inTransaction ? 'in-transaction' : 'pipelined';
          break;
        }
        case Command.StmtPrepare:
          p.prepareText = payloadOf(buf, start, end).toString('utf8', 1);
          break;
        case Command.StmtReset:
          if (payloadLength >= 5) this.prepared.reset(buf.readUInt32LE(start + 5));
          break;
        case Command.InitDb:
        case Command.ChangeUser:
        case Command.ResetConnection:
          this.markStale();
          break;
        default:
          if (!WRITES_NOTHING.has(command)) p.unknownWrites = true;
      }
      this.queue.push(p);
    } else if (kind === 'no-reply' && payloadLength >= 5) {
      const id = buf.readUInt32LE(start + 5);
      if (buf[start + 4] === Command.StmtClose) this.prepared.closed(id);
      else if (buf[start + 4] === Command.StmtSendLongData) this.prepared.longDataSent(id);
    }
    this.io.toUpstream(buf.subarray(start, end));
  }

  private onQuery(buf: Buffer, start: number, end: number): void {
    const cache = this.cache;
    const started = performance.now();
    const text = payloadOf(buf, start, end).toString('utf8', 1);
    const quiet = this.quiet;
    if (quiet && this.ctx !== null && !this.ctxStale && this.temporaryTables.size === 0 && !this.unidentified) {
      // An entry exists only for a text found cacheable under this context: no analysis on a hit.
      const entry = cache.store.get(this.ctx.keyPrefix + 'Q' + text);
      if (entry !== undefined && this.verified) {
        this.io.toClient(entry.bytes);
        cache.stats.hit(entry.meta.identity, (performance.now() - started) / 1000, this.io);
        return;
      }
      if (entry !== undefined && this.park(buf, start, end, null)) return;
    }
    const info = this.info(text);
    const inTransaction = !quiet && this.mayAnswerInTransaction(info);
    if (inTransaction && this.answerInTransaction('Q' + text, started)) return;
    this.plan(info, quiet || inTransaction ? 'Q' + text : null, Command.Query, inTransaction);
    if (info.sessionEffect !== SessionEffect.None) this.markStale();
    this.sendClientCommand(buf, start, end);
  }

  private onExecute(buf: Buffer, start: number, end: number): void {
    const started = performance.now();
    const executed = this.prepared.execution(payloadOf(buf, start, end));
    if (executed === null) {
      this.relayPacket(buf, start, end, end - start - 4);
      return;
    }
    this.execute(buf, start, end, executed, started);
  }

  /** A COM_STMT_EXECUTE whose execution was read: answered from the cache, or sent on. */
  private execute(buf: Buffer, start: number, end: number, executed: Execution, started: number): void {
    const cache = this.cache;
    const payload = payloadOf(buf, start, end);
    const quiet = this.quiet;
    const suffix = executed.keySuffix;
    if (quiet && suffix !== null && this.ctx !== null && !this.ctxStale && this.temporaryTables.size === 0 && !this.unidentified) {
      const entry = cache.store.get(this.ctx.keyPrefix + suffix);
      if (entry !== undefined && this.verified) {
        this.io.toClient(entry.bytes);
        cache.stats.hit(entry.meta.identity, (performance.now() - started) / 1000, this.io);
        return;
      }
      if (entry !== undefined && this.park(buf, start, end, executed)) return;
    }
    const info = this.info(executed.statement.text);
    const inTransaction = !quiet && suffix !== null && this.mayAnswerInTransaction(info);
    if (inTransaction && this.answerInTransaction(suffix, started)) return;
    const p = this.plan(info, quiet || inTransaction ? suffix : null, Command.StmtExecute, inTransaction);
    if (suffix === null && p.kind === Kind.Forward && quiet) p.bypassReason = 'cursor-or-long-data';
    const replacement = this.prepared.forUpstream(payload, executed);
    if (replacement === null) this.sendClientCommand(buf, start, end);
    else this.sendClientCommand(replacement, 0, replacement.length);
  }

  /** Can the cache answer or fill now? Only between commands, outside transactions. */
  private get quiet(): boolean {
    return this.idleQueue && !this.inTransaction && !this.unanalysable;
  }

  /** Nothing outstanding but the identity check (which changes nothing in the session). */
  private get idleQueue(): boolean {
    return this.queue.length === 0 || (this.queue.length === 1 && this.queue[0] === this.checking);
  }

  /** This session's server is the one the cache's entries came from. */
  private get verified(): boolean {
    return this.serverEpoch === this.cache.serverEpoch;
  }

  /** Sends the identity check ahead of what goes next, unless the server is verified or a check is in flight. */
  private checkServer(): void {
    if (this.verified || this.checking !== null || this.unidentified) return;
    this.checking = this.injectQuery(mysqlIdentitySql(this.mariadb));
  }

  /**
   * The cache holds the answer but the session's server is not verified yet: the command waits
   * for the identity check (one round trip) instead of going to the server; anything else the
   * client sends meanwhile sends it on first. Takes a copy of the packet; false when the command
   * must go on now (no check possible, or it is being sent on).
   */
  private park(buf: Buffer, start: number, end: number, execution: Execution | null): boolean {
    if (this.unidentified || this.unparking) return false;
    this.checkServer();
    this.parked = { packet: Buffer.from(buf.subarray(start, end)), execution };
    return true;
  }

  /** Takes the parked command up again: answered from the cache once verified, else sent on. */
  private unpark(): void {
    const { packet, execution } = this.parked!;
    this.parked = null;
    this.unparking = true;
    try {
      if (execution === null) this.onQuery(packet, 0, packet.length);
      else this.execute(packet, 0, packet.length, execution, performance.now());
    } finally {
      this.unparking = false;
    }
  }

  /**
   * The server says the session is in a READ ONLY transaction it started explicitly (autocommit
   * on: SERVER_STATUS_IN_TRANS, _AUTOCOMMIT and _IN_TRANS_READONLY, which MariaDB and MySQL set
   * for START TRANSACTION READ ONLY and for a transaction after SET TRANSACTION READ ONLY).
   */
  private get inReadOnlyTransaction(): boolean {
    return (this.state.status & TRANSACTION_FLAGS) === TRANSACTION_FLAGS;
  }

  /** Between commands in a read-only transaction, the context known, and a rule opted this read in. */
  private mayAnswerInTransaction(info: MysqlStatementInfo): boolean {
    return info.readCacheable && this.queue.length === 0 && !this.unanalysable && this.verified && this.inReadOnlyTransaction
      && this.ctx !== null && !this.ctxStale && this.temporaryTables.size === 0 && this.cache.rule(info).inReadOnlyTransactions;
  }

  /** A hit inside the read-only transaction: the stored reply with the session's transaction flags. */
  private answerInTransaction(keySuffix: string, started: number): boolean {
    const entry = this.cache.store.get(this.ctx!.keyPrefix + keySuffix);
    const bytes = entry === undefined ? null : withTransactionFlags(entry.bytes, this.state.deprecateEof, this.state.status);
    if (bytes === null) return false;
    this.io.toClient(bytes);
    this.cache.stats.hit(entry!.meta.identity, (performance.now() - started) / 1000, this.io);
    return true;
  }

  /**
   * A read the cache could not answer inside a read-only transaction. Its result is stored only
   * when it is the transaction's first statement (no snapshot taken at START TRANSACTION): InnoDB
   * takes the snapshot at the first read, after the fill's token, as for a statement outside a
   * transaction; a later read may see an older snapshot than writes already acknowledged, which
   * must not reach clients outside it. No probe runs inside a transaction.
   */
  private planInTransaction(info: MysqlStatementInfo, keySuffix: string, command: number): Pending {
    const decision = this.cache.decision(this.ctx!, info);
    const fill = this.transactionSnapshotFree && decision !== undefined && decision.cacheable && this.cache.fence(this.ctx!.database) === null; // CDC (changes/)
    const p = this.pending(fill ? Kind.Fill : Kind.Forward, command, info, decision?.reason ?? 'in-transaction');
    p.inTransaction = decision === undefined || decision.cacheable;
    if (fill) {
      p.keySuffix = keySuffix;
      p.token = this.cache.store.startFill();
    }
    this.queue.push(p);
    return p;
  }

  /**
   * After each reply: did it start a read-only transaction whose snapshot is not taken yet? Only a
   * lone BEGIN / START TRANSACTION sent outside any transaction with nothing behind it, that does
   * not say WITH CONSISTENT SNAPSHOT (any text naming "consistent" counts as saying it), and that
   * the server answered with the read-only transaction flags (an error leaves them as they were).
   */
  private trackTransactionStart(p: Pending): void {
    this.transactionSnapshotFree = p.sentOutsideTransaction && this.queue.length === 0 && this.inReadOnlyTransaction && startsWithoutSnapshot(p.info);
  }

  /** Autocommit off counts as a transaction: every statement is part of one until COMMIT. */
  private get inTransaction(): boolean {
    return this.state.inTransaction || !this.state.autocommit;
  }

  private info(text: string): MysqlStatementInfo {
    return this.cache.info(text, this.dialect, this.dialectKey);
  }

  /**
   * Queues the command for a statement about to be relayed: a fill when the result may be stored
   * (keySuffix set), preceded by the probe when the context or the statement's verdict is unknown.
   */
  private plan(info: MysqlStatementInfo, keySuffix: string | null, command: number, inTransaction = false): Pending {
    const cache = this.cache;
    if (inTransaction) return this.planInTransaction(info, keySuffix!, command);
    const quiet = keySuffix !== null;
    let reason = this.inTransaction ? 'in-transaction' : this.unanalysable ? 'unanalysable' : quiet ? (info.analysis.reasonNotCacheable ?? 'not-cacheable') : 'pipelined';
    let fill = quiet && info.readCacheable;
    if (fill && this.readsTemporaryTable(info)) {
      fill = false;
      reason = 'temporary-table';
    }
    // A "never" cache rule makes a cacheable read a bypass; the rule is evaluated once per statement.
    if (fill && cache.rule(info).never) {
      fill = false;
      reason = 'rule';
    }
    // CDC (changes/): while the binlog stream is not up, reads are bypasses.
    const fenced = fill ? cache.fence(this.ctx?.database ?? null) : null;
    if (fenced !== null) {
      fill = false;
      reason = fenced;
    }
    if (fill && this.unidentified) {
      fill = false;
      reason = 'unidentified-server';
    } else if (fill && this.ctx === null && !this.ctxStale && this.noContext) {
      fill = false;
      reason = 'no-database';
    } else if (fill) {
      // What the probe learns and the fill stores count once the server is verified: the check goes first.
      this.checkServer();
      const decision = this.ctx !== null && !this.ctxStale ? cache.decision(this.ctx, info) : undefined;
      if (decision === undefined) this.injectProbe(info);
      else if (!decision.cacheable) {
        fill = false;
        reason = decision.reason ?? 'not-cacheable';
      }
    } else if (quiet && info.writes.length > 0 && !info.writesUnlisted && this.writesUnknownTables(info)) {
      // Its invalidation depends on the database's fan-out (triggers, cascades, views), which the
      // probe reads: one pipelined before the first write to a table since the last DDL.
      this.injectProbe(info);
    }
    const p = this.pending(fill ? Kind.Fill : Kind.Forward, command, info, reason);
    p.sentOutsideTransaction = !this.state.inTransaction;
    if (fill) {
      p.keySuffix = keySuffix!;
      p.token = cache.store.startFill();
    }
    this.queue.push(p);
    return p;
  }

  /** Does `info` write a table not looked up in this context since the last DDL (or is the context unknown)? */
  private writesUnknownTables(info: MysqlStatementInfo): boolean {
    if (this.ctx !== null && !this.ctxStale) return !this.cache.knowsWrittenTables(this.ctx, info);
    // The latest probe found no current database and nothing changed since: probing again finds none.
    return this.ctxStale || !this.noContext;
  }

  private readsTemporaryTable(info: MysqlStatementInfo): boolean {
    if (this.temporaryTables.size === 0) return false;
    return info.analysis.tablesRead.some((t) => this.temporaryTables.has(t.name));
  }

  private injectProbe(info: MysqlStatementInfo): void {
    this.injectQuery(this.cache.probeSql(info, this.mariadb)).probeFor = info;
  }

  /** Sends a COM_QUERY of the proxy's own, its reply read and swallowed (Kind.Probe). */
  private injectQuery(sql: string): Pending {
    const payload = Buffer.allocUnsafe(1 + Buffer.byteLength(sql));
    payload[0] = Command.Query;
    payload.write(sql, 1, 'utf8');
    const packet = encodePacket(payload, 0);
    this.tracker.clientPacket(packet, 0, packet.length, payload.length);
    const p = this.pending(Kind.Probe, Command.Query, null, '');
    this.queue.push(p);
    this.io.toUpstream(packet);
    return p;
  }

  private sendClientCommand(buf: Buffer, start: number, end: number): void {
    this.tracker.clientPacket(buf, start, end, end - start - 4);
    this.io.toUpstream(buf.subarray(start, end));
  }

  private pending(kind: Kind, command: number, info: MysqlStatementInfo | null, bypassReason: string): Pending {
    this.transactionSnapshotFree = false; // something goes upstream
    return {
      kind, command, startedAt: performance.now(), info, bypassReason, unknownWrites: false, inTransaction: false, sentOutsideTransaction: false, packets: 0, errored: false,
      keySuffix: '', token: 0, parts: [], size: 0, poisoned: false, prepareText: null,
      probeFor: null, probeColumns: 0, probeRow: null,
    };
  }

  // ---------------------------------------------------------------- upstream -> client

  /**
   * Routes one chunk from the server. The scanner stops where a reply ends, so the bytes after it
   * take the next reply's route; every packet goes through the scanner (and the tracker) before
   * its bytes are relayed, so invalidation happens first.
   */
  upstreamChunk(chunk: Buffer): void {
    this.replies.begin(chunk);
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
      const head = this.queue[0];
      if (head?.kind === Kind.Probe) this.replies.switchTo(Route.Drop, null, pos);
      else if (head?.kind === Kind.Fill && !head.poisoned) this.replies.switchTo(Route.Capture, head, pos);
      else this.replies.switchTo(Route.Forward, null, pos);
      this.head = head;
      this.awaitingBefore = this.tracker.awaiting;
      pos = this.scanner.feed(chunk, this, pos);
      if (this.replyEnded) {
        this.replyEnded = false;
        this.queue.shift();
        this.replyDone(head!);
      }
    }
    this.replies.end();
    this.finishFills();
    // The identity check is back and nothing was sent after it: the parked command goes on.
    if (this.parked !== null && this.checking === null) this.unpark();
  }

  // ServerPacketSink: the tracker reads the packets; the relay looks at a few itself.
  begin(first: number, seq: number, length: number): boolean {
    const want = this.tracker.begin(first, seq, length);
    const head = this.head;
    if (head === undefined) return want;
    head.packets++;
    if (head.kind === Kind.Probe) return true;
    if (head.command === Command.StmtPrepare && head.packets === 1) return true;
    return want;
  }

  body(buf: Buffer, start: number, end: number): void {
    this.tracker.body(buf, start, end);
    const head = this.head;
    if (head === undefined) return;
    try {
      if (head.kind === Kind.Probe) this.probePacket(head, buf, start, end);
      else if (head.kind === Kind.Fill) this.fillPacket(head, buf, start, end);
      else if (head.command === Command.StmtPrepare && head.packets === 1 && buf[start] === 0x00 && head.prepareText !== null) {
        this.prepared.prepared(head.prepareText, buf, start, end);
      }
    } catch (err) {
      if (!(err instanceof MalformedPacketError)) throw err;
      head.poisoned = true;
      head.errored = true;
    }
  }

  /** Stops the scanner where the head's reply ends. */
  end(): boolean {
    this.tracker.end();
    if (this.head === undefined || this.tracker.awaiting >= this.awaitingBefore) return false;
    this.replyEnded = true;
    return true;
  }

  /** A packet of a fill's reply the tracker decoded: errors, warnings and more results spoil it. */
  private fillPacket(p: Pending, buf: Buffer, start: number, end: number): void {
    const first = buf[start];
    if (first === 0xff) {
      p.errored = true;
      return;
    }
    let warnings = 0;
    let status = 0;
    if (first === 0xfe && end - start < 9) {
      if (end - start >= 5) {
        warnings = buf.readUInt16LE(start + 1);
        status = buf.readUInt16LE(start + 3);
      }
    } else if (first === 0x00 || first === 0xfe) {
      const ok = decodeOk(buf, start, end, this.state.capabilities);
      warnings = ok.warnings;
      status = ok.status;
    } else {
      return; // the column count
    }
    if (warnings > 0 || (status & (ServerStatus.MoreResultsExist | ServerStatus.SessionStateChanged | ServerStatus.CursorExists)) !== 0) p.poisoned = true;
  }

  /** The probe's reply: column count, definitions, (EOF), one text row, EOF/OK. */
  private probePacket(p: Pending, buf: Buffer, start: number, end: number): void {
    if (buf[start] === 0xff) {
      p.errored = true;
      return;
    }
    if (p.packets === 1) {
      p.probeColumns = new PayloadReader(buf, start, end).lenenc();
      return;
    }
    const rowAt = p.probeColumns + (this.state.deprecateEof ? 2 : 3);
    if (p.packets !== rowAt) return;
    const r = new PayloadReader(buf, start, end);
    const row: (string | null)[] = [];
    for (let i = 0; i < p.probeColumns; i++) {
      if (buf[r.pos] === 0xfb) {
        r.skip(1);
        row.push(null);
      } else {
        row.push(r.lenencString());
      }
    }
    p.probeRow = row;
  }

  /** A reply ended (its last packet read, not yet relayed). */
  private replyDone(p: Pending): void {
    if (p === this.checking) {
      this.onCheckDone(p);
      return;
    }
    if (p.kind === Kind.Probe) {
      this.onProbeDone(p);
      return;
    }
    if (RESETS_SESSION.has(p.command)) {
      this.markStale();
      this.privateContext = false;
      this.temporaryTables.clear();
      this.prepared.clear();
      this.pendingWrites = [];
    }
    const info = p.info;
    if (info !== null) {
      if (info.sessionEffect !== SessionEffect.None) this.markStale();
      if (info.sessionEffect === SessionEffect.Private) this.privateContext = true;
      for (const t of info.temporaryTables) this.temporaryTables.add(t);
      this.afterStatement(info);
    } else if (p.unknownWrites) {
      this.afterStatement(UNKNOWN_WRITES);
    }
    this.trackTransactionStart(p);
    const seconds = (performance.now() - p.startedAt) / 1000;
    if (info === null) return;
    const stats = this.cache.stats;
    const verdict = p.kind === Kind.Fill && this.ctx !== null ? this.cache.decision(this.ctx, info) : undefined;
    if (p.kind === Kind.Fill && verdict !== undefined && !verdict.cacheable) {
      stats.bypass(info.identity, verdict.reason ?? 'not-cacheable', seconds, this.io);
    } else if (p.kind === Kind.Fill || p.inTransaction) {
      if (p.kind === Kind.Fill) this.finished.push(p);
      stats.miss(info.identity, seconds, this.io);
    } else if (info.writes.length > 0 || info.writesUnlisted) {
      stats.write(info.identity, seconds, this.io);
    } else {
      stats.bypass(info.identity, p.bypassReason, seconds, this.io);
    }
  }

  /**
   * Invalidation after a statement's reply, before its last packet is relayed. A write is
   * invalidated at once (non-transactional tables change at once; a failed statement may have
   * written part), and again when its transaction commits (transactional readers may have filled
   * entries from the snapshot before the commit); forgotten at rollback.
   */
  private afterStatement(info: Writes): void {
    const writes = info.writes.length > 0 || info.writesUnlisted;
    if (writes) this.invalidate([info]);
    // Whether the transaction ended shows in SERVER_STATUS_IN_TRANS alone: with autocommit off the
    // COMMIT's OK still has autocommit clear, and the next transaction starts with the next statement.
    if (this.state.inTransaction) {
      if (writes) this.pendingWrites.push(info);
      return;
    }
    if (this.pendingWrites.length > 0) {
      if (!info.rollsBack) this.invalidate(this.pendingWrites);
      this.pendingWrites = [];
    }
  }

  private invalidate(infos: readonly Writes[]): void {
    const database = this.state.database ?? (this.ctx !== null && !this.ctxStale ? this.ctx.database : null);
    let wide = false;
    let catalog = false;
    const tables = [];
    for (const info of infos) {
      wide ||= info.writesUnlisted;
      catalog ||= info.catalogChanged;
      tables.push(...info.writes);
    }
    this.cache.invalidate(database, tables, wide, catalog);
  }

  /** Stores the results of fills whose reply is complete (called once their bytes are routed). */
  private finishFills(): void {
    if (this.finished.length === 0) return;
    const cache = this.cache;
    for (const p of this.finished) {
      const info = p.info!;
      const ctx = this.ctx;
      // A fill inside a read-only transaction is kept only while it still is one (planInTransaction).
      // A text read under another sql_mode than the one the probe found (SET sql_mode just before)
      // may name other tables than the server read: its verdict and tags do not hold.
      const ok = !p.poisoned && !p.errored && ctx !== null && !this.ctxStale && this.verified && info.dialectKey === this.dialectKey
        && (p.inTransaction ? this.inReadOnlyTransaction : !this.inTransaction);
      const d = ok ? cache.decision(ctx, info) : undefined;
      // Stored as if filled outside a transaction (its EOF/OK flags say so).
      const parts = d?.cacheable && p.inTransaction ? withTransactionFlags(Buffer.concat(p.parts), this.state.deprecateEof, STORED_TRANSACTION_FLAGS) : null;
      if (d !== undefined && d.cacheable && (!p.inTransaction || parts !== null)) {
        // A cache rule may give this statement its own TTL or a smaller entry limit.
        const rule = cache.rule(info);
        cache.store.setParts(ctx!.keyPrefix + p.keySuffix, parts === null ? p.parts : [parts], p.size, { identity: info.identity },
          { token: p.token as FillToken, tags: d.tags, ttlMs: rule.ttlMs }, rule.maxEntryBytes);
      }
      p.parts = [];
    }
    this.finished = [];
  }

  private onProbeDone(p: Pending): void {
    if (p.errored || p.probeRow === null) {
      this.log.warn({ connectionId: this.state.connectionId }, 'mysql: cache probe failed; caching off for this session');
      this.unanalysable = true;
      return;
    }
    let result: MysqlProbeResult;
    try {
      result = this.cache.readProbe(p.probeRow, p.probeFor!);
    } catch (err) {
      if (!(err instanceof MysqlProbeError)) throw err;
      this.log.warn({ err: err.message }, 'mysql: unreadable cache probe reply; caching off for this session');
      this.unanalysable = true;
      return;
    }
    // What a session learns counts for the others only while its server is the known one.
    const verified = this.verified;
    if (!this.adopt(result, verified ? this.serverEpoch : -1) || !verified) return;
    this.cache.decide(this.ctx!, p.probeFor!, result);
    if (this.pristine && !this.privateContext) this.cache.rememberStartup(this.startupKey, result);
  }

  /**
   * The identity check's reply: the cache drops everything when this is another server than its
   * entries came from, and the session may use the cache from now on.
   */
  private onCheckDone(p: Pending): void {
    this.checking = null;
    const seen = identityOf(p.errored, p.probeRow, readMysqlIdentity);
    if (seen instanceof IdentityError) {
      this.log.warn({ connectionId: this.state.connectionId, err: seen.message }, 'mysql: cannot identify the upstream server; caching off for this session');
      this.unidentified = true;
      return;
    }
    const dropped = this.cache.serverSeen(seen);
    if (dropped !== null) this.log.warn({ dropped }, 'mysql: the upstream server changed (restart, failover or restore); cached results dropped');
    this.serverEpoch = this.cache.serverEpoch;
    // A context learned under another server's epoch (adopted at login) is read again.
    if (this.ctxEpoch !== this.serverEpoch) this.ctxStale = true;
  }
}

/** A lone BEGIN / START TRANSACTION that does not (or may not) say WITH CONSISTENT SNAPSHOT. */
function startsWithoutSnapshot(info: MysqlStatementInfo | null): boolean {
  const statements = info?.analysis.statements;
  if (statements?.length !== 1) return false;
  const action = statements[0]!.transaction;
  return (action === 'begin' || action === 'start') && !/consistent/i.test(info!.shape);
}
