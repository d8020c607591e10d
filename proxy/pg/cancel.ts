// Relays a CancelRequest to the upstream on a connection of its own, as the protocol asks.
// The client's key is the upstream's own BackendKeyData (relayed unchanged), so it needs no mapping.
import net from 'node:net';
import type { Logger } from '../../telemetry/log.js';
import type { HostPort } from '../../config/settings.js';

const CANCEL_TIMEOUT_MS = 5000;

export function sendCancelRequest(upstream: HostPort, packet: Buffer, log: Logger): void {
  const socket = net.connect({ host: upstream.host, port: upstream.port });
  socket.setTimeout(CANCEL_TIMEOUT_MS, () => socket.destroy());
  socket.once('connect', () => socket.end(packet));
  socket.on('error', (err) => log.warn({ err: err.message }, 'pg: could not relay a cancel request'));
  // The server answers a cancel by closing; nothing it sends is meaningful.
  socket.resume();
}
