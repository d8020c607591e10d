// Waiting for events rather than for time. A fixed run time leaves a slower or busier machine with
// fewer events, and a fixed pause may end before an event arrives: a test runs until it has what it
// needs, or until a deadline far beyond it passes (and its assertion then fails with the counts).

export interface LoadPlan {
  /** The load runs at least this long, so its kinds of operation mix; */
  minMs: number;
  /** then until `enough` says so, or until this much time has passed, whatever it has by then. */
  maxMs: number;
  enough: () => boolean | Promise<boolean>;
  /** Stops the load at once (e.g. a client failed); it cannot succeed any more. */
  failed?: () => boolean;
}

/** How often `enough` is asked once `minMs` have passed. */
const POLL_MS = 100;

/**
 * Runs `workers` together, each looping while the `running` it is given returns true, until the
 * plan says stop; resolves when every worker has returned.
 */
export async function loadUntil(workers: ReadonlyArray<(running: () => boolean) => Promise<void>>, plan: LoadPlan): Promise<void> {
  let running = true;
  const started = Date.now();
  const stopper = (async () => {
    while (running) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      const elapsed = Date.now() - started;
      if (plan.failed?.() === true || elapsed >= plan.maxMs) break;
      if (elapsed >= plan.minMs && await plan.enough()) break;
    }
    running = false;
  })();
  try {
    await Promise.all(workers.map((work) => work(() => running)));
  } finally {
    running = false;
    await stopper;
  }
}

/** Polls `done` until it holds or `timeoutMs` have passed; says which. */
export async function waitFor(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

/**
 * Runs `attempt(1)`, `attempt(2)`, ... until one finishes within `windowMs` of its start, and returns
 * its result. For what must happen within a time (a read before its entry's TTL runs out): a loaded
 * machine may stall an attempt past the window, which then proves nothing, so the next one runs
 * (on its own entries: `n` tells them apart). Fails after `tries` attempts that all took too long.
 */
export async function withinWindow<T>(windowMs: number, attempt: (n: number) => Promise<T>, tries = 10): Promise<T> {
  for (let n = 1; n <= tries; n++) {
    const started = performance.now();
    const result = await attempt(n);
    if (performance.now() - started < windowMs) return result;
  }
  throw new Error(`${tries} attempts each took ${windowMs} ms or more`);
}
