// Views of the small server packets the reply tracker reads: OK, EOF and ERR. Pure decoders over a
// payload (headers removed); anything a decision does not need is skipped.
import { Capability, ServerStatus, SessionTrack } from './codes.js';
import { PayloadReader } from './packets.js';

export interface OkPacket {
  affectedRows: number;
  lastInsertId: number;
  status: number;
  warnings: number;
  /** Set when the server reported a new current database (session tracking). */
  schema: string | null;
  /** System variables the server reported changed (session tracking), in order. */
  variables: [string, string][];
}

/** An OK packet (header 0x00, or 0xFE when it ends a result set under CLIENT_DEPRECATE_EOF). */
export function decodeOk(buf: Buffer, start: number, end: number, capabilities: number): OkPacket {
  const r = new PayloadReader(buf, start + 1, end);
  const ok: OkPacket = { affectedRows: r.lenenc(), lastInsertId: r.lenenc(), status: 0, warnings: 0, schema: null, variables: [] };
  if ((capabilities & (Capability.Protocol41 | Capability.Transactions)) === 0) return ok;
  ok.status = r.u16();
  if (capabilities & Capability.Protocol41) ok.warnings = r.u16();
  if ((capabilities & Capability.SessionTrack) === 0 || r.remaining === 0) return ok;
  r.lenencBytes(); // human-readable info
  if ((ok.status & ServerStatus.SessionStateChanged) === 0 || r.remaining === 0) return ok;
  const length = r.lenenc();
  const changes = new PayloadReader(buf, r.pos, Math.min(r.pos + length, end));
  while (changes.remaining > 0) {
    const type = changes.u8();
    const data = changes.lenencBytes();
    const d = new PayloadReader(data, 0, data.length);
    if (type === SessionTrack.Schema) ok.schema = d.lenencString();
    else if (type === SessionTrack.SystemVariables) ok.variables.push([d.lenencString(), d.lenencString()]);
  }
  return ok;
}

/** An EOF packet: header 0xFE and a payload under 9 bytes. */
export function decodeEof(buf: Buffer, start: number, end: number): { warnings: number; status: number } {
  if (end - start < 5) return { warnings: 0, status: 0 };
  return { warnings: buf.readUInt16LE(start + 1), status: buf.readUInt16LE(start + 3) };
}

/** A 0xFE packet ends a result set as an EOF (short) or, under CLIENT_DEPRECATE_EOF, as an OK. */
export function isEofPacket(length: number): boolean {
  return length < 9;
}

export interface ErrPacket {
  code: number;
  sqlState: string;
  message: string;
}

/**
 * Reads the ERR packet payload buf[start, end) (0xFF first): a 2-byte error number (0 when too
 * short to hold one), then '#' and a five-character SQL state (absent before CLIENT_PROTOCOL_41),
 * then the message, cut at `maxMessage` bytes.
 */
export function decodeErr(buf: Buffer, start: number, end: number, maxMessage = Infinity): ErrPacket {
  const r = new PayloadReader(buf, start + 1, end);
  const code = r.remaining >= 2 ? r.u16() : 0;
  let sqlState = '';
  if (r.remaining >= 6 && buf[r.pos] === 0x23) { // '#'
    sqlState = buf.toString('latin1', r.pos + 1, r.pos + 6);
    r.skip(6);
  }
  return { code, sqlState, message: buf.toString('utf8', r.pos, Math.min(end, r.pos + maxMessage)) };
}
