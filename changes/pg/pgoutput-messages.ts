// Builds pgoutput and walsender messages byte for byte as PostgreSQL 15 writes them
// (src/backend/replication/logical/proto.c, walsender.c), for the decoder's and the tracker's tests.

const PG_EPOCH_MS = 946_684_800_000;

class Writer {
  private readonly parts: Buffer[] = [];

  u8(v: number): this {
    this.parts.push(Buffer.from([v]));
    return this;
  }

  u16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v);
    this.parts.push(b);
    return this;
  }

  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    this.parts.push(b);
    return this;
  }

  i32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    this.parts.push(b);
    return this;
  }

  u64(v: number): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(v));
    this.parts.push(b);
    return this;
  }

  timestamp(ms: number): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(BigInt(Math.round((ms - PG_EPOCH_MS) * 1000)));
    this.parts.push(b);
    return this;
  }

  cstring(s: string): this {
    this.parts.push(Buffer.from(s + '\u0000', 'utf8'));
    return this;
  }

  bytes(b: Buffer): this {
    this.parts.push(b);
    return this;
  }

  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const letter = (c: string): number => c.charCodeAt(0);
const withXid = (w: Writer, xid: number | undefined): Writer => (xid === undefined ? w : w.u32(xid));

export const pgoutput = {
  begin: (finalLsn: number, commitTimeMs: number, xid: number): Buffer =>
    new Writer().u8(letter('B')).u64(finalLsn).timestamp(commitTimeMs).u32(xid).done(),
  commit: (commitLsn: number, endLsn: number, commitTimeMs: number): Buffer =>
    new Writer().u8(letter('C')).u8(0).u64(commitLsn).u64(endLsn).timestamp(commitTimeMs).done(),
  relation: (relid: number, namespace: string, name: string, columns: [string, number, number][], xid?: number): Buffer => {
    const w = withXid(new Writer().u8(letter('R')), xid).u32(relid).cstring(namespace).cstring(name).u8(letter('d')).u16(columns.length);
    for (const [col, type, mod] of columns) w.u8(1).cstring(col).u32(type).i32(mod);
    return w.done();
  },
  /** A tuple of `values` text columns, as pgoutput sends it (TupleData). */
  insert: (relid: number, values: string[], xid?: number): Buffer =>
    withXid(new Writer().u8(letter('I')), xid).u32(relid).u8(letter('N')).bytes(tuple(values)).done(),
  update: (relid: number, oldKey: string[] | null, values: string[], xid?: number): Buffer => {
    const w = withXid(new Writer().u8(letter('U')), xid).u32(relid);
    if (oldKey !== null) w.u8(letter('K')).bytes(tuple(oldKey));
    return w.u8(letter('N')).bytes(tuple(values)).done();
  },
  delete: (relid: number, key: string[], xid?: number): Buffer =>
    withXid(new Writer().u8(letter('D')), xid).u32(relid).u8(letter('K')).bytes(tuple(key)).done(),
  truncate: (relids: number[], xid?: number): Buffer => {
    const w = withXid(new Writer().u8(letter('T')), xid).u32(relids.length).u8(0);
    for (const id of relids) w.u32(id);
    return w.done();
  },
  message: (prefix: string, content: string, transactional: boolean, lsn: number, xid?: number): Buffer => {
    const body = Buffer.from(content, 'utf8');
    return withXid(new Writer().u8(letter('M')), xid).u8(transactional ? 1 : 0).u64(lsn).cstring(prefix).u32(body.length).bytes(body).done();
  },
  origin: (lsn: number, name: string): Buffer => new Writer().u8(letter('O')).u64(lsn).cstring(name).done(),
  type: (oid: number, namespace: string, name: string): Buffer => new Writer().u8(letter('Y')).u32(oid).cstring(namespace).cstring(name).done(),
  streamStart: (xid: number, first: boolean): Buffer => new Writer().u8(letter('S')).u32(xid).u8(first ? 1 : 0).done(),
  streamStop: (): Buffer => new Writer().u8(letter('E')).done(),
  streamCommit: (xid: number, commitLsn: number, endLsn: number, commitTimeMs: number): Buffer =>
    new Writer().u8(letter('c')).u32(xid).u8(0).u64(commitLsn).u64(endLsn).timestamp(commitTimeMs).done(),
  streamAbort: (xid: number, subxid: number): Buffer => new Writer().u8(letter('A')).u32(xid).u32(subxid).done(),
};

export const walsender = {
  xlogData: (walStart: number, walEnd: number, sendTimeMs: number, payload: Buffer): Buffer =>
    new Writer().u8(letter('w')).u64(walStart).u64(walEnd).timestamp(sendTimeMs).bytes(payload).done(),
  keepalive: (walEnd: number, sendTimeMs: number, replyRequested: boolean): Buffer =>
    new Writer().u8(letter('k')).u64(walEnd).timestamp(sendTimeMs).u8(replyRequested ? 1 : 0).done(),
};

function tuple(values: string[]): Buffer {
  const w = new Writer().u16(values.length);
  for (const v of values) {
    const b = Buffer.from(v, 'utf8');
    w.u8(letter('t')).u32(b.length).bytes(b);
  }
  return w.done();
}
