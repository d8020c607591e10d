// The statements a client prepared on its upstream connection (COM_STMT_PREPARE), as the relay
// needs them to key and relay executions: the text, the parameter count, the parameter types the
// client last sent (it sends them only when they change) and pending long data. Pure: packets in,
// facts and rewritten packets out.
import { executeKey } from './cache-key.js';
import { PayloadReader, encodePacket } from './packets.js';

export interface PreparedStatement {
  readonly text: string;
  /**
   * Its COM_STMT_PREPARE payload, one latin1 character per byte: what its executions are keyed by,
   * since texts that differ only in bytes that are not UTF-8 decode to the same `text` (U+FFFD).
   */
  readonly bytes: string;
  readonly params: number;
  /** The parameter types of the client's latest execution that sent them. */
  types: Buffer | null;
  /** The types the server last received: they differ from `types` after an execution the cache answered. */
  upstreamTypes: Buffer | null;
  /** COM_STMT_SEND_LONG_DATA sent values the EXECUTE packet does not hold. */
  longData: boolean;
}

/** A COM_STMT_EXECUTE read: its statement, the key of its result, where types would go (-1: it sent them). */
export interface Execution {
  readonly statement: PreparedStatement;
  /** Null when the result cannot be keyed (a cursor, long data, parameter types never sent) or no key was asked for. */
  readonly keySuffix: string | null;
  readonly typesAt: number;
}

export class PreparedStatements {
  private readonly byId = new Map<number, PreparedStatement>();

  /**
   * The server's COM_STMT_PREPARE_OK payload buf[start, end) for the COM_STMT_PREPARE whose payload
   * (the command byte, then the statement's bytes) is `bytes`, one latin1 character per byte.
   * Throws MalformedPacketError.
   */
  prepared(bytes: string, buf: Buffer, start: number, end: number): void {
    const r = new PayloadReader(buf, start + 1, end);
    const id = r.u32();
    r.u16(); // columns
    const text = Buffer.from(bytes, 'latin1').toString('utf8', 1);
    this.byId.set(id, { text, bytes, params: r.u16(), types: null, upstreamTypes: null, longData: false });
  }

  /** The text of a statement prepared here, null for an id the server did not give this connection. */
  textOf(id: number): string | null {
    return this.byId.get(id)?.text ?? null;
  }

  /** COM_STMT_CLOSE. */
  closed(id: number): void {
    this.byId.delete(id);
  }

  /** COM_STMT_SEND_LONG_DATA: the next execution's values are not all in its packet. */
  longDataSent(id: number): void {
    const s = this.byId.get(id);
    if (s !== undefined) s.longData = true;
  }

  /** COM_STMT_RESET: the server drops the long data. */
  reset(id: number): void {
    const s = this.byId.get(id);
    if (s !== undefined) s.longData = false;
  }

  /** COM_CHANGE_USER, COM_RESET_CONNECTION: the server forgets every statement. */
  clear(): void {
    this.byId.clear();
  }

  /**
   * The statement a COM_STMT_EXECUTE payload runs and the key of its result (unless `keyed` is
   * false: inside a read-write transaction nothing is looked up, and building the key is most of
   * the work here); null for a statement not prepared on this connection. Remembers the types it sends.
   */
  execution(payload: Buffer, keyed = true): Execution | null {
    if (payload.length < 10) return null;
    const statement = this.byId.get(payload.readUInt32LE(1));
    if (statement === undefined) return null;
    const flags = payload[5]!;
    const longData = statement.longData;
    statement.longData = false; // the server forgets long data once the statement is executed
    const n = statement.params;
    if (n === 0) return { statement, keySuffix: keyed && flags === 0 && !longData ? executeKey(statement.bytes, '', '', '') : null, typesAt: -1 };
    const nullBitmap = (n + 7) >> 3;
    let pos = 10 + nullBitmap;
    if (payload.length <= pos) return { statement, keySuffix: null, typesAt: -1 };
    const bound = payload[pos++] === 1;
    const typesAt = bound ? -1 : pos;
    if (bound) {
      if (payload.length < pos + 2 * n) return { statement, keySuffix: null, typesAt: -1 };
      statement.types = Buffer.from(payload.subarray(pos, pos + 2 * n)); // the payload's buffer is reused
      pos += 2 * n;
    }
    const types = statement.types;
    if (!keyed || flags !== 0 || longData || types === null) return { statement, keySuffix: null, typesAt };
    const key = executeKey(statement.bytes, payload.toString('latin1', 10, 10 + nullBitmap), types.toString('latin1'), payload.toString('latin1', pos));
    return { statement, keySuffix: key, typesAt };
  }

  /**
   * The EXECUTE packet the server must get instead of the client's, or null to relay it as is. A
   * client sends parameter types only when they change; when the execution that sent them was
   * answered from the cache, the server never saw them, so they are put back in.
   */
  forUpstream(payload: Buffer, ex: Execution): Buffer | null {
    const s = ex.statement;
    if (s.params === 0 || s.types === null) return null;
    if (ex.typesAt < 0 || s.types === s.upstreamTypes || (s.upstreamTypes !== null && s.types.equals(s.upstreamTypes))) {
      s.upstreamTypes = s.types;
      return null;
    }
    s.upstreamTypes = s.types;
    const boundAt = ex.typesAt - 1;
    const rebuilt = Buffer.concat([payload.subarray(0, boundAt), Buffer.from([1]), s.types, payload.subarray(ex.typesAt)]);
    return encodePacket(rebuilt, 0);
  }
}
