// Time sources for TTL checks. The store asks the clock only for entries that carry an expiry, and
// a hit must not pay for a system call each time, so the production clock caches its reading.

/** Milliseconds on a monotonic scale; only differences matter. */
export interface Clock {
  now(): number;
}

/**
 * performance.now() read at most once per `resolutionMs`: the first call reads the time and arms
 * an unref'd timer that forgets it, so a burst of hits in one event-loop turn shares one reading
 * and an idle process runs no timer at all (the lru-cache `ttlResolution` idea). An entry may
 * therefore be served up to `resolutionMs` past its TTL, which is noise next to a TTL in seconds.
 */
export class CoarseClock implements Clock {
  private cached = -1;
  private readonly forget = (): void => {
    this.cached = -1;
  };

  constructor(private readonly resolutionMs = 5) {}

  now(): number {
    if (this.cached < 0) {
      this.cached = performance.now();
      setTimeout(this.forget, this.resolutionMs).unref();
    }
    return this.cached;
  }
}

/** A clock that moves only when told to: deterministic TTL tests. */
export class ManualClock implements Clock {
  constructor(private current = 0) {}

  now(): number {
    return this.current;
  }

  advance(ms: number): void {
    this.current += ms;
  }
}
