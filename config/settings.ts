// The one table of sidecache's settings: name, flag, environment variable, config-file key,
// default, meaning, and whether a reload applies it. Every other module reads the frozen Config
// built here; docs and --help are generated from SETTINGS.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { parseDocument } from 'yaml';
import { usableCpus } from './cpu-count.js';
import { ConfigError } from './errors.js';
import { readPgAuthFile } from './pg-auth-file.js';
import { parseRedisCluster, parseRedisUrl, RedisTargetError, type RedisTarget } from './redis-target.js';
import { CacheRules, parseRules } from './rules.js';

export interface HostPort {
  host: string;
  port: number;
}

/**
 * TLS to the upstream, in libpq's terms (the MySQL URL's ssl-mode maps onto them: DISABLED, PREFERRED,
 * REQUIRED, VERIFY_CA, VERIFY_IDENTITY): `prefer` uses TLS when the server offers it, `require`
 * insists without checking the certificate, `verify-ca` checks it against `ca` (or the system's CAs),
 * `verify-full` also checks that it names the host.
 */
export const UPSTREAM_TLS_MODES = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type UpstreamTlsMode = (typeof UPSTREAM_TLS_MODES)[number];

export interface UpstreamTls {
  mode: UpstreamTlsMode;
  /** PEM file of the CA(s) that signed the server's certificate (sslrootcert, ssl-ca); null: the system's. */
  ca: string | null;
  /** PEM files of a client certificate and its key (sslcert/sslkey, ssl-cert/ssl-key); both or neither. */
  cert: string | null;
  key: string | null;
}

export interface ServerUrl extends HostPort {
  url: string;
}

export interface UpstreamUrl extends ServerUrl {
  tls: UpstreamTls;
}

/**
 * Where a change stream connects (--pg-cdc, --mysql-cdc): the server, the login and its password.
 * `url` is the same without the password, for logs and errors; the password is never printed.
 */
export interface CdcUrl extends ServerUrl {
  user: string;
  /** From the URL, the -password setting or the -password-file (loadConfig resolves it); null for none. */
  password: string | null;
}

export interface Config {
  /** The YAML file read at start and on reload; null when there is none. */
  configFile: string | null;
  pgUpstream: UpstreamUrl | null;
  pgListen: HostPort;
  mysqlUpstream: UpstreamUrl | null;
  mysqlListen: HostPort;
  adminListen: HostPort;
  /** PEM certificate (chain allowed) and key clients see; both or neither; re-read on every reload. */
  tlsCert: string | null;
  tlsKey: string | null;
  /** TLS from clients: null derives it (allow with a certificate, else disable). */
  clientTls: ClientTlsMode | null;
  /** PgBouncer-style userlist of SCRAM secrets: sidecache runs SCRAM itself for these users; re-read on every reload. */
  pgAuthFile: string | null;
  /** PgBouncer's auth_user: the role that runs pgAuthQuery for users not in the file; null: no auth query. */
  pgAuthUser: string | null;
  /** Its password, folded in from --pg-auth-password-file by loadConfig. Never logged. */
  pgAuthPassword: string | null;
  pgAuthPasswordFile: string | null;
  /** Returns (name, secret) of the user named by $1. */
  pgAuthQuery: string;
  /** The database the auth query runs in; null: the one the client asked for. */
  pgAuthDbname: string | null;
  /** Bearer token the admin API and /stats require; null leaves them open. */
  adminToken: string | null;
  /** Host names the admin listener answers besides localhost and IP addresses; null: its listen host's. */
  adminAllowedHosts: readonly string[] | null;
  maxMessageBytes: number;
  maxBufferedMessageBytes: number;
  maxClientConnections: number;
  loginTimeoutMs: number;
  messageStallTimeoutMs: number;
  upstreamConnectTimeoutMs: number;
  cacheMaxBytes: number;
  cacheMaxEntryBytes: number;
  cacheTtlMs: number;
  /** Request coalescing: how long a miss may wait for a fill of its key in flight; 0 turns coalescing off. */
  coalesceWaitMs: number;
  /** Request coalescing: misses waiting for one fill at most; more go to the database. */
  coalesceMaxWaiters: number;
  /** Statements that take at least this long are logged at warn level; 0 turns the log off. */
  slowQueryThresholdMs: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  logConnections: OnOff;
  /** PostgreSQL's change stream (logical replication); null leaves it off. */
  pgCdc: CdcUrl | null;
  /** Given apart from the URL; already folded into pgCdc.password. */
  pgCdcPassword: string | null;
  pgCdcPasswordFile: string | null;
  pgCdcPublication: string;
  /** Install an event trigger that reports DDL into the stream (logical decoding messages). */
  pgCdcDdl: OnOff;
  /** MySQL/MariaDB's change stream (the ROW binary log); null leaves it off. */
  mysqlCdc: CdcUrl | null;
  mysqlCdcPassword: string | null;
  mysqlCdcPasswordFile: string | null;
  /** The replica server id the binlog dump announces; null derives one (logged at start). */
  mysqlCdcServerId: number | null;
  /** The fleet's Redis (one node); null with redisCluster null: no fleet, sidecache works alone. */
  redis: RedisTarget | null;
  /** The fleet's Redis Cluster (seed nodes). */
  redisCluster: RedisTarget | null;
  /** Overrides the URL's password. Never logged; /api/config shows it redacted. */
  redisPassword: string | null;
  /** A file whose content (trailing newline cut) is the password: a Docker or Kubernetes secret. */
  redisPasswordFile: string | null;
  /** Every key the fleet uses starts with `{prefix}:`, one Cluster hash slot for all of them. */
  redisKeyPrefix: string;
  /** Approximate bound on the invalidation stream's length (XADD MAXLEN ~). */
  fleetStreamMaxLength: number;
  /** How long a leader's lease lasts without renewal: a dead leader's task moves on within it. */
  fleetLeaseMs: number;
  /** The second tier: fills also kept in the fleet's Redis, asked on a miss before the database. */
  l2: OnOff;
  /** Processes serving clients (workers/); 1 runs everything in this process as before. */
  workers: number;
  /** The config file's `rules:` list (not a flag or variable); applied by a reload. */
  cacheRules: CacheRules;
}

