// The extended-protocol side of a PostgreSQL relay: messages held until their Sync (so the cache
// can answer the batch whole), the request relayed message by message once it cannot wait (after
// a Flush), and the Parses the server is missing replayed in front of the messages that need them
// (the cache answered the client's Parse itself, so the server never saw it). The session state
// follows what the client holds from the server's answers (session-state.ts).
import type { Held } from './cacheable-batch.js';
import { ownClose, ownParse, type PgRequest } from './cache-session.js';
import { Frontend } from './codes.js';
import {
  bindPortal, bindStatement, closeStatementMessage, describedStatement, executePortal, parseMessage, parseStatementName, parseText,
} from './messages.js';
import type { PgCache, StatementInfo } from './pg-cache.js';
import type { PgSessionState } from './session-state.js';

/** Extended-protocol messages collected until Sync before anything is decided; beyond, relay. */
const MAX_HELD_MESSAGES = 64;

/** What the replay needs of its relay. */
export interface ReplayHost {
  /** Relays a client message (in the current run of the chunk). */
  forward(code: number, buf: Buffer, start: number, end: number): void;
  /** Sends a message of the proxy's own, after what was gathered so far. */
  inject(message: Buffer): void;
  /** Queues the request relayed message by message, from the messages held before it (not answered: 'pipelined'). */
  request(held: readonly Held[]): PgRequest;
}

export class StatementReplay {
  /** The request being relayed message by message (after a Flush), until its Sync. */
  open: PgRequest | null = null;
  private held: Held[] = [];
  /** Portal -> statement bound to it, for Execute without a Bind in the same batch. */
  readonly portals = new Map<string, StatementInfo>();

  constructor(
    private readonly state: PgSessionState,
    private readonly cache: PgCache | null,
    private readonly host: ReplayHost,
  ) {}

  /** Extended messages are held or open: a Query or FunctionCall now shares their ReadyForQuery. */
  get pending(): boolean {
    return this.held.length > 0 || this.open !== null;
  }

  get holding(): boolean {
    return this.held.length > 0;
  }

  /** The messages held since the last Sync or Flush, left in place. */
  get heldMessages(): readonly Held[] {
    return this.held;
  }

  /** Parse, Bind, Describe, Execute or Close: held for the batch's Sync, or relayed now. */
  extendedMessage(code: number, buf: Buffer, start: number, end: number): void {
    if (this.open === null && this.held.length < MAX_HELD_MESSAGES) {
      this.held.push({ code, buf, start, end });
      return;
    }
    this.releaseHeld();
    this.forwardExtended(code, buf, start, end, this.open!);
  }

  /** The batch held until its Sync, for the relay to decide on. */
  takeHeld(): Held[] {
    const batch = this.held;
    this.held = [];
    return batch;
  }

  /**
   * The end of a client chunk. A client that sent no Sync may be waiting for a reply the server
   * sends without one (CopyInResponse after an Execute of COPY FROM STDIN), so held messages go
   * now unless they begin a read the cache may answer: for a SELECT the protocol promises nothing
   * before Sync or Flush, so waiting for the rest of its batch cannot stall the client.
   */
  endOfChunk(): void {
    if (this.held.length === 0) return;
    if (!this.heldMayBeCached()) {
      this.releaseHeld();
      return;
    }
    // Kept past this read: copy out of the session's reused read buffer.
    for (const m of this.held) {
      m.buf = Buffer.from(m.buf.subarray(m.start, m.end));
      m.end -= m.start;
      m.start = 0;
    }
  }

  /**
   * Every statement held is a read the cache may answer (a Sync group may hold several): a COPY
   * after a SELECT must not wait for a Sync its client will not send before CopyInResponse.
   */
  private heldMayBeCached(): boolean {
    const first = this.held[0]!;
    if (this.cache === null || (first.code !== Frontend.Parse && first.code !== Frontend.Bind)) return false;
    for (const m of this.held) {
      if (m.code !== Frontend.Parse && m.code !== Frontend.Bind) continue;
      // A statement parsed in the batch was checked at its Parse.
      const name = m.code === Frontend.Bind ? bindStatement(m.buf, m.start) : null;
      const text = name === null ? parseText(m.buf, m.start, m.end) : this.heldParseText(name) ?? this.state.client.get(name)?.text;
      if (text === undefined || !this.cache.info(text).readCacheable) return false;
    }
    return true;
  }

  /** The text of the last held Parse of statement `name`, if any. */
  private heldParseText(name: string): string | undefined {
    for (let i = this.held.length - 1; i >= 0; i--) {
      const m = this.held[i]!;
      if (m.code === Frontend.Parse && parseStatementName(m.buf, m.start) === name) return parseText(m.buf, m.start, m.end);
    }
    return undefined;
  }

  /** Relays held messages now (a Flush or another message that cannot wait for the Sync). */
  releaseHeld(): void {
    if (this.held.length === 0) return;
    const batch = this.takeHeld();
    this.open ??= this.host.request(batch);
    this.relayBatch(batch, this.open, true);
  }

  /** Ends the request relayed message by message; its ReadyForQuery comes next. */
  finishOpen(): PgRequest {
    this.releaseHeld();
    const p = this.open!;
    this.open = null;
    return p;
  }

  /** `recordExecuted`: Executes count as statements `p` ran (not when the relay recorded the batch's statement). */
  relayBatch(batch: readonly Held[], p: PgRequest, recordExecuted: boolean): void {
    for (const m of batch) this.forwardExtended(m.code, m.buf, m.start, m.end, p, recordExecuted);
  }

  /**
   * Relays one extended-protocol message, first replaying the Parse the server is missing when
   * the message refers to a statement the cache answered for.
   */
  private forwardExtended(code: number, buf: Buffer, start: number, end: number, p: PgRequest, recordExecuted = true): void {
    switch (code) {
      case Frontend.Parse: {
        // A Parse of a name the client holds must fail as it would without the cache: with 42P05.
        const name = parseStatementName(buf, start);
        if (name !== '') this.ensureUpstreamHas(name, p);
        p.parsesSent++;
        break;
      }
      case Frontend.Close:
        p.closesSent++;
        break;
      case Frontend.Bind: {
        const stmt = bindStatement(buf, start);
        this.ensureUpstreamHas(stmt, p);
        const cs = this.state.client.get(stmt);
        const portal = bindPortal(buf, start);
        if (cs !== undefined) this.portals.set(portal, this.cache!.info(cs.text));
        else this.portals.delete(portal);
        break;
      }
      case Frontend.Describe: {
        const stmt = describedStatement(buf, start, end);
        if (stmt !== null) this.ensureUpstreamHas(stmt, p);
        break;
      }
      case Frontend.Execute:
        // An Execute of a portal the proxy cannot attribute may write anything (null).
        if (recordExecuted) p.executed.push(this.portals.get(executePortal(buf, start, end)) ?? null);
        break;
    }
    this.host.forward(code, buf, start, end);
  }

  private ensureUpstreamHas(name: string, p: PgRequest): void {
    const cs = this.state.client.get(name);
    if (cs === undefined) return; // the server answers for a statement nobody prepared
    const upstream = this.state.upstreamStatement(name);
    if (upstream === cs.sig && this.state.upstreamSure(name)) return;
    // The server holds another statement under the name, or may (an error in an earlier request
    // skipped the proxy's Parse or Close): a Close first, which is no error for a name it lacks.
    if (name !== '' && (upstream !== null || !this.state.upstreamSure(name))) {
      this.host.inject(closeStatementMessage(name));
      ownClose(p);
    }
    this.host.inject(parseMessage(name, cs.sig));
    ownParse(p);
  }
}
