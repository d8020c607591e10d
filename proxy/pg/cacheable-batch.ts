// Which extended-protocol batches the cache may answer, and the key of their reply. Pure.
import { Frontend } from './codes.js';
import { describedKeys, executionOf, extendedKey, type DescribeKind } from './cache-key.js';
import {
  bindParametersStart, bindPortal, bindStatement, describeTarget, executeMaxRows, executePortal, parseSignatureStart, parseStatementName, readCString,
} from './messages.js';
import { statementSignature, type StatementLookup } from './session-state.js';

export interface Held {
  code: number;
  buf: Buffer;
  start: number;
  end: number;
}

/** Messages kept beyond the chunk they arrived in (a parked request), in buffers of their own. */
export function heldCopies(messages: readonly Held[]): Held[] {
  return messages.map((m) => ({ code: m.code, buf: Buffer.from(m.buf.subarray(m.start, m.end)), start: 0, end: m.end - m.start }));
}

/** The statement, key and Parse (if any) of a batch the cache may answer: [Parse] Bind [Describe] Execute. */
export interface CacheableBatch {
  text: string;
  sig: string;
  keySuffix: string;
  /**
   * The portal it binds. A named one outlives the Sync inside a transaction block: answered from
   * the cache there, it would exist on the client's side only (a later Execute or Describe of it
   * would fail on the server), so in blocks only batches of the unnamed portal are answered.
   */
  portal: string;
  /**
   * For a batch without Describe: the keys of the same execution with a Describe of its portal or
   * statement, whose stored reply answers this one once its descriptions are cut (cache-key.ts).
   * Empty when the batch describes.
   */
  describedKeySuffixes: readonly string[];
  /** The batch's Parse: what the client holds under its name once the batch is answered (not always the bound statement). */
  parse: { name: string; text: string; sig: string } | null;
}

/** `statements`: what the client believes it holds. */
export function cacheableBatch(batch: readonly Held[], statements: StatementLookup): CacheableBatch | null {
  let i = 0;
  let parse: { name: string; text: string; sig: string } | null = null;
  let m = batch[i];
  if (m !== undefined && m.code === Frontend.Parse) {
    const name = parseStatementName(m.buf, m.start);
    // Parsing a name the client already holds is an error the server must report.
    if (name !== '' && statements.get(name) !== undefined) return null;
    const sigStart = parseSignatureStart(m.buf, m.start);
    parse = { name, text: readCString(m.buf, sigStart, m.end), sig: statementSignature(m.buf, sigStart, m.end) };
    m = batch[++i];
  }
  if (m === undefined || m.code !== Frontend.Bind) return null;
  const bind = m;
  const portal = bindPortal(bind.buf, bind.start);
  const stmt = bindStatement(bind.buf, bind.start);
  const statement = parse !== null && parse.name === stmt ? parse : statements.get(stmt);
  if (statement === undefined) return null;
  m = batch[++i];
  let describe: DescribeKind = '';
  if (m !== undefined && m.code === Frontend.Describe) {
    const target = describeTarget(m.buf, m.start, m.end);
    if (!((target.kind === 'P' && target.name === portal) || (target.kind === 'S' && target.name === stmt))) return null;
    describe = target.kind;
    m = batch[++i];
  }
  if (m === undefined || m.code !== Frontend.Execute || i !== batch.length - 1) return null;
  if (executePortal(m.buf, m.start, m.end) !== portal || executeMaxRows(m.buf, m.start) !== 0) return null;
  const execution = executionOf(statement.sig, bind.buf.toString('latin1', bindParametersStart(bind.buf, bind.start), bind.end));
  return {
    text: statement.text,
    sig: statement.sig,
    keySuffix: extendedKey(describe, execution),
    portal,
    describedKeySuffixes: describe === '' ? describedKeys(execution) : [],
    parse,
  };
}

/**
 * The statements of a Sync group of several, each a batch cacheableBatch() accepts, in order; null
 * when any part is not (or only one statement: the single-batch path's). A Parse earlier in the
 * group is what a later Bind of its name binds, and parsing a name again is an error the server
 * must report; so is binding a named portal again, which lives until the group's Sync.
 */
export function cacheableGroup(group: readonly Held[], statements: StatementLookup): CacheableBatch[] | null {
  const parsed = new Map<string, { text: string; sig: string }>();
  const lookup: StatementLookup = { get: (name) => parsed.get(name) ?? statements.get(name) };
  const out: CacheableBatch[] = [];
  let from = 0;
  for (let i = 0; i < group.length; i++) {
    if (group[i]!.code !== Frontend.Execute) continue;
    const batch = cacheableBatch(group.slice(from, i + 1), lookup);
    if (batch === null || (batch.portal !== '' && out.some((earlier) => earlier.portal === batch.portal))) return null;
    if (batch.parse !== null) parsed.set(batch.parse.name, batch.parse);
    out.push(batch);
    from = i + 1;
  }
  return from === group.length && out.length > 1 ? out : null;
}