export { ConfigError };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['json', 'pretty'] as const;
export const ON_OFF = ['on', 'off'] as const;
export type OnOff = (typeof ON_OFF)[number];
export type LogFormat = (typeof LOG_FORMATS)[number];
export const CLIENT_TLS_MODES = ['disable', 'allow', 'require'] as const;
export type ClientTlsMode = (typeof CLIENT_TLS_MODES)[number];

/** Config fields that are settings of the table (the rules list is the file's alone). */
export type SettingKey = Exclude<keyof Config, 'cacheRules'>;

type Kind = 'hostport' | 'pg-url' | 'mysql-url' | 'pg-cdc-url' | 'mysql-cdc-url' | 'redis-url' | 'redis-cluster' | 'bytes' | 'count'
  | 'duration' | 'duration-or-off' | 'choice' | 'secret' | 'path' | 'name' | 'sql' | 'server-id' | 'host-list' | 'key-prefix' | 'workers';

export interface Setting<K extends SettingKey = SettingKey> {
  key: K;
  flag: string;
  kind: Kind;
  default: string | null;
  help: string;
  /** A reload (SIGHUP, POST /api/config/reload) applies a new value; otherwise it needs a restart. */
  live: boolean;
  /** Only a flag or the environment can set it (the config file cannot name itself). */
  notInFile?: true;
  /** The values a 'choice' setting takes. */
  choices?: readonly string[];
}

/** `--workers` takes at most this many processes. */
export const MAX_WORKERS = 64;
/** `--workers auto` uses every CPU up to this many: past it, the upstream and the kernel's accept path gain little. */
export const AUTO_WORKERS_CAP = 8;

