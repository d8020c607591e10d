// The probe: one small query the proxy sends on a client's own upstream connection (its reply is
// swallowed) to learn what the analysis of a text cannot know: who the session is (role,
// search_path and the settings that change result text), what the names in the statement resolve
// to (tables vs views, temporary tables, partitions, tables whose writes cascade into them, the
// relations and definitions behind views) and whether the functions it and those views call are
// safe to cache. It runs as the client's own role in the client's own session, so it sees exactly
// what the client's statement will see, and needs no credentials.
// Pure: SQL text out, a decoded row in; what follows from the row is pg-facts.ts's.
import type { QualifiedName, StatementAnalysis } from './pg-analysis.js';

/**
 * Settings not reported by ParameterStatus (PostgreSQL 15) that change a result or its text.
 * Reported ones (TimeZone, DateStyle, IntervalStyle, client_encoding, ...) are keyed from the
 * ParameterStatus messages instead.
 */
export const PROBED_SETTINGS = [
  'search_path', 'extra_float_digits', 'bytea_output', 'lc_monetary', 'lc_numeric', 'lc_time',
  'default_text_search_config', 'row_security', 'transform_null_equals', 'xmlbinary', 'xmloption',
  'array_nulls', 'join_collapse_limit', 'enable_partition_pruning',
  // Whether a Sync group's statements share one snapshot (repeatable read, serializable).
  'default_transaction_isolation',
] as const;

export interface ProbeResult {
  database: string;
  currentUser: string;
  sessionUser: string;
  /** The values of PROBED_SETTINGS joined: one opaque string for the context key. */
  settings: string;
  /** What each relation name the statement reads resolves to and depends on, in the statement's order. */
  relations: ProbedRelation[];
  /** What pg_proc says of each function name the statement calls. */
  functions: ProbedFunction[];
  /** The session has temporary relations: names may resolve differently than in any other session. */
  hasTempRelations: boolean;
  /**
   * Views, and relations with user triggers or rewrite rules, in the database: a write to one of
   * them changes tables it does not name.
   */
  fanOutTables: string[];
}

/** One relation name as the statement spells it (see relationKey), as the probe found it. */
export interface ProbedRelation {
  name: string;
  /**
   * Every relation a write to which may change a read of it: itself, the relations it reads if a
   * view (recursively), partitions and ancestors, tables whose foreign keys cascade into them
   * (transitively), the relations their row-level security policies read. Null when the name
   * does not resolve.
   */
  closure: ClosureRelation[] | null;
  /**
   * Every function the views and policies of the closure call is IMMUTABLE or a built-in STABLE
   * one (callsSafe), and lives in pg_catalog (callsBuiltin: user functions may write or change
   * settings).
   */
  callsSafe: boolean;
  callsBuiltin: boolean;
}

/** One relation of a closure. */
export interface ClosureRelation {
  name: string;
  kind: string;
  persistence: string;
  schema: string;
  /** What a view computes (pg_get_viewdef); null for other relations. */
  definition: string | null;
  /** The USING expressions of the relation's row-level security policies (pg_get_expr). */
  policies: string[];
}

/** Every function of a name, whatever its schema or arguments (pg_proc). */
export interface ProbedFunction {
  name: string;
  /** All are IMMUTABLE, or STABLE and built in. */
  safe: boolean;
  /** All live in pg_catalog. */
  builtin: boolean;
  /** There is at least one. */
  found: boolean;
}

export class ProbeError extends Error {
  override name = 'ProbeError';
}

/**
 * What the probe sets for itself: a client's planner and timeout settings must not reach it. With
 * `enable_seqscan = off` the probe's plan costs about 1e10, past jit_above_cost, and the server
 * JIT-compiles it (seconds); a client's short statement_timeout would cancel it. [name, value,
 * first major version that has it, last one]. DEFAULT is the server's own value (postgresql.conf,
 * ALTER ROLE/DATABASE), not a value the session SET. Settings the probe reads for the context
 * (PROBED_SETTINGS) are not touched. statement_timeout bounds the probe, lock waits included.
 */
