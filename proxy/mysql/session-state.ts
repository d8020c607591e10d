// What the session knows about its server connection, learned from the packets that pass: the
// negotiated capabilities, who is logged in to which database, the transaction and autocommit
// status the server reports in every OK/EOF, the prepared statements it holds, the session
// variables it reports changed. The cache decides from these facts; nothing here parses SQL.
import { Capability, MariaDbCapability, ServerStatus } from './codes.js';
import type { HandshakeResponse, ServerHandshake } from './handshake.js';
import type { OkPacket } from './server-packets.js';

export class MySqlSessionState {
  connectionId = 0;
  serverVersion = '';
  /** Capabilities in effect: what the proxy offered and the client asked for. */
  capabilities = 0;
  mariaDbCapabilities = 0;
  user = '';
  /**
   * The current database; null when none is selected or when it cannot be known (a `USE` inside a
   * text query on a connection without session tracking).
   */
  database: string | null = null;
  /** The connection's character set (collation id) as the client announced it. */
  charset = 0;
  /** Server status flags of the latest OK or EOF packet. */
  status = 0;
  /** Prepared statements the server holds: statement id -> SQL text. */
  readonly statements = new Map<number, string>();
  /** System variables the server reported through session tracking (e.g. autocommit, time_zone). */
  readonly variables = new Map<string, string>();
  /** Set once the server accepted the login. */
  authenticated = false;

  get deprecateEof(): boolean {
    return (this.capabilities & Capability.DeprecateEof) !== 0;
  }

  get sessionTrack(): boolean {
    return (this.capabilities & Capability.SessionTrack) !== 0;
  }

  get progressReports(): boolean {
    return (this.mariaDbCapabilities & MariaDbCapability.Progress) !== 0;
  }

  get inTransaction(): boolean {
    return (this.status & ServerStatus.InTrans) !== 0;
  }

  get autocommit(): boolean {
    return (this.status & ServerStatus.Autocommit) !== 0;
  }

  /** The login: the handshake as the client saw it and the client's answer. */
  onLogin(offered: { capabilities: number; mariaDbCapabilities: number }, hs: ServerHandshake, response: HandshakeResponse): void {
    this.connectionId = hs.connectionId;
    this.serverVersion = hs.serverVersion;
    this.status = hs.status;
    this.capabilities = (response.capabilities & offered.capabilities) >>> 0;
    this.mariaDbCapabilities = (response.mariaDbCapabilities & offered.mariaDbCapabilities) >>> 0;
    this.user = response.user;
    this.database = response.database || null;
    this.charset = response.charset;
  }

  /** Status flags and session-state changes of an OK packet. */
  onOk(ok: OkPacket): void {
    this.status = ok.status;
    if (ok.schema !== null) this.database = ok.schema || null;
    for (const [name, value] of ok.variables) this.variables.set(name, value);
  }

  onEof(status: number): void {
    this.status = status;
  }

  /** COM_CHANGE_USER succeeded: a new login on the same connection. */
  onUserChanged(user: string, database: string | null, charset: number | null): void {
    this.user = user;
    this.database = database || null;
    if (charset !== null) this.charset = charset;
    this.sessionReset();
  }

  /** COM_RESET_CONNECTION or COM_CHANGE_USER succeeded: statements and session variables are gone. */
  sessionReset(): void {
    this.statements.clear();
    this.variables.clear();
  }
}