export const SETTINGS: readonly Setting[] = [
  { key: 'configFile', flag: 'config', kind: 'path', default: null, live: false, notInFile: true,
    help: 'a YAML file whose keys are these flag names (see docs/config.example.yaml); environment variables and flags win over it; re-read on SIGHUP' },
  { key: 'pgUpstream', flag: 'pg-upstream', kind: 'pg-url', default: null, live: false,
    help: 'the real PostgreSQL server, `postgres://HOST:PORT[?sslmode=MODE&sslrootcert=FILE&sslcert=FILE&sslkey=FILE]` with libpq\'s meanings: sslmode `disable`, `prefer` (the default: TLS when the server offers it), `require` (TLS, certificate not checked unless sslrootcert is given), `verify-ca`, `verify-full` (certificate signed by sslrootcert, or the system\'s CAs, and naming HOST); a failed check refuses that client\'s login (08006); when neither upstream is set, the quick start runs on an embedded PGlite (see docs/tls.md)' },
  { key: 'pgListen', flag: 'pg-listen', kind: 'hostport', default: '0.0.0.0:5432', live: false,
    help: 'where sidecache accepts PostgreSQL clients (port 0 picks a free port)' },
  { key: 'mysqlUpstream', flag: 'mysql-upstream', kind: 'mysql-url', default: null, live: false,
    help: 'the real MySQL or MariaDB server, `mysql://HOST:PORT[?ssl-mode=MODE&ssl-ca=FILE&ssl-cert=FILE&ssl-key=FILE]` with MySQL\'s meanings: ssl-mode `DISABLED`, `PREFERRED` (the default: TLS when the server offers it), `REQUIRED` (certificate not checked unless ssl-ca is given), `VERIFY_CA`, `VERIFY_IDENTITY`; a failed check refuses that client\'s login (an ERR packet); unset leaves the MySQL side off (see docs/tls.md)' },
  { key: 'mysqlListen', flag: 'mysql-listen', kind: 'hostport', default: '0.0.0.0:3306', live: false,
    help: 'where sidecache accepts MySQL/MariaDB clients (port 0 picks a free port)' },
  { key: 'adminListen', flag: 'admin-listen', kind: 'hostport', default: '127.0.0.1:9180', live: false,
    help: 'HTTP listener for the dashboard, /healthz, /metrics, /stats and the admin API /api/* (port 0 picks a free port)' },
  { key: 'tlsCert', flag: 'tls-cert', kind: 'path', default: null, live: true,
    help: 'PEM certificate (its chain may follow it in the file) sidecache shows clients of both protocols that ask for TLS (PostgreSQL SSLRequest or direct TLS with ALPN `postgresql`, MySQL CLIENT_SSL); with `tls-key`. A reload (SIGHUP, POST /api/config/reload) reads both files again, even under the same names: new connections get the new certificate, open ones keep theirs (see docs/tls.md)' },
  { key: 'tlsKey', flag: 'tls-key', kind: 'path', default: null, live: true,
    help: 'PEM private key of `tls-cert` (unencrypted)' },
  { key: 'clientTls', flag: 'client-tls', kind: 'choice', choices: CLIENT_TLS_MODES, default: null, live: true,
    help: 'TLS from clients: `disable` (PostgreSQL SSLRequest answered N, MySQL CLIENT_SSL not offered), `allow` (TLS for clients that ask, cleartext for the others) or `require` (a cleartext login is refused: PostgreSQL 28000, MySQL error 3159); unset: `allow` when `tls-cert` is set, else `disable`' },
  { key: 'pgAuthFile', flag: 'pg-auth-file', kind: 'path', default: null, live: true,
    help: 'PostgreSQL users whose SCRAM secret sidecache knows, in PgBouncer\'s auth_file format: one `"USER" "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>"` per line (the user\'s `rolpassword` from `pg_authid`). sidecache then authenticates these users itself, offering SCRAM-SHA-256-PLUS with channel binding on its own certificate to TLS clients, and logs in upstream as them with the key the client proved (channel binding on the server\'s certificate when that leg is TLS): libpq\'s `channel_binding=prefer` and `require` work with TLS on both legs. Other users\' logins pass through as before. A reload reads the file again; secrets are never logged (see docs/tls.md)' },
  { key: 'pgAuthUser', flag: 'pg-auth-user', kind: 'name', default: null, live: false,
    help: 'as PgBouncer\'s auth_user: for a PostgreSQL user not in `pg-auth-file`, sidecache logs in to the server as this role (with `pg-auth-password`, over the pg-upstream URL\'s TLS settings) and runs `pg-auth-query` to fetch the user\'s SCRAM secret; with one, the login goes as for a user of the file, without one (no row, an md5 hash, a failed query: logged) it is relayed as before. Unset: no auth query (see docs/tls.md)' },
  { key: 'pgAuthPassword', flag: 'pg-auth-password', kind: 'secret', default: null, live: false,
    help: 'the pg-auth-user role\'s password; never logged or shown. Prefer the environment variable or pg-auth-password-file: flags show in `ps`' },
  { key: 'pgAuthPasswordFile', flag: 'pg-auth-password-file', kind: 'path', default: null, live: false,
    help: 'a file whose first line is the pg-auth-user role\'s password (read at start)' },
  { key: 'pgAuthQuery', flag: 'pg-auth-query', kind: 'sql', live: false,
    default: 'SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END FROM pg_authid WHERE rolname = $1 AND rolcanlogin',
    help: 'as PgBouncer\'s auth_query: the query pg-auth-user runs with the user name as $1; its first row\'s second column is the user\'s secret as in pg_authid.rolpassword. The default reads pg_authid, which needs a superuser: give a less privileged pg-auth-user a SECURITY DEFINER function instead (docs/tls.md)' },
  { key: 'pgAuthDbname', flag: 'pg-auth-dbname', kind: 'name', default: null, live: false,
    help: 'as PgBouncer\'s auth_dbname: the database the auth query runs in; unset: the database the client asked for' },
  { key: 'adminToken', flag: 'admin-token', kind: 'secret', default: null, live: false,
    help: 'when set, the admin API (/api/*) and /stats require `Authorization: Bearer <token>`; /metrics, /healthz and the dashboard page stay open (see docs/admin-api.md)' },
  { key: 'adminAllowedHosts', flag: 'admin-allowed-hosts', kind: 'host-list', default: null, live: false,
    help: 'comma-separated host names the admin listener answers in the Host header (a web page reached through DNS rebinding carries its own name); localhost and IP addresses are always accepted, /healthz and /metrics answer any name; unset: the name of `admin-listen`, or any name when it listens on 0.0.0.0 or [::] (see docs/admin-api.md)' },
  { key: 'maxMessageBytes', flag: 'max-message-bytes', kind: 'bytes', default: '64MiB', live: true,
    help: 'largest message a logged-in client may send (before login: 64 KiB on PostgreSQL, 128 KiB on MySQL); longer ones get a protocol error and that connection is closed' },
  { key: 'maxBufferedMessageBytes', flag: 'max-buffered-message-bytes', kind: 'bytes', default: '256MiB', live: true,
    help: 'memory for client messages that have arrived only in part, summed over all connections of both protocols; the client whose message would pass it gets an out-of-memory error (PostgreSQL 53200, MySQL 1037) and that connection is closed. Before login a message may be at most 64 KiB (PostgreSQL, as the server itself allows) or 128 KiB (MySQL), so most of it serves logged-in clients; a message that arrives over several reads and is larger than this setting can never be received' },
  { key: 'maxClientConnections', flag: 'max-client-connections', kind: 'count', default: '1000', live: true,
    help: 'client connections accepted at once per protocol; more get a "too many connections" error' },
  { key: 'loginTimeoutMs', flag: 'login-timeout', kind: 'duration', default: '30s', live: true,
    help: 'a client must finish startup and authentication within this time' },
  { key: 'messageStallTimeoutMs', flag: 'message-stall-timeout', kind: 'duration', default: '60s', live: true,
    help: 'a client that stops in the middle of a message for this long is disconnected (0 = never)' },
  { key: 'upstreamConnectTimeoutMs', flag: 'upstream-connect-timeout', kind: 'duration', default: '10s', live: true,
    help: 'how long to wait for the upstream database to accept a connection' },
  { key: 'cacheMaxBytes', flag: 'cache-max-bytes', kind: 'bytes', default: '256MiB', live: true,
    help: 'memory budget of the result cache per protocol (payload plus per-entry overhead); 0 turns caching off' },
  { key: 'cacheMaxEntryBytes', flag: 'cache-max-entry-bytes', kind: 'bytes', default: '8MiB', live: true,
    help: 'largest single result kept; larger results are relayed but not cached' },
  { key: 'cacheTtlMs', flag: 'cache-ttl', kind: 'duration', default: '60s', live: true,
    help: 'how long a cached result may be served; a safety net for writes that bypass sidecache (0 = no expiry)' },
  { key: 'coalesceWaitMs', flag: 'coalesce-wait', kind: 'duration-or-off', default: '500ms', live: true,
    help: 'request coalescing: a cacheable miss whose key another client is filling right now waits for that fill, up to this long from the fill\'s start, and is answered from the cache when it is stored; when the fill is not stored (a write made it stale, an error, too large) or the time passes, the miss goes to the database as usual. Per worker. 0 or `off` turns coalescing off (see docs/consistency.md#coalesced-misses---coalesce-wait)' },
  { key: 'coalesceMaxWaiters', flag: 'coalesce-max-waiters', kind: 'count', default: '1000', live: true,
    help: 'request coalescing: misses that wait for one fill at most; more go to the database' },
  { key: 'slowQueryThresholdMs', flag: 'slow-query-threshold', kind: 'duration-or-off', default: '1s', live: true,
    help: 'a statement (hit, miss, bypass or write) taking at least this long from the client\'s request to the end of its reply is logged at warn level as "slow query" with its outcome, duration, fingerprint, text and who sent it (remote address, user, database); at most 10 such lines a second, the rest counted in one line when the second ends; 0 or `off` turns it off; needs the cache on (`cache-max-bytes` above 0)' },
  { key: 'logLevel', flag: 'log-level', kind: 'choice', choices: LOG_LEVELS, default: 'info', live: true,
    help: 'least severe log level written: trace, debug, info, warn, error, fatal or silent' },
  { key: 'logFormat', flag: 'log-format', kind: 'choice', choices: LOG_FORMATS, default: 'json', live: false,
    help: '`json`: one JSON object per line on stderr, for log collectors; `pretty`: one readable line per event (local time, level, message, key=value fields), colored when stderr is a terminal' },
  { key: 'logConnections', flag: 'log-connections', kind: 'choice', choices: ON_OFF, default: 'on', live: true,
    help: '`on`: an info line when a client has logged in ("connection opened": remote address, user, database) and when its session ends ("connection closed": the same, why, how long it lasted), as PgBouncer\'s log_connections / log_disconnections; refused logins and errors are logged either way' },
  { key: 'pgCdc', flag: 'pg-cdc', kind: 'pg-cdc-url', default: null, live: false,
    help: 'follow PostgreSQL\'s own change stream so writes that bypass sidecache invalidate too: postgres://USER[:PASSWORD]@HOST:PORT of the pg-upstream server, a role with REPLICATION (and, to create the publication, superuser); one logical replication connection with a temporary slot per database clients use, started at its first cacheable read; while a stream is not up that database\'s reads bypass the cache (reason `cdc-down`). See docs/consistency.md#change-streams' },
  { key: 'pgCdcPassword', flag: 'pg-cdc-password', kind: 'secret', default: null, live: false,
    help: 'the pg-cdc role\'s password when its URL has none; never logged or shown. Prefer the environment variable or pg-cdc-password-file: flags show in `ps`' },
  { key: 'pgCdcPasswordFile', flag: 'pg-cdc-password-file', kind: 'path', default: null, live: false,
    help: 'a file whose first line is the pg-cdc role\'s password (read at start)' },
  { key: 'pgCdcPublication', flag: 'pg-cdc-publication', kind: 'name', default: 'sidecache', live: false,
    help: 'the publication the stream reads; created `FOR ALL TABLES` in each followed database when missing and the role may, else the start of that stream fails with the SQL a DBA must run' },
  { key: 'pgCdcDdl', flag: 'pg-cdc-ddl', kind: 'choice', choices: ON_OFF, default: 'off', live: false,
    help: '`on`: install (needs superuser) an event trigger in each followed database that reports every DDL command, GRANT and REVOKE into the stream, which drops the affected entries; `off`: DDL made outside sidecache is seen only when a changed table is next written, else bounded by cache-ttl' },
  { key: 'mysqlCdc', flag: 'mysql-cdc', kind: 'mysql-cdc-url', default: null, live: false,
    help: 'follow the MySQL/MariaDB binary log (binlog_format=ROW) so writes that bypass sidecache invalidate too: mysql://USER[:PASSWORD]@HOST:PORT of the mysql-upstream server, a user with REPLICATION SLAVE and REPLICATION CLIENT; one connection per sidecache; while it is not up every MySQL read bypasses the cache (reason `cdc-down`). See docs/consistency.md#change-streams' },
  { key: 'mysqlCdcPassword', flag: 'mysql-cdc-password', kind: 'secret', default: null, live: false,
    help: 'the mysql-cdc user\'s password when its URL has none; never logged or shown. Prefer the environment variable or mysql-cdc-password-file: flags show in `ps`' },
  { key: 'mysqlCdcPasswordFile', flag: 'mysql-cdc-password-file', kind: 'path', default: null, live: false,
    help: 'a file whose first line is the mysql-cdc user\'s password (read at start)' },
  { key: 'mysqlCdcServerId', flag: 'mysql-cdc-server-id', kind: 'server-id', default: null, live: false,
    help: 'the replica server id the binlog stream announces, 1 to 4294967295, unique among the server\'s replicas and binlog readers (a second reader with the same id disconnects the first); unset derives one from the host name and process id and logs it' },
  { key: 'redis', flag: 'redis', kind: 'redis-url', default: null, live: false,
    help: 'a fleet: the Redis that proxies in front of the same databases share, `redis://[user:password@]HOST:PORT[/DB]`, or `rediss://...[?ca=FILE]` for TLS (FILE: the PEM of the CA that signed the server\'s certificate); every invalidation is published to a Redis Stream and applied by the other proxies, and a proxy that loses Redis answers nothing from its cache until it is back (README "A fleet", docs/consistency.md); unset: sidecache works alone' },
  { key: 'redisCluster', flag: 'redis-cluster', kind: 'redis-cluster', default: null, live: false,
    help: 'a fleet on a Redis Cluster: seed nodes `HOST:PORT,HOST:PORT,...`, or `redis[s]://[user:password@]HOST:PORT,HOST:PORT[?ca=FILE]` for an ACL user, password or TLS; instead of `--redis`' },
  { key: 'redisPassword', flag: 'redis-password', kind: 'secret', default: null, live: false,
    help: 'the Redis password (AUTH token, or the ACL user\'s password), instead of one in the URL; prefer the environment variable or `--redis-password-file` to a flag other users can see in the process list; never logged' },
  { key: 'redisPasswordFile', flag: 'redis-password-file', kind: 'path', default: null, live: false,
    help: 'a file holding the Redis password (a trailing newline is ignored), read at start: a Docker or Kubernetes secret' },
  { key: 'redisKeyPrefix', flag: 'redis-key-prefix', kind: 'key-prefix', default: 'sidecache', live: false,
    help: 'the fleet\'s keys are `{PREFIX}:bus`, `{PREFIX}:bus:seq`, `{PREFIX}:leader:TASK`, `{PREFIX}:cdc:PROTOCOL:wanted` and `{PREFIX}:l2:tags` (one Cluster hash slot); proxies with the same prefix form one fleet, so give fleets in front of different databases different prefixes' },
  { key: 'fleetStreamMaxLength', flag: 'fleet-stream-max-length', kind: 'count', default: '100000', live: false,
    help: 'about how many invalidations the Redis Stream keeps (XADD MAXLEN ~); a proxy that falls further behind finds a gap and drops its cache once' },
  { key: 'fleetLeaseMs', flag: 'fleet-lease', kind: 'duration', default: '5s', live: false,
    help: 'how long a fleet leader\'s lease in Redis lasts unless renewed (every third of it): when the leader dies, another proxy takes its task over within about this time. The tasks: the bus\'s pulse and, with --pg-cdc / --mysql-cdc, the one change-stream reader of the fleet, whose report of its streams the others believe for this long (docs/change-streams.md#in-a-fleet)' },
  { key: 'l2', flag: 'l2', kind: 'choice', choices: ON_OFF, default: 'off', live: false,
    help: '`on` (needs --redis or --redis-cluster): fills are also kept in Redis as a second tier shared by the fleet, keyed `PREFIX:l2:PROTOCOL:HASH` (spread over a Cluster), and a miss asks it before the database; an entry is served only while no table it read was invalidated since its fill. A lookup is one Redis round trip with --redis, two with --redis-cluster (the entry and the tag table are in different slots); entries written by a sidecache before this entry format (2) are misses. Give Redis a `maxmemory` with `maxmemory-policy volatile-lru`. See docs/consistency.md#a-second-tier---l2-on' },
  { key: 'workers', flag: 'workers', kind: 'workers', default: 'auto', live: false,
    help: `processes serving clients, 1 to ${MAX_WORKERS}: they share the listening ports (Node's cluster module), each with its own cache; a write through one invalidates the others before its acknowledgement reaches the client, the change streams run in one of them, and the admin listener shows the whole proxy. \`auto\`: the number of CPUs, at most ${AUTO_WORKERS_CAP}; 1: everything in one process, as before workers existed. The quick start (no upstream given) always runs one. See docs/workers.md` },
];

