// How the things an entry depends on are spelled as tags. The store treats tags as opaque strings;
// these helpers give every module (classifier, write path, peers over Redis, admin flush) one
// spelling. NUL cannot occur in a PostgreSQL or MySQL identifier, so it separates the parts and a
// table tag can never equal a database tag.

/** The tag of one table (or view) in a database; MySQL has no schema level: pass the database. */
export function tableTag(database: string, schema: string, table: string): string {
  return `${database}\u0000${schema}\u0000${table}`;
}

/**
 * The "wide" tag of a whole database. Every entry must carry the database tag of each database it
 * read from (see `dependencyTags`), so that invalidating the database (DDL, a write the analysis
 * did not understand, DROP DATABASE) frees those entries and makes their in-flight fills stale.
 */
export function databaseTag(database: string): string {
  return `${database}\u0000`;
}

export interface TableRef {
  database: string;
  schema: string;
  table: string;
}

/**
 * The tags of a result that read `tables` in a session connected to `sessionDatabase`: each table's
 * tag plus the wide tag of every database involved. The session's own database is always included,
 * so even a result that names no table (a function call the classifier allowed) is dropped when its
 * database is invalidated wholesale.
 */
export function dependencyTags(sessionDatabase: string, tables: readonly TableRef[]): string[] {
  const tags = new Set<string>([databaseTag(sessionDatabase)]);
  for (const t of tables) {
    tags.add(databaseTag(t.database));
    tags.add(tableTag(t.database, t.schema, t.table));
  }
  return [...tags];
}
