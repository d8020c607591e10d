// MySQL/MariaDB wire-protocol constants the proxy looks at. Anything not listed passes through.
// Capability flags are 32-bit values compared with `>>> 0` (JS bit operations are signed);
// MariaDB's extended capabilities travel in a separate 32-bit word (bits 32..63 of the full set).

/** The first byte of a command packet (client -> server). */
export const enum Command {
  Quit = 0x01,
  InitDb = 0x02,
  Query = 0x03,
  FieldList = 0x04,
  CreateDb = 0x05,
  DropDb = 0x06,
  Refresh = 0x07,
  Shutdown = 0x08,
  Statistics = 0x09,
  ProcessInfo = 0x0a,
  ProcessKill = 0x0c,
  Debug = 0x0d,
  Ping = 0x0e,
  ChangeUser = 0x11,
  BinlogDump = 0x12,
  RegisterSlave = 0x15,
  StmtPrepare = 0x16,
  StmtExecute = 0x17,
  StmtSendLongData = 0x18,
  StmtClose = 0x19,
  StmtReset = 0x1a,
  SetOption = 0x1b,
  StmtFetch = 0x1c,
  BinlogDumpGtid = 0x1e,
  ResetConnection = 0x1f,
  /** MariaDB only. */
  StmtBulkExecute = 0xfa,
}

/** The first byte of a server packet where it tells the packet's kind. */
export const enum Header {
  Ok = 0x00,
  /** An auth-more-data packet during authentication (caching_sha2_password, ed25519, ...). */
  AuthMoreData = 0x01,
  /** LOCAL INFILE request in a command reply. */
  LocalInfile = 0xfb,
  /** EOF packet, OK packet ending a result set (DEPRECATE_EOF), or AuthSwitchRequest during auth. */
  Eof = 0xfe,
  Err = 0xff,
}

export const enum Capability {
  /** MariaDB reuses this bit, as "CLIENT_MYSQL": when clear, extended capabilities are present. */
  LongPassword = 0x00000001,
  ConnectWithDb = 0x00000008,
  Compress = 0x00000020,
  LocalFiles = 0x00000080,
  Protocol41 = 0x00000200,
  Ssl = 0x00000800,
  Transactions = 0x00002000,
  SecureConnection = 0x00008000,
  MultiStatements = 0x00010000,
  MultiResults = 0x00020000,
  PsMultiResults = 0x00040000,
  PluginAuth = 0x00080000,
  ConnectAttrs = 0x00100000,
  PluginAuthLenencClientData = 0x00200000,
  SessionTrack = 0x00800000,
  DeprecateEof = 0x01000000,
  /** MySQL 8: result sets may omit column definitions. */
  OptionalResultsetMetadata = 0x02000000,
  /** MySQL 8: zstd compression. */
  ZstdCompression = 0x04000000,
  QueryAttributes = 0x08000000,
}

/** MariaDB extended capabilities (the upper 32 bits), as the 32-bit word they travel in. */
export const enum MariaDbCapability {
  Progress = 0x00000001,
  ComMulti = 0x00000002,
  StmtBulkOperations = 0x00000004,
  ExtendedMetadata = 0x00000008,
  /** Result sets of prepared statements may omit column definitions. */
  CacheMetadata = 0x00000010,
}

/**
 * Capabilities the proxy hides from clients: TLS, which it does not terminate yet; zstd compression
 * (MySQL 8.0.18+ only; MariaDB has none); optional metadata, with which a reply could omit what
 * the proxy reads to find where it ends. Hiding them makes the server and client agree on the
 * plain protocol.
 */
export const HIDDEN_CAPABILITIES = (Capability.Ssl | Capability.ZstdCompression | Capability.OptionalResultsetMetadata) >>> 0;
/**
 * What the upstream is never asked for: the hidden capabilities, and zlib compression, which the
 * proxy speaks with its client itself (compression.ts) while the upstream leg stays plain.
 */
export const UPSTREAM_HIDDEN_CAPABILITIES = (HIDDEN_CAPABILITIES | Capability.Compress) >>> 0;
export const HIDDEN_MARIADB_CAPABILITIES = (MariaDbCapability.ComMulti | MariaDbCapability.CacheMetadata) >>> 0;

export const enum ServerStatus {
  InTrans = 0x0001,
  Autocommit = 0x0002,
  MoreResultsExist = 0x0008,
  CursorExists = 0x0040,
  LastRowSent = 0x0080,
  /** In a transaction started READ ONLY (START TRANSACTION READ ONLY, or SET TRANSACTION READ ONLY before it). */
  InTransReadonly = 0x2000,
  SessionStateChanged = 0x4000,
}

/** Types of session-state-change records in an OK packet (CLIENT_SESSION_TRACK). */
export const enum SessionTrack {
  SystemVariables = 0,
  Schema = 1,
}

/** One packet's payload is at most this long; a payload of exactly this length continues in the next. */
export const MAX_PACKET_PAYLOAD = 0xffffff;

/** A MariaDB progress report arrives as an ERR packet with this code; it does not end the reply. */
export const PROGRESS_REPORT_ERROR_CODE = 0xffff;

/** HandshakeResponse41 and SSLRequest start with 4+4+1+23 fixed bytes; an SSLRequest is only those. */
export const HANDSHAKE_RESPONSE_FIXED = 32;

/** Largest packet accepted before the client is authenticated (a HandshakeResponse with attributes). */
export const MAX_LOGIN_PACKET = 128 * 1024;
