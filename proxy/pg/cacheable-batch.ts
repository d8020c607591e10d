// Which extended-protocol batches the cache may answer, and the key of their reply. Pure.
import { Frontend } from './codes.js';
import { readCString, statementSignature, type StatementLookup } from './session-state.js';

export interface Held {
  code: number;
  buf: Buffer;
  start: number;
  end: number;
}

/** The statement, key and Parse (if any) of a batch the cache may answer: [Parse] Bind [Describe] Execute. */
export interface CacheableBatch {
  text: string;
  sig: string;
  keySuffix: string;
  /**
   * For a batch without Describe: the keys of the same execution with a Describe of its portal or
   * statement, whose stored reply answers this one once its descriptions are cut (pgJDBC describes
   * its first executions and not the later ones). Empty when the batch describes.
   */
  describedKeySuffixes: readonly string[];
  parse: { name: string } | null;
}

/** `statements`: what the client believes it holds. */
export function cacheableBatch(batch: readonly Held[], statements: StatementLookup): CacheableBatch | null {
  let i = 0;
  let parse: { name: string; text: string; sig: string } | null = null;
  let m = batch[i];
  if (m !== undefined && m.code === Frontend.Parse) {
    const nameEnd = m.buf.indexOf(0, m.start + 5);
    const name = m.buf.toString('utf8', m.start + 5, nameEnd);
    // Parsing a name the client already holds is an error the server must report.
    if (name !== '' && statements.get(name) !== undefined) return null;
    parse = { name, text: readCString(m.buf, nameEnd + 1, m.end), sig: statementSignature(m.buf, nameEnd + 1, m.end) };
    m = batch[++i];
  }
  if (m === undefined || m.code !== Frontend.Bind) return null;
  const bind = m;
  const portalEnd = bind.buf.indexOf(0, bind.start + 5);
  const stmtEnd = bind.buf.indexOf(0, portalEnd + 1);
  const portal = bind.buf.toString('utf8', bind.start + 5, portalEnd);
  const stmt = bind.buf.toString('utf8', portalEnd + 1, stmtEnd);
  const statement = parse !== null && parse.name === stmt ? parse : statements.get(stmt);
  if (statement === undefined) return null;
  m = batch[++i];
  let describe = '';
  if (m !== undefined && m.code === Frontend.Describe) {
    const kind = m.buf[m.start + 5];
    const name = readCString(m.buf, m.start + 6, m.end);
    if (!((kind === 0x50 && name === portal) || (kind === 0x53 && name === stmt))) return null;
    describe = kind === 0x50 ? 'P' : 'S';
    m = batch[++i];
  }
  if (m === undefined || m.code !== Frontend.Execute || i !== batch.length - 1) return null;
  const execPortalEnd = m.buf.indexOf(0, m.start + 5);
  if (m.buf.toString('utf8', m.start + 5, execPortalEnd) !== portal || m.buf.readInt32BE(execPortalEnd + 1) !== 0) return null;
  const execution = `\u0000${statement.sig}\u0000${bind.buf.toString('latin1', stmtEnd + 1, bind.end)}`;
  return {
    text: statement.text,
    sig: statement.sig,
    keySuffix: `X${describe}${execution}`,
    describedKeySuffixes: describe === '' ? [`XP${execution}`, `XS${execution}`] : [],
    parse: parse !== null ? { name: parse.name } : null,
  };
}