/** `auto`: the CPUs this process may use (its container's quota included), capped; else a whole number from 1 to MAX_WORKERS. */
function parseWorkers(key: string, text: string): number {
  if (text.trim() === 'auto') return Math.min(usableCpus(), AUTO_WORKERS_CAP);
  const n = parseCount(key, text);
  if (n < 1 || n > MAX_WORKERS) throw new ConfigError(key, `expected auto or 1 to ${MAX_WORKERS}, got "${text}"`);
  return n;
}

export function envName(setting: Setting): string {
  return 'SIDECACHE_' + setting.flag.toUpperCase().replace(/-/g, '_');
}

function parseHostPort(key: string, text: string): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  if (!m) throw new ConfigError(key, `expected HOST:PORT, got "${text}"`);
  const port = Number(m[3]);
  if (port > 65535) throw new ConfigError(key, `port ${port} is out of range`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** An upstream URL's TLS query parameters, by their names in one protocol's client tools. */
interface TlsParams {
  mode: string;
  /** The mode's values in this protocol's spelling, in the order of UPSTREAM_TLS_MODES. */
  modes: readonly string[];
  ca: string;
  cert: string;
  key: string;
}

const PG_TLS_PARAMS: TlsParams = { mode: 'sslmode', modes: UPSTREAM_TLS_MODES, ca: 'sslrootcert', cert: 'sslcert', key: 'sslkey' };
const MYSQL_TLS_PARAMS: TlsParams = {
  mode: 'ssl-mode', modes: ['DISABLED', 'PREFERRED', 'REQUIRED', 'VERIFY_CA', 'VERIFY_IDENTITY'], ca: 'ssl-ca', cert: 'ssl-cert', key: 'ssl-key',
};

function parseUpstreamTls(key: string, url: URL, names: TlsParams): UpstreamTls {
  for (const name of url.searchParams.keys()) {
    if (![names.mode, names.ca, names.cert, names.key].includes(name)) {
      throw new ConfigError(key, `unknown URL parameter "${name}" (expected ${names.mode}, ${names.ca}, ${names.cert}, ${names.key})`);
    }
  }
  const given = url.searchParams.get(names.mode);
  const index = given === null ? 1 : names.modes.findIndex((m) => m.toLowerCase() === given.toLowerCase());
  if (index < 0) throw new ConfigError(key, `${names.mode} must be one of ${names.modes.join(', ')}, got "${given}"`);
  const file = (name: string): string | null => {
    const path = url.searchParams.get(name);
    if (path === null) return null;
    try {
      readFileSync(path);
    } catch (err) {
      throw new ConfigError(key, `${name}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return path;
  };
  const tls: UpstreamTls = { mode: UPSTREAM_TLS_MODES[index]!, ca: file(names.ca), cert: file(names.cert), key: file(names.key) };
  if ((tls.cert === null) !== (tls.key === null)) throw new ConfigError(key, `give ${names.cert} and ${names.key} together`);
  // As libpq and the MySQL client do: a CA given with require means the certificate is checked.
  if (tls.mode === 'require' && tls.ca !== null) tls.mode = 'verify-ca';
  return tls;
}

function parseUpstreamUrl(key: string, text: string, schemes: readonly string[], defaultPort: number, names: TlsParams): UpstreamUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(key, `expected ${schemes[0]}//HOST:PORT, got "${text}"`);
  }
  if (!schemes.includes(url.protocol)) throw new ConfigError(key, `expected a ${schemes[0]}// URL, got "${text}"`);
  const port = url.port ? Number(url.port) : defaultPort;
  const host = url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
  return { url: `${schemes[0]}//${url.host || host}`, host, port, tls: parseUpstreamTls(key, url, names) };
}

/**
 * A change stream's URL: like an upstream's, plus the login. The password is taken out of `url`
 * (which errors and logs show) and never appears in an error message.
 */
function parseCdcUrl(key: string, text: string, schemes: readonly string[], defaultPort: number): CdcUrl {
  const example = `${schemes[0]}//USER[:PASSWORD]@HOST:PORT`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(key, `expected ${example}`);
  }
  if (!schemes.includes(url.protocol)) throw new ConfigError(key, `expected ${example}`);
  if (url.username === '') throw new ConfigError(key, `needs a user: ${example}`);
  const port = url.port ? Number(url.port) : defaultPort;
  const host = url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
  const user = decodeURIComponent(url.username);
  return {
    url: `${schemes[0]}//${url.username}@${url.host || host}`,
    host,
    port,
    user,
    password: url.password === '' ? null : decodeURIComponent(url.password),
  };
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1 << 20, mb: 1 << 20, mib: 1 << 20, g: 1 << 30, gb: 1 << 30, gib: 1 << 30 };
const TIME_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function parseRedis(key: string, text: string, parse: (text: string) => RedisTarget): RedisTarget {
  try {
    return parse(text);
  } catch (err) {
    if (err instanceof RedisTargetError) throw new ConfigError(key, err.message);
    throw err;
  }
}

function parseKeyPrefix(key: string, text: string): string {
  // Braces would change the Cluster hash tag the prefix is put in.
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(text)) throw new ConfigError(key, `expected 1 to 64 letters, digits or _ . : -, got "${text}"`);
  return text;
}

function parseBytes(key: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? BYTE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new ConfigError(key, `expected a size such as 64MiB, got "${text}"`);
  return Math.floor(Number(m[1]) * unit);
}

function parseDuration(key: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new ConfigError(key, `expected a duration such as 30s or 500ms, got "${text}"`);
  return Math.round(Number(m[1]) * TIME_UNITS[m[2] ?? 's']!);
}

function parseDurationOrOff(key: string, text: string): number {
  return text.trim().toLowerCase() === 'off' ? 0 : parseDuration(key, text);
}

function parseChoice(key: string, text: string, choices: readonly string[]): string {
  const value = text.trim().toLowerCase();
  if (!choices.includes(value)) throw new ConfigError(key, `expected one of ${choices.join(', ')}, got "${text}"`);
  return value;
}

function parseCount(key: string, text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new ConfigError(key, `expected a whole number, got "${text}"`);
  return Number(text);
}

function parseSecret(key: string, text: string): string {
  // An empty token would guard the API with a password everyone knows.
  if (text === '') throw new ConfigError(key, 'must not be empty (leave it unset to turn the token off)');
  return text;
}

/** `a.example, [::1]`: lower-case names without brackets or trailing dot; no ports (any port is answered). */
function parseHostList(key: string, text: string): string[] {
  const names = text.split(',').map((item) => item.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, ''));
  for (const name of names) {
    if (net.isIPv6(name) || /^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?$/.test(name)) continue;
    throw new ConfigError(key, `expected host names separated by commas (without ports), got "${text}"`);
  }
  return names;
}

