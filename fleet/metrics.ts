// The fleet's Prometheus series, read from the bus and the leases at scrape time.
import { Counter, Gauge, type Registry } from 'prom-client';
import { PrecountedHistogram } from '../telemetry/duration-histogram.js';
import { FENCE_REASONS, type BusStatus } from './bus.js';
import type { Lease } from './lease.js';

export function registerFleetMetrics(registry: Registry, bus: () => BusStatus, leases: () => ReadonlyMap<string, Lease>): void {
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
  new PrecountedHistogram('sidecache_bus_lag_seconds', 'Time from another proxy publishing a bus entry to this proxy applying it (the publisher\'s clock to ours)',
    () => [{ labels: {}, histogram: bus().lag }], registry);
}
