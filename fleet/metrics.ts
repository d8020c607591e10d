// The fleet's Prometheus series, read from the bus and the leases at scrape time.
import { Counter, Gauge, type Registry } from 'prom-client';
import { PrecountedHistogram } from '../telemetry/duration-histogram.js';
import { FENCE_REASONS, type BusStatus } from './bus.js';
import type { SecondTier } from './l2.js';
import type { Lease } from './lease.js';

export function registerFleetMetrics(registry: Registry, bus: () => BusStatus, leases: () => ReadonlyMap<string, Lease>, tier: SecondTier | null): void {
  const registers = [registry];
  const gauge = (name: string, help: string, value: (s: BusStatus) => number): void => {
    new Gauge({ name, help, registers, collect() { this.set(value(bus())); } });
  };
  const total = (name: string, help: string, value: (s: BusStatus) => number): void => {
    new Counter({ name, help, registers, collect() { this.reset(); this.inc(value(bus())); } });
  };
  gauge('sidecache_bus_connected', '1 while following the fleet\'s invalidation bus (the cache answers), 0 while fenced off it', (s) => (s.state === 'live' ? 1 : 0));
  gauge('sidecache_bus_position', 'Number of the last bus entry read', (s) => s.position);
  gauge('sidecache_bus_queued', 'Invalidations waiting for Redis to be published', (s) => s.queued);
  total('sidecache_bus_published_total', 'Invalidations (and leader beats) this proxy published', (s) => s.published);
  total('sidecache_bus_publish_failures_total', 'Publishes Redis did not confirm (queued again)', (s) => s.publishFailures);
  total('sidecache_bus_applied_total', 'Entries of other proxies applied', (s) => s.applied);
  total('sidecache_bus_unreadable_total', 'Bus entries that could not be read (each dropped every cache)', (s) => s.unreadable);
  new Counter({
    name: 'sidecache_bus_fences_total',
    help: 'Times the cache was fenced off the bus (dropped, then bypassed until caught up), by reason',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      const fences = bus().fences;
      for (const reason of FENCE_REASONS) this.inc({ reason }, fences[reason]);
    },
  });
  new Gauge({
    name: 'sidecache_fleet_leader',
    help: '1 while this proxy leads the task (holds its lease in Redis)',
    labelNames: ['task'],
    registers,
    collect() {
      this.reset();
      for (const [task, lease] of leases()) this.set({ task }, lease.isLeader ? 1 : 0);
    },
  });
  if (tier !== null) {
    const l2 = (name: string, help: string, value: () => number): void => {
      new Counter({ name, help, registers, collect() { this.reset(); this.inc(value()); } });
    };
    const c = tier.counts;
    l2('sidecache_l2_hits_total', 'Misses of this proxy\'s memory answered from the fleet\'s second tier in Redis', () => c.hits);
    l2('sidecache_l2_misses_total', 'Second-tier lookups that found nothing current (then the database was asked)', () => c.misses);
    l2('sidecache_l2_stale_total', 'Second-tier entries found but void: a table they read was invalidated since, a new era, their TTL', () => c.stale);
    l2('sidecache_l2_errors_total', 'Second-tier lookups that failed (Redis slow or gone), counted as misses', () => c.errors);
    l2('sidecache_l2_writes_total', 'Fills this proxy kept in the second tier', () => c.writes);
    l2('sidecache_l2_bytes_written_total', 'Bytes this proxy wrote to the second tier', () => c.bytesWritten);
    l2('sidecache_l2_bytes_served_total', 'Reply bytes answered from the second tier', () => c.bytesServed);
  }
  new PrecountedHistogram('sidecache_bus_lag_seconds', 'Time from another proxy publishing a bus entry to this proxy applying it (the publisher\'s clock to ours)',
    () => [{ labels: {}, histogram: bus().lag }], registry);
}
