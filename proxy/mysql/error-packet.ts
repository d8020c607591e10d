// Builds the ERR packets the proxy itself sends. One place decides codes and SQL states, so every
// proxy-made error reads like a server's own in any MySQL client: the error number picks the
// client's wording and category, the '#' SQL state is always included (clients check for the '#').

/** Error numbers, with the SQL state each is sent with. */
export const MySqlErrorCode = {
  /** ER_CON_COUNT_ERROR: "Too many connections". */
  TooManyConnections: { code: 1040, sqlState: '08004' },
  /** ER_HANDSHAKE_ERROR: "Bad handshake" (garbage or an unsupported login request). */
  BadHandshake: { code: 1043, sqlState: '08S01' },
  /** ER_OUTOFMEMORY: "Out of memory; restart server and try again (needed N bytes)". */
  OutOfMemory: { code: 1037, sqlState: 'HY001' },
  /** ER_SERVER_SHUTDOWN. */
  ServerShutdown: { code: 1053, sqlState: '08S01' },
  /** ER_NET_PACKET_TOO_LARGE. */
  PacketTooLarge: { code: 1153, sqlState: '08S01' },
  /** ER_NET_PACKETS_OUT_OF_ORDER. */
  PacketsOutOfOrder: { code: 1156, sqlState: '08S01' },
  /** ER_NET_UNCOMPRESS_ERROR: "Couldn't uncompress communication packet". */
  UncompressError: { code: 1157, sqlState: '08S01' },
  /** ER_NET_READ_INTERRUPTED: "Got timeout reading communication packets". */
  ReadTimeout: { code: 1159, sqlState: '08S01' },
  /** ER_MALFORMED_PACKET. */
  MalformedPacket: { code: 1835, sqlState: '08S01' },
  /** ER_NOT_SUPPORTED_YET (TLS requested while the proxy has no certificate). */
  NotSupportedYet: { code: 1235, sqlState: '08004' },
  /** ER_SECURE_TRANSPORT_REQUIRED: a login refused without TLS (--client-tls require, caching_sha2 full auth). */
  SecureTransportRequired: { code: 3159, sqlState: 'HY000' },
  /** CR_CONN_HOST_ERROR: what a client reports when it cannot reach a server. */
  UpstreamUnreachable: { code: 2003, sqlState: '08S01' },
  /** CR_SERVER_LOST: the connection to the server broke during a request. */
  UpstreamLost: { code: 2013, sqlState: '08S01' },
} as const;
export type MySqlErrorCode = (typeof MySqlErrorCode)[keyof typeof MySqlErrorCode];

/** A failure the proxy reports to its client as an ERR packet, then closes the connection. */
export class MySqlProxyError extends Error {
  constructor(readonly error: MySqlErrorCode, message: string) {
    super(message);
    this.name = 'MySqlProxyError';
  }
}

/** The ERR packet, header included, with sequence id `seq`. */
export function errPacket(err: MySqlProxyError, seq: number): Buffer {
  const message = Buffer.from(err.message, 'utf8');
  const payload = 1 + 2 + 6 + message.length;
  const buf = Buffer.allocUnsafe(4 + payload);
  buf.writeUIntLE(payload, 0, 3);
  buf[3] = seq & 0xff;
  buf[4] = 0xff;
  buf.writeUInt16LE(err.error.code, 5);
  buf[7] = 0x23; // '#'
  buf.write(err.error.sqlState, 8, 5, 'latin1');
  message.copy(buf, 13);
  return buf;
}
