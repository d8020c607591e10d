// What the session knows about its server connection, learned only from the messages that pass:
// transaction status, parameter statuses, the backend key, the prepared statements the server holds
// and those its client believes it holds, and how many requests still await ReadyForQuery. The
// cache decides from these facts.
import { Backend, Frontend } from './codes.js';
import { readCString } from './messages.js';

export const enum TxStatus {
  Idle = 0x49, // I
  InTransaction = 0x54, // T
  Failed = 0x45, // E
}

/** Requests whose replies change what the session knows, in the order the server answers them. */
const enum Expect {
  ParseComplete = 1,
  CloseComplete = 2,
  /** Sync, or a simple Query / FunctionCall: ends with ReadyForQuery. */
  Ready = 3,
  /**
   * A request the cache answers behind outstanding ones (its Parse, or a Query destroying the
   * unnamed statement): the server never sees it, so no reply comes; the client holds what it
   * made once the requests before it are answered.
   */
  Answered = 4,
}

/** A prepared statement as the client sees it: its text, and its text and types as one comparable string. */
export interface ClientStatement {
  text: string;
  sig: string;
}

/** Statements by name. */
export interface StatementLookup {
  get(name: string): ClientStatement | undefined;
}

/** Who sent a frontend message: the client, or the proxy on its own account (a probe, a replayed Parse). */
export type Sender = 'client' | 'proxy';

export interface BackendKey {
  pid: number;
  secret: Buffer;
}

export class PgSessionState {
  txStatus: TxStatus = TxStatus.Idle;
  /** The status before the latest ReadyForQuery: the one the request it answered started in. */
  previousTxStatus: TxStatus = TxStatus.Idle;
  readonly parameters = new Map<string, string>();
  /** The latest ParameterStatus gave a parameter a new value (a repeat of the known one is no change). */
  parameterChanged = false;
  /** Bumped by each ParameterStatus that changes a value: what was derived from `parameters` is still good while it stays. */
  parametersVersion = 0;
  backendKey: BackendKey | null = null;
  /**
   * Prepared statements the server holds for this session (protocol-level Parse): name -> the
   * Parse's text and parameter types as one string, so a client's view can be compared with it.
   */
  readonly statements = new Map<string, string>();
  /** The unnamed statement's text and types, null when the server holds none. */
  unnamed: string | null = null;
  /** Client requests (Sync, Query, FunctionCall) still waiting for their ReadyForQuery. */
  awaitingReady = 0;
  /** Set by the first ReadyForQuery: authentication is over. */
  ready = false;
  /**
   * The statements the client believes it holds: those the server acknowledged to it and those the
   * cache answered a Parse for (the server may lack them), then the client's Parse and Close
   * requests not answered yet, as if they will succeed. A Parse the server refuses or skips
   * (an error earlier in its batch) never counts, just as the client's own Parse did not happen.
   */
  readonly client: StatementLookup = { get: (name) => this.clientStatement(name) };
  /** The client's statements whose requests were answered (the base under the pending ones). */
  private readonly clientHeld = new Map<string, ClientStatement>();

  // Parallel queues of expected replies: what and, for Parse/Close, which statement (for a
  // Query's ReadyForQuery: '', the unnamed statement it destroys), the Parse's signature, and for
  // a client's request what the client then holds under that name (null: nothing; undefined: the
  // proxy's own request, which the client knows nothing of).
  private expectKinds: Expect[] = [];
  private expectNames: (string | null)[] = [];
  private expectSigs: (string | null)[] = [];
  private expectClient: (ClientStatement | null | undefined)[] = [];

