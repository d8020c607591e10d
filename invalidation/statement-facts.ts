// What both protocols' analyses say of a statement in the same words: its kind, the reasons a
// text is not cacheable that both know, the transaction actions they share, and how several
// statements of one text combine. pg-analysis.ts and mysql-analysis.ts build on these, so the
// cache reads either protocol's facts alike. Types and one pure function; nothing here parses.

/**
 * - read: a query whose result comes from tables (cacheable when `cacheable` says so);
 * - write: changes rows of `tablesWritten` (invalidate them on commit);
 * - ddl: changes schema or privileges (invalidate wide: the whole database, or more);
 * - transaction: transaction control; session: changes session state (`sessionChanges`);
 * - other: everything that neither reads for the client nor writes through a table name
 *   (LISTEN, cursors, PREPARE, VACUUM, CALL/DO, ... — see `writesUnlisted`);
 * - unknown: the text was not understood: do not cache, invalidate wide.
 */
export type StatementKind = 'read' | 'write' | 'ddl' | 'transaction' | 'session' | 'other' | 'unknown';

/** Why the text of a statement forbids caching its result, in both protocols. */
export type CommonNotCacheableReason =
  | 'parse-error'        // kind unknown; reasonDetail says what was not understood
  | 'empty'              // no statement at all (only comments or semicolons)
  | 'several-statements' // more than one statement in the text
  | 'not-a-read'         // kind other than read
  | 'explain'            // a plan, not data
  | 'select-into'        // the result goes into a table, a variable or a file
  | 'locking-clause'     // FOR UPDATE / FOR SHARE ...: the read takes row locks
  | 'time-dependent'     // now(), CURRENT_TIMESTAMP, ...
  | 'unstable-function'  // random(), a sequence, the session's id, ...
  | 'system-catalog';    // the catalog schemas (pg_catalog, information_schema, mysql, ...)

/** Transaction control both protocols spell alike. */
export type CommonTransactionAction = 'begin' | 'start' | 'commit' | 'rollback' | 'savepoint' | 'release' | 'rollback_to';

// With several statements, the kind that demands the widest reaction names the whole text.
const KIND_PRIORITY: readonly StatementKind[] = ['unknown', 'ddl', 'write', 'session', 'transaction', 'other', 'read'];

/** The kind of a text of several statements: the one among theirs that demands the widest reaction. */
export function widestKind(kinds: Iterable<StatementKind>): StatementKind {
  let rank = KIND_PRIORITY.length - 1;
  for (const kind of kinds) rank = Math.min(rank, KIND_PRIORITY.indexOf(kind));
  return KIND_PRIORITY[rank]!;
}
