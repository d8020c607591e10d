// Follows each command's reply just far enough to know where it ends and what it says about the
// session: OK/EOF status flags, result sets (column count, column definitions, rows, EOF or the OK
// that replaces it under CLIENT_DEPRECATE_EOF), more results after multi-statements and CALL,
// prepared-statement replies, LOCAL INFILE transfers and authentication exchanges. Pure: command
// and packet events in, MySqlSessionState updates out. Rows are never decoded.
//
// A reply is read in steps; the legal moves (see `afterPacket`):
//   Header            -> Columns (column count) | Infile (0xFB) | done or Header again (OK/EOF; more results) | done (ERR)
//   Columns           -> ColumnsEof | Rows (DEPRECATE_EOF)
//   ColumnsEof        -> Rows | done or Header (EOF with a cursor opened: no rows follow)
//   Rows              -> done or Header (EOF/OK; more results) | done (ERR)
//   Infile            -> Header (the client's empty packet ends the file)
//   PrepareHeader     -> PrepareParams | PrepareColumns | done
//   PrepareParams     -> PrepareParamsEof | PrepareColumns | done (DEPRECATE_EOF)
//   PrepareParamsEof  -> PrepareColumns | done
//   PrepareColumns    -> PrepareColumnsEof | done (DEPRECATE_EOF)
//   PrepareColumnsEof -> done
//   FieldList         -> done (EOF/OK or ERR)
//   Auth              -> done (OK or ERR); client and server take turns until then
//   Single            -> done (any one packet)
//   Raw               -> (never: the connection streams until it closes)
import { Command, Header, MAX_PACKET_PAYLOAD, PROGRESS_REPORT_ERROR_CODE, ServerStatus } from './codes.js';
import { MalformedPacketError, PayloadReader, commandText, payloadOf } from './packets.js';
import { decodeEof, decodeErr, decodeOk, isEofPacket, type ErrPacket } from './server-packets.js';
import type { ServerPacketSink } from './server-scanner.js';
import type { MySqlSessionState } from './session-state.js';

const enum Step {
  Header,
  /** Like Header, for commands answered by one OK, EOF or ERR (no result set, no LOCAL INFILE). */
  Simple,
  Columns,
  ColumnsEof,
  Rows,
  Infile,
  PrepareHeader,
  PrepareParams,
  PrepareParamsEof,
  PrepareColumns,
  PrepareColumnsEof,
  FieldList,
  Auth,
  Single,
  Raw,
}

/** What the packet being read is, decided from its first byte. */
const enum Packet {
  Ok,
  Eof,
  /** A 0xFE packet ending a result set: EOF, or an OK under CLIENT_DEPRECATE_EOF. */
  Terminator,
  Err,
  ColumnCount,
  PrepareOk,
  /** A column or parameter definition. */
  Definition,
  Row,
  Infile,
  /** Anything else: auth-more-data, auth switch, a statistics string, an unsolicited packet. */
  Other,
}

/** A command awaiting its reply, and what its success changes. */
interface Pending {
  command: number;
  first: Step;
  /** COM_INIT_DB: the database; COM_STMT_PREPARE: the SQL text; COM_QUERY: the text when `USE` must be watched. */
  text: string | null;
  /** COM_CHANGE_USER: the new login. */
  change: { user: string; database: string | null; charset: number | null } | null;
  /** A packet of the reply has been seen. */
  started: boolean;
}

/** The login's authentication exchange, queued like a command's reply. */
const LOGIN = -1;

/** What a client packet is, as the session must treat it. */
export type ClientPacketKind = 'command' | 'data' | 'no-reply';

export class ReplyTracker implements ServerPacketSink {
  private readonly queue: Pending[] = [];
  private step: Step = Step.Header;
  private packet: Packet = Packet.Other;
  private left = 0;
  private prepareColumns = 0;
  private preparedId = -1;
  private isProgress = false;
  /** The error that refused the login, once the server sent it. */
  loginError: ErrPacket | null = null;

