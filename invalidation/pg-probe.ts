// The probe: one small query the proxy sends on a client's own upstream connection (its reply is
// swallowed) to learn what the analysis of a text cannot know: who the session is (role,
// search_path and the settings that change result text), what the names in the statement resolve
// to (tables vs views, temporary tables, partitions, tables whose writes cascade into them, the
// relations and definitions behind views) and whether the functions it and those views call are
// safe to cache. It runs as the client's own role in the client's own session, so it sees exactly
// what the client's statement will see, and needs no credentials.
// Pure: SQL text out, a decoded row in, and the verdict on the view definitions it returned.
import type { QualifiedName, StatementAnalysis } from './pg-analysis.js';
import { isSystemRelation } from './pg-builtins.js';

/**
 * Settings not reported by ParameterStatus (PostgreSQL 15) that change a result or its text.
 * Reported ones (TimeZone, DateStyle, IntervalStyle, client_encoding, ...) are keyed from the
 * ParameterStatus messages instead.
 */
export const PROBED_SETTINGS = [
  'search_path', 'extra_float_digits', 'bytea_output', 'lc_monetary', 'lc_numeric', 'lc_time',
  'default_text_search_config', 'row_security', 'transform_null_equals', 'xmlbinary', 'xmloption',
  'array_nulls', 'join_collapse_limit', 'enable_partition_pruning',
] as const;

