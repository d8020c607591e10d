// The one table of sidecache's settings: name, flag, environment variable, default, meaning.
// Every other module reads the frozen Config built here; docs and --help are generated from SETTINGS.

export interface HostPort {
  host: string;
  port: number;
}

export interface UpstreamUrl extends HostPort {
  url: string;
}

export interface Config {
  pgUpstream: UpstreamUrl | null;
  pgListen: HostPort;
  mysqlUpstream: UpstreamUrl | null;
  mysqlListen: HostPort;
  adminListen: HostPort;
  /** Bearer token the admin API and /stats require; null leaves them open. */
  adminToken: string | null;
  maxMessageBytes: number;
  maxClientConnections: number;
  loginTimeoutMs: number;
  messageStallTimeoutMs: number;
  upstreamConnectTimeoutMs: number;
  cacheMaxBytes: number;
  cacheMaxEntryBytes: number;
  cacheTtlMs: number;
}

export class ConfigError extends Error {
  constructor(readonly key: string, message: string) {
    super(`${key}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Kind = 'hostport' | 'pg-url' | 'mysql-url' | 'bytes' | 'count' | 'duration' | 'secret';

interface Setting<K extends keyof Config = keyof Config> {
  key: K;
  flag: string;
  kind: Kind;
  default: string | null;
  help: string;
}

export const SETTINGS: readonly Setting[] = [
  { key: 'pgUpstream', flag: 'pg-upstream', kind: 'pg-url', default: null,
    help: 'the real PostgreSQL server, postgres://HOST:PORT; when neither upstream is set, the quick start runs on an embedded PGlite' },
  { key: 'pgListen', flag: 'pg-listen', kind: 'hostport', default: '0.0.0.0:5432',
    help: 'where sidecache accepts PostgreSQL clients (port 0 picks a free port)' },
  { key: 'mysqlUpstream', flag: 'mysql-upstream', kind: 'mysql-url', default: null,
    help: 'the real MySQL or MariaDB server, mysql://HOST:PORT; unset leaves the MySQL side off' },
  { key: 'mysqlListen', flag: 'mysql-listen', kind: 'hostport', default: '0.0.0.0:3306',
    help: 'where sidecache accepts MySQL/MariaDB clients (port 0 picks a free port)' },
  { key: 'adminListen', flag: 'admin-listen', kind: 'hostport', default: '127.0.0.1:9180',
    help: 'HTTP listener for the dashboard, /healthz, /metrics, /stats and the admin API /api/* (port 0 picks a free port)' },
  { key: 'adminToken', flag: 'admin-token', kind: 'secret', default: null,
    help: 'when set, the admin API (/api/*) and /stats require `Authorization: Bearer <token>`; /metrics, /healthz and the dashboard page stay open (see docs/admin-api.md)' },
  { key: 'maxMessageBytes', flag: 'max-message-bytes', kind: 'bytes', default: '64MiB',
    help: 'largest message a client may send; longer ones get a protocol error and that connection is closed' },
  { key: 'maxClientConnections', flag: 'max-client-connections', kind: 'count', default: '1000',
    help: 'client connections accepted at once per protocol; more get a "too many connections" error' },
  { key: 'loginTimeoutMs', flag: 'login-timeout', kind: 'duration', default: '30s',
    help: 'a client must finish startup and authentication within this time' },
  { key: 'messageStallTimeoutMs', flag: 'message-stall-timeout', kind: 'duration', default: '60s',
    help: 'a client that stops in the middle of a message for this long is disconnected (0 = never)' },
  { key: 'upstreamConnectTimeoutMs', flag: 'upstream-connect-timeout', kind: 'duration', default: '10s',
    help: 'how long to wait for the upstream database to accept a connection' },
  { key: 'cacheMaxBytes', flag: 'cache-max-bytes', kind: 'bytes', default: '256MiB',
    help: 'memory budget of the result cache per protocol (payload plus per-entry overhead); 0 turns caching off' },
  { key: 'cacheMaxEntryBytes', flag: 'cache-max-entry-bytes', kind: 'bytes', default: '8MiB',
    help: 'largest single result kept; larger results are relayed but not cached' },
  { key: 'cacheTtlMs', flag: 'cache-ttl', kind: 'duration', default: '60s',
    help: 'how long a cached result may be served; a safety net for writes that bypass sidecache (0 = no expiry)' },
];

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

function parsePgUrl(key: string, text: string): UpstreamUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(key, `expected postgres://HOST:PORT, got "${text}"`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new ConfigError(key, `expected a postgres:// URL, got "${text}"`);
  }
  const port = url.port ? Number(url.port) : 5432;
  const host = url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
  return { url: `postgres://${url.host || host}`, host, port };
}

function parseMySqlUrl(key: string, text: string): UpstreamUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(key, `expected mysql://HOST:PORT, got "${text}"`);
  }
  if (url.protocol !== 'mysql:' && url.protocol !== 'mariadb:') {
    throw new ConfigError(key, `expected a mysql:// URL, got "${text}"`);
  }
  const port = url.port ? Number(url.port) : 3306;
  const host = url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
  return { url: `mysql://${url.host || host}`, host, port };
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1 << 20, mb: 1 << 20, mib: 1 << 20, g: 1 << 30, gb: 1 << 30, gib: 1 << 30 };
const TIME_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

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

