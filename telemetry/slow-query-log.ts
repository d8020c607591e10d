// The slow-query log (--slow-query-threshold): one warn line per statement that took at least the
// threshold, whatever the cache did with it. QueryStats compares each duration with the threshold
// and calls here only past it, so the log costs nothing on the fast path. Lines are bounded: a
// burst of slow statements (a database that stalls) must not turn into a flood of log lines.
import type { Logger } from './log.js';
import type { Config } from '../config/settings.js';
import type { Protocol } from './metrics.js';
import type { Outcome, QueryStats, SlowStatementSink, StatementIdentity, StatementSource } from './query-stats.js';

export const SLOW_LINES_PER_WINDOW = 10;
export const SLOW_WINDOW_MS = 1000;

export interface SlowQueryLogOptions {
  /** Lines written per window at most; the rest are counted in one line when the window ends. */
  linesPerWindow?: number;
  windowMs?: number;
}

export class SlowQueryLog implements SlowStatementSink {
  private readonly watched: QueryStats[] = [];
  private readonly linesPerWindow: number;
  private readonly windowMs: number;
  private windowStart = -Infinity;
  private lines = 0;
  private suppressed = 0;
  private summary: NodeJS.Timeout | null = null;

  constructor(private readonly log: Logger, private thresholdMs: number, options: SlowQueryLogOptions = {}) {
    this.linesPerWindow = options.linesPerWindow ?? SLOW_LINES_PER_WINDOW;
    this.windowMs = options.windowMs ?? SLOW_WINDOW_MS;
  }

  /** Logs the slow statements `stats` counts, under the current threshold and later ones. */
  watch(stats: QueryStats): void {
    this.watched.push(stats);
    stats.reportSlow(this, this.thresholdMs);
  }

  /** A config reload: the new threshold applies to the next statement to finish. */
  applyConfig(config: Config): void {
    if (config.slowQueryThresholdMs === this.thresholdMs) return;
    this.thresholdMs = config.slowQueryThresholdMs;
    for (const stats of this.watched) stats.reportSlow(this, this.thresholdMs);
  }

  slow(protocol: Protocol, outcome: Outcome, id: StatementIdentity | null, bypassReason: string | null, seconds: number, source: StatementSource | undefined): void {
    const now = performance.now();
    if (now - this.windowStart >= this.windowMs) {
      this.windowStart = now;
      this.lines = 0;
    }
    if (this.lines >= this.linesPerWindow) {
      this.suppressed++;
      // One timer per window that had too many, not one per statement.
      this.summary ??= setTimeout(() => this.reportSuppressed(), this.windowStart + this.windowMs - now).unref();
      return;
    }
    this.lines++;
    this.log.warn({
      protocol,
      outcome,
      durationMs: Math.round(seconds * 10_000) / 10,
      thresholdMs: this.thresholdMs,
      fingerprint: id?.fingerprint ?? null,
      // The fingerprint's sample (whitespace collapsed, at most SAMPLE_CHARS): MySQL's shows each
      // literal as `?`; PostgreSQL's is the first text seen, whose literals may differ from this
      // statement's.
      sample: id?.sample ?? null,
      ...(bypassReason === null ? {} : { bypassReason }),
      // Who sent it: remote address, user, database.
      ...source?.label,
    }, 'slow query');
  }

  private reportSuppressed(): void {
    this.summary = null;
    const n = this.suppressed;
    this.suppressed = 0;
    if (n > 0) this.log.warn({ suppressed: n, limit: `${this.linesPerWindow} lines per ${this.windowMs} ms` }, 'slow queries not logged: too many at once');
  }
}
