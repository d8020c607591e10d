// Resolving unqualified table names the way PostgreSQL does: through the search_path, with the
// session's temporary schema and pg_catalog searched implicitly. The catalog stays outside: the
// caller passes a lookup callback, so this module is pure and testable against any catalog.

import type { QualifiedName } from './pg-analysis.js';

/**
 * Does relation `name` exist in `schema`? Called with 'pg_temp' for the session's temporary schema
 * (answer false when the session has none) and with every schema of the search_path, which may
 * not exist. Answer false too when the current role lacks USAGE on the schema: PostgreSQL skips
 * such schemas while searching.
 */
export type RelationLookup = (schema: string, name: string) => boolean;

export interface ResolvedTable {
  readonly schema: string;
  readonly name: string;
}

export interface TableResolution {
  /** Qualified names as given, unqualified ones where the search found them; order kept. */
  readonly resolved: readonly ResolvedTable[];
  /**
   * Unqualified names found in no schema: the statement will fail, or create the relation first
   * (CREATE then SELECT in one text). Do not cache a read of them; invalidate wide on a write.
   */
  readonly unresolved: readonly QualifiedName[];
}

export class SearchPathSyntaxError extends Error {
  readonly code = 'SEARCH_PATH_SYNTAX';
  constructor(readonly setting: string, detail: string) {
    super(`invalid search_path "${setting}": ${detail}`);
    this.name = 'SearchPathSyntaxError';
  }
}

/**
 * Splits a search_path setting as PostgreSQL prints it (SHOW search_path, ParameterStatus):
 * comma-separated identifiers, unquoted ones folded to lower case, "quoted" ones exact with ""
 * for a quote. "$user" becomes `currentUser`, which must be the current role (SET ROLE changes it),
 * as PostgreSQL substitutes it.
 */
export function parseSearchPath(setting: string, currentUser: string): string[] {
  const schemas: string[] = [];
  let i = 0;
  const skipSpace = (): void => {
    while (i < setting.length && /\s/.test(setting[i]!)) i++;
  };
  skipSpace();
  if (i === setting.length) return schemas;
  for (;;) {
    skipSpace();
    let name = '';
    if (setting[i] === '"') {
      for (i++; ; i++) {
        if (i >= setting.length) throw new SearchPathSyntaxError(setting, 'unterminated quoted name');
        if (setting[i] === '"') {
          if (setting[i + 1] !== '"') break;
          i++;
        }
        name += setting[i];
      }
      i++;
      schemas.push(name === '$user' ? currentUser : name);
    } else {
      const start = i;
      while (i < setting.length && setting[i] !== ',' && !/\s/.test(setting[i]!)) i++;
      name = setting.slice(start, i);
      if (name === '') throw new SearchPathSyntaxError(setting, 'empty name');
      // PostgreSQL folds unquoted identifiers with ASCII rules only
      const folded = name.replace(/[A-Z]+/g, (s) => s.toLowerCase());
      schemas.push(folded === '$user' ? currentUser : folded);
    }
    skipSpace();
    if (i === setting.length) return schemas;
    if (setting[i] !== ',') throw new SearchPathSyntaxError(setting, `unexpected "${setting[i]}"`);
    i++;
  }
}

/**
 * The schemas searched for an unqualified relation name, in order: pg_temp first and pg_catalog
 * next unless the path names them (then they are searched where it names them), then the path.
 */
export function relationSearchOrder(searchPath: readonly string[]): string[] {
  const order: string[] = [];
  if (!searchPath.includes('pg_temp')) order.push('pg_temp');
  if (!searchPath.includes('pg_catalog')) order.push('pg_catalog');
  for (const schema of searchPath) if (!order.includes(schema)) order.push(schema);
  return order;
}

/** Resolves table names from an analysis (tablesRead / tablesWritten) against a search_path. */
export function resolveTables(
  names: readonly QualifiedName[],
  searchPath: readonly string[],
  lookup: RelationLookup,
): TableResolution {
  const resolved: ResolvedTable[] = [];
  const unresolved: QualifiedName[] = [];
  const order = relationSearchOrder(searchPath);
  for (const { schema, name } of names) {
    if (schema !== null) {
      resolved.push({ schema, name });
      continue;
    }
    const found = order.find((candidate) => lookup(candidate, name));
    if (found === undefined) unresolved.push({ schema, name });
    else resolved.push({ schema: found, name });
  }
  return { resolved, unresolved };
}