  constructor(readonly state: MySqlSessionState) {}

  /** Replies still owed to the client (the login exchange counts as one). */
  get awaiting(): number {
    return this.queue.length;
  }

  /**
   * True where a packet of the proxy's own may be sent to the client without breaking a reply:
   * nothing is owed, the next reply has not started, or rows are streaming (an ERR may end them).
   */
  get canInterject(): boolean {
    const head = this.queue[0];
    return head === undefined || !head.started || this.step === Step.Rows;
  }

  /** The client is to send next: file content after a LOCAL INFILE request, or an auth answer. */
  get awaitingClient(): boolean {
    const head = this.queue[0];
    return head !== undefined && (this.step === Step.Infile || (this.step === Step.Auth && head.started));
  }

  /** The client's HandshakeResponse went upstream: the authentication exchange begins. */
  startLogin(): void {
    this.push({ command: LOGIN, first: Step.Auth, text: null, change: null, started: false });
  }

  /**
   * A whole client packet buf[start, end) (headers included) on its way upstream. Throws
   * MalformedPacketError for a command the server could not make sense of either.
   */
  clientPacket(buf: Buffer, start: number, end: number, payloadLength: number): ClientPacketKind {
    if (this.queue.length > 0 && (this.step === Step.Infile || this.step === Step.Auth)) {
      if (this.step === Step.Infile && payloadLength === 0) this.step = Step.Header;
      return 'data';
    }
    if (payloadLength === 0) throw new MalformedPacketError('empty command packet');
    const command = buf[start + 4]!;
    switch (command) {
      case Command.Quit:
      case Command.StmtSendLongData:
        return 'no-reply';
      case Command.StmtClose:
        if (payloadLength >= 5) this.state.statements.delete(buf.readUInt32LE(start + 5));
        return 'no-reply';
      case Command.Query:
        this.push(pending(command, Step.Header, this.state.sessionTrack ? null : commandText(buf, start, end)));
        break;
      case Command.StmtPrepare:
        this.push(pending(command, Step.PrepareHeader, commandText(buf, start, end)));
        break;
      case Command.InitDb:
        this.push(pending(command, Step.Simple, commandText(buf, start, end)));
        break;
      case Command.ChangeUser:
        this.push({ ...pending(command, Step.Auth, null), change: this.decodeChangeUser(payloadOf(buf, start, end)) });
        break;
      case Command.StmtFetch:
        this.push(pending(command, Step.Rows, null));
        break;
      case Command.FieldList:
        this.push(pending(command, Step.FieldList, null));
        break;
      case Command.Statistics:
        this.push(pending(command, Step.Single, null));
        break;
      case Command.BinlogDump:
      case Command.BinlogDumpGtid:
        this.push(pending(command, Step.Raw, null));
        break;
      case Command.Ping:
      case Command.ResetConnection:
      case Command.StmtReset:
      case Command.SetOption:
      case Command.Refresh:
      case Command.ProcessKill:
      case Command.Debug:
      case Command.Shutdown:
      case Command.CreateDb:
      case Command.DropDb:
      case Command.RegisterSlave:
        this.push(pending(command, Step.Simple, null));
        break;
      default:
        // COM_QUERY-like replies cover COM_STMT_EXECUTE, COM_STMT_BULK_EXECUTE, COM_PROCESS_INFO
        // and the ERR a server sends for a command it does not know.
        this.push(pending(command, Step.Header, null));
    }
    return 'command';
  }

  // ---- ServerPacketSink ----

  begin(first: number, _seq: number, length: number): boolean {
    const head = this.queue[0];
    this.isProgress = false;
    if (head === undefined) {
      // Unsolicited (e.g. the ERR a server sends before it closes an idle connection).
      this.packet = first === Header.Err ? Packet.Err : Packet.Other;
      return this.packet === Packet.Err;
    }
    head.started = true;
    this.packet = classify(this.step, first, length);
    switch (this.packet) {
      case Packet.Ok:
      case Packet.Eof:
      case Packet.Terminator:
      case Packet.Err:
      case Packet.ColumnCount:
      case Packet.PrepareOk:
        return true;
      default:
        return false;
    }
  }

