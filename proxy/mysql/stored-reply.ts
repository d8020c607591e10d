// The server status flags inside a stored result-set reply. A reply is stored with the flags of a
// session outside any transaction with autocommit on; answered inside a read-only transaction, its
// EOF/OK packets must carry that transaction's flags (and a reply filled inside one is stored with
// the flags of the outside). Pure: bytes in, a patched copy out; the stored bytes are never changed.
import { ServerStatus } from './codes.js';

/** The flags that describe the session's transaction; the others belong to the result. */
export const TRANSACTION_FLAGS = (ServerStatus.InTrans | ServerStatus.Autocommit | ServerStatus.InTransReadonly) >>> 0;

/** What every stored reply says: no transaction, autocommit on. */
export const STORED_TRANSACTION_FLAGS = ServerStatus.Autocommit;

/**
 * A copy of `reply` — one result set: column count, column definitions, an EOF unless
 * CLIENT_DEPRECATE_EOF, rows, then an EOF (or an OK with header 0xFE under DEPRECATE_EOF) — whose
 * status flags hold `status`'s transaction flags. Null when the bytes are not such a reply.
 */
export function withTransactionFlags(reply: Buffer, deprecateEof: boolean, status: number): Buffer | null {
  const out = Buffer.from(reply);
  const flags = status & TRANSACTION_FLAGS;
  let pos = 0;
  let index = 0;
  let columns = -1;
  let last = -1;
  while (pos < out.length) {
    if (pos + 4 > out.length) return null;
    const length = out.readUIntLE(pos, 3);
    const payload = pos + 4;
    if (payload + length > out.length) return null;
    if (index === 0) {
      columns = lenencAt(out, payload, payload + length);
      if (columns <= 0) return null;
    } else if (!deprecateEof && index === columns + 1) {
      // The EOF after the column definitions.
      if (out[payload] !== 0xfe || length < 5 || length >= 9) return null;
      patch(out, payload + 3, flags);
    }
    last = pos;
    pos = payload + length;
    index++;
  }
  if (index < columns + (deprecateEof ? 2 : 3)) return null;
  // The terminator is the last packet: a reply with more results or a cursor is never stored.
  const length = out.readUIntLE(last, 3);
  const payload = last + 4;
  if (out[payload] !== 0xfe) return null;
  let at = payload + 3; // EOF: header, warnings, status
  if (deprecateEof) {
    // OK: header, affected rows, last insert id (length-encoded), status
    at = payload + 1;
    for (let i = 0; i < 2; i++) {
      const size = lenencSize(out[at]!);
      if (size === 0) return null;
      at += size;
    }
  }
  if (at + 2 > payload + length) return null;
  patch(out, at, flags);
  return out;
}

function patch(buf: Buffer, at: number, flags: number): void {
  buf.writeUInt16LE(((buf.readUInt16LE(at) & ~TRANSACTION_FLAGS) | flags) & 0xffff, at);
}

/** Bytes of the length-encoded integer starting with `first`; 0 for a byte that starts none. */
function lenencSize(first: number): number {
  if (first < 0xfb) return 1;
  if (first === 0xfc) return 3;
  if (first === 0xfd) return 4;
  if (first === 0xfe) return 9;
  return 0;
}

/** The length-encoded integer at buf[at] (the column count); -1 when there is none. */
function lenencAt(buf: Buffer, at: number, end: number): number {
  const size = lenencSize(buf[at]!);
  if (size === 0 || at + size > end) return -1;
  if (size === 1) return buf[at]!;
  if (size === 3) return buf.readUInt16LE(at + 1);
  if (size === 4) return buf.readUIntLE(at + 1, 3);
  return -1; // more columns than any server allows
}
