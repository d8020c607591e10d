// The change streams as /stats and the dashboard show them, from the readings the streams keep up
// to date (telemetry/change-streams.ts).
import type { ChangeStreamReading, ChangeStreamState } from '../telemetry/change-streams.js';
import type { Protocol } from '../telemetry/metrics.js';

/** One stream as /stats shows it. */
export interface ChangeStreamItem {
  protocol: Protocol;
  database: string;
  state: ChangeStreamState;
  since: string;
  lastError: string | null;
  position: string | null;
  events: number;
  invalidations: number;
  failures: number;
  lag: { count: number; lastMs: number | null; p50Ms: number | null; p99Ms: number | null };
}

export function changeStreamItems(streams: Iterable<ChangeStreamReading>): ChangeStreamItem[] {
  const items: ChangeStreamItem[] = [];
  for (const s of streams) {
    items.push({
      protocol: s.protocol,
      database: s.database,
      state: s.state,
      since: new Date(s.sinceMs).toISOString(),
      lastError: s.lastError,
      position: s.position,
      events: s.events,
      invalidations: s.invalidations,
      failures: s.failures,
      lag: { count: s.lag.count, lastMs: s.lastLagMs, p50Ms: s.lag.quantileMs(0.5), p99Ms: s.lag.quantileMs(0.99) },
    });
  }
  return items.sort((a, b) => a.protocol.localeCompare(b.protocol) || a.database.localeCompare(b.database));
}