  body(buf: Buffer, start: number, end: number): void {
    const state = this.state;
    try {
      switch (this.packet) {
        case Packet.Ok:
          state.onOk(decodeOk(buf, start, end, state.capabilities));
          break;
        case Packet.Eof:
          state.onEof(decodeEof(buf, start, end).status);
          break;
        case Packet.Terminator:
          if (state.deprecateEof && !isEofPacket(end - start)) state.onOk(decodeOk(buf, start, end, state.capabilities));
          else state.onEof(decodeEof(buf, start, end).status);
          break;
        case Packet.Err: {
          const err = decodeErr(buf, start, end);
          this.isProgress = err.code === PROGRESS_REPORT_ERROR_CODE && state.progressReports;
          if (this.queue[0]?.command === LOGIN && !this.isProgress) this.loginError = err;
          break;
        }
        case Packet.ColumnCount:
          this.left = new PayloadReader(buf, start, end).lenenc();
          break;
        case Packet.PrepareOk: {
          const r = new PayloadReader(buf, start + 1, end);
          this.preparedId = r.u32();
          this.prepareColumns = r.u16();
          this.left = r.u16();
          break;
        }
        default:
          break;
      }
    } catch (err) {
      // A server packet the decoder does not understand is relayed anyway; the facts it would
      // have given are just not learned (the client will judge the packet itself).
      if (!(err instanceof MalformedPacketError)) throw err;
    }
  }

  end(): void {
    const head = this.queue[0];
    if (head !== undefined) this.afterPacket(head);
  }

  // ---- steps ----

  private afterPacket(head: Pending): void {
    const state = this.state;
    switch (this.packet) {
      case Packet.Err:
        if (!this.isProgress) this.finish();
        return;
      case Packet.Ok:
        if (head.command === LOGIN) state.authenticated = true;
        if (this.step === Step.Header || this.step === Step.Simple) return this.endOfResult(head);
        return this.finish();
      case Packet.Eof:
        if (this.step === Step.ColumnsEof) {
          // A cursor was opened (COM_STMT_EXECUTE with a cursor flag): rows come with COM_STMT_FETCH.
          if (state.status & ServerStatus.CursorExists) return this.endOfResult(head);
          this.step = Step.Rows;
          return;
        }
        if (this.step === Step.PrepareParamsEof) return this.prepareColumnsOrFinish();
        if (this.step === Step.PrepareColumnsEof) return this.finish();
        return this.endOfResult(head);
      case Packet.Terminator:
        if (this.step === Step.FieldList) return this.finish();
        return this.endOfResult(head);
      case Packet.ColumnCount:
        this.step = this.left > 0 ? Step.Columns : Step.Rows;
        return;
      case Packet.Definition:
        if (--this.left > 0) return;
        if (this.step === Step.Columns) this.step = state.deprecateEof ? Step.Rows : Step.ColumnsEof;
        else if (this.step === Step.PrepareParams) {
          if (state.deprecateEof) this.prepareColumnsOrFinish();
          else this.step = Step.PrepareParamsEof;
        } else if (this.step === Step.PrepareColumns) {
          if (state.deprecateEof) this.finish();
          else this.step = Step.PrepareColumnsEof;
        }
        return;
      case Packet.PrepareOk:
        if (head.text !== null && this.preparedId >= 0) state.statements.set(this.preparedId, head.text);
        if (this.left > 0) this.step = Step.PrepareParams;
        else this.prepareColumnsOrFinish();
        return;
      case Packet.Infile:
        this.step = Step.Infile;
        return;
      case Packet.Row:
        return;
      case Packet.Other:
        if (this.step === Step.Single) this.finish();
        return;
    }
  }

