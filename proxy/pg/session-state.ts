// What the session knows about its server connection, learned only from the messages that pass:
// transaction status, parameter statuses, the backend key, the prepared statements the server holds,
// and how many requests still await ReadyForQuery. The cache decides from these facts.
import { Backend, Frontend } from './codes.js';

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
}

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

  // Parallel queues of expected replies: what and, for Parse/Close, which statement.
  private expectKinds: Expect[] = [];
  private expectNames: (string | null)[] = [];
  private expectSigs: (string | null)[] = [];

  /** Records a whole client message buf[start, end) (header included) as it goes upstream. */
  onFrontend(code: number, buf: Buffer, start: number, end: number): void {
    switch (code) {
      case Frontend.Parse: {
        const nameEnd = buf.indexOf(0, start + 5);
        this.expect(Expect.ParseComplete, buf.toString('utf8', start + 5, nameEnd), statementSignature(buf, nameEnd + 1, end));
        break;
      }
      case Frontend.Close:
        // Only statements matter; a closed portal changes nothing the session tracks.
        this.expect(Expect.CloseComplete, buf[start + 5] === 0x53 ? readCString(buf, start + 6, end) : null, null);
        break;
      case Frontend.Query:
        // A simple Query destroys the unnamed statement.
        this.unnamed = null;
        this.expect(Expect.Ready, null, null);
        this.awaitingReady++;
        break;
      case Frontend.Sync:
      case Frontend.FunctionCall:
        this.expect(Expect.Ready, null, null);
        this.awaitingReady++;
        break;
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
        this.parameters.set(name, value);
        break;
      }
      case Backend.BackendKeyData:
        if (end - start >= 8) this.backendKey = { pid: buf.readInt32BE(start), secret: Buffer.from(buf.subarray(start + 4, end)) };
        break;
      case Backend.ParseComplete: {
        if (this.expectKinds[0] !== Expect.ParseComplete) break;
        const sig = this.expectSigs[0]!;
        const name = this.take();
        if (name === '') this.unnamed = sig;
        else if (name !== null) this.statements.set(name, sig);
        break;
      }
      case Backend.CloseComplete: {
        if (this.expectKinds[0] !== Expect.CloseComplete) break;
        const name = this.take();
        if (name === '') this.unnamed = null;
        else if (name !== null) this.statements.delete(name);
        break;
      }
      case Backend.ErrorResponse:
        this.onError();
        break;
      case Backend.CommandComplete:
        // DEALLOCATE ALL and DISCARD ALL drop every prepared statement of the session.
        if (end - start >= 12 && buf[start] === 0x44 && (equalsAscii(buf, start, end, 'DEALLOCATE ALL') || equalsAscii(buf, start, end, 'DISCARD ALL'))) {
          this.statements.clear();
          this.unnamed = null;
        }
        break;
    }
  }

  /**
   * The text and types of the latest Parse of `name` sent but not yet answered, or undefined:
   * what the server will hold once it gets there.
   */
  pendingParse(name: string): string | undefined {
    for (let i = this.expectKinds.length - 1; i >= 0; i--) {
      if (this.expectKinds[i] === Expect.ParseComplete && this.expectNames[i] === name) return this.expectSigs[i]!;
    }
    return undefined;
  }

  private expect(kind: Expect, name: string | null, sig: string | null): void {
    this.expectKinds.push(kind);
    this.expectNames.push(name);
    this.expectSigs.push(sig);
  }

  private take(): string | null {
    this.expectKinds.shift();
    this.expectSigs.shift();
    return this.expectNames.shift() ?? null;
  }

  /**
   * In the extended protocol an error makes the server skip every message up to Sync, so the
   * Parse and Close requests queued before that Sync will never be answered.
   */
  private onError(): void {
    while (this.expectKinds.length > 0 && this.expectKinds[0] !== Expect.Ready) this.take();
  }

  private completeUntilReady(): void {
    while (this.expectKinds.length > 0) {
      const kind = this.expectKinds[0];
      this.take();
      if (kind === Expect.Ready) break;
    }
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

/** Reads a NUL-terminated string starting at `start`, not past `end`. */
export function readCString(buf: Buffer, start: number, end: number): string {
  let nul = buf.indexOf(0, start);
  if (nul < 0 || nul > end) nul = end;
  return buf.toString('utf8', start, nul);
}

function equalsAscii(buf: Buffer, start: number, end: number, text: string): boolean {
  // CommandComplete's tag is NUL-terminated.
  if (end - start !== text.length + 1) return false;
  for (let i = 0; i < text.length; i++) if (buf[start + i] !== text.charCodeAt(i)) return false;
  return true;
}
