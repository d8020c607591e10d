// Where the fleet's Redis is (--redis, --redis-cluster): parsed from a URL in the shape libpq and
// ioredis users know, `redis[s]://[user[:password]@]host[:port][,host[:port]...][/db][?ca=FILE]`.
// Pure: no file is read here (the CA and the password file are read when the fleet connects).
// A password may be in the text, so no error message and no display form ever repeats it.

export interface RedisEndpoint {
  host: string;
  port: number;
}

export interface RedisTarget {
  /** rediss:// : TLS to every node. */
  readonly tls: boolean;
  /** ?ca=FILE: PEM of the CA that signed the servers' certificates; null trusts the system's CAs. */
  readonly caFile: string | null;
  /** The ACL user (Redis 6+); null for the default user. */
  readonly username: string | null;
  /** From the URL; --redis-password(-file) override it. Never logged: `display` leaves it out. */
  readonly password: string | null;
  /** One node for --redis; the seed nodes for --redis-cluster. */
  readonly nodes: readonly RedisEndpoint[];
  readonly db: number;
  /** The target as logs and /api/config show it: the URL with the password cut out. */
  readonly display: string;
}

export class RedisTargetError extends Error {
  override name = 'RedisTargetError';
}

const DEFAULT_PORT = 6379;
const URL_SHAPE = /^(rediss?):\/\/(?:([^@/?#]*)@)?([^/?#]*)(?:\/([^?#]*))?(?:\?([^#]*))?$/;

/** `--redis`: one node (a primary, or the endpoint of a managed service that fails over behind one name). */
export function parseRedisUrl(text: string): RedisTarget {
  const target = parse(text.trim(), 'redis://[user:password@]HOST:PORT[/DB][?ca=FILE]');
  if (target.nodes.length !== 1) throw new RedisTargetError(`name one host in ${target.display} (use --redis-cluster for several)`);
  return target;
}

/** `--redis-cluster`: seed nodes of a Redis Cluster, `HOST:PORT,HOST:PORT` or a URL naming several. */
export function parseRedisCluster(text: string): RedisTarget {
  const trimmed = text.trim();
  const target = parse(trimmed.includes('://') ? trimmed : `redis://${trimmed}`, 'HOST:PORT,HOST:PORT,... or redis[s]://[user:password@]HOST:PORT,HOST:PORT[?ca=FILE]');
  if (target.db !== 0) throw new RedisTargetError(`Redis Cluster has database 0 only, got /${target.db} in ${target.display}`);
  return target;
}

function parse(text: string, shape: string): RedisTarget {
  const m = URL_SHAPE.exec(text);
  // The raw text may hold a password: say what was expected, not what was given.
  if (m === null) throw new RedisTargetError(`expected ${shape}`);
  const [, scheme, userinfo, hostList, dbText, query] = m;
  let username: string | null = null;
  let password: string | null = null;
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    username = decode(colon === -1 ? userinfo : userinfo.slice(0, colon), 'user') || null;
    password = colon === -1 ? null : decode(userinfo.slice(colon + 1), 'password');
  }
  const nodes = hostList!.split(',').map((h) => endpoint(h, shape));
  const display = `${scheme}://${username === null ? '' : `${encodeURIComponent(username)}@`}${hostList}${dbText !== undefined ? `/${dbText}` : ''}${query ? `?${query}` : ''}`;
  if (dbText !== undefined && dbText !== '' && !/^\d{1,5}$/.test(dbText)) throw new RedisTargetError(`the database after "/" must be a number, in ${display}`);
  let caFile: string | null = null;
  for (const [key, value] of new URLSearchParams(query ?? '')) {
    if (key !== 'ca') throw new RedisTargetError(`unknown parameter "${key}" in ${display} (the only one is ?ca=FILE)`);
    if (value === '') throw new RedisTargetError(`?ca= needs a file in ${display}`);
    caFile = value;
  }
  if (caFile !== null && scheme !== 'rediss') throw new RedisTargetError(`?ca= needs TLS: use rediss:// in ${display}`);
  return Object.freeze({
    tls: scheme === 'rediss',
    caFile,
    username,
    password,
    nodes: Object.freeze(nodes),
    db: dbText ? Number(dbText) : 0,
    display,
  });
}

function endpoint(text: string, shape: string): RedisEndpoint {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(text);
  if (m === null) throw new RedisTargetError(`expected ${shape}; "${text}" is not HOST or HOST:PORT`);
  const port = m[3] === undefined ? DEFAULT_PORT : Number(m[3]);
  if (port < 1 || port > 65535) throw new RedisTargetError(`port ${port} is out of range`);
  return { host: m[1] ?? m[2]!, port };
}

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new RedisTargetError(`the ${what} in the URL is not valid percent-encoding`);
  }
}
