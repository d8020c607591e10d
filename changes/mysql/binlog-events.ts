// The MySQL/MariaDB binary log as a replica receives it after COM_BINLOG_DUMP, decoded as far as
// invalidation needs: which table each row event touched (TABLE_MAP ids), where transactions end
// (XID, COMMIT, XA PREPARE), statements logged as text (DDL), MariaDB's GTIDs, and positions. Pure:
// one packet payload in, one event view out. Row images are never decoded: a rows event only says
// which table it changed.
//
// A packet's payload is 0x00 then one event (v4 header + body [+ CRC32]), 0xFE at the end of a
// non-blocking dump, or 0xFF and an error. Event layouts: MySQL's libbinlogevents and MariaDB's
// log_event.h; MariaDB numbers its own events from 160.
import { MalformedPacketError, PayloadReader } from '../../proxy/mysql/packets.js';

export const enum EventType {
  StartV3 = 1,
  Query = 2,
  Stop = 3,
  Rotate = 4,
  Intvar = 5,
  Load = 6,
  CreateFile = 8,
  AppendBlock = 9,
  ExecLoad = 10,
  DeleteFile = 11,
  NewLoad = 12,
  Rand = 13,
  UserVar = 14,
  FormatDescription = 15,
  Xid = 16,
  BeginLoadQuery = 17,
  ExecuteLoadQuery = 18,
  TableMap = 19,
  WriteRowsV0 = 20,
  UpdateRowsV0 = 21,
  DeleteRowsV0 = 22,
  WriteRowsV1 = 23,
  UpdateRowsV1 = 24,
  DeleteRowsV1 = 25,
  Incident = 26,
  Heartbeat = 27,
  Ignorable = 28,
  RowsQuery = 29,
  WriteRowsV2 = 30,
  UpdateRowsV2 = 31,
  DeleteRowsV2 = 32,
  MysqlGtid = 33,
  AnonymousGtid = 34,
  PreviousGtids = 35,
  TransactionContext = 36,
  ViewChange = 37,
  XaPrepare = 38,
  PartialUpdateRows = 39,
  TransactionPayload = 40,
  HeartbeatV2 = 41,
  GtidTagged = 42,
  AnnotateRows = 160,
  BinlogCheckpoint = 161,
  MariadbGtid = 162,
  GtidList = 163,
  StartEncryption = 164,
  QueryCompressed = 165,
  WriteRowsCompressedV1 = 166,
  UpdateRowsCompressedV1 = 167,
  DeleteRowsCompressedV1 = 168,
  WriteRowsCompressed = 169,
  UpdateRowsCompressed = 170,
  DeleteRowsCompressed = 171,
}

/** The v4 event header: 19 bytes before every event body. */
export interface EventHeader {
  timestamp: number;
  type: number;
  serverId: number;
  eventSize: number;
  /** Where the next event starts in the binlog file; 0 for events the server makes up (the first Rotate). */
  logPos: number;
  flags: number;
}

export type BinlogEvent =
  | { kind: 'rotate'; header: EventHeader; nextFile: string; position: number }
  | { kind: 'format'; header: EventHeader; serverVersion: string; tableIdBytes: 4 | 6 }
  | { kind: 'query'; header: EventHeader; schema: string; sql: string }
  | { kind: 'xid'; header: EventHeader }
  | { kind: 'xa-prepare'; header: EventHeader }
  | { kind: 'table-map'; header: EventHeader; tableId: number; schema: string; table: string }
  | { kind: 'rows'; header: EventHeader; tableId: number; endOfStatement: boolean }
  /** MariaDB: starts an event group (a transaction, or one standalone statement such as DDL). */
  | { kind: 'mariadb-gtid'; header: EventHeader; domainId: number; sequence: string; standalone: boolean }
  /** MySQL: starts a transaction (its BEGIN follows as a Query). */
  | { kind: 'mysql-gtid'; header: EventHeader }
  | { kind: 'heartbeat'; header: EventHeader; file: string }
  /** A whole transaction compressed (MySQL's binlog_transaction_compression): committed, tables unknown. */
  | { kind: 'transaction-payload'; header: EventHeader }
  /** Statement-format work whose text cannot be read here (LOAD DATA blocks, compressed queries). */
  | { kind: 'opaque-statement'; header: EventHeader }
  /** The server lost events (e.g. a crash while writing): anything may have changed. */
  | { kind: 'incident'; header: EventHeader }
  | { kind: 'ignored'; header: EventHeader }
  /** Not known to this decoder and not flagged ignorable: the caller must assume the worst. */
  | { kind: 'unknown'; header: EventHeader };

