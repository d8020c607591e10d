// Every part of a PostgreSQL cache entry's key, in one place. A key is the session context's
// prefix (who asks, under which settings: PgCache.context) followed by what was asked:
//
//   simple query    'Q' text
//   extended batch  'X' describe NUL signature NUL bind-bytes
//
// where describe is 'P' (Describe of the portal), 'S' (of the statement) or empty (no Describe),
// signature is the Parse's text and parameter types (session-state.ts statementSignature) and
// bind-bytes everything of the Bind after its names: parameter formats, values, result formats.
// The text is NUL-free (a C string), and the signature is self-delimiting (its parameter count
// gives its length), so no two different requests share a key. Pure.

/** A context's prefix: its id, then a separator no id contains. */
export function contextPrefix(contextId: number): string {
  return `${contextId}\u0001`;
}

/** The key of a simple Query's reply, without the context prefix. */
export function simpleQueryKey(text: string): string {
  return 'Q' + text;
}

/** How an extended batch describes its result: the portal, the statement, or not at all. */
export type DescribeKind = 'P' | 'S' | '';

/** The execution of a statement with one Bind's bytes: the part of a batch's key after the describe letter. */
export function executionOf(signature: string, bindBytes: string): string {
  return `\u0000${signature}\u0000${bindBytes}`;
}

/** The key of an extended batch's reply ([Parse] Bind [Describe] Execute), without the context prefix. */
export function extendedKey(describe: DescribeKind, execution: string): string {
  return `X${describe}${execution}`;
}

/**
 * For a batch without Describe: the keys of the same execution with a Describe of its portal or
 * statement, whose stored reply answers it once its descriptions are cut (pgJDBC describes its
 * first executions and not the later ones).
 */
export function describedKeys(execution: string): readonly string[] {
  return [extendedKey('P', execution), extendedKey('S', execution)];
}

/** The key an entry is stored under. */
export function entryKey(contextPrefix: string, keySuffix: string): string {
  return contextPrefix + keySuffix;
}