  /** An OK or EOF closed a result: more results follow, or the command succeeded. */
  private endOfResult(head: Pending): void {
    if (this.step !== Step.Simple && (this.state.status & ServerStatus.MoreResultsExist)) {
      this.step = Step.Header;
      return;
    }
    this.succeeded(head);
    this.finish();
  }

  private prepareColumnsOrFinish(): void {
    if (this.prepareColumns > 0) {
      this.left = this.prepareColumns;
      this.step = Step.PrepareColumns;
    } else {
      this.finish();
    }
  }

  /** What a command's success changes beyond what its OK packet said. */
  private succeeded(head: Pending): void {
    const state = this.state;
    switch (head.command) {
      case Command.InitDb:
        state.database = head.text || null;
        break;
      case Command.ResetConnection:
        state.sessionReset();
        break;
      case Command.Query:
        // Without session tracking a `USE` in a text query changes the database unseen.
        if (head.text !== null && /\buse\s/i.test(head.text)) state.database = null;
        break;
    }
  }

  private finish(): void {
    const head = this.queue.shift();
    if (head?.command === Command.ChangeUser && head.change !== null && this.state.authenticated && this.packet !== Packet.Err) {
      this.state.onUserChanged(head.change.user, head.change.database, head.change.charset);
    }
    const next = this.queue[0];
    this.step = next === undefined ? Step.Header : next.first;
  }

  private push(p: Pending): void {
    this.queue.push(p);
    if (this.queue.length === 1) this.step = p.first;
  }

  private decodeChangeUser(payload: Buffer): Pending['change'] {
    try {
      const r = new PayloadReader(payload, 1, payload.length);
      const user = r.cstring();
      r.skip(r.u8());
      const database = r.remaining > 0 ? r.cstringOrRest() : null;
      const charset = r.remaining >= 2 ? r.u16() : null;
      return { user, database, charset };
    } catch (err) {
      if (!(err instanceof MalformedPacketError)) throw err;
      return { user: '', database: null, charset: null };
    }
  }
}

function pending(command: number, first: Step, text: string | null): Pending {
  return { command, first, text, change: null, started: false };
}

/** What a server packet starting with `first` is at `step` (`length`: its first physical packet's payload). */
function classify(step: Step, first: number, length: number): Packet {
  // A row or value can begin with 0xFE only as an 8-byte length, so such a packet is at least
  // 16 MiB long; a shorter 0xFE packet ends a result set.
  const terminator = first === Header.Eof && length < MAX_PACKET_PAYLOAD;
  switch (step) {
    case Step.Header:
    case Step.Simple:
      if (first === Header.Ok) return Packet.Ok;
      if (first === Header.Err) return Packet.Err;
      if (terminator) return isEofPacket(length) ? Packet.Eof : Packet.Terminator;
      if (step === Step.Simple) return Packet.Other;
      if (first === Header.LocalInfile) return Packet.Infile;
      return Packet.ColumnCount;
    case Step.Columns:
    case Step.PrepareParams:
    case Step.PrepareColumns:
      return Packet.Definition;
    case Step.ColumnsEof:
    case Step.PrepareParamsEof:
    case Step.PrepareColumnsEof:
      return first === Header.Err ? Packet.Err : Packet.Eof;
    case Step.Rows:
      if (terminator) return Packet.Terminator;
      return first === Header.Err ? Packet.Err : Packet.Row;
    case Step.PrepareHeader:
      if (first === Header.Ok) return Packet.PrepareOk;
      return first === Header.Err ? Packet.Err : Packet.Other;
    case Step.FieldList:
      if (terminator) return Packet.Terminator;
      return first === Header.Err ? Packet.Err : Packet.Definition;
    case Step.Auth:
      if (first === Header.Ok) return Packet.Ok;
      return first === Header.Err ? Packet.Err : Packet.Other;
    case Step.Infile:
    case Step.Single:
    case Step.Raw:
      return Packet.Other;
  }
}
