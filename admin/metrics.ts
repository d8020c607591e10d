// The Prometheus registry and every metric sidecache exports. Proxy modules get the metric objects
// from here; only the admin server renders them.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export type Protocol = 'postgres' | 'mysql';

export interface Metrics {
  registry: Registry;
  clientConnections: Gauge<'protocol'>;
  upstreamConnections: Gauge<'protocol'>;
  clientConnectionsTotal: Counter<'protocol'>;
  rejectedConnections: Counter<'protocol' | 'reason'>;
  protocolErrors: Counter<'protocol' | 'reason'>;
  upstreamErrors: Counter<'protocol' | 'reason'>;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'sidecache_process_' });
  const registers = [registry];
  return {
    registry,
    clientConnections: new Gauge({ name: 'sidecache_client_connections', help: 'Client connections open now', labelNames: ['protocol'], registers }),
    upstreamConnections: new Gauge({ name: 'sidecache_upstream_connections', help: 'Upstream database connections open now', labelNames: ['protocol'], registers }),
    clientConnectionsTotal: new Counter({ name: 'sidecache_client_connections_total', help: 'Client connections accepted', labelNames: ['protocol'], registers }),
    rejectedConnections: new Counter({ name: 'sidecache_rejected_connections_total', help: 'Client connections refused by a limit', labelNames: ['protocol', 'reason'], registers }),
    protocolErrors: new Counter({ name: 'sidecache_protocol_errors_total', help: 'Client connections closed for breaking the protocol', labelNames: ['protocol', 'reason'], registers }),
    upstreamErrors: new Counter({ name: 'sidecache_upstream_errors_total', help: 'Upstream connection failures', labelNames: ['protocol', 'reason'], registers }),
  };
}
