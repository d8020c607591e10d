// Which server a protocol's cached results came from. An upstream session ending says nothing
// about the server (one backend terminated, one thread KILLed, an idle timeout); a server that
// restarted, failed over or was restored is told by what it says of itself at the next login.
// Each session asks before the cache may answer it (the relays inject the query on the client's
// own connection and swallow its reply); the cache drops everything when the answer is not the
// server its entries were filled from. Pure: rows in, identities and verdicts out.

/** What a server says of itself: equal for one running server, different after a restart or on another server. */
export interface ServerIdentity {
  /** What names the server (PostgreSQL: system identifier; MySQL: server id or uuid, host name, port). */
  readonly server: string;
  /** When the server started, in milliseconds since the epoch, by its own clock (MySQL: whole seconds). */
  readonly startedAtMs: number;
}

export class IdentityError extends Error {
  override name = 'IdentityError';
}

/**
 * PostgreSQL: any role may call both functions (PUBLIC has EXECUTE on PostgreSQL 15, and on
 * PGlite). Every name is qualified and the time is formatted in UTC, so neither the session's
 * search_path nor its TimeZone, DateStyle or extra_float_digits changes the text.
 */
export const PG_IDENTITY_SQL = 'SELECT s.system_identifier, pg_catalog.to_char(pg_catalog.pg_postmaster_start_time() AT TIME ZONE \'UTC\', '
  + '\'YYYY-MM-DD HH24:MI:SS.US\') FROM pg_catalog.pg_control_system() s';

/** How many columns PG_IDENTITY_SQL reads (a caller may append its own after them). */
export const PG_IDENTITY_COLUMNS = 2;

/** How many columns mysqlIdentitySql reads (a caller may append its own after them). */
export const MYSQL_IDENTITY_COLUMNS = 5;

/**
 * MySQL / MariaDB: no start time is exposed, but Uptime is the statement's start time minus the
 * server's, in whole seconds, and UNIX_TIMESTAMP() is that same statement start (SET TIMESTAMP
 * moves both), so their difference is the server's start, exactly: no tolerance is needed, and
 * two servers are told apart by it when they started in different seconds. MariaDB has no
 * server_uuid; the server id, host name and port name it. MySQL 8 dropped
 * information_schema.GLOBAL_STATUS for performance_schema.global_status. The host name travels in
 * hex so no character set can change it.
 */
export function mysqlIdentitySql(mariadb: boolean): string {
  return mariadb
    ? 'SELECT @@server_id, HEX(@@hostname), @@port, UNIX_TIMESTAMP(), '
      + "(SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'UPTIME')"
    : 'SELECT @@server_uuid, HEX(@@hostname), @@port, UNIX_TIMESTAMP(), '
      + "(SELECT VARIABLE_VALUE FROM performance_schema.global_status WHERE VARIABLE_NAME = 'Uptime')";
}

const PG_START = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6})$/;
const DIGITS = /^\d{1,20}$/;
/** Seconds: more digits is no uptime or clock (MariaDB shows a negative uptime as 2^64 minus it). */
const SECONDS = /^\d{1,12}$/;
const SERVER_ID = /^[0-9A-Za-z-]{1,64}$/;
const HEX = /^(?:[0-9A-F]{2})*$/;

/** PostgreSQL's answer to PG_IDENTITY_SQL. Throws IdentityError on anything else. */
export function readPgIdentity(row: readonly (string | null)[]): ServerIdentity {
  const [system, started] = row;
  if (row.length !== PG_IDENTITY_COLUMNS || system == null || !DIGITS.test(system)) throw new IdentityError(`unexpected system identifier ${String(system)}`);
  const m = started == null ? null : PG_START.exec(started);
  if (m === null) throw new IdentityError(`unexpected start time ${String(started)}`);
  const [y, mo, d, h, mi, s, us] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
  // Microseconds: two servers started within a millisecond of each other are still told apart.
  return { server: system, startedAtMs: Date.UTC(y, mo - 1, d, h, mi, s) + us / 1000 };
}

/** MySQL's or MariaDB's answer to mysqlIdentitySql. Throws IdentityError on anything else. */
export function readMysqlIdentity(row: readonly (string | null)[]): ServerIdentity {
  const [id, host, port, now, uptime] = row;
  if (row.length !== MYSQL_IDENTITY_COLUMNS || id == null || !SERVER_ID.test(id) || host == null || !HEX.test(host) || port == null || !DIGITS.test(port)) {
    throw new IdentityError(`unexpected server id, host name or port ${JSON.stringify(row.slice(0, 3))}`);
  }
  if (now == null || !SECONDS.test(now) || uptime == null || !SECONDS.test(uptime)) {
    throw new IdentityError(`unexpected clock ${String(now)} or uptime ${String(uptime)}`);
  }
  return { server: `${id} ${host} ${port}`, startedAtMs: (Number(now) - Number(uptime)) * 1000 };
}

/** The identity in the check's reply, or why it holds none (the query failed, no row, another row). */
export function identityOf(errored: boolean, row: readonly (string | null)[] | null,
  read: (row: readonly (string | null)[]) => ServerIdentity): ServerIdentity | IdentityError {
  if (errored) return new IdentityError('the query failed');
  if (row === null) return new IdentityError('no row');
  try {
    return read(row);
  } catch (err) {
    if (err instanceof IdentityError) return err;
    throw err;
  }
}

/** One server, as far as the two readings tell. */
export function sameServer(a: ServerIdentity, b: ServerIdentity): boolean {
  return a.server === b.server && a.startedAtMs === b.startedAtMs;
}

/**
 * The server a protocol's cached entries were filled from, and an epoch that changes with it: a
 * session may use the cache while the epoch it verified its own server under is the current one.
 */
export class UpstreamIdentity {
  private known: ServerIdentity | null = null;
  private epochCount = 0;

  get epoch(): number {
    return this.epochCount;
  }

  /**
   * A session read its server's identity. Returns true when it is another server than the one
   * known (the entries must go); the first reading only makes it known.
   */
  observe(seen: ServerIdentity): boolean {
    if (this.known !== null && sameServer(this.known, seen)) return false;
    const changed = this.known !== null;
    this.known = seen;
    this.epochCount++;
    return changed;
  }
}
