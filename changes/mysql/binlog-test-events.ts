// Binlog packets for the decoder's and the tracker's tests: some captured from MariaDB 10.11
// (binlog_format=ROW, binlog_checksum=CRC32, @mariadb_slave_capability=4) byte for byte, and a
// builder for event types that server does not send (MySQL's) or that are awkward to provoke.
import { EventType } from './binlog-events.js';

/** Captured from `mariadbd --log-bin --binlog-format=ROW` while a client ran the statements named. */
export const CAPTURED = {
  /** The artificial Rotate that starts a dump (log_pos 0). */
  rotate: '000000000004010000002c000000000000002000040000000000000062696e6c6f672e303030303031e9d2ca6e',
  /** CREATE DATABASE IF NOT EXISTS d2: a standalone GTID group (FL_STANDALONE), then its Query. */
  ddlGtid: '00365d166ba2010000002a000000e10600000800080000000000000000000000290000000000004f36ccae',
  ddlQuery: '00365d166b02010000006100000042070000080008000000000000000200001a000000000001010800205400000000060373746404e000e0000800643200435245415445204441544142415345204946204e4f54204558495354532064327401e510',
  /** INSERT INTO d2.t VALUES (1,1),(2,2) on InnoDB: GTID, TABLE_MAP, WRITE_ROWS, XID. */
  insertGtid: '00365d166ba2010000002a000000e208000008000b00000000000000000000000c000000000000607ec2c7',
  insertTableMap: '00365d166b13010000002b0000006509000000001800000000000100026432000174000203030002a9b5478d',
  insertRows: '00365d166b17010000003300000098090000000018000000000001000203fc0100000001000000fc020000000200000084bbb917',
  insertXid: '00365d166b10010000001f000000b709000000002000000000000000607a4e2e',
  /** The same on a MyISAM table: the group ends with a COMMIT Query, not an XID. */
  myisamGtid: '00365d166ba2010000002a000000e109000008000c0000000000000000000000080000000000004c027bcd',
  myisamTableMap: '00365d166b13010000002b0000005e0a00000000190000000000010002643200016d0002030300022cca72ad',
  myisamRows: '00365d166b17010000002a000000880a0000000019000000000001000203fc010000000100000039f4ba68',
  myisamCommit: '00365d166b020100000045000000cd0a0000080008000000000000000000001a000000000001010800205400000000060373746404e000e000080000434f4d4d49542226d55c',
  /** UPDATE d1.t SET v=v+1: UPDATE_ROWS (type 24). */
  updateRows: '00065d166b1801000000460000002206000000001200000000000100020303fc0100000001000000fc0100000002000000fc0200000002000000fc02000000030000009cdba481',
  /** TRUNCATE d1.t: a standalone Query. */
  truncateQuery: '00065d166b02010000004c000000b7060000000006000000000000000000001a000000000001010800205400000000060373746404e000e0000800005452554e434154452064312e74ef1f154a',
  /** The GTID list and binlog checkpoint events after the Format Description. */
  gtidList: '00925c166ba3010000001d0000001d0100000000000000000000df992c47',
  checkpoint: '00925c166ba101000000280000004501000000000d00000062696e6c6f672e303030303031de1af165',
} as const;

/** The Format Description event of the same server (truncated in the capture above, so rebuilt here). */
export function formatDescription(serverVersion = '10.11.19-MariaDB-log', tableMapPostHeader = 8): Buffer {
  const body = Buffer.alloc(2 + 50 + 4 + 1 + 172 + 1);
  body.writeUInt16LE(4, 0);
  body.write(serverVersion, 2, 'latin1');
  body[56] = 19;
  body.fill(8, 57, 57 + 172);
  body[57 + EventType.TableMap - 1] = tableMapPostHeader;
  body[body.length - 1] = 1; // checksum algorithm: CRC32
  return event(EventType.FormatDescription, body, { logPos: 256 });
}

export interface EventOptions {
  logPos?: number;
  flags?: number;
  serverId?: number;
  timestamp?: number;
  /** Adds the 4 trailer bytes (not a real CRC: the decoder does not check it). */
  checksum?: boolean;
}

/** A dump packet payload: 0x00, the v4 header, `body`, and a 4-byte checksum trailer. */
export function event(type: number, body: Buffer, opts: EventOptions = {}): Buffer {
  const trailer = opts.checksum === false ? 0 : 4;
  const size = 19 + body.length + trailer;
  const b = Buffer.alloc(1 + size);
  b.writeUInt32LE(opts.timestamp ?? 1_800_000_000, 1);
  b[5] = type;
  b.writeUInt32LE(opts.serverId ?? 1, 6);
  b.writeUInt32LE(size, 10);
  b.writeUInt32LE(opts.logPos ?? 1000, 14);
  b.writeUInt16LE(opts.flags ?? 0, 18);
  body.copy(b, 20);
  return b;
}

export function queryEvent(schema: string, sql: string, opts: EventOptions = {}): Buffer {
  const s = Buffer.from(schema, 'utf8');
  const head = Buffer.alloc(13);
  head[8] = s.length;
  return event(EventType.Query, Buffer.concat([head, s, Buffer.from([0]), Buffer.from(sql, 'utf8')]), opts);
}

export function tableMapEvent(tableId: number, schema: string, table: string, opts: EventOptions = {}): Buffer {
  const id = Buffer.alloc(8);
  id.writeUIntLE(tableId, 0, 6);
  const s = Buffer.from(schema, 'utf8');
  const t = Buffer.from(table, 'utf8');
  return event(EventType.TableMap, Buffer.concat([id, Buffer.from([s.length]), s, Buffer.from([0]), Buffer.from([t.length]), t, Buffer.from([0, 1, 3, 0])]), opts);
}

export function rowsEvent(type: number, tableId: number, endOfStatement = true, opts: EventOptions = {}): Buffer {
  const b = Buffer.alloc(6 + 2 + 8);
  b.writeUIntLE(tableId, 0, 6);
  b.writeUInt16LE(endOfStatement ? 1 : 0, 6);
  return event(type, b, opts);
}

export function xidEvent(opts: EventOptions = {}): Buffer {
  return event(EventType.Xid, Buffer.alloc(8), opts);
}

export function mariadbGtidEvent(sequence: bigint, domainId: number, standalone: boolean, opts: EventOptions = {}): Buffer {
  const b = Buffer.alloc(8 + 4 + 1 + 6);
  b.writeBigUInt64LE(sequence, 0);
  b.writeUInt32LE(domainId, 8);
  b[12] = standalone ? 1 : 0;
  return event(EventType.MariadbGtid, b, opts);
}

export function heartbeatEvent(file: string, logPos: number): Buffer {
  return event(EventType.Heartbeat, Buffer.from(file, 'latin1'), { logPos, timestamp: 0 });
}

export function errorPacket(code: number, sqlState: string, message: string): Buffer {
  const b = Buffer.alloc(3 + 1 + 5);
  b[0] = 0xff;
  b.writeUInt16LE(code, 1);
  b[3] = 0x23;
  b.write(sqlState, 4, 'latin1');
  return Buffer.concat([b, Buffer.from(message, 'utf8')]);
}

export function hex(h: string): Buffer {
  return Buffer.from(h, 'hex');
}
