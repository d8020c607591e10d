// PostgreSQL wire-protocol message codes (protocol 3.x) the proxy looks at.
// Anything not listed is passed through untouched.

export const enum Frontend {
  Bind = 0x42, // B
  Close = 0x43, // C
  Describe = 0x44, // D
  Execute = 0x45, // E
  FunctionCall = 0x46, // F
  Flush = 0x48, // H
  Parse = 0x50, // P
  Query = 0x51, // Q
  Sync = 0x53, // S
  Terminate = 0x58, // X
  CopyData = 0x64, // d
  CopyDone = 0x63, // c
  CopyFail = 0x66, // f
  Password = 0x70, // p (also SASLInitialResponse / SASLResponse)
}

export const enum Backend {
  ParseComplete = 0x31, // 1
  BindComplete = 0x32, // 2
  CloseComplete = 0x33, // 3
  NotificationResponse = 0x41, // A
  CommandComplete = 0x43, // C
  DataRow = 0x44, // D
  ErrorResponse = 0x45, // E
  CopyInResponse = 0x47, // G
  CopyOutResponse = 0x48, // H
  EmptyQueryResponse = 0x49, // I
  BackendKeyData = 0x4b, // K
  NoticeResponse = 0x4e, // N
  Authentication = 0x52, // R
  ParameterStatus = 0x53, // S
  RowDescription = 0x54, // T
  CopyBothResponse = 0x57, // W
  ReadyForQuery = 0x5a, // Z
  NoData = 0x6e, // n
  PortalSuspended = 0x73, // s
  ParameterDescription = 0x74, // t
  NegotiateProtocolVersion = 0x76, // v
}

/** What an Authentication ('R') message asks for: the Int32 after its length. */
export const enum AuthRequest {
  Ok = 0,
  KerberosV5 = 2,
  CleartextPassword = 3,
  MD5Password = 5,
  GSS = 7,
  GSSContinue = 8,
  SSPI = 9,
  SASL = 10,
  SASLContinue = 11,
  SASLFinal = 12,
}

/** Request codes carried in the version field of untyped startup-phase packets. */
export const enum StartupCode {
  CancelRequest = 80877102,
  SSLRequest = 80877103,
  GSSENCRequest = 80877104,
}

export const PROTOCOL_MAJOR_3 = 3;
/** Startup packets are small; PostgreSQL itself refuses any longer than this. */
export const MAX_STARTUP_PACKET = 10000;
/**
 * The longest message (length field) a client may send before its login completes: PostgreSQL
 * reads password and SASL messages with this limit (PG_MAX_AUTH_TOKEN_LENGTH, libpq/auth.h), so
 * no client that the server would let in needs more, and one that has not logged in cannot make
 * the proxy hold --max-message-bytes.
 */
export const MAX_LOGIN_MESSAGE = 65535;
