// The transaction status at the end of a stored reply. Every reply is stored as filled outside a
// transaction block, ending with ReadyForQuery 'I'; answered inside a read-only block it must end
// with 'T', and a reply filled inside one is stored with 'I'. Pure: bytes in, bytes out.
import { Backend } from './codes.js';
import { TxStatus } from './session-state.js';

/** How a stored reply ends, and the same message inside a block. */
export const READY_IDLE = Buffer.from([Backend.ReadyForQuery, 0, 0, 0, 5, TxStatus.Idle]);
export const READY_IN_BLOCK = Buffer.from([Backend.ReadyForQuery, 0, 0, 0, 5, TxStatus.InTransaction]);

const BIND_COMPLETE = Backend.BindComplete;
/** ParameterDescription, RowDescription, NoData: what a Describe adds after BindComplete. */
const DESCRIPTIONS = new Set<number>([Backend.ParameterDescription, Backend.RowDescription, Backend.NoData]);

/**
 * A stored reply to [Parse] Bind Describe Execute Sync as the same execution without the Describe
 * would get it: BindComplete, then what follows the descriptions. A copy; null when the reply does
 * not start with BindComplete.
 */
export function withoutDescriptions(reply: Buffer): Buffer | null {
  if (reply.length < 5 || reply[0] !== BIND_COMPLETE) return null;
  let pos = 5;
  while (pos + 5 <= reply.length && DESCRIPTIONS.has(reply[pos]!)) pos += 1 + reply.readInt32BE(pos + 1);
  if (pos > reply.length) return null;
  return Buffer.concat([reply.subarray(0, 5), reply.subarray(pos)]);
}

/** The reply ends with ReadyForQuery 'I' (as every stored reply should). */
export function endsIdle(bytes: Buffer): boolean {
  return endsWith(bytes, READY_IDLE);
}

/** The reply without its final ReadyForQuery, to send before READY_IN_BLOCK (a view, no copy). */
export function withoutReady(bytes: Buffer): Buffer {
  return bytes.subarray(0, bytes.length - READY_IDLE.length);
}

/**
 * Makes a reply captured inside a block end as one outside it, in place: `parts` are a fill's own
 * copies. False when the last part does not end with a whole ReadyForQuery 'T'.
 */
export function readyAsIdle(parts: Buffer[]): boolean {
  const last = parts[parts.length - 1];
  if (last === undefined || !endsWith(last, READY_IN_BLOCK)) return false;
  last[last.length - 1] = TxStatus.Idle;
  return true;
}

function endsWith(bytes: Buffer, tail: Buffer): boolean {
  return bytes.length >= tail.length && tail.equals(bytes.subarray(bytes.length - tail.length));
}
