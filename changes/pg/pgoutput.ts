// The PostgreSQL logical replication stream, decoded as far as invalidation needs and no further:
// the walsender's CopyData messages (XLogData, keepalive), the standby status update we send back,
// and the messages of the built-in `pgoutput` plugin inside XLogData (protocol versions 1 and 2).
// Pure: bytes in, views out. Row data (the tuples of Insert/Update/Delete) is never decoded: a
// change only says which relation it touched.
//
// Numbers: LSNs and timestamps are 64-bit on the wire and JS numbers here. An LSN is a byte position
// in the WAL: exact below 2^53 bytes (8 PiB of WAL). Timestamps are µs since 2000-01-01, turned into
// ms since 1970 like Date.now().

/** The first byte of a CopyData payload from the walsender. */
export const enum ReplicationCode {
  XLogData = 0x77, // w
  Keepalive = 0x6b, // k
  StandbyStatusUpdate = 0x72, // r (we send it)
}

/** The first byte of a pgoutput message. */
export const enum PgoutputCode {
  Begin = 0x42, // B
  Commit = 0x43, // C
  Origin = 0x4f, // O
  Relation = 0x52, // R
  Type = 0x59, // Y
  Insert = 0x49, // I
  Update = 0x55, // U
  Delete = 0x44, // D
  Truncate = 0x54, // T
  Message = 0x4d, // M
  StreamStart = 0x53, // S
  StreamStop = 0x45, // E
  StreamCommit = 0x63, // c
  StreamAbort = 0x41, // A
}

export type ReplicationMessage =
  /** WAL data: one pgoutput message in `payload`; `walEnd` is the server's current end of WAL. */
  | { kind: 'xlog'; walStart: number; walEnd: number; sendTimeMs: number; payload: Buffer }
  /** Sent when idle and before wal_sender_timeout; `replyRequested` asks for a status update now. */
  | { kind: 'keepalive'; walEnd: number; sendTimeMs: number; replyRequested: boolean };

export interface RelationColumn {
  name: string;
  typeOid: number;
  typeModifier: number;
}

export type PgoutputMessage =
  | { type: 'begin'; finalLsn: number; commitTimeMs: number; xid: number }
  | { type: 'commit'; commitLsn: number; endLsn: number; commitTimeMs: number }
  /** The relation's shape, sent before its first change in a session and again after DDL changed it. */
  | { type: 'relation'; xid: number | null; relid: number; namespace: string; name: string; columns: RelationColumn[] }
  /** An Insert, Update or Delete of a row of `relid`. */
  | { type: 'change'; xid: number | null; relid: number }
  | { type: 'truncate'; xid: number | null; relids: number[] }
  /** pg_logical_emit_message(); transactional ones arrive inside their transaction, in order. */
  | { type: 'message'; xid: number | null; transactional: boolean; lsn: number; prefix: string; content: Buffer }
  /** Protocol 2+: a chunk of a large transaction still in progress (streaming on). */
  | { type: 'stream-start'; xid: number; firstSegment: boolean }
  | { type: 'stream-stop' }
  | { type: 'stream-commit'; xid: number; commitLsn: number; endLsn: number; commitTimeMs: number }
  /** `subxid` === `xid`: the whole transaction aborted; else only that subtransaction. */
  | { type: 'stream-abort'; xid: number; subxid: number }
  /** Origin and Type: nothing to invalidate. */
  | { type: 'ignored'; code: number }
  /** A message this decoder does not know (a newer protocol): the caller must assume the worst. */
  | { type: 'unknown'; code: number };

export class PgoutputError extends Error {
  override name = 'PgoutputError';
}

const PG_EPOCH_MS = 946_684_800_000;
const TWO_32 = 0x1_0000_0000;

