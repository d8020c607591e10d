// Which session's client output an invalidation must hold back. A write's invalidation is made
// while its session handles the server's reply, before the acknowledgement is written to the
// client (proxy/pg/relay.ts, proxy/mysql/relay.ts). With several workers (workers/) the other
// workers must have applied it before that acknowledgement leaves: the worker channel holds the
// output of the session whose reply is being handled now and releases it once every worker has
// answered. Sessions mark themselves current around their upstream chunks (proxy/session.ts).

/** A session's client output, which can be held back (written to the socket but not sent). */
export interface OutputGate {
  hold(): void;
  release(): void;
}

let current: OutputGate | null = null;

/** Runs `handle(chunk)` with `gate` as the current output; nested calls restore the outer one. */
export function asCurrentOutput(gate: OutputGate, handle: (chunk: Buffer) => void, chunk: Buffer): void {
  const outer = current;
  current = gate;
  try {
    handle(chunk);
  } finally {
    current = outer;
  }
}

/** The session whose server reply is being handled now, or null (an admin flush, a change stream). */
export function currentOutput(): OutputGate | null {
  return current;
}