export interface ProbeResult {
  database: string;
  currentUser: string;
  sessionUser: string;
  /** The values of PROBED_SETTINGS joined: one opaque string for the context key. */
  settings: string;
  /**
   * Why a read of this statement may not be cached as far as the catalog tells, or null when it
   * may. The definitions of the views read must still pass the text analysis (`viewDefinitions`).
   */
  notCacheable: RelationHazard | 'unresolved-table' | 'function' | null;
  /**
   * Every relation name a write to which may change the statement's result: the relations read,
   * the relations the views among them read (recursively), their partitions and ancestors, and
   * tables whose foreign keys cascade into them (transitively).
   */
  dependsOn: string[];
  /**
   * What every view in `dependsOn` computes (pg_get_viewdef), and the row-level security policy
   * expressions of every relation in it (as `SELECT 1 WHERE <expression>`). The catalog records
   * no dependency on built-in objects, so `now()` or `CURRENT_TIMESTAMP` shows only in the text.
   */
  viewDefinitions: string[];
  /**
   * All functions called, by the statement or by the views it reads, live in pg_catalog (user
   * functions may write or change settings).
   */
  functionsBuiltin: boolean;
  /** The session has temporary relations: names may resolve differently than in any other session. */
  hasTempRelations: boolean;
  /**
   * Views, and relations with user triggers or rewrite rules, in the database: a write to one of
   * them changes tables it does not name.
   */
  fanOutTables: string[];
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

function relationName(t: QualifiedName): string {
  return t.schema === null ? quoteIdent(t.name) : `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
}

function textArray(items: readonly string[], type: string): string {
  return items.length === 0 ? `ARRAY[]::${type}[]` : `ARRAY[${items.map(literal).join(',')}]::${type}[]`;
}

/**
 * The probe for `analysis`. Columns: database, current_user, session_user, settings, how many
 * names read do not resolve, the dependency closure (a JSON array of {name, kind, persistence,
 * schema, definition}, definition for views only), function safety ("safe builtin found", each true or
 * false), whether the session has temporary relations, the views and relations with user
 * triggers or rules (a JSON array of names).
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
  const tables = [...new Set(analysis.tablesRead.map(relationName))];
  const functions = [...new Set(analysis.functions.map((f) => f.name))];
  // Custom settings (app.tenant, ...) may drive row-level security policies; missing ones read as NULL.
  const settings = [
    ...PROBED_SETTINGS.map((s) => `current_setting(${literal(s)})`),
    ...customSettings.map((s) => `${literal(s + '=')} || coalesce(current_setting(${literal(s)}, true), '<unset>')`),
  ].join(', ');
  return `/* sidecache probe */ WITH RECURSIVE dep(oid) AS (
    SELECT pg_catalog.to_regclass(u.name)::oid FROM unnest(${textArray(tables, 'text')}) AS u(name)
    UNION
    SELECT e.next FROM dep, LATERAL (
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
    SELECT c.oid, c.relname, c.relkind, c.relpersistence,
        (SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.oid = c.relnamespace) AS nspname
      FROM pg_catalog.pg_class c WHERE c.oid = ANY(ARRAY(SELECT oid FROM dep))),
 view_rule(oid, tree) AS (
    SELECT r.oid, r.ev_action::text FROM pg_catalog.pg_rewrite r
      WHERE r.ev_class = ANY(ARRAY(SELECT oid FROM rel WHERE relkind = 'v')) AND r.ev_type = '1'),
 view_call(oid) AS (
    SELECT m[2]::oid FROM view_rule, regexp_matches(view_rule.tree, ':(funcid|aggfnoid|winfnoid|opfuncid) ([0-9]+)', 'g') AS m
    UNION SELECT d.refobjid FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass
      AND d.objid = ANY(ARRAY(SELECT oid FROM view_rule)) AND d.refclassid = 'pg_catalog.pg_proc'::regclass
    UNION SELECT o.oprcode::oid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_operator o ON o.oid = d.refobjid
      WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = ANY(ARRAY(SELECT oid FROM view_rule))
        AND d.refclassid = 'pg_catalog.pg_operator'::regclass
    UNION SELECT m[2]::oid FROM pg_catalog.pg_policy p,
        regexp_matches(coalesce(p.polqual::text, ''), ':(funcid|aggfnoid|winfnoid|opfuncid) ([0-9]+)', 'g') AS m
      WHERE p.polrelid = ANY(ARRAY(SELECT oid FROM rel)))
SELECT current_database(), current_user, session_user, concat_ws(E'\\x1f', ${settings}),
 (SELECT count(*) FROM unnest(${textArray(tables, 'text')}) AS u(name) WHERE pg_catalog.to_regclass(u.name) IS NULL)::text,
 (SELECT coalesce(json_agg(json_build_object('name', relname, 'kind', relkind, 'persistence', relpersistence,
      'schema', nspname, 'definition', CASE WHEN relkind = 'v' THEN pg_catalog.pg_get_viewdef(oid) END,
      'policies', (SELECT coalesce(json_agg(pg_catalog.pg_get_expr(p.polqual, p.polrelid)), '[]') FROM pg_catalog.pg_policy p
        WHERE p.polrelid = rel.oid AND p.polqual IS NOT NULL)) ORDER BY oid), '[]')::text
    FROM rel),
 (SELECT coalesce(bool_and(f.provolatile = 'i' OR (f.provolatile = 's' AND f.pronamespace = 'pg_catalog'::regnamespace)), true)::text
    || ' ' || coalesce(bool_and(f.pronamespace = 'pg_catalog'::regnamespace), true)::text
    || ' ' || (count(DISTINCT f.proname) FILTER (WHERE f.named) = ${functions.length})::text
    FROM (SELECT p.proname, p.provolatile, p.pronamespace, true AS named
            FROM pg_catalog.pg_proc p WHERE p.proname = ANY(${textArray(functions, 'name')})
          UNION ALL SELECT p.proname, p.provolatile, p.pronamespace, false
            FROM pg_catalog.pg_proc p WHERE p.oid = ANY(ARRAY(SELECT oid FROM view_call))) f),
 (SELECT count(*) > 0 FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema())::text,
 (SELECT coalesce(json_agg(DISTINCT c.relname), '[]')::text FROM pg_catalog.pg_class c
    WHERE c.relkind = 'v'
      OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal)
      OR EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid AND r.ev_type <> '1'))`;
}

/** Why a read of a relation may not be cached, by its kind, persistence and schema. */
export type RelationHazard = 'temporary-table' | 'foreign-table' | 'sequence' | 'system-catalog' | 'unsupported-relation';

/** One relation of the dependency closure, as the probe reports it. */
interface ClosureRelation {
  name: string;
  kind: string;
  persistence: string;
  schema: string;
  definition: string | null;
  /** The USING expressions of the relation's row-level security policies (pg_get_expr). */
  policies: string[];
}

/**
 * Tables, partitioned tables, views (judged further by their definitions) and materialized views
 * (changed only by REFRESH, a write to their name) may be cached; what changes without a write
 * sidecache can see, or belongs to one session, may not.
 */
function relationHazard({ kind, persistence, schema, name }: ClosureRelation): RelationHazard | null {
  if (persistence === 't') return 'temporary-table';
  if (kind === 'f') return 'foreign-table';
  if (kind === 'S') return 'sequence';
  if (isSystemRelation(schema, name)) return 'system-catalog';
  return kind === 'r' || kind === 'p' || kind === 'v' || kind === 'm' ? null : 'unsupported-relation';
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

function readClosure(text: string): ClosureRelation[] {
  const closure = parseJson(text, 'closure');
  const isRelation = (r: unknown): r is ClosureRelation => {
    if (typeof r !== 'object' || r === null) return false;
    const o = r as Record<string, unknown>;
    return typeof o.name === 'string' && typeof o.kind === 'string' && typeof o.persistence === 'string'
      && typeof o.schema === 'string' && (o.definition === null || typeof o.definition === 'string')
      && Array.isArray(o.policies) && o.policies.every((p) => typeof p === 'string');
  };
  if (!Array.isArray(closure) || !closure.every(isRelation)) {
    throw new ProbeError('probe column closure is not an array of relations');
  }
  return closure;
}

/**
 * Why one of the views read computes something that may not be cached (now(), random(), a
 * locking clause, a catalog, ...), judged by the analysis a statement text gets (`analyze`): the
 * catalog records no dependency on built-ins, so only the definition shows them. Null when every
 * definition may be cached; the probe has judged the functions they call and the relations they read.
 */
export function viewDefinitionHazard(definitions: readonly string[], analyze: (text: string) => StatementAnalysis): string | null {
  for (const definition of definitions) {
    const a = analyze(definition);
    if (a.kind !== 'read') return 'view-not-a-read';
    if (!a.cacheable) return `view-${a.reasonNotCacheable ?? 'not-cacheable'}`;
  }
  return null;
}

/**
 * A row-level security policy's USING expression as a query the text analysis can judge like a
 * view's definition: a policy calling now() filters differently as time passes, without a write.
 * current_setting() is allowed here (it is not in a view): it is how policies read the tenant, and
 * the settings a session sets, or its startup options, are part of its context key.
 */
function policyAsQuery(expression: string): string {
  return `SELECT 1 WHERE ${expression.replace(/\bcurrent_setting\s*\(/gi, 'lower(')}`;
}

/** Decodes the probe's single row (text format values, null for SQL NULL). */
export function readProbeRow(values: readonly (string | null)[]): ProbeResult {
  if (values.length !== 9) throw new ProbeError(`probe returned ${values.length} columns, expected 9`);
  const [database, currentUser, sessionUser, settings, unresolved, closureText, functions, temp, fanOut] = values;
  if (database == null || currentUser == null || sessionUser == null || settings == null || unresolved == null
    || closureText == null || functions == null || temp == null || fanOut == null) {
    throw new ProbeError('probe returned NULL where a value was expected');
  }
  const closure = readClosure(closureText);
  const [safe, builtin, found] = functions.split(' ');
  const functionsBuiltin = builtin === 'true' && found === 'true';
  // A name that does not resolve has no place in the closure: the statement will fail.
  let notCacheable: ProbeResult['notCacheable'] = unresolved === '0' ? null : 'unresolved-table';
  for (const rel of closure) {
    if (notCacheable !== null) break;
    notCacheable = relationHazard(rel);
  }
  if (notCacheable === null && !(safe === 'true' && found === 'true')) notCacheable = 'function';
  return {
    database,
    currentUser,
    sessionUser,
    settings,
    notCacheable,
    dependsOn: [...new Set(closure.map((r) => r.name))],
    viewDefinitions: closure.flatMap((r) => [...(r.definition === null ? [] : [r.definition]), ...r.policies.map(policyAsQuery)]),
    functionsBuiltin,
    hasTempRelations: temp === 'true',
    fanOutTables: readNames(fanOut, 'fan-out'),
  };
}
