// How long a change stream waits before it tries again after a failure: doubling from FIRST_MS to
// MAX_MS, so a server that refuses (max_wal_senders reached, a missing privilege) is asked twice a
// minute, not in a tight loop; back to the start once a stream stayed up long enough to count as healthy.

export const FIRST_MS = 500;
export const MAX_MS = 30_000;
/** Up at least this long: the next failure is a new incident, not the same one again. */
export const HEALTHY_AFTER_MS = 30_000;

export class Backoff {
  private nextMs = FIRST_MS;

  /** The wait before the next attempt, given how long the last stream stayed up (0 when it never came up). */
  next(upForMs: number): number {
    if (upForMs >= HEALTHY_AFTER_MS) this.nextMs = FIRST_MS;
    const wait = this.nextMs;
    this.nextMs = Math.min(this.nextMs * 2, MAX_MS);
    return wait;
  }
}