export type BinlogPacket =
  | { kind: 'event'; event: BinlogEvent }
  /** The end of a non-blocking dump. */
  | { kind: 'eof' }
  | { kind: 'error'; code: number; sqlState: string; message: string };

/** How events are laid out in this stream: set from the server's binlog_checksum and its Format Description. */
export interface BinlogFormat {
  /** A CRC32 trails every event (binlog_checksum=CRC32, announced with @master_binlog_checksum). */
  checksum: boolean;
  tableIdBytes: 4 | 6;
}

export class BinlogError extends Error {
  override name = 'BinlogError';
}

/** Reads of a body: the proxy's own payload cursor, with the widths binlog events use. */
class EventReader extends PayloadReader {
  /** A little-endian unsigned integer of 4 or 6 bytes (table ids, the low part of a position). */
  uint(bytes: number): number {
    return this.bytes(bytes).readUIntLE(0, bytes);
  }

  /** A u64 as its exact decimal text (MariaDB sequence numbers may pass 2^53). */
  u64String(): string {
    return this.bytes(8).readBigUInt64LE(0).toString();
  }

  string(n: number): string {
    return this.bytes(n).toString('utf8');
  }

  restString(): string {
    return this.rest().toString('utf8');
  }
}

const HEADER_BYTES = 19;
const CHECKSUM_BYTES = 4;
/** The event may be skipped by a reader that does not know it (LOG_EVENT_IGNORABLE_F). */
const IGNORABLE_FLAG = 0x80;
/** Rows event flag: the last rows event of its statement. */
const STMT_END_FLAG = 0x01;
/** MariaDB GTID flag FL_STANDALONE: the group is one statement with no BEGIN/COMMIT (DDL and the like). */
const GTID_STANDALONE = 0x01;

const IGNORED = new Set<number>([
  EventType.StartV3, EventType.Stop, EventType.Intvar, EventType.Rand, EventType.UserVar, EventType.Ignorable,
  EventType.RowsQuery, EventType.PreviousGtids, EventType.TransactionContext, EventType.ViewChange,
  EventType.CreateFile, EventType.AppendBlock, EventType.DeleteFile, EventType.BeginLoadQuery,
  EventType.AnnotateRows, EventType.BinlogCheckpoint, EventType.GtidList, EventType.StartEncryption, EventType.HeartbeatV2,
]);
const ROWS = new Set<number>([
  EventType.WriteRowsV0, EventType.UpdateRowsV0, EventType.DeleteRowsV0,
  EventType.WriteRowsV1, EventType.UpdateRowsV1, EventType.DeleteRowsV1,
  EventType.WriteRowsV2, EventType.UpdateRowsV2, EventType.DeleteRowsV2, EventType.PartialUpdateRows,
  EventType.WriteRowsCompressedV1, EventType.UpdateRowsCompressedV1, EventType.DeleteRowsCompressedV1,
  EventType.WriteRowsCompressed, EventType.UpdateRowsCompressed, EventType.DeleteRowsCompressed,
]);
const OPAQUE_STATEMENTS = new Set<number>([EventType.Load, EventType.ExecLoad, EventType.NewLoad, EventType.ExecuteLoadQuery, EventType.QueryCompressed]);

/** Decodes one packet of the dump: `payload` is the packet without its 4-byte header. */
export function decodeBinlogPacket(payload: Buffer, format: BinlogFormat): BinlogPacket {
  try {
    return decodePacket(payload, format);
  } catch (err) {
    if (err instanceof MalformedPacketError) throw new BinlogError(`binlog event type ${payload.length > 5 ? payload[5] : '?'}: ${err.message}`);
    throw err;
  }
}

