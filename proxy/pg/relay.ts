// The traffic of one PostgreSQL session once the client is authenticated, both ways: which client
// requests the cache answers, which go upstream (with the proxy's own probe or a replayed Parse
// in front when needed), and what happens to each server message (relay, relay and capture for
// the cache, or swallow the reply to the proxy's own request). Writes invalidate what they made
// stale before their acknowledgement reaches the client.
//
// Every request that produces a ReadyForQuery (a Query, a FunctionCall, the messages up to a Sync)
// has one Pending entry, queued in the order the server answers; a server message belongs to the
// head entry. The cache answers only when nothing is outstanding, so replies never reorder, and
// only once the session's server is known to be the one the entries came from (the identity check,
// upstream-identity.ts, pipelined ahead of the session's first request).
import type { StatementIdentity, StatementSource } from '../../admin/query-stats.js';
import type { FillToken } from '../../cache/tag-versions.js';
import { Backend, Frontend } from './codes.js';
import { Kind, ReplyRouter, Route } from '../reply-router.js';
import { READY_IN_BLOCK, endsIdle, readyAsIdle, withoutDescriptions, withoutReady } from './stored-reply.js';
import type { BackendSink } from './backend-scanner.js';
import type { Decision, PgCache, PgContext, SessionIdentity, StatementInfo } from './pg-cache.js';
import { buildProbeSql, probeFailureIsPassing, probeQuery, readProbeRow, type ProbeResult } from '../../invalidation/pg-probe.js';
import { KEYED_PARAMETERS, WriteScope } from './pg-cache.js';
import { IdentityError, PG_IDENTITY_SQL, identityOf, readPgIdentity } from '../upstream-identity.js';
import { PgSessionState, TxStatus } from './session-state.js';
import { cacheableBatch, type CacheableBatch, type Held } from './cacheable-batch.js';
import {
  PARSE_COMPLETE, closeStatementMessage, readCString, decodeTextRow, equalsName, errorCodeOf, errorMessageOf, parseMessage, queryMessage, startsWithAscii,
} from './messages.js';
import type { Logger } from '../../cli/log.js';

export interface RelayIo extends StatementSource {
  toUpstream(bytes: Buffer): void;
  /** Writes to the client; a second buffer goes in the same write. */
  toClient(bytes: Buffer, more?: Buffer): void;
  /** The server refused the login (an ErrorResponse before the first ReadyForQuery). */
  loginRefused(message: string): void;
}


/** One request awaiting its ReadyForQuery. */
interface Pending {
  kind: Kind;
  startedAt: number;
  /** The statement measured for stats (a batch's single statement), if known. */
  info: StatementInfo | null;
  /** Statements executed, for invalidation; null for one the proxy cannot attribute (may write anything). */
  executed: (StatementInfo | null)[];
  /** Sent while idle as one simple statement: its CommandComplete means committed. */
  autocommit: boolean;
  bypassReason: string;
  swallowParse: number;
  swallowClose: number;
  /** ParseCompletes relayed but not captured. */
  skipParse: number;
  /** The server ended the transaction block without committing it (ROLLBACK, or COMMIT of a failed block). */
  rolledBack: boolean;
  /** Its writes were invalidated at its CommandComplete (autocommit). */
  invalidated: boolean;
  /** Looked up in the cache inside a read-only block (a rule opted in): a miss, never a bypass. */
  inBlock: boolean;
  // A fill: the key without the context prefix, the token taken when sent, the reply so far.
  keySuffix: string;
  token: FillToken | 0;
  parts: Buffer[];
  size: number;
  poisoned: boolean;
  completes: number;
  errored: boolean;
  // A probe: the statement it is for, the catalog generation when it was sent, the row it
  // returned, the SQLSTATE it failed with.
  probeFor: StatementInfo | null;
  probeGeneration: number;
  probeRow: (string | null)[] | null;
  probeError: string;
}

/** Custom settings a session may set before it stops sharing entries with other sessions. */
const MAX_CUSTOM_SETTINGS = 32;
/** Extended-protocol messages collected until Sync before anything is decided; beyond, relay. */
const MAX_HELD_MESSAGES = 64;
const IDENTITY_QUERY = queryMessage(PG_IDENTITY_SQL);
/** After probes failed in a row for passing reasons, statements relayed unprobed before the next try. */
const MAX_PROBE_BACKOFF = 256;

let nextRelayId = 1;