  /** Records a whole frontend message buf[start, end) (header included) as it goes upstream. */
  onFrontend(code: number, buf: Buffer, start: number, end: number, sender: Sender): void {
    const fromClient = sender === 'client';
    switch (code) {
      case Frontend.Parse: {
        const nameEnd = buf.indexOf(0, start + 5);
        const sig = statementSignature(buf, nameEnd + 1, end);
        this.expect(Expect.ParseComplete, buf.toString('utf8', start + 5, nameEnd), sig,
          fromClient ? { text: readCString(buf, nameEnd + 1, end), sig } : undefined);
        break;
      }
      case Frontend.Close: {
        // Only statements matter; a closed portal changes nothing the session tracks.
        const statement = buf[start + 5] === 0x53;
        this.expect(Expect.CloseComplete, statement ? readCString(buf, start + 6, end) : null, null, statement && fromClient ? null : undefined);
        break;
      }
      case Frontend.Query:
        // A simple Query destroys the unnamed statement.
        this.expect(Expect.Ready, '', null, fromClient ? null : undefined);
        this.awaitingReady++;
        break;
      case Frontend.Sync:
      case Frontend.FunctionCall:
        this.expect(Expect.Ready, null, null, undefined);
        this.awaitingReady++;
        break;
    }
  }

  /** The cache answered the client's Parse itself (ParseComplete faked): the server lacks the statement. */
  answeredParse(name: string, statement: ClientStatement): void {
    this.answered(name, statement);
  }

  /** The cache answered the client's simple Query itself: the Query destroyed its unnamed statement. */
  answeredQuery(): void {
    this.answered('', null);
  }

  /**
   * What the client holds under `name` after a request the cache answered: now, or, behind
   * requests still outstanding, in its place in their order (a later lookup sees it, an earlier
   * request's reply does not undo it).
   */
  private answered(name: string, client: ClientStatement | null): void {
    if (this.expectKinds.length === 0) {
      if (client === null) this.clientHeld.delete(name);
      else this.clientHeld.set(name, client);
    } else {
      this.expect(Expect.Answered, name, null, client);
    }
  }

  /** Records a watched server message; body is buf[start, end). */
  onBackend(code: number, buf: Buffer, start: number, end: number): void {
    switch (code) {
      case Backend.ReadyForQuery:
        this.previousTxStatus = this.txStatus;
        this.txStatus = buf[start] as TxStatus;
        this.ready = true;
        this.completeUntilReady();
        break;
      case Backend.ParameterStatus: {
        const nameEnd = buf.indexOf(0, start);
        if (nameEnd < 0 || nameEnd >= end) break;
        const name = buf.toString('utf8', start, nameEnd);
        const value = readCString(buf, nameEnd + 1, end);
        this.parameterChanged = this.parameters.get(name) !== value;
        if (this.parameterChanged) this.parametersVersion++;
        this.parameters.set(name, value);
        break;
      }
      case Backend.BackendKeyData:
        if (end - start >= 8) this.backendKey = { pid: buf.readInt32BE(start), secret: Buffer.from(buf.subarray(start + 4, end)) };
        break;
      case Backend.ParseComplete:
        if (this.expectKinds[0] === Expect.ParseComplete) this.apply();
        break;
      case Backend.CloseComplete:
        if (this.expectKinds[0] === Expect.CloseComplete) this.apply();
        break;
      case Backend.ErrorResponse:
        this.onError();
        break;
      case Backend.CommandComplete:
        if (end - start < 11 || buf[start] !== 0x44) break;
        // DEALLOCATE ALL and DISCARD ALL drop every prepared statement of the session. Which one
        // a DEALLOCATE of one name dropped the tag does not say: the client's view forgets them all.
        if (equalsAscii(buf, start, end, 'DEALLOCATE ALL') || equalsAscii(buf, start, end, 'DISCARD ALL')) {
          this.statements.clear();
          this.unnamed = null;
          this.clientHeld.clear();
        } else if (equalsAscii(buf, start, end, 'DEALLOCATE')) {
          this.clientHeld.clear();
        }
        break;
    }
  }

  /**
   * What the server will hold under `name` once every request sent has been processed, as far as
   * they succeed: the text and types of its statement, or null for none.
   */
  upstreamStatement(name: string): string | null {
    const i = this.latestChange(name);
    if (i >= 0) return this.expectSigs[i]!;
    return name === '' ? this.unnamed : this.statements.get(name) ?? null;
  }