function decodePacket(payload: Buffer, format: BinlogFormat): BinlogPacket {
  if (payload.length === 0) throw new BinlogError('empty binlog packet');
  switch (payload[0]) {
    case 0x00:
      return { kind: 'event', event: decodeEvent(payload, 1, format) };
    case 0xfe:
      if (payload.length < 9) return { kind: 'eof' };
      break;
    case 0xff: {
      if (payload.length < 3) throw new BinlogError('truncated error packet');
      const code = payload.readUInt16LE(1);
      const marked = payload[3] === 0x23; // '#'
      return {
        kind: 'error',
        code,
        sqlState: marked ? payload.toString('latin1', 4, 9) : '',
        message: payload.toString('utf8', marked ? 9 : 3),
      };
    }
  }
  throw new BinlogError(`unexpected binlog packet 0x${payload[0]!.toString(16)}`);
}

function decodeEvent(buf: Buffer, at: number, format: BinlogFormat): BinlogEvent {
  if (buf.length - at < HEADER_BYTES) throw new BinlogError(`event header truncated (${buf.length - at} of ${HEADER_BYTES} bytes)`);
  const header: EventHeader = {
    timestamp: buf.readUInt32LE(at),
    type: buf[at + 4]!,
    serverId: buf.readUInt32LE(at + 5),
    eventSize: buf.readUInt32LE(at + 9),
    logPos: buf.readUInt32LE(at + 13),
    flags: buf.readUInt16LE(at + 17),
  };
  if (header.eventSize !== buf.length - at) throw new BinlogError(`event type ${header.type} says ${header.eventSize} bytes, the packet holds ${buf.length - at}`);
  const end = buf.length - (format.checksum ? CHECKSUM_BYTES : 0);
  if (end < at + HEADER_BYTES) throw new BinlogError(`event type ${header.type}: shorter than its header and checksum`);
  const r = new EventReader(buf, at + HEADER_BYTES, end);
  const t = header.type;
  switch (t) {
    case EventType.Query: {
      r.skip(8); // thread id, exec time
      const schemaLength = r.u8();
      r.skip(2); // error code
      r.skip(r.u16()); // status variables
      const schema = r.string(schemaLength);
      r.skip(1); // NUL
      return { kind: 'query', header, schema, sql: r.restString() };
    }
    case EventType.Xid:
      return { kind: 'xid', header };
    case EventType.XaPrepare:
      return { kind: 'xa-prepare', header };
    case EventType.TableMap: {
      const tableId = r.uint(format.tableIdBytes);
      r.skip(2); // flags
      const schema = r.string(r.u8());
      r.skip(1);
      const table = r.string(r.u8());
      r.skip(1);
      return { kind: 'table-map', header, tableId, schema, table };
    }
    case EventType.Rotate: {
      const position = r.uint(6);
      r.skip(2); // the high bytes of the u64 position
      return { kind: 'rotate', header, position, nextFile: r.restString() };
    }
    case EventType.FormatDescription: {
      r.skip(2);
      const serverVersion = r.string(50).replace(/\u0000.*$/s, '');
      r.skip(4 + 1); // create time, header length
      // Then one post-header length per event type: TABLE_MAP's is 8 for 6-byte table ids, 6 for 4.
      r.skip(EventType.TableMap - 1);
      const tableMapPostHeader = r.u8();
      return { kind: 'format', header, serverVersion, tableIdBytes: tableMapPostHeader === 6 ? 4 : 6 };
    }
    case EventType.MariadbGtid: {
      const sequence = r.u64String();
      const domainId = r.u32();
      const flags = r.u8();
      return { kind: 'mariadb-gtid', header, domainId, sequence, standalone: (flags & GTID_STANDALONE) !== 0 };
    }
    case EventType.MysqlGtid:
    case EventType.AnonymousGtid:
    case EventType.GtidTagged:
      return { kind: 'mysql-gtid', header };
    case EventType.Heartbeat:
      return { kind: 'heartbeat', header, file: r.restString() };
    case EventType.TransactionPayload:
      return { kind: 'transaction-payload', header };
    case EventType.Incident:
      return { kind: 'incident', header };
  }
  if (ROWS.has(t)) {
    const tableId = r.uint(format.tableIdBytes);
    return { kind: 'rows', header, tableId, endOfStatement: (r.u16() & STMT_END_FLAG) !== 0 };
  }
  if (OPAQUE_STATEMENTS.has(t)) return { kind: 'opaque-statement', header };
  if (IGNORED.has(t) || (header.flags & IGNORABLE_FLAG) !== 0) return { kind: 'ignored', header };
  return { kind: 'unknown', header };
}