export class PgRelay {
  readonly state = new PgSessionState();
  /** Tells this session apart in a context of its own (see PgCache.context). */
  private readonly id = nextRelayId++;
  /** Server messages that arrive while nothing is queued (auth, notifications) are relayed. */
  private readonly queue: Pending[] = [];
  /** The request being relayed message by message (after a Flush), until its Sync. */
  private open: Pending | null = null;
  private held: Held[] = [];
  /** Portal -> statement bound to it, for Execute without a Bind in the same batch. */
  private readonly portals = new Map<string, StatementInfo>();
  private ctx: PgContext | null = null;
  private ctxStale = true;
  /** Nothing has changed the session's state since it started: its probe describes the startup. */
  private pristine = true;
  /** Custom settings (a dot in the name) this session has set: part of its context. */
  private readonly customSettings = new Set<string>();
  /** The session's state cannot be read by the probe: it shares no entries. */
  private ownContext = false;
  private lastProbe: ProbeResult | null = null;
  /** Written tables of the current transaction block, invalidated when it commits. */
  private readonly pendingWrites = new Set<string>();
  private pendingScope = WriteScope.Tables;
  private pendingCatalog = false;
  /** The cache's server epoch under which this session's server was found to be the known one; -1: not yet. */
  private serverEpoch = -1;
  /** The identity check in flight. */
  private checking: Pending | null = null;
  /** The identity check failed: the cache neither answers nor fills in this session. */
  private unidentified = false;
  /** The server epoch the context was learned under: one learned under another is read again. */
  private ctxEpoch = -1;
  /** A request the cache may answer once the identity check is back (see park), as copies. */
  private parked: Held[] | null = null;
  /** The parked request is being taken up again: it does not park a second time. */
  private unparking = false;
  /** This session's statements cannot be analysed (standard_conforming_strings off, the probe cannot work). */
  private unanalysable = false;
  /** Probes failed in a row for a passing reason (cancelled, lock, resources): the next waits longer. */
  private probeFailures = 0;
  /** Statements still to relay unprobed (and uncached) before the next probe is tried. */
  private probeBackoff = 0;
  /**
   * The transaction block is known read-only: BEGIN / START TRANSACTION ... READ ONLY opened it and
   * only plain reads ran in it since (see trackReadOnlyBlock). A rule may let the cache answer in it.
   */
  private readOnlyBlock = false;
  /** Nothing went upstream since that BEGIN: the block's snapshot is taken by the next statement. */
  private blockSnapshotFree = false;
  // Client -> upstream: the run of whole messages of the current chunk, written at once.
  private runBuf: Buffer | null = null;
  private runStart = 0;
  private runEnd = 0;
  /** Upstream -> client: where each reply's bytes go. */
  private readonly replies = new ReplyRouter((bytes) => this.io.toClient(bytes), () => this.cache?.maxEntryBytes ?? 0);
  private finished: Pending[] = [];

  constructor(
    private readonly io: RelayIo,
    private readonly cache: PgCache | null,
    private readonly database: string,
    /** The StartupMessage's parameters that shape the session's initial state, as one string. */
    private readonly startupKey: string,
    private readonly log: Logger,
  ) {}

  // ---------------------------------------------------------------- client -> upstream