/** A PostgreSQL name (quoted where it is used): up to 63 bytes, no NUL. */
function parseName(key: string, text: string): string {
  if (text === '' || text.includes('\u0000') || Buffer.byteLength(text) > 63) throw new ConfigError(key, `expected a name of 1 to 63 bytes, got "${text}"`);
  return text;
}

/** A query with one parameter, $1 (the user name). */
function parseAuthQuery(key: string, text: string): string {
  if (!/\$1\b/.test(text) || /\$[2-9]/.test(text)) throw new ConfigError(key, 'expected a query taking the user name as its one parameter, $1');
  return text;
}

function parseServerId(key: string, text: string): number {
  const n = /^\d{1,10}$/.test(text.trim()) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 0xffffffff)) throw new ConfigError(key, `expected a server id from 1 to 4294967295, got "${text}"`);
  return n;
}

function parsePath(key: string, text: string): string {
  if (text.trim() === '') throw new ConfigError(key, 'expected a file path');
  return text;
}

/** `key` names where the value came from (`--flag`, `SIDECACHE_X`, `flag in FILE`) for the error. */
function parseValue(setting: Setting, text: string, key: string): Config[SettingKey] {
  switch (setting.kind) {
    case 'hostport': return parseHostPort(key, text);
    case 'pg-url': return parseUpstreamUrl(key, text, ['postgres:', 'postgresql:'], 5432, PG_TLS_PARAMS);
    case 'mysql-url': return parseUpstreamUrl(key, text, ['mysql:', 'mariadb:'], 3306, MYSQL_TLS_PARAMS);
    case 'pg-cdc-url': return parseCdcUrl(key, text, ['postgres:', 'postgresql:'], 5432);
    case 'mysql-cdc-url': return parseCdcUrl(key, text, ['mysql:', 'mariadb:'], 3306);
    case 'redis-url': return parseRedis(key, text, parseRedisUrl);
    case 'redis-cluster': return parseRedis(key, text, parseRedisCluster);
    case 'key-prefix': return parseKeyPrefix(key, text);
    case 'bytes': return parseBytes(key, text);
    case 'count': return parseCount(key, text);
    case 'duration': return parseDuration(key, text);
    case 'duration-or-off': return parseDurationOrOff(key, text);
    case 'choice': return parseChoice(key, text, setting.choices!);
    case 'secret': return parseSecret(key, text);
    case 'path': return parsePath(key, text);
    case 'host-list': return parseHostList(key, text);
    case 'name': return parseName(key, text);
    case 'sql': return parseAuthQuery(key, text);
    case 'server-id': return parseServerId(key, text);
    case 'workers': return parseWorkers(key, text);
  }
}