/** A cursor over one message; every read checks the bound so a short message throws, never misreads. */
class Reader {
  constructor(private readonly buf: Buffer, public pos: number, private readonly what: string) {}

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new PgoutputError(`${this.what}: truncated at byte ${this.pos} (needs ${n} more of ${this.buf.length})`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  i32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** An unsigned 64-bit position (LSN) as a number. */
  u64(): number {
    this.need(8);
    const v = this.buf.readUInt32BE(this.pos) * TWO_32 + this.buf.readUInt32BE(this.pos + 4);
    this.pos += 8;
    return v;
  }

  /** A PostgreSQL timestamp (signed µs since 2000-01-01) as ms since 1970. */
  timestampMs(): number {
    this.need(8);
    const micros = this.buf.readInt32BE(this.pos) * TWO_32 + this.buf.readUInt32BE(this.pos + 4);
    this.pos += 8;
    return micros / 1000 + PG_EPOCH_MS;
  }

  cstring(): string {
    const nul = this.buf.indexOf(0, this.pos);
    if (nul < 0) throw new PgoutputError(`${this.what}: string at byte ${this.pos} has no terminating NUL`);
    const s = this.buf.toString('utf8', this.pos, nul);
    this.pos = nul + 1;
    return s;
  }

  bytes(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}

/** Decodes one CopyData payload the walsender sent during START_REPLICATION. */
export function decodeReplicationMessage(buf: Buffer): ReplicationMessage {
  if (buf.length === 0) throw new PgoutputError('empty replication message');
  switch (buf[0]) {
    case ReplicationCode.XLogData: {
      const r = new Reader(buf, 1, 'XLogData');
      const walStart = r.u64();
      const walEnd = r.u64();
      const sendTimeMs = r.timestampMs();
      return { kind: 'xlog', walStart, walEnd, sendTimeMs, payload: buf.subarray(r.pos) };
    }
    case ReplicationCode.Keepalive: {
      const r = new Reader(buf, 1, 'keepalive');
      const walEnd = r.u64();
      const sendTimeMs = r.timestampMs();
      return { kind: 'keepalive', walEnd, sendTimeMs, replyRequested: r.u8() === 1 };
    }
    default:
      throw new PgoutputError(`unexpected replication message 0x${buf[0]!.toString(16)}`);
  }
}

/**
 * The standby status update: WAL up to `flushed` is processed, so the server may recycle it (for a
 * temporary slot nothing else needs it). `written` and `applied` are reported equal to it.
 */
export function standbyStatusUpdate(flushed: number, nowMs: number, replyRequested = false): Buffer {
  const b = Buffer.allocUnsafe(34);
  b[0] = ReplicationCode.StandbyStatusUpdate;
  const lsn = BigInt(flushed);
  b.writeBigUInt64BE(lsn, 1);
  b.writeBigUInt64BE(lsn, 9);
  b.writeBigUInt64BE(lsn, 17);
  b.writeBigInt64BE(BigInt(Math.round((nowMs - PG_EPOCH_MS) * 1000)), 25);
  b[33] = replyRequested ? 1 : 0;
  return b;
}

/**
 * Decodes one pgoutput message. `inStream`: between Stream Start and Stream Stop, where the
 * messages of the streamed transaction carry its xid (protocol 2+).
 */
export function decodePgoutput(buf: Buffer, inStream: boolean): PgoutputMessage {
  if (buf.length === 0) throw new PgoutputError('empty pgoutput message');
  const code = buf[0]!;
  const r = new Reader(buf, 1, `pgoutput '${String.fromCharCode(code)}'`);
  const xid = (): number | null => (inStream ? r.u32() : null);
  switch (code) {
    case PgoutputCode.Begin:
      return { type: 'begin', finalLsn: r.u64(), commitTimeMs: r.timestampMs(), xid: r.u32() };
    case PgoutputCode.Commit:
      r.u8(); // flags, unused
      return { type: 'commit', commitLsn: r.u64(), endLsn: r.u64(), commitTimeMs: r.timestampMs() };
    case PgoutputCode.Relation: {
      const x = xid();
      const relid = r.u32();
      const namespace = r.cstring();
      const name = r.cstring();
      r.u8(); // replica identity
      const count = r.u16();
      const columns: RelationColumn[] = [];
      for (let i = 0; i < count; i++) {
        r.u8(); // flags (part of the key)
        columns.push({ name: r.cstring(), typeOid: r.u32(), typeModifier: r.i32() });
      }
      return { type: 'relation', xid: x, relid, namespace, name, columns };
    }
    case PgoutputCode.Insert:
    case PgoutputCode.Update:
    case PgoutputCode.Delete: {
      const x = xid();
      return { type: 'change', xid: x, relid: r.u32() };
    }
    case PgoutputCode.Truncate: {
      const x = xid();
      const count = r.u32();
      r.u8(); // options (CASCADE, RESTART IDENTITY): the cascaded relations are listed too
      // Each relid is 4 bytes: a count larger than the message is a malformed message, not an allocation.
      if (count > (buf.length - r.pos) / 4) throw new PgoutputError(`pgoutput 'T': ${count} relations do not fit in ${buf.length} bytes`);
      const relids: number[] = [];
      for (let i = 0; i < count; i++) relids.push(r.u32());
      return { type: 'truncate', xid: x, relids };
    }
    case PgoutputCode.Message: {
      // The xid is sent for a transactional message of a streamed transaction only; the flags
      // byte comes after it, so inside a stream block a transactional message is assumed.
      const x = xid();
      const transactional = (r.u8() & 1) === 1;
      const lsn = r.u64();
      const prefix = r.cstring();
      const content = r.bytes(r.u32());
      return { type: 'message', xid: x, transactional, lsn, prefix, content };
    }
    case PgoutputCode.StreamStart:
      return { type: 'stream-start', xid: r.u32(), firstSegment: r.u8() === 1 };
    case PgoutputCode.StreamStop:
      return { type: 'stream-stop' };
    case PgoutputCode.StreamCommit: {
      const x = r.u32();
      r.u8(); // flags
      return { type: 'stream-commit', xid: x, commitLsn: r.u64(), endLsn: r.u64(), commitTimeMs: r.timestampMs() };
    }
    case PgoutputCode.StreamAbort:
      // Protocol 4 appends the abort LSN and time; not needed.
      return { type: 'stream-abort', xid: r.u32(), subxid: r.u32() };
    case PgoutputCode.Origin:
    case PgoutputCode.Type:
      return { type: 'ignored', code };
    default:
      return { type: 'unknown', code };
  }
}

/** An LSN as PostgreSQL prints it (`16/B374D848`). */
export function formatLsn(lsn: number): string {
  const hi = Math.floor(lsn / TWO_32);
  const lo = lsn - hi * TWO_32;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

/** Parses `16/B374D848` (what CREATE_REPLICATION_SLOT and pg_current_wal_lsn() return). */
export function parseLsn(text: string): number {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (m === null) throw new PgoutputError(`not an LSN: "${text}"`);
  return parseInt(m[1]!, 16) * TWO_32 + parseInt(m[2]!, 16);
}
