// The probe: one small query the proxy sends on a client's own upstream connection (its reply is
// swallowed) to learn what the analysis of a text cannot know: who the session is (role,
// search_path and the settings that change result text), what the names in the statement resolve
// to (tables vs views, temporary tables, partitions, tables whose writes cascade into them) and
// whether its functions are safe to cache. It runs as the client's own role in the client's own
// session, so it sees exactly what the client's statement will see, and needs no credentials.
// Pure: SQL text out, a decoded row in.
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
] as const;

export interface ProbeResult {
  database: string;
  currentUser: string;
  sessionUser: string;
  /** The values of PROBED_SETTINGS joined: one opaque string for the context key. */
  settings: string;
  /** Why a read of this statement may not be cached, or null when it may. */
  notCacheable: 'unresolved-table' | 'temporary-table' | 'view' | 'foreign-table' | 'sequence' | 'function' | null;
  /**
   * Every relation name a write to which may change the statement's result: the tables read, their
   * partitions and ancestors, and tables whose foreign keys cascade into them (transitively).
   */
  dependsOn: string[];
  /** All functions called live in pg_catalog (user functions may write or change settings). */
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
 * The probe for `analysis`. Columns: database, current_user, session_user, settings, relations
 * (per name read, comma-separated: relkind and relpersistence, or "-" when it does not
 * resolve), the dependency closure (a JSON array of relation names), function safety
 * ("safe builtin found", each true or false), whether the session has temporary relations,
 * the views and relations with user triggers or rules (a JSON array of names).
 */
export function buildProbeSql(analysis: StatementAnalysis): string {
  const tables = [...new Set(analysis.tablesRead.map(relationName))];
  const functions = [...new Set(analysis.functions.map((f) => f.name))];
  const settings = PROBED_SETTINGS.map((s) => `current_setting(${literal(s)})`).join(', ');
  return `/* sidecache probe */ SELECT current_database(), current_user, session_user, concat_ws(E'\\x1f', ${settings}),
 (SELECT string_agg(coalesce(c.relkind::text || c.relpersistence::text, '-'), ',' ORDER BY u.n)
    FROM unnest(${textArray(tables, 'text')}) WITH ORDINALITY AS u(name, n)
    LEFT JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(u.name)),
 (WITH RECURSIVE dep(oid) AS (
    SELECT pg_catalog.to_regclass(u.name)::oid FROM unnest(${textArray(tables, 'text')}) AS u(name)
    UNION
    SELECT e.next FROM dep JOIN (
      SELECT inhparent AS here, inhrelid AS next FROM pg_catalog.pg_inherits
      UNION ALL SELECT inhrelid, inhparent FROM pg_catalog.pg_inherits
      UNION ALL SELECT conrelid, confrelid FROM pg_catalog.pg_constraint
        WHERE contype = 'f' AND (confdeltype IN ('c', 'n', 'd') OR confupdtype IN ('c', 'n', 'd'))
    ) e ON e.here = dep.oid)
  SELECT coalesce(json_agg(DISTINCT c.relname), '[]')::text FROM dep JOIN pg_catalog.pg_class c ON c.oid = dep.oid),
 (SELECT coalesce(bool_and(p.provolatile = 'i' OR (p.provolatile = 's' AND p.pronamespace = 'pg_catalog'::regnamespace)), true)::text
    || ' ' || coalesce(bool_and(p.pronamespace = 'pg_catalog'::regnamespace), true)::text
    || ' ' || (count(DISTINCT p.proname) = ${functions.length})::text
    FROM pg_catalog.pg_proc p WHERE p.proname = ANY(${textArray(functions, 'name')})),
 (SELECT count(*) > 0 FROM pg_catalog.pg_class WHERE relnamespace = pg_catalog.pg_my_temp_schema())::text,
 (SELECT coalesce(json_agg(DISTINCT c.relname), '[]')::text FROM pg_catalog.pg_class c
    WHERE c.relkind = 'v'
      OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal)
      OR EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid AND r.ev_type <> '1'))`;
}

/** Decodes the probe's single row (text format values, null for SQL NULL). */
export function readProbeRow(values: readonly (string | null)[]): ProbeResult {
  if (values.length !== 9) throw new ProbeError(`probe returned ${values.length} columns, expected 9`);
  const [database, currentUser, sessionUser, settings, relations, closure, functions, temp, fanOut] = values;
  if (database == null || currentUser == null || sessionUser == null || settings == null || functions == null || temp == null || fanOut == null) {
    throw new ProbeError('probe returned NULL where a value was expected');
  }
  const [safe, builtin, found] = functions.split(' ');
  const functionsBuiltin = builtin === 'true' && found === 'true';
  let notCacheable: ProbeResult['notCacheable'] = null;
  for (const rel of relations === null ? [] : relations.split(',')) {
    const kind = rel[0];
    const persistence = rel[1];
    const reason = kind === '-' || kind === undefined ? 'unresolved-table'
      : persistence === 't' ? 'temporary-table'
        : kind === 'v' ? 'view'
          : kind === 'f' ? 'foreign-table'
            : kind === 'S' ? 'sequence'
              : null;
    if (reason !== null) {
      notCacheable = reason;
      break;
    }
  }
  if (notCacheable === null && !(safe === 'true' && found === 'true')) notCacheable = 'function';
  return {
    database,
    currentUser,
    sessionUser,
    settings,
    notCacheable,
    dependsOn: closure === null ? [] : (JSON.parse(closure) as string[]),
    functionsBuiltin,
    hasTempRelations: temp === 'true',
    fanOutTables: JSON.parse(fanOut) as string[],
  };
}