const PROBE_OWN_SETTINGS: readonly (readonly [string, string, number, number])[] = [
  ['statement_timeout', "'10s'", 0, Infinity], ['lock_timeout', '0', 0, Infinity],
  ['transaction_timeout', '0', 17, Infinity], ['jit', 'off', 11, Infinity],
  ...['enable_seqscan', 'enable_indexscan', 'enable_indexonlyscan', 'enable_bitmapscan', 'enable_tidscan', 'enable_sort',
    'enable_hashagg', 'enable_nestloop', 'enable_hashjoin', 'enable_mergejoin', 'enable_material']
    .map((name) => [name, 'on', 0, Infinity] as const),
  ['enable_memoize', 'on', 14, Infinity], ['enable_incremental_sort', 'on', 13, Infinity],
  ['max_parallel_workers_per_gather', '0', 10, Infinity],
  ['force_parallel_mode', 'off', 10, 15], ['debug_parallel_query', 'off', 16, Infinity],
  ...['seq_page_cost', 'random_page_cost', 'cpu_tuple_cost', 'cpu_index_tuple_cost', 'cpu_operator_cost',
    'effective_cache_size', 'work_mem', 'from_collapse_limit', 'geqo', 'constraint_exclusion']
    .map((name) => [name, 'DEFAULT', 0, Infinity] as const),
];

const probePrefixes = new Map<number, string>();

/**
 * The session's context as the probe's first four columns read it: current_database(),
 * current_user, session_user and the probed settings (custom ones too: app.tenant, ... may drive
 * row-level security policies; missing ones read as NULL). The identity check ends with them
 * (IDENTITY_QUERY in proxy/pg/relay.ts), so a session that adopted an earlier session's context
 * at login sees whether its own still is that one.
 */
export function pgContextColumns(customSettings: readonly string[] = []): string {
  const settings = [
    ...PROBED_SETTINGS.map((s) => `current_setting(${literal(s)})`),
    ...customSettings.map((s) => `${literal(s + '=')} || coalesce(current_setting(${literal(s)}, true), '<unset>')`),
  ].join(', ');
  return `current_database(), current_user, session_user, concat_ws(E'\\x1f', ${settings})`;
}

/** Whether the context columns' values (pgContextColumns, no custom settings) are `probe`'s. */
export function sameContext(values: readonly (string | null)[], probe: ProbeResult): boolean {
  const [database, currentUser, sessionUser, settings] = values;
  return values.length === 4 && database === probe.database && currentUser === probe.currentUser
    && sessionUser === probe.sessionUser && settings === probe.settings;
}

/**
 * The Query message text that runs `select` (a probe from buildProbeSql) with the probe's own
 * settings, on a server reporting `serverVersion`. Several statements in one Query run as one
 * implicit transaction block, where SET LOCAL applies until the block ends, with no warning: the
 * client's session is left as it was, and none of these settings is reported by ParameterStatus.
 */
export function probeQuery(select: string, serverVersion: string): string {
  const major = Number.parseInt(serverVersion, 10) || 0;
  let prefix = probePrefixes.get(major);
  if (prefix === undefined) {
    prefix = '/* sidecache probe */ ' + PROBE_OWN_SETTINGS
      .filter(([, , since, until]) => major >= since && major <= until)
      .map(([name, value]) => `SET LOCAL ${name} = ${value}; `).join('');
    probePrefixes.set(major, prefix);
  }
  return prefix + select;
}

/**
 * A probe that failed for a passing reason (cancelled by the client's cancel request, a lock or
 * resource shortage, a serialization failure) is tried again later; any other failure means the
 * probe cannot work in this session. By SQLSTATE class: 40 transaction rollback, 53 insufficient
 * resources, 55P03 lock not available, 57014 query canceled.
 */
export function probeFailureIsPassing(sqlstate: string): boolean {
  return sqlstate.startsWith('40') || sqlstate.startsWith('53') || sqlstate === '55P03' || sqlstate === '57014';
}

/** Quotes an identifier the way quote_ident does, always. */
function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}