export interface ParsedArgs {
  config: Config;
  /** Settings given by file, flag or environment rather than defaulted. */
  explicit: ReadonlySet<keyof Config>;
  help: boolean;
}

/** A value with where it came from, so an error can name the flag, variable or file key. */
interface Given {
  text: string | null;
  source: string;
}

/**
 * Builds the config from defaults, then the file of --config / SIDECACHE_CONFIG, then SIDECACHE_*
 * variables, then flags (later wins). Called again on reload with the same argv and env: only the
 * file can have changed.
 */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedArgs {
  const fromEnv = new Map<Setting, Given>();
  for (const s of SETTINGS) {
    const v = env[envName(s)];
    if (v !== undefined && v !== '') fromEnv.set(s, { text: v, source: envName(s) });
  }
  const fromFlags = new Map<Setting, Given>();
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') { help = true; continue; }
    const m = /^--([a-z][a-z0-9-]*)(?:=(.*))?$/.exec(arg);
    const setting = m ? SETTINGS.find((s) => s.flag === m[1]) : undefined;
    if (!m || !setting) throw new ConfigError(arg, 'unknown option (see --help)');
    let value = m[2];
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new ConfigError(arg, 'needs a value');
    }
    fromFlags.set(setting, { text: value, source: '--' + setting.flag });
  }
  const fileSetting = SETTINGS.find((s) => s.key === 'configFile')!;
  const file = fromFlags.get(fileSetting) ?? fromEnv.get(fileSetting);
  const fromFile = file === undefined ? { settings: new Map<Setting, Given>(), rules: CacheRules.NONE } : readConfigFile(parsePath(file.source, file.text!));

  const config = { cacheRules: fromFile.rules } as Record<keyof Config, unknown>;
  const explicit = new Set<keyof Config>();
  for (const s of SETTINGS) {
    const given = fromFlags.get(s) ?? fromEnv.get(s) ?? fromFile.settings.get(s);
    if (given !== undefined) explicit.add(s.key);
    const text = given === undefined ? s.default : given.text;
    config[s.key] = text === null ? null : parseValue(s, text, given?.source ?? '--' + s.flag);
  }
  const built = config as unknown as Config;
  if (built.redis !== null && built.redisCluster !== null) throw new ConfigError('--redis-cluster', 'give either --redis or --redis-cluster, not both');
  if (built.redisPassword !== null && built.redisPasswordFile !== null) throw new ConfigError('--redis-password-file', 'give either --redis-password or --redis-password-file, not both');
  if (built.l2 === 'on' && built.redis === null && built.redisCluster === null) throw new ConfigError('--l2', 'the second tier lives in the fleet\'s Redis: give --redis or --redis-cluster too');
  built.pgCdc = withCdcPassword(built.pgCdc, built.pgCdcPassword, built.pgCdcPasswordFile, 'pg-cdc');
  built.mysqlCdc = withCdcPassword(built.mysqlCdc, built.mysqlCdcPassword, built.mysqlCdcPasswordFile, 'mysql-cdc');
  if (built.pgCdc !== null && built.pgUpstream === null) throw new ConfigError('--pg-cdc', 'follows the pg-upstream server: set --pg-upstream too');
  if (built.mysqlCdc !== null && built.mysqlUpstream === null) throw new ConfigError('--mysql-cdc', 'follows the mysql-upstream server: set --mysql-upstream too');
  checkClientTls(built);
  readPgAuthFile(built.pgAuthFile);
  built.pgAuthPassword = passwordFrom(built.pgAuthPassword, built.pgAuthPasswordFile, 'pg-auth');
  if (built.pgAuthUser !== null && built.pgUpstream === null) throw new ConfigError('--pg-auth-user', 'runs its query on the pg-upstream server: set --pg-upstream too');
  return { config: Object.freeze(built), explicit, help };
}

