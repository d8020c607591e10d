// Where each server message of a PostgreSQL session goes, by the request it answers (the head of the
// request ledger): relayed, captured for a fill, or dropped (the reply to the proxy's own probe or
// identity check, the ParseComplete/CloseComplete of a Parse or Close the proxy replayed). Called
// once per server message: no allocation.
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

/** Where message `code` goes; counts down `head`'s replayed Parses and Closes as their replies pass. */
export function replyRoute(code: number, head: PgRequest | undefined): Route {
  if (ofProbe(code, head)) return Route.Drop;
  const action = head?.action;
  if (head !== undefined && !ASYNC[code]) {
    if (code === Backend.ParseComplete && head.swallowParse > 0) {
      head.swallowParse--;
      return Route.Drop;
    }
    if (code === Backend.CloseComplete && head.swallowClose > 0) {
      head.swallowClose--;
      return Route.Drop;
    }
    if (code === Backend.ParseComplete && head.skipParse > 0) {
      head.skipParse--;
      return Route.Forward;
    }
    return action!.kind === 'fill' && !action!.capture.poisoned ? Route.Capture : Route.Forward;
  }
  // A notification or notice is not part of a reusable result.
  if (action?.kind === 'fill') action.capture.poisoned = true;
  return Route.Forward;
}
