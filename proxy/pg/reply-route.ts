// Where each server message of a PostgreSQL session goes, by the request it answers (the head of the
// request ledger): relayed, captured for a fill, or dropped (the reply to the proxy's own probe or
// identity check, the ParseComplete/CloseComplete of a Parse or Close the proxy replayed, the
// reply to the read it sends to begin an implicit transaction). In a
// Sync group filled statement by statement, each statement's reply, from its BindComplete to its
// CommandComplete, is captured for that statement's fill. Called once per server message: no
// allocation.
import type { FillAction } from '../request-ledger.js';
import { Route } from '../reply-router.js';
import type { PgRequest } from './cache-session.js';
import { Backend } from './codes.js';

/** Messages the relay reads whole, besides routing their bytes. */
const WATCHED = new Uint8Array(256);
for (const c of [Backend.ReadyForQuery, Backend.ParameterStatus, Backend.BackendKeyData, Backend.ParseComplete,
  Backend.CloseComplete, Backend.ErrorResponse, Backend.CommandComplete]) WATCHED[c] = 1;
/** Messages the server may send at any time, outside any request's reply. */
const ASYNC = new Uint8Array(256);
for (const c of [Backend.NotificationResponse, Backend.NoticeResponse, Backend.ParameterStatus]) ASYNC[c] = 1;

/** A probe's reply is all the proxy's, its notices included (a session at client_min_messages = debug would see its transaction start and end). */
function ofProbe(code: number, head: PgRequest | undefined): boolean {
  return head?.action.kind === 'probe' && code !== Backend.ParameterStatus && code !== Backend.NotificationResponse;
}

/** Does the relay read message `code` whole (its sink's message())? */
export function watched(code: number, head: PgRequest | undefined): boolean {
  return WATCHED[code] === 1 || ofProbe(code, head);
}

/** Where message `code` goes; counts `head`'s ParseCompletes and CloseCompletes as they pass. */
export function replyRoute(code: number, head: PgRequest | undefined): Route {
  if (ofProbe(code, head)) return Route.Drop;
  const action = head?.action;
  if (head !== undefined && !ASYNC[code]) {
    if (code === Backend.ParseComplete && isOwn(head.ownParses, head.parsesAnswered++)) return Route.Drop;
    if (code === Backend.CloseComplete && isOwn(head.ownCloses, head.closesAnswered++)) return Route.Drop;
    if (head.swallowRead > 0 && (code === Backend.BindComplete ? head.swallowRead === 2 : code === Backend.CommandComplete)) {
      head.swallowRead--;
      return Route.Drop;
    }
    if (code === Backend.ParseComplete && head.skipParse > 0) {
      head.skipParse--;
      return Route.Forward;
    }
    if (code === Backend.BindComplete && head.members !== null) head.memberAt++;
    const fill = capturing(head);
    return fill !== null && !fill.capture.poisoned ? Route.Capture : Route.Forward;
  }
  // A notification or notice is not part of a reusable result.
  if (action?.kind === 'fill') action.capture.poisoned = true;
  // In a group, whichever statement it came with: every statement whose reply is not complete.
  if (head?.members != null) for (const m of head.members) if (m.completes === 0 && m.action.kind === 'fill') m.action.capture.poisoned = true;
  return Route.Forward;
}

/**
 * Is the `answered`-th reply (from 0) of its kind in a request the reply to one of the proxy's own
 * messages (`own`: their places, ascending)? Replies come in the order the messages were sent.
 */
function isOwn(own: number[] | null, answered: number): boolean {
  if (own === null || own[0] !== answered) return false;
  own.shift();
  return true;
}

/**
 * The fill whose reply the head's next message belongs to: the head's own, or in a group the
 * statement whose reply is open (its BindComplete seen, not its CommandComplete nor an error).
 * Between statements (a ParseComplete, an error at a Parse or Bind, the ReadyForQuery), none.
 */
export function capturing(head: PgRequest): FillAction | null {
  if (head.members === null) return head.action.kind === 'fill' ? head.action : null;
  const m = head.members[head.memberAt];
  return m !== undefined && m.completes === 0 && !m.errored && m.action.kind === 'fill' ? m.action : null;
}