/** An E'' literal: the same meaning whatever standard_conforming_strings says. */
function literal(text: string): string {
  return "E'" + text.replace(/\\/g, '\\\\').replace(/'/g, "\\'") + "'";
}

/** A relation name as the probe looks it up (to_regclass) and facts about it are keyed: quoted, qualified as written. */
export function relationKey(t: QualifiedName): string {
  return t.schema === null ? quoteIdent(t.name) : `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
}

function textArray(items: readonly string[], type: string): string {
  return items.length === 0 ? `ARRAY[]::${type}[]` : `ARRAY[${items.map(literal).join(',')}]::${type}[]`;
}

/**
 * The probe for `analysis`. Columns: database, current_user, session_user, settings, the
 * relations read (a JSON array of {name, closure, calls}, closure an array of {name, kind,
 * persistence, schema, definition, policies}, definition for views only, or null when the name
 * does not resolve; calls "safe builtin" for the functions the closure's views and policies call),
 * the functions called (a JSON array of {name, safe, builtin, found}), whether the session has
 * temporary relations, the views and relations with user triggers or rules (a JSON array of names).
 * Each relation and each function is reported on its own: what the probe learns of one holds for
 * every statement naming it in the same session context.
 *
 * The closure follows, from each relation read: partitions and inheritance both ways, foreign
 * keys that cascade into it, for a view the relations its SELECT rule depends on (pg_depend), and
 * the relations its row-level security policies read (a policy's subquery filters the rows a
 * role sees, so a write there changes the result). The functions those policies call are judged
 * with the views' (from the stored expression, like a view's rule).
 * The functions a view calls are read from its rule's stored tree (the funcid of FuncExpr,
 * aggfnoid of Aggref, winfnoid of WindowFunc, opfuncid of OpExpr) as well as from pg_depend
 * (functions and operators): pinned (built-in) functions such as pg_relation_size() leave no
 * pg_depend row, and pg_proc must judge them like the statement's own.
 */
export function buildProbeSql(analysis: StatementAnalysis, customSettings: readonly string[] = []): string {
  const tables = [...new Set(analysis.tablesRead.map(relationKey))];
  const functions = [...new Set(analysis.functions.map((f) => f.name))];
  const safe = "(f.provolatile = 'i' OR (f.provolatile = 's' AND f.pronamespace = 'pg_catalog'::regnamespace))";
  const builtin = "f.pronamespace = 'pg_catalog'::regnamespace";
  const calls = "':(funcid|aggfnoid|winfnoid|opfuncid) ([0-9]+)'";
  return `/* sidecache probe */ WITH RECURSIVE root(ord, name) AS (
    SELECT u.ord, u.name FROM unnest(${textArray(tables, 'text')}) WITH ORDINALITY AS u(name, ord)),
 dep(ord, oid) AS (
    SELECT root.ord, pg_catalog.to_regclass(root.name)::oid FROM root WHERE pg_catalog.to_regclass(root.name) IS NOT NULL
    UNION
    SELECT dep.ord, e.next FROM dep, LATERAL (
      SELECT inhrelid AS next FROM pg_catalog.pg_inherits WHERE inhparent = dep.oid
      UNION ALL SELECT inhparent FROM pg_catalog.pg_inherits WHERE inhrelid = dep.oid
      UNION ALL SELECT confrelid FROM pg_catalog.pg_constraint WHERE conrelid = dep.oid
        AND contype = 'f' AND (confdeltype IN ('c', 'n', 'd') OR confupdtype IN ('c', 'n', 'd'))
      UNION ALL SELECT d.refobjid FROM pg_catalog.pg_class v
        JOIN pg_catalog.pg_rewrite r ON r.ev_class = v.oid AND r.ev_type = '1'
        JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
          AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> v.oid
        WHERE v.oid = dep.oid AND v.relkind = 'v'
      UNION ALL SELECT d.refobjid FROM pg_catalog.pg_policy p
        JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_policy'::regclass AND d.objid = p.oid
          AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> p.polrelid
        WHERE p.polrelid = dep.oid
    ) e),
 rel AS (
    SELECT c.oid, json_build_object('name', c.relname, 'kind', c.relkind, 'persistence', c.relpersistence,
        'schema', (SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.oid = c.relnamespace),
        'definition', CASE WHEN c.relkind = 'v' THEN pg_catalog.pg_get_viewdef(c.oid) END,
        'policies', (SELECT coalesce(json_agg(pg_catalog.pg_get_expr(p.polqual, p.polrelid)), '[]') FROM pg_catalog.pg_policy p
          WHERE p.polrelid = c.oid AND p.polqual IS NOT NULL)) AS facts
      FROM pg_catalog.pg_class c WHERE c.oid = ANY(ARRAY(SELECT oid FROM dep))),
 view_rule(rel, oid, tree) AS (
    SELECT r.ev_class, r.oid, r.ev_action::text FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
      WHERE r.ev_class = ANY(ARRAY(SELECT oid FROM dep)) AND c.relkind = 'v' AND r.ev_type = '1'),
 call(rel, oid) AS (
    SELECT v.rel, m[2]::oid FROM view_rule v, regexp_matches(v.tree, ${calls}, 'g') AS m
    UNION SELECT v.rel, d.refobjid FROM view_rule v JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass
      AND d.objid = v.oid AND d.refclassid = 'pg_catalog.pg_proc'::regclass
    UNION SELECT v.rel, o.oprcode::oid FROM view_rule v JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass
        AND d.objid = v.oid AND d.refclassid = 'pg_catalog.pg_operator'::regclass
      JOIN pg_catalog.pg_operator o ON o.oid = d.refobjid
    UNION SELECT p.polrelid, m[2]::oid FROM pg_catalog.pg_policy p,
        regexp_matches(coalesce(p.polqual::text, ''), ${calls}, 'g') AS m
      WHERE p.polrelid = ANY(ARRAY(SELECT oid FROM dep)))
SELECT ${pgContextColumns(customSettings)},
 (SELECT coalesce(json_agg(json_build_object('name', root.name,
      'closure', (SELECT json_agg(rel.facts ORDER BY rel.oid) FROM rel WHERE rel.oid = ANY(ARRAY(SELECT oid FROM dep WHERE dep.ord = root.ord))),
      'calls', (SELECT coalesce(bool_and(${safe}), true)::text || ' ' || coalesce(bool_and(${builtin}), true)::text
        FROM pg_catalog.pg_proc f WHERE f.oid = ANY(ARRAY(SELECT call.oid FROM call
          WHERE call.rel = ANY(ARRAY(SELECT oid FROM dep WHERE dep.ord = root.ord))))))
    ORDER BY root.ord), '[]')::text FROM root),
 (SELECT coalesce(json_agg(json_build_object('name', u.name, 'safe', g.safe, 'builtin', g.builtin, 'found', g.found)), '[]')::text
    FROM unnest(${textArray(functions, 'text')}) AS u(name), LATERAL (
      SELECT coalesce(bool_and(${safe}), true) AS safe, coalesce(bool_and(${builtin}), true) AS builtin, count(*) > 0 AS found
        FROM pg_catalog.pg_proc f WHERE f.proname = u.name::name) g),
 (SELECT count(*) > 0 FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema())::text,
 (SELECT coalesce(json_agg(DISTINCT c.relname), '[]')::text FROM pg_catalog.pg_class c
    WHERE c.relkind = 'v'
      OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal)
      OR EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid AND r.ev_type <> '1'))`;
}

function parseJson(text: string, column: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ProbeError(`probe column ${column} is not JSON: ${(err as Error).message}`);
  }
}

function readNames(text: string, column: string): string[] {
  const names = parseJson(text, column);
  if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) {
    throw new ProbeError(`probe column ${column} is not an array of names`);
  }
  return names;
}

type Fields = Record<string, unknown>;
const isObject = (v: unknown): v is Fields => typeof v === 'object' && v !== null && !Array.isArray(v);

function isClosureRelation(r: unknown): r is ClosureRelation {
  return isObject(r) && typeof r.name === 'string' && typeof r.kind === 'string' && typeof r.persistence === 'string'
    && typeof r.schema === 'string' && (r.definition === null || typeof r.definition === 'string')
    && Array.isArray(r.policies) && r.policies.every((p) => typeof p === 'string');
}

function readRelations(text: string): ProbedRelation[] {
  const relations = parseJson(text, 'relations');
  const valid = Array.isArray(relations) && relations.every((r) => isObject(r) && typeof r.name === 'string'
    && (r.closure === null || (Array.isArray(r.closure) && r.closure.every(isClosureRelation)))
    && typeof r.calls === 'string' && /^(true|false) (true|false)$/.test(r.calls));
  if (!valid) throw new ProbeError('probe column relations is not an array of relations');
  return (relations as Fields[]).map((r) => {
    const [safe, builtin] = (r.calls as string).split(' ');
    return { name: r.name as string, closure: r.closure as ClosureRelation[] | null, callsSafe: safe === 'true', callsBuiltin: builtin === 'true' };
  });
}

function readFunctions(text: string): ProbedFunction[] {
  const functions = parseJson(text, 'functions');
  const valid = Array.isArray(functions) && functions.every((f) => isObject(f) && typeof f.name === 'string'
    && typeof f.safe === 'boolean' && typeof f.builtin === 'boolean' && typeof f.found === 'boolean');
  if (!valid) throw new ProbeError('probe column functions is not an array of functions');
  return functions as ProbedFunction[];
}

/** Decodes the probe's single row (text format values, null for SQL NULL). */
export function readProbeRow(values: readonly (string | null)[]): ProbeResult {
  if (values.length !== 8) throw new ProbeError(`probe returned ${values.length} columns, expected 8`);
  const [database, currentUser, sessionUser, settings, relations, functions, temp, fanOut] = values;
  if (database == null || currentUser == null || sessionUser == null || settings == null || relations == null
    || functions == null || temp == null || fanOut == null) {
    throw new ProbeError('probe returned NULL where a value was expected');
  }
  return {
    database,
    currentUser,
    sessionUser,
    settings,
    relations: readRelations(relations),
    functions: readFunctions(functions),
    hasTempRelations: temp === 'true',
    fanOutTables: readNames(fanOut, 'fan-out'),
  };
}
