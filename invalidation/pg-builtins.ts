// What the analysis knows about PostgreSQL built-ins without asking the catalog: which SQL value
// functions and which built-in functions give different answers under an equal cache key, and which
// schemas hold system relations. pg_proc volatility (checked elsewhere) stays the authority for
// every other function; these tables only catch what pg_proc calls STABLE yet changes anyway
// (now() is STABLE: fixed within a transaction, not across them) and, as a second line of defence,
// the best-known VOLATILE ones.

/** Why a value function or built-in makes a result unfit to share between executions. */
export type ValueDependency = 'time' | 'session';

/**
 * SQL value functions (keywords without parentheses, SQLValueFunction nodes) by parser op.
 * 'session' ones depend only on role, user, database and search_path, which are all part of the
 * cache key; 'time' ones change between executions and forbid caching.
 */
export const SQL_VALUE_FUNCTIONS: Readonly<Record<string, { name: string; dependsOn: ValueDependency }>> = {
  SVFOP_CURRENT_DATE: { name: 'CURRENT_DATE', dependsOn: 'time' },
  SVFOP_CURRENT_TIME: { name: 'CURRENT_TIME', dependsOn: 'time' },
  SVFOP_CURRENT_TIME_N: { name: 'CURRENT_TIME', dependsOn: 'time' },
  SVFOP_CURRENT_TIMESTAMP: { name: 'CURRENT_TIMESTAMP', dependsOn: 'time' },
  SVFOP_CURRENT_TIMESTAMP_N: { name: 'CURRENT_TIMESTAMP', dependsOn: 'time' },
  SVFOP_LOCALTIME: { name: 'LOCALTIME', dependsOn: 'time' },
  SVFOP_LOCALTIME_N: { name: 'LOCALTIME', dependsOn: 'time' },
  SVFOP_LOCALTIMESTAMP: { name: 'LOCALTIMESTAMP', dependsOn: 'time' },
  SVFOP_LOCALTIMESTAMP_N: { name: 'LOCALTIMESTAMP', dependsOn: 'time' },
  SVFOP_CURRENT_ROLE: { name: 'CURRENT_ROLE', dependsOn: 'session' },
  SVFOP_CURRENT_USER: { name: 'CURRENT_USER', dependsOn: 'session' },
  SVFOP_USER: { name: 'USER', dependsOn: 'session' },
  SVFOP_SESSION_USER: { name: 'SESSION_USER', dependsOn: 'session' },
  SVFOP_CURRENT_CATALOG: { name: 'CURRENT_CATALOG', dependsOn: 'session' },
  SVFOP_CURRENT_SCHEMA: { name: 'CURRENT_SCHEMA', dependsOn: 'session' },
};

/** Why a built-in function call forbids caching. */
export type BuiltinHazard = 'time-dependent' | 'unstable-function' | 'system-catalog';

/**
 * The object identifier types: a value of one names a catalog object, so casting to one looks the
 * name up in the catalog. The answer changes with the catalog, also where no write the proxy sees
 * does it (REINDEX CONCURRENTLY gives an index a new oid; DDL made behind the proxy): a cast to
 * one, in either syntax or as a function call (regclass('t')), is a catalog read.
 */
export const CATALOG_TYPES: ReadonlySet<string> = new Set([
  'regclass', 'regcollation', 'regconfig', 'regdictionary', 'regnamespace', 'regoper', 'regoperator',
  'regproc', 'regprocedure', 'regrole', 'regtype',
]);

/** to_regclass() and its kin: the same look-ups (STABLE in pg_proc, which says nothing of the catalog). */
const CATALOG_LOOKUPS: ReadonlySet<string> = new Set([...[...CATALOG_TYPES].map((type) => `to_${type}`), 'to_regtypemod']);

const TIME_DEPENDENT = [
  'now', 'transaction_timestamp', 'statement_timestamp', // STABLE in pg_proc, yet move between statements
  'clock_timestamp', 'timeofday',
];

const UNSTABLE = [
  // randomness and sequences (VOLATILE; listed so they are caught even before pg_proc is consulted)
  'random', 'random_normal', 'setseed', 'gen_random_uuid', 'uuidv4', 'uuidv7',
  'nextval', 'currval', 'lastval', 'setval',
  // STABLE in pg_proc but tied to the backend, the transaction or a setting outside the cache key
  'pg_backend_pid', 'inet_client_addr', 'inet_client_port', 'pg_my_temp_schema', 'pg_trigger_depth',
  'txid_current', 'txid_current_if_assigned', 'txid_current_snapshot',
  'pg_current_xact_id', 'pg_current_xact_id_if_assigned', 'pg_current_snapshot',
  'current_setting', 'pg_conf_load_time',
  // side effects
  'set_config', 'pg_notify', 'pg_sleep', 'pg_sleep_for', 'pg_sleep_until',
];

/** Statistics counters and advisory locks: whole families, matched by prefix. */
const UNSTABLE_PREFIXES = ['pg_stat_', 'pg_advisory_', 'pg_try_advisory_'];

const HAZARDS: ReadonlyMap<string, BuiltinHazard> = new Map<string, BuiltinHazard>([
  ...TIME_DEPENDENT.map((name) => [name, 'time-dependent'] as const),
  ...UNSTABLE.map((name) => [name, 'unstable-function'] as const),
]);

/**
 * The hazard of calling built-in `name` with `argCount` arguments, or null if the name is not a
 * known hazard. Only meaningful for unqualified or pg_catalog-qualified names: a function in
 * another schema is not the built-in (pg_proc decides about it).
 */
export function builtinHazard(name: string, argCount: number): BuiltinHazard | null {
  const hazard = HAZARDS.get(name);
  if (hazard) return hazard;
  if (CATALOG_TYPES.has(name) || CATALOG_LOOKUPS.has(name)) return 'system-catalog';
  // age(timestamp) measures from current_date; age(a, b) is immutable
  if (name === 'age' && argCount === 1) return 'time-dependent';
  for (const prefix of UNSTABLE_PREFIXES) if (name.startsWith(prefix)) return 'unstable-function';
  return null;
}

/**
 * String literals that date/time input turns into the current time when the literal is coerced
 * ('now'::timestamptz, ts > 'today'). The type is unknown at parse time, so any such literal counts.
 */
export const TIME_LITERALS: ReadonlySet<string> = new Set(['now', 'today', 'tomorrow', 'yesterday']);

/**
 * Schemas whose relations change without a write the proxy could see (catalogs, statistics views,
 * per-session temporary tables). Unqualified names starting with pg_ count as well: pg_catalog is
 * searched before the search_path unless listed in it.
 */
const SYSTEM_SCHEMAS: ReadonlySet<string> = new Set(['pg_catalog', 'information_schema', 'pg_toast', 'pg_temp']);

export function isSystemRelation(schema: string | null, name: string): boolean {
  if (schema === null) return name.startsWith('pg_');
  return SYSTEM_SCHEMAS.has(schema) || schema.startsWith('pg_temp_') || schema.startsWith('pg_toast_temp_');
}
