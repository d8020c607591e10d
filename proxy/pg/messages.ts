// The few protocol messages the proxy builds or reads itself (its probe, replayed Parses,
// swallowed replies), and named views of the fields of the extended-protocol messages it reads
// (Parse, Bind, Describe, Execute). Each view takes a whole message: `start` at its type byte,
// `end` past its last byte. Pure.
import { Backend, Frontend } from './codes.js';

/** Where a message's body starts: after the type byte and the Int32 length. */
const BODY = 5;
const DESCRIBE_STATEMENT = 0x53; // S
const DESCRIBE_PORTAL = 0x50; // P

export const PARSE_COMPLETE = Buffer.from([Backend.ParseComplete, 0, 0, 0, 4]);

export function queryMessage(text: string): Buffer {
  const len = Buffer.byteLength(text);
  const buf = Buffer.allocUnsafe(1 + 4 + len + 1);
  buf[0] = Frontend.Query;
  buf.writeInt32BE(4 + len + 1, 1);
  buf.write(text, 5);
  buf[5 + len] = 0;
  return buf;
}

export function parseMessage(name: string, sig: string): Buffer {
  const nameLen = Buffer.byteLength(name);
  const sigLen = Buffer.byteLength(sig, 'latin1');
  const buf = Buffer.allocUnsafe(1 + 4 + nameLen + 1 + sigLen);
  buf[0] = Frontend.Parse;
  buf.writeInt32BE(4 + nameLen + 1 + sigLen, 1);
  buf.write(name, 5);
  buf[5 + nameLen] = 0;
  buf.write(sig, 6 + nameLen, 'latin1');
  return buf;
}

export function closeStatementMessage(name: string): Buffer {
  const nameLen = Buffer.byteLength(name);
  const buf = Buffer.allocUnsafe(1 + 4 + 1 + nameLen + 1);
  buf[0] = Frontend.Close;
  buf.writeInt32BE(4 + 1 + nameLen + 1, 1);
  buf[5] = 0x53; // S
  buf.write(name, 6);
  buf[6 + nameLen] = 0;
  return buf;
}

/** Bind of the unnamed statement to the unnamed portal: no parameters, default result formats. */
export const BIND_UNNAMED = Buffer.from([Frontend.Bind, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0]);
/** Execute of the unnamed portal, every row. */
export const EXECUTE_UNNAMED = Buffer.from([Frontend.Execute, 0, 0, 0, 9, 0, 0, 0, 0, 0]);

/** A DataRow body in text format: column values, null for SQL NULL. */
export function decodeTextRow(buf: Buffer, start: number, end: number): (string | null)[] {
  const count = buf.readInt16BE(start);
  const values: (string | null)[] = [];
  let pos = start + 2;
  for (let i = 0; i < count && pos + 4 <= end; i++) {
    const len = buf.readInt32BE(pos);
    pos += 4;
    if (len < 0) {
      values.push(null);
    } else {
      values.push(buf.toString('utf8', pos, pos + len));
      pos += len;
    }
  }
  return values;
}

/** The 'M' field of an ErrorResponse body. */
export function errorMessageOf(buf: Buffer, start: number, end: number): string {
  return errorField(buf, start, end, 0x4d); // M
}

/** The 'C' field (SQLSTATE) of an ErrorResponse body. */
export function errorCodeOf(buf: Buffer, start: number, end: number): string {
  return errorField(buf, start, end, 0x43); // C
}

function errorField(buf: Buffer, start: number, end: number, field: number): string {
  let pos = start;
  while (pos < end && buf[pos] !== 0) {
    const fieldEnd = buf.indexOf(0, pos + 1);
    if (fieldEnd < 0 || fieldEnd > end) break;
    if (buf[pos] === field) return buf.toString('utf8', pos + 1, fieldEnd);
    pos = fieldEnd + 1;
  }
  return '';
}

export function startsWithAscii(buf: Buffer, start: number, end: number, text: string): boolean {
  if (end - start < text.length) return false;
  for (let i = 0; i < text.length; i++) if (buf[start + i] !== text.charCodeAt(i)) return false;
  return true;
}

export function equalsName(buf: Buffer, start: number, name: string): boolean {
  return startsWithAscii(buf, start, start + name.length + 1, name) && buf[start + name.length] === 0;
}

/** Reads a NUL-terminated string starting at `start`, not past `end`. */
export function readCString(buf: Buffer, start: number, end: number): string {
  let nul = buf.indexOf(0, start);
  if (nul < 0 || nul > end) nul = end;
  return buf.toString('utf8', start, nul);
}

/** The end of the NUL-terminated name at `start` (the position of its NUL). */
function nameEnd(buf: Buffer, start: number): number {
  return buf.indexOf(0, start);
}

/** Parse: the prepared statement's name ('' for the unnamed one). */
export function parseStatementName(buf: Buffer, start: number): string {
  return buf.toString('utf8', start + BODY, nameEnd(buf, start + BODY));
}

/** Parse: where what follows the name starts (the text, then the parameter types). */
export function parseSignatureStart(buf: Buffer, start: number): number {
  return nameEnd(buf, start + BODY) + 1;
}

/** Parse: the statement text. */
export function parseText(buf: Buffer, start: number, end: number): string {
  return readCString(buf, parseSignatureStart(buf, start), end);
}

/** Bind: the portal's name. */
export function bindPortal(buf: Buffer, start: number): string {
  return buf.toString('utf8', start + BODY, nameEnd(buf, start + BODY));
}

/** Bind: the prepared statement's name. */
export function bindStatement(buf: Buffer, start: number): string {
  const portalEnd = nameEnd(buf, start + BODY);
  return buf.toString('utf8', portalEnd + 1, nameEnd(buf, portalEnd + 1));
}

/** Bind: where the parameter formats, values and result formats start (after both names). */
export function bindParametersStart(buf: Buffer, start: number): number {
  return nameEnd(buf, nameEnd(buf, start + BODY) + 1) + 1;
}

/** Describe: of a statement ('S') or a portal ('P'), and its name. */
export function describeTarget(buf: Buffer, start: number, end: number): { kind: 'S' | 'P' | null; name: string } {
  const kind = buf[start + BODY];
  return { kind: kind === DESCRIBE_STATEMENT ? 'S' : kind === DESCRIBE_PORTAL ? 'P' : null, name: readCString(buf, start + BODY + 1, end) };
}

/** Describe: the statement's name when it describes a statement, else null. */
export function describedStatement(buf: Buffer, start: number, end: number): string | null {
  return buf[start + BODY] === DESCRIBE_STATEMENT ? readCString(buf, start + BODY + 1, end) : null;
}

/** Execute: the portal's name. */
export function executePortal(buf: Buffer, start: number, end: number): string {
  return readCString(buf, start + BODY, end);
}

/** Execute: the row limit (0: all rows). */
export function executeMaxRows(buf: Buffer, start: number): number {
  return buf.readInt32BE(nameEnd(buf, start + BODY) + 1);
}

/** Query: the text. */
export function queryText(buf: Buffer, start: number, end: number): string {
  return readCString(buf, start + BODY, end);
}
