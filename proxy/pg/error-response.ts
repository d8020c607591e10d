// Builds the ErrorResponse messages the proxy itself sends. One place decides severity and codes,
// so every proxy-made error looks like the server's own to the client.

export const SqlState = {
  ProtocolViolation: '08P01',
  ConnectionFailure: '08006',
  CannotConnectNow: '57P03',
  TooManyConnections: '53300',
  OutOfMemory: '53200',
  AdminShutdown: '57P01',
  InvalidAuthorization: '28000',
  InvalidPassword: '28P01',
} as const;
export type SqlState = (typeof SqlState)[keyof typeof SqlState];

export type Severity = 'ERROR' | 'FATAL';

/** A failure the proxy reports to its client as an ErrorResponse. */
export class PgProxyError extends Error {
  constructor(readonly sqlState: SqlState, message: string, readonly severity: Severity = 'FATAL') {
    super(message);
    this.name = 'PgProxyError';
  }
}

export function errorResponse(err: PgProxyError): Buffer {
  const fields: [string, string][] = [
    ['S', err.severity],
    ['V', err.severity],
    ['C', err.sqlState],
    ['M', err.message],
  ];
  let size = 4 + 1;
  for (const [, v] of fields) size += 1 + Buffer.byteLength(v) + 1;
  const buf = Buffer.allocUnsafe(1 + size);
  buf[0] = 0x45; // E
  buf.writeInt32BE(size, 1);
  let pos = 5;
  for (const [k, v] of fields) {
    buf[pos++] = k.charCodeAt(0);
    pos += buf.write(v, pos);
    buf[pos++] = 0;
  }
  buf[pos] = 0;
  return buf;
}