/** The certificate and key must come together and make a pair; `require` needs them. */
function checkClientTls(config: Config): void {
  if ((config.tlsCert === null) !== (config.tlsKey === null)) throw new ConfigError('--tls-key', 'give --tls-cert and --tls-key together');
  if (config.tlsCert === null) {
    if (config.clientTls === 'allow' || config.clientTls === 'require') throw new ConfigError('--client-tls', `${config.clientTls} needs --tls-cert and --tls-key`);
    return;
  }
  try {
    tls.createSecureContext({ cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey!) });
  } catch (err) {
    throw new ConfigError('--tls-cert', `cannot use ${config.tlsCert} with ${config.tlsKey}: ${(err as NodeJS.ErrnoException).code ?? ''} ${(err as Error).message}`.replace(/ {2}/, ' '));
  }
}

/**
 * Folds the password given apart from a change stream's URL into it: the URL's own, the
 * -password setting or the first line of the -password-file, exactly one of them (two sources
 * would leave the operator guessing which one is used).
 */
function withCdcPassword(url: CdcUrl | null, password: string | null, file: string | null, flag: string): CdcUrl | null {
  if (url === null) return null;
  const sources = [url.password, password, file].filter((v) => v !== null).length;
  if (sources > 1) throw new ConfigError(`--${flag}`, `the password is given more than once (in the URL, --${flag}-password, --${flag}-password-file): give it once`);
  const given = passwordFrom(password, file, flag);
  return given === null ? url : { ...url, password: given };
}