  /** A whole client message of an authenticated session. */
  clientMessage(code: number, buf: Buffer, start: number, end: number): void {
    if (this.cache === null) {
      this.forward(code, buf, start, end);
      return;
    }
    // The client did not wait: the parked request goes to the server first, so replies keep their order.
    if (this.parked !== null) this.unpark();
    // A session's first request carries the identity check in front of it, pipelined.
    if (this.serverEpoch === -1 && this.quiet) this.checkServer();
    switch (code) {
      case Frontend.Query:
        if (this.held.length > 0 || this.open !== null) {
          // After unsynced extended messages a Query shares their ReadyForQuery.
          this.finishOpen().executed.push(this.cache.info(readCString(buf, start + 5, end)));
          this.forward(code, buf, start, end);
        } else {
          this.onQuery(buf, start, end);
        }
        return;
      case Frontend.FunctionCall:
        // A fast-path call may write anything.
        (this.held.length > 0 || this.open !== null ? this.finishOpen() : this.enqueue(Kind.Forward, null, 'function-call')).executed.push(null);
        this.forward(code, buf, start, end);
        return;
      case Frontend.Parse:
      case Frontend.Bind:
      case Frontend.Describe:
      case Frontend.Execute:
      case Frontend.Close:
        if (this.open === null && this.held.length < MAX_HELD_MESSAGES) {
          this.held.push({ code, buf, start, end });
          return;
        }
        this.releaseHeld();
        this.forwardExtended(code, buf, start, end, this.open!);
        return;
      case Frontend.Sync:
        if (this.open !== null) this.finishOpen();
        else if (this.held.length === 0) this.enqueue(Kind.Forward, null, 'not-cacheable');
        else {
          this.onBatch(buf, start, end);
          return;
        }
        this.forward(code, buf, start, end);
        return;
      default:
        // Flush, COPY data, Terminate, anything unknown: relay now, after what was held.
        this.releaseHeld();
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

  /**
   * The end of a client chunk. A client that sent no Sync may be waiting for a reply the server
   * sends without one (CopyInResponse after an Execute of COPY FROM STDIN), so held messages go
   * now unless they begin a read the cache may answer: for a SELECT the protocol promises nothing
   * before Sync or Flush, so waiting for the rest of its batch cannot stall the client.
   */
  endOfClientChunk(): void {
    if (this.held.length > 0) {
      if (!this.heldMayBeCached()) {
        this.releaseHeld();
      } else {
        // Kept past this read: copy out of the session's reused read buffer.
        for (const m of this.held) {
          m.buf = Buffer.from(m.buf.subarray(m.start, m.end));
          m.end -= m.start;
          m.start = 0;
        }
      }
    }
    this.flushToUpstream();
  }

  private heldMayBeCached(): boolean {
    const first = this.held[0]!;
    let text: string | undefined;
    if (first.code === Frontend.Parse) {
      text = readCString(first.buf, first.buf.indexOf(0, first.start + 5) + 1, first.end);
    } else if (first.code === Frontend.Bind) {
      const portalEnd = first.buf.indexOf(0, first.start + 5);
      text = this.state.client.get(readCString(first.buf, portalEnd + 1, first.end))?.text;
    }
    return text !== undefined && this.cache !== null && this.cache.info(text).readCacheable;
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

  private enqueue(kind: Kind, info: StatementInfo | null, bypassReason: string): Pending {
    const p: Pending = {
      kind, startedAt: performance.now(), info, executed: [], autocommit: false, bypassReason,
      swallowParse: 0, swallowClose: 0, skipParse: 0, rolledBack: false, invalidated: false, inBlock: false, keySuffix: '', token: 0, parts: [], size: 0, poisoned: false,
      completes: 0, errored: false, probeFor: null, probeGeneration: 0, probeRow: null, probeError: '',
    };
    this.queue.push(p);
    this.blockSnapshotFree = false;
    return p;
  }

  /**
   * Can the cache answer or fill now? Only between requests (the identity check aside: it ends
   * idle), outside transaction blocks.
   */
  private get quiet(): boolean {
    return (this.queue.length === 0 || (this.queue.length === 1 && this.queue[0] === this.checking)) && this.open === null
      && this.state.txStatus === TxStatus.Idle && !this.unanalysable;
  }

  /** This session's server is the one the cache's entries came from. */
  private get verified(): boolean {
    return this.serverEpoch === this.cache!.serverEpoch;
  }

  /** Sends the identity check ahead of what goes next, unless the server is verified or a check is in flight. */
  private checkServer(): void {
    if (this.verified || this.checking !== null || this.unidentified) return;
    this.checking = this.enqueue(Kind.Probe, null, '');
    this.inject(IDENTITY_QUERY);
  }

  /**
   * The cache holds the answer but the session's server is not verified yet: the request waits
   * for the identity check (one round trip) instead of going to the server; anything else the
   * client sends meanwhile sends it on first. Takes copies of the messages; false when the
   * request must go on now (no check possible, or it is being sent on).
   */
  private park(messages: readonly Held[]): boolean {
    if (this.unidentified || this.unparking) return false;
    this.checkServer();
    this.parked = messages.map((m) => ({ code: m.code, buf: Buffer.from(m.buf.subarray(m.start, m.end)), start: 0, end: m.end - m.start }));
    return true;
  }

  /** Takes the parked request up again: answered from the cache once verified, else sent on. */
  private unpark(): void {
    const parked = this.parked!;
    this.parked = null;
    this.unparking = true;
    try {
      for (const m of parked) this.clientMessage(m.code, m.buf, m.start, m.end);
    } finally {
      this.unparking = false;
    }
    this.flushToUpstream();
  }

  /**
   * Between requests inside a block known read-only, with the session's context known: the cache
   * may answer a statement whose rule opts in (no probe runs inside a block).
   */
  private get quietInReadOnlyBlock(): boolean {
    return this.readOnlyBlock && this.queue.length === 0 && this.open === null && this.state.txStatus === TxStatus.InTransaction
      && !this.unanalysable && this.ctx !== null && !this.ctxStale && this.verified;
  }

  /** Sends a stored reply (which ends with ReadyForQuery 'I') as an answer inside the block. */
  private answerInBlock(bytes: Buffer, parseComplete: boolean): void {
    const body = withoutReady(bytes);
    if (parseComplete) {
      this.io.toClient(PARSE_COMPLETE, body);
      this.io.toClient(READY_IN_BLOCK);
    } else {
      this.io.toClient(body, READY_IN_BLOCK);
    }
  }

  private onQuery(buf: Buffer, start: number, end: number): void {
    const cache = this.cache!;
    const text = readCString(buf, start + 5, end);
    if (this.unanalysable) {
      this.enqueue(Kind.Forward, null, 'unanalysable').executed.push(null);
      this.forward(Frontend.Query, buf, start, end);
      return;
    }
    const started = performance.now();
    const quiet = this.quiet;
    // An entry exists only for a text found cacheable under this context: no analysis on a hit.
    if (quiet && this.ctx !== null && !this.ctxStale && !this.unidentified) {
      const entry = cache.store.get(this.ctx.keyPrefix + 'Q' + text);
      if (entry !== undefined && this.verified) {
        this.state.answeredQuery();
        this.io.toClient(entry.bytes);
        cache.stats.hit(entry.meta.identity, (performance.now() - started) / 1000, this.io);
        return;
      }
      if (entry !== undefined && this.park([{ code: Frontend.Query, buf, start, end }])) return;
    }
    const info = cache.info(text);
    const inBlock = !quiet && this.mayAnswerInBlock(info);
    if (inBlock) {
      const entry = cache.store.get(this.ctx!.keyPrefix + 'Q' + text);
      if (entry !== undefined && endsIdle(entry.bytes)) {
        this.state.answeredQuery();
        this.answerInBlock(entry.bytes, false);
        cache.stats.hit(entry.meta.identity, (performance.now() - started) / 1000, this.io);
        return;
      }
    }
    const p = this.plan(info, 'Q' + text, quiet, inBlock);
    p.autocommit = quiet && info.analysis.statements.length === 1;
    if (info.changesSession) this.sessionChanged();
    this.forward(Frontend.Query, buf, start, end);
  }

  /**
   * Queues the request for a statement about to be relayed: a fill when the result may be stored,
   * preceded by the probe when the session context or the statement's decision is not known yet.
   */
  private plan(info: StatementInfo, keySuffix: string, quiet: boolean, inBlock = false): Pending {
    const cache = this.cache!;
    if (inBlock) return this.planInBlock(info, keySuffix);
    // A session whose server cannot be identified neither probes nor fills.
    const caching = quiet && !this.unidentified;
    // What the probe learns and a fill stores count once the server is verified: the check goes first.
    if (caching && (info.readCacheable || info.needsCatalog)) this.checkServer();
    let decision: Decision | undefined;
    let unprobed = false;
    if (caching && info.needsCatalog && (this.ctx === null || this.ctxStale || (decision = cache.decision(this.ctx, info)) === undefined)) {
      if (this.probeBackoff > 0) {
        this.probeBackoff--;
        unprobed = true;
      } else {
        const probe = this.enqueue(Kind.Probe, null, '');
        probe.probeFor = info;
        probe.probeGeneration = cache.generation(this.currentDatabase);
        const select = buildProbeSql(info.analysis, [...this.customSettings]);
        this.inject(queryMessage(probeQuery(select, this.state.parameters.get('server_version') ?? '')));
      }
    }
    // A "never" cache rule makes a cacheable read a bypass; the rule is evaluated once per statement.
    const never = caching && info.readCacheable && !unprobed && decision?.cacheable !== false && cache.rule(info).never;
    // CDC (changes/): while this database's change stream is not up, its reads are bypasses.
    const fenced = caching && info.readCacheable && !never && !unprobed && decision?.cacheable !== false ? cache.fence(this.database) : null;
    const fill = caching && info.readCacheable && !never && !unprobed && fenced === null && (decision === undefined || decision.cacheable);
    const reason = never ? 'rule' : unprobed ? 'probe-failed' : fenced ?? (caching ? decision?.reason ?? 'not-cacheable' : quiet ? 'unidentified-server'
      : this.state.txStatus !== TxStatus.Idle ? 'in-transaction' : 'pipelined');
    const p = this.enqueue(fill ? Kind.Fill : Kind.Forward, info, reason);
    p.executed.push(info);
    if (fill) {
      p.keySuffix = keySuffix;
      p.token = cache.store.startFill();
    }
    return p;
  }

  /** Inside a read-only block, a rule opted this cacheable read in, and the context is known. */
  private mayAnswerInBlock(info: StatementInfo): boolean {
    return info.readCacheable && this.quietInReadOnlyBlock && this.cache!.rule(info).inReadOnlyTransactions;
  }

  /**
   * A read the cache could not answer inside a read-only block. Its result is stored only when it
   * is the block's first statement the server sees: its snapshot is then taken after the fill's
   * token, as for a statement outside a block; a later one may read an older snapshot than writes
   * already acknowledged, which must not reach clients outside the block. No probe runs here.
   */
  private planInBlock(info: StatementInfo, keySuffix: string): Pending {
    const cache = this.cache!;
    const decision = cache.decision(this.ctx!, info);
    const fill = this.blockSnapshotFree && decision !== undefined && decision.cacheable && cache.fence(this.database) === null; // CDC (changes/)
    const p = this.enqueue(fill ? Kind.Fill : Kind.Forward, info, decision?.reason ?? 'in-transaction');
    p.executed.push(info);
    p.inBlock = decision === undefined || decision.cacheable;
    if (fill) {
      p.keySuffix = keySuffix;
      p.token = cache.store.startFill();
    }
    return p;
  }

  /** A Sync ends a batch held since the last one: answer it from the cache, fill, or relay it. */
  private onBatch(syncBuf: Buffer, syncStart: number, syncEnd: number): void {
    const cache = this.cache!;
    const started = performance.now();
    const batch = this.held;
    this.held = [];
    const quiet = this.quiet;
    const candidate = quiet || this.quietInReadOnlyBlock ? cacheableBatch(batch, this.state.client) : null;
    const info = candidate === null ? null : cache.info(candidate.text);
    // Inside a read-only block only a statement whose rule opts in is looked up.
    const inBlock = !quiet && info !== null && this.mayAnswerInBlock(info);
    const shape = quiet || inBlock ? candidate : null;
    if (shape !== null && info !== null) {
      if (info.readCacheable && this.ctx !== null && !this.ctxStale) {
        const d = cache.decision(this.ctx, info);
        if (d !== undefined && d.cacheable) {
          const found = this.storedReply(this.ctx.keyPrefix, shape);
          if (found !== undefined && !inBlock && !this.verified) {
            if (this.park([...batch, { code: Frontend.Sync, buf: syncBuf, start: syncStart, end: syncEnd }])) return;
          } else if (found !== undefined && (!inBlock || endsIdle(found.bytes))) {
            if (shape.parse !== null) this.state.answeredParse(shape.parse.name, { text: shape.text, sig: shape.sig });
            if (inBlock) this.answerInBlock(found.bytes, shape.parse !== null);
            else if (shape.parse !== null) this.io.toClient(PARSE_COMPLETE, found.bytes);
            else this.io.toClient(found.bytes);
            cache.stats.hit(found.identity, (performance.now() - started) / 1000, this.io);
            return;
          }
        }
      }
      const p = this.plan(info, shape.keySuffix, quiet, inBlock);
      // The stored reply leaves out the ParseComplete, so batches with and without the Parse share it.
      if (shape.parse !== null) p.skipParse = 1;
      this.relayBatch(batch, p, false);
    } else {
      this.relayBatch(batch, this.enqueue(Kind.Forward, null, quiet ? 'not-cacheable' : 'in-transaction'), true);
    }
    this.forward(Frontend.Sync, syncBuf, syncStart, syncEnd);
  }

  /**
   * The stored reply for a batch: its own entry, or for a batch without Describe the entry of the
   * same execution with one, its descriptions cut.
   */
  private storedReply(keyPrefix: string, shape: CacheableBatch): { bytes: Buffer; identity: StatementIdentity } | undefined {
    const store = this.cache!.store;
    const entry = store.get(keyPrefix + shape.keySuffix);
    if (entry !== undefined) return { bytes: entry.bytes, identity: entry.meta.identity };
    for (const suffix of shape.describedKeySuffixes) {
      const described = store.get(keyPrefix + suffix);
      const bytes = described === undefined ? null : withoutDescriptions(described.bytes);
      if (bytes !== null) return { bytes, identity: described!.meta.identity };
    }
    return undefined;
  }

  /** Relays held messages now (a Flush or another message that cannot wait for the Sync). */
  private releaseHeld(): void {
    if (this.held.length === 0) return;
    const batch = this.held;
    this.held = [];
    this.open ??= this.enqueue(Kind.Forward, null, 'pipelined');
    this.relayBatch(batch, this.open, true);
  }

  /** Ends the request relayed message by message; its ReadyForQuery comes next. */
  private finishOpen(): Pending {
    this.releaseHeld();
    const p = this.open!;
    this.open = null;
    return p;
  }

  private relayBatch(batch: Held[], p: Pending, recordExecuted: boolean): void {
    for (const m of batch) this.forwardExtended(m.code, m.buf, m.start, m.end, p, recordExecuted);
  }

  /**
   * Relays one extended-protocol message, first replaying the Parse the server is missing when
   * the message refers to a statement the cache answered for (the server never saw its Parse).
   * The session state follows what the client holds from the server's answers (session-state.ts).
   */
  private forwardExtended(code: number, buf: Buffer, start: number, end: number, p: Pending, recordExecuted = true): void {
    switch (code) {
      case Frontend.Parse: {
        // A Parse of a name the client holds must fail as it would without the cache: with 42P05.
        const name = buf.toString('utf8', start + 5, buf.indexOf(0, start + 5));
        if (name !== '') this.ensureUpstreamHas(name, p);
        break;
      }
      case Frontend.Bind: {
        const portalEnd = buf.indexOf(0, start + 5);
        const stmtEnd = buf.indexOf(0, portalEnd + 1);
        const stmt = buf.toString('utf8', portalEnd + 1, stmtEnd);
        this.ensureUpstreamHas(stmt, p);
        const cs = this.state.client.get(stmt);
        const portal = buf.toString('utf8', start + 5, portalEnd);
        if (cs !== undefined) this.portals.set(portal, this.cache!.info(cs.text));
        else this.portals.delete(portal);
        break;
      }
      case Frontend.Describe:
        if (buf[start + 5] === 0x53) this.ensureUpstreamHas(readCString(buf, start + 6, end), p);
        break;
      case Frontend.Execute: {
        const info = this.portals.get(readCString(buf, start + 5, end));
        // An Execute of a portal the proxy cannot attribute may write anything (null).
        if (recordExecuted) p.executed.push(info ?? null);
        break;
      }
    }
    this.forward(code, buf, start, end);
  }

  private ensureUpstreamHas(name: string, p: Pending): void {
    const cs = this.state.client.get(name);
    if (cs === undefined) return; // the server answers for a statement nobody prepared
    const upstream = this.state.upstreamStatement(name);
    if (upstream === cs.sig) return;
    if (name !== '' && upstream !== null) {
      this.inject(closeStatementMessage(name));
      p.swallowClose++;
    }
    this.inject(parseMessage(name, cs.sig));
    p.swallowParse++;
  }

  // ---------------------------------------------------------------- upstream -> client

  /** Routes one chunk from the server: relays, captures and swallows per message. */
  upstreamChunk(chunk: Buffer, scanner: { feed(chunk: Buffer, sink: BackendSink): void }): void {
    this.replies.begin(chunk);
    scanner.feed(chunk, this.sink);
    this.replies.end();
    this.finishFills();
    // The identity check is back and nothing was sent after it: the parked request goes on.
    if (this.parked !== null && this.checking === null) this.unpark();
  }

  private readonly sink: BackendSink = {
    begin: (code, pos) => {
      const head = this.queue[0];
      let route = Route.Forward;
      let target: Pending | null = null;
      let want = WATCHED[code] === 1;
      if (head !== undefined && head.kind === Kind.Probe && code !== Backend.ParameterStatus && code !== Backend.NotificationResponse) {
        // All of the probe's reply, its notices included (a session at client_min_messages = debug
        // would see its transaction start and end).
        route = Route.Drop;
        want = true;
      } else if (head !== undefined && !ASYNC[code]) {
        if (code === Backend.ParseComplete && head.swallowParse > 0) {
          head.swallowParse--;
          route = Route.Drop;
        } else if (code === Backend.CloseComplete && head.swallowClose > 0) {
          head.swallowClose--;
          route = Route.Drop;
        } else if (code === Backend.ParseComplete && head.skipParse > 0) {
          head.skipParse--;
        } else if (head.kind === Kind.Fill && !head.poisoned) {
          route = Route.Capture;
          target = head;
        }
      } else if (head !== undefined && head.kind === Kind.Fill) {
        head.poisoned = true; // a notification or notice is not part of a reusable result
      }
      this.replies.switchTo(route, target, pos);
      return want;
    },
    message: (code, buf, start, end) => {
      this.state.onBackend(code, buf, start, end);
      const head = this.queue[0];
      switch (code) {
        case Backend.ReadyForQuery:
          this.onReady();
          return;
        case Backend.ErrorResponse:
          if (head !== undefined) head.errored = true;
          if (head !== undefined && head.kind === Kind.Probe) head.probeError = errorCodeOf(buf, start, end);
          if (!this.state.ready) this.io.loginRefused(errorMessageOf(buf, start, end));
          return;
        case Backend.CommandComplete:
          if (head !== undefined) this.onCommandComplete(head, buf, start, end);
          return;
        case Backend.DataRow:
          if (head !== undefined && head.kind === Kind.Probe) head.probeRow = decodeTextRow(buf, start, end);
          return;
        case Backend.ParameterStatus:
          // A setting changed: the context must be read again before the next cached read. A
          // server may repeat values it reported at login (PGlite does at its first query): no change.
          if (this.state.ready && this.state.parameterChanged) this.sessionChanged();
          if (equalsName(buf, start, 'standard_conforming_strings') && this.state.parameters.get('standard_conforming_strings') !== 'on') {
            this.unanalysable = true;
          }
          return;
      }
    },
  };

  private onCommandComplete(head: Pending, buf: Buffer, start: number, end: number): void {
    head.completes++;
    // ROLLBACK TO SAVEPOINT has the same tag: only a statement that ends the block counts.
    const ends = head.executed.length === 1 && endsBlock(head.executed[0]!);
    if (ends && end - start === 9 && startsWithAscii(buf, start, end, 'ROLLBACK')) head.rolledBack = true;
    // A single statement sent while idle has committed when its CommandComplete is sent:
    // invalidate now, before this acknowledgement reaches the client.
    if (head.autocommit && !head.invalidated && this.cache !== null) {
      this.invalidate(head.executed);
      head.invalidated = true;
    }
  }

  private sessionChanged(): void {
    this.ctxStale = true;
    this.pristine = false;
  }

  private onReady(): void {
    if (this.ctx === null && this.cache !== null && !this.unanalysable) this.adoptStartupContext(this.cache);
    const p = this.queue.shift();
    if (this.state.txStatus === TxStatus.Idle) this.portals.clear();
    this.trackReadOnlyBlock(p);
    if (p === undefined || this.cache === null) return;
    const cache = this.cache;
    if (p === this.checking) {
      this.onCheckDone(p);
      return;
    }
    if (p.kind === Kind.Probe) {
      this.onProbeDone(p);
      return;
    }
    // What ran may have changed the session (settings, role, temporary tables), user functions included.
    for (const info of p.executed) if (this.mayChangeSession(info)) this.sessionChanged();
    // An autocommit statement's writes were invalidated at its CommandComplete already.
    if (!p.invalidated) {
      if (this.state.txStatus !== TxStatus.Idle) this.collectWrites(p.executed);
      else if (p.rolledBack) this.clearPendingWrites();
      else this.invalidate(p.executed);
    }
    const seconds = (performance.now() - p.startedAt) / 1000;
    const info = p.info;
    // A fill sent before the probe's verdict is a bypass when the verdict was "not cacheable".
    const verdict = p.kind === Kind.Fill && this.ctx !== null ? cache.decision(this.ctx, info!) : undefined;
    if (p.kind === Kind.Fill && verdict !== undefined && !verdict.cacheable) {
      cache.stats.bypass(info!.identity, verdict.reason ?? 'not-cacheable', seconds, this.io);
    } else if (p.kind === Kind.Fill || p.inBlock) {
      if (p.kind === Kind.Fill) this.finished.push(p);
      cache.stats.miss(info!.identity, seconds, this.io);
    } else if (info !== null && (info.writes.length > 0 || info.writesUnlisted)) {
      cache.stats.write(info.identity, seconds, this.io);
    } else {
      cache.stats.bypass(info?.identity ?? null, p.bypassReason, seconds, this.io);
    }
  }

  /** Stores the results of fills whose reply is complete (called once their bytes are routed). */
  private finishFills(): void {
    if (this.finished.length === 0) return;
    const cache = this.cache!;
    for (const p of this.finished) {
      const info = p.info!;
      const ctx = this.ctx;
      // A fill inside a read-only block is kept only while the block still is one (planInBlock).
      const ok = !p.poisoned && !p.errored && p.completes === 1 && ctx !== null && !this.ctxStale && this.verified
        && (p.inBlock ? this.readOnlyBlock : this.state.txStatus === TxStatus.Idle);
      const d = ok && (!p.inBlock || readyAsIdle(p.parts)) ? cache.decision(ctx, info) : undefined;
      if (d !== undefined && d.cacheable) {
        // A cache rule may give this statement its own TTL or a smaller entry limit.
        const rule = cache.rule(info);
        cache.store.setParts(ctx!.keyPrefix + p.keySuffix, p.parts, p.size, { identity: info.identity },
          { token: p.token as FillToken, tags: d.tags, ttlMs: rule.ttlMs }, rule.maxEntryBytes);
      }
      p.parts = [];
    }
    this.finished = [];
  }

  private onProbeDone(p: Pending): void {
    const cache = this.cache!;
    if (p.errored && probeFailureIsPassing(p.probeError)) {
      // Cancelled (the client's cancel request met the probe), a lock, resources: try again later,
      // after twice as many statements as the last time. Said once per run of failures.
      if (this.probeFailures === 0) {
        this.log.warn({ database: this.database, sqlstate: p.probeError }, 'pg: cache probe failed; it is tried again later');
      }
      this.probeFailures++;
      this.probeBackoff = Math.min(2 ** this.probeFailures, MAX_PROBE_BACKOFF);
      return;
    }
    if (p.errored || p.probeRow === null) {
      this.log.warn({ database: this.database, sqlstate: p.probeError }, 'pg: cache probe failed; caching off for this session');
      this.unanalysable = true;
      return;
    }
    this.probeFailures = 0;
    let result: ProbeResult;
    try {
      result = readProbeRow(p.probeRow);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'pg: unreadable cache probe reply; caching off for this session');
      this.unanalysable = true;
      return;
    }
    this.lastProbe = result;
    this.ctx = cache.context(result, this.identity());
    this.ctxStale = this.ctx === null;
    // What a session learns counts for the others only while its server is the known one.
    const verified = this.verified;
    this.ctxEpoch = verified ? this.serverEpoch : -1;
    if (this.ctx !== null && verified) cache.decide(this.ctx, p.probeFor!, result, p.probeGeneration);
    if (this.pristine && verified) cache.rememberStartup(this.startupKey + '\u0000' + this.reportedParameters(), result);
  }

  /**
   * The identity check's reply: the cache drops everything when this is another server than its
   * entries came from, and the session may use the cache from now on.
   */
  private onCheckDone(p: Pending): void {
    const cache = this.cache!;
    this.checking = null;
    const seen = identityOf(p.errored, p.probeRow, readPgIdentity);
    if (seen instanceof IdentityError) {
      this.log.warn({ database: this.database, err: seen.message }, 'pg: cannot identify the upstream server; caching off for this session');
      this.unidentified = true;
      return;
    }
    const dropped = cache.serverSeen(seen);
    if (dropped !== null) this.log.warn({ dropped }, 'pg: the upstream server changed (restart, failover or restore); cached results dropped');
    this.serverEpoch = cache.serverEpoch;
    // A context learned under another server's epoch (adopted at login) is read again.
    if (this.ctxEpoch !== this.serverEpoch) this.ctxStale = true;
  }

  /**
   * Follows whether the transaction block is known read-only. The server's status says a block
   * began (I to T) with a request that ran BEGIN / START TRANSACTION ... READ ONLY first (alone in
   * its text) and plain reads after it, if anything. It stays known read-only while only plain
   * reads run: anything else ends it (PostgreSQL accepts SET TRANSACTION READ WRITE until the
   * block's first query, which a hit never was), and so does an error ('E') or the block's end.
   * `default_transaction_read_only` and SET TRANSACTION READ ONLY are not followed.
   */
  private trackReadOnlyBlock(p: Pending | undefined): void {
    if (this.state.txStatus !== TxStatus.InTransaction || p === undefined || p.kind === Kind.Probe) {
      this.readOnlyBlock = false;
    } else if (this.state.previousTxStatus === TxStatus.Idle) {
      const first = p.executed[0];
      this.readOnlyBlock = first != null && first.analysis.statements.length === 1 && first.analysis.statements[0]!.readOnly === true
        && p.executed.every((info, i) => i === 0 || keepsReadOnly(info));
      // A simple Query of the BEGIN alone, nothing sent after it: no snapshot was taken yet.
      this.blockSnapshotFree = this.readOnlyBlock && p.autocommit && p.executed.length === 1 && this.queue.length === 0 && this.open === null;
    } else if (this.readOnlyBlock) {
      this.readOnlyBlock = p.executed.every(keepsReadOnly);
    }
  }

  /** At login: the context a session with the same startup was found in, if one was probed. */
  private adoptStartupContext(cache: PgCache): void {
    const probe = cache.startupProbe(this.startupKey + '\u0000' + this.reportedParameters(), this.database);
    if (probe === undefined) return;
    this.lastProbe = probe;
    this.ctx = cache.context(probe, this.identity());
    this.ctxStale = this.ctx === null;
    this.ctxEpoch = cache.serverEpoch;
  }

  private identity(): SessionIdentity {
    return { id: this.id, reported: this.reportedParameters(), startupKey: this.startupKey, ownContext: this.ownContext };
  }

  private reportedParameters(): string {
    return KEYED_PARAMETERS.map((k) => this.state.parameters.get(k) ?? '').join('\u0000');
  }

  /** The writes of statements executed in a transaction block, kept until it ends. */
  private collectWrites(executed: readonly (StatementInfo | null)[]): void {
    for (const info of executed) {
      if (info === null || info.writesUnlisted) this.pendingCatalog = true;
      if (info !== null && info.writesServer) this.pendingScope = WriteScope.Server;
      else if (this.writesWide(info)) {
        if (this.pendingScope === WriteScope.Tables) this.pendingScope = WriteScope.Database;
      } else {
        for (const t of info!.writes) this.pendingWrites.add(t);
      }
    }
  }

  private invalidate(executed: readonly (StatementInfo | null)[]): void {
    this.collectWrites(executed);
    const db = this.currentDatabase;
    if (this.pendingScope !== WriteScope.Tables || this.pendingWrites.size > 0) this.cache!.invalidate(db, this.pendingWrites, this.pendingScope, this.pendingCatalog);
    this.clearPendingWrites();
  }

  /** Remembers custom settings the session sets, so the probe reads them (they may drive RLS policies). */
  private noteSettings(info: StatementInfo): void {
    for (const change of info.analysis.sessionChanges) {
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
    const d = this.ctx !== null ? this.cache!.decision(this.ctx, info) : undefined;
    return d !== undefined ? !d.functionsBuiltin : info.callsFunctions;
  }

  private get currentDatabase(): string {
    return this.ctx?.database ?? this.lastProbe?.database ?? this.database;
  }

  private clearPendingWrites(): void {
    this.pendingWrites.clear();
    this.pendingScope = WriteScope.Tables;
    this.pendingCatalog = false;
  }

  private writesWide(info: StatementInfo | null): boolean {
    if (info === null || info.writesUnlisted || this.unanalysable) return true;
    for (const t of info.writes) if (this.cache!.writeFansOut(this.currentDatabase, t)) return true;
    // A function that is not built in may write anything; the probe said which are.
    return this.callsUserFunctions(info);
  }
}

const WATCHED = new Uint8Array(256);
for (const c of [Backend.ReadyForQuery, Backend.ParameterStatus, Backend.BackendKeyData, Backend.ParseComplete,
  Backend.CloseComplete, Backend.ErrorResponse, Backend.CommandComplete]) WATCHED[c] = 1;
/** Messages the server may send at any time, outside any request's reply. */
const ASYNC = new Uint8Array(256);
for (const c of [Backend.NotificationResponse, Backend.NoticeResponse, Backend.ParameterStatus]) ASYNC[c] = 1;

/** A statement that can neither write nor change the block's access mode: a plain read. */
function keepsReadOnly(info: StatementInfo | null): boolean {
  return info !== null && info.analysis.kind === 'read' && info.writes.length === 0 && !info.writesUnlisted && !info.changesSession;
}

function endsBlock(info: StatementInfo | null): boolean {
  const t = info?.analysis.statements[0]?.transaction;
  return t === 'commit' || t === 'rollback';
}