function parseCount(key: string, text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new ConfigError(key, `expected a whole number, got "${text}"`);
  return Number(text);
}

function parseSecret(key: string, text: string): string {
  // An empty token would guard the API with a password everyone knows.
  if (text === '') throw new ConfigError(key, 'must not be empty (leave it unset to turn the token off)');
  return text;
}

function parseValue(setting: Setting, text: string): Config[keyof Config] {
  const key = '--' + setting.flag;
  switch (setting.kind) {
    case 'hostport': return parseHostPort(key, text);
    case 'pg-url': return parsePgUrl(key, text);
    case 'mysql-url': return parseMySqlUrl(key, text);
    case 'bytes': return parseBytes(key, text);
    case 'count': return parseCount(key, text);
    case 'duration': return parseDuration(key, text);
    case 'secret': return parseSecret(key, text);
  }
}

export interface ParsedArgs {
  config: Config;
  /** Settings given by flag or environment rather than defaulted. */
  explicit: ReadonlySet<keyof Config>;
  help: boolean;
}

/** Builds the config from defaults, then SIDECACHE_* variables, then flags (later wins). */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): ParsedArgs {
  const raw = new Map<Setting, string | null>(SETTINGS.map((s) => [s, s.default]));
  const explicit = new Set<keyof Config>();
  for (const s of SETTINGS) {
    const v = env[envName(s)];
    if (v !== undefined && v !== '') {
      raw.set(s, v);
      explicit.add(s.key);
    }
  }
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') { help = true; continue; }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    const setting = m ? SETTINGS.find((s) => s.flag === m[1]) : undefined;
    if (!m || !setting) throw new ConfigError(arg, 'unknown option (see --help)');
    let value = m[2];
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new ConfigError(arg, 'needs a value');
    }
    raw.set(setting, value);
    explicit.add(setting.key);
  }
  const config = {} as Record<keyof Config, unknown>;
  for (const [s, v] of raw) config[s.key] = v === null ? null : parseValue(s, v);
  return { config: Object.freeze(config as unknown as Config), explicit, help };
}

export function helpText(): string {
  const lines = [
    'Usage: sidecache [options]',
    '',
    'A caching wire-protocol proxy for PostgreSQL and MySQL/MariaDB. Every option can also be set',
    'through the environment variable shown (flags win).',
    '',
  ];
  for (const s of SETTINGS) {
    lines.push(`  --${s.flag} <value>  `.padEnd(38) + `${envName(s)}` + (s.default !== null ? `  (default ${s.default})` : ''));
    lines.push(`      ${s.help}`);
  }
  lines.push('  --help'.padEnd(38) + 'print this text');
  return lines.join('\n');
}