/** --X-password or the first line of --X-password-file (not both); null for neither. */
function passwordFrom(password: string | null, file: string | null, flag: string): string | null {
  if (password !== null && file !== null) throw new ConfigError(`--${flag}-password-file`, `give either --${flag}-password or --${flag}-password-file, not both`);
  if (file === null) return password;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`--${flag}-password-file`, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const line = text.split(/\r?\n/, 1)[0]!;
  if (line === '') throw new ConfigError(`--${flag}-password-file`, `${file} is empty`);
  return line;
}

/**
 * The settings a YAML file gives, by setting, and its cache rules. Keys are flag names; a value is
 * a scalar (YAML numbers and strings alike: `cache-ttl: 30` means 30 s, as the flag would); `null`
 * means the default.
 */
function readConfigFile(path: string): { settings: Map<Setting, Given>; rules: CacheRules } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('--config', `cannot read ${path}: ${(err as Error).message}`);
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) throw new ConfigError(path, `not valid YAML: ${doc.errors[0]!.message}`);
  const data: unknown = doc.toJS();
  const given = new Map<Setting, Given>();
  let rules = CacheRules.NONE;
  if (data === null || data === undefined) return { settings: given, rules };
  if (typeof data !== 'object' || Array.isArray(data)) throw new ConfigError(path, 'expected a mapping of setting names to values, e.g. "cache-ttl: 30s"');
  for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
    const source = `${key} in ${path}`;
    if (key === 'rules') {
      rules = parseRules(value, path, parseDuration, parseBytes);
      continue;
    }
    const setting = SETTINGS.find((s) => s.flag === key && s.notInFile !== true);
    if (setting === undefined) throw new ConfigError(source, 'unknown key (the keys are the flag names without "--", see docs/settings.md)');
    if (value !== null && typeof value === 'object') throw new ConfigError(source, 'expected a single value, not a list or mapping');
    given.set(setting, { text: value === null ? setting.default : String(value), source });
  }
  return { settings: given, rules };
}

export function helpText(): string {
  const lines = [
    'Usage: sidecache [options]',
    '',
    'A caching wire-protocol proxy for PostgreSQL and MySQL/MariaDB. Every option can also be set',
    'through the environment variable shown, and all but --config in the --config file under the',
    'flag name (flags win over variables, variables over the file).',
    '',
  ];
  for (const s of SETTINGS) {
    lines.push(`  --${s.flag} <value>  `.padEnd(38) + `${envName(s)}` + (s.default !== null ? `  (default ${s.default})` : ''));
    lines.push(`      ${s.help}`);
  }
  lines.push('  --help'.padEnd(38) + 'print this text');
  return lines.join('\n');
}