  /**
   * Is upstreamStatement(name) sure, whatever becomes of the requests sent before the one being
   * sent? The latest change of `name` sent decides: one in the request being sent is (an error
   * before it skips what follows it too), and so is the client's own in an earlier request (its
   * outcome is the client's to see, as it would be without the proxy); the proxy's own in an
   * earlier request is not: an error before it there, and the server skipped it. With none sent,
   * what the server acknowledged is.
   */
  upstreamSure(name: string): boolean {
    const i = this.latestChange(name);
    return i < 0 || this.expectClient[i] !== undefined || this.expectKinds.indexOf(Expect.Ready, i + 1) < 0;
  }

  /** The place in the expected replies of the latest change of `name` sent to the server, or -1. */
  private latestChange(name: string): number {
    for (let i = this.expectKinds.length - 1; i >= 0; i--) {
      if (this.expectNames[i] === name && this.expectKinds[i] !== Expect.Answered) return i;
    }
    return -1;
  }

  private clientStatement(name: string): ClientStatement | undefined {
    for (let i = this.expectClient.length - 1; i >= 0; i--) {
      const view = this.expectClient[i];
      if (view !== undefined && this.expectNames[i] === name) return view ?? undefined;
    }
    return this.clientHeld.get(name);
  }

  private expect(kind: Expect, name: string | null, sig: string | null, client: ClientStatement | null | undefined): void {
    this.expectKinds.push(kind);
    this.expectNames.push(name);
    this.expectSigs.push(sig);
    this.expectClient.push(client);
  }

  /** The head request was carried out: the server (and, for the client's own, the client) holds what it made. */
  private apply(): void {
    const name = this.expectNames[0];
    const sig = this.expectSigs[0] ?? null;
    const client = this.expectClient[0];
    this.take();
    if (name === null || name === undefined) return;
    if (name === '') this.unnamed = sig;
    else if (sig !== null) this.statements.set(name, sig);
    else this.statements.delete(name);
    if (client === undefined) return;
    if (client === null) this.clientHeld.delete(name);
    else this.clientHeld.set(name, client);
  }

  /**
   * The head request was never carried out: a Parse or Close skipped after an error, or refused
   * (a Parse's own error). Neither side holds anything new; but a failing Parse of the unnamed
   * statement has dropped the one before it, and which of the two happened the error does not
   * say, so neither side is taken to hold an unnamed statement (the server's is parsed again
   * before it is needed).
   */
  private skip(): void {
    if (this.expectKinds[0] === Expect.ParseComplete && this.expectNames[0] === '') {
      this.unnamed = null;
      if (this.expectClient[0] !== undefined) this.clientHeld.delete('');
    }
    this.take();
  }

  private take(): void {
    this.expectKinds.shift();
    this.expectNames.shift();
    this.expectSigs.shift();
    this.expectClient.shift();
  }

  /** Requests the cache answered whose turn has come: the client holds what they made. */
  private applyAnswered(): void {
    while (this.expectKinds[0] === Expect.Answered) {
      const name = this.expectNames[0]!;
      const client = this.expectClient[0];
      this.take();
      if (client === null || client === undefined) this.clientHeld.delete(name);
      else this.clientHeld.set(name, client);
    }
  }

  /**
   * In the extended protocol an error makes the server skip every message up to Sync, so the
   * Parse and Close requests queued before that Sync will never be answered.
   */
  private onError(): void {
    while (this.expectKinds.length > 0 && this.expectKinds[0] !== Expect.Ready) this.skip();
  }

  private completeUntilReady(): void {
    while (this.expectKinds.length > 0) {
      if (this.expectKinds[0] === Expect.Ready) {
        // A Query's ReadyForQuery: it destroyed the unnamed statement.
        this.apply();
        break;
      }
      this.skip();
    }
    this.applyAnswered();
    if (this.awaitingReady > 0) this.awaitingReady--;
  }
}

/**
 * A Parse message's text and parameter types (bytes [start, end) after the statement name) as one
 * comparable string: two Parses with equal signatures create the same statement.
 */
export function statementSignature(buf: Buffer, start: number, end: number): string {
  return buf.toString('latin1', start, end);
}

function equalsAscii(buf: Buffer, start: number, end: number, text: string): boolean {
  // CommandComplete's tag is NUL-terminated.
  if (end - start !== text.length + 1) return false;
  for (let i = 0; i < text.length; i++) if (buf[start + i] !== text.charCodeAt(i)) return false;
  return true;
}
