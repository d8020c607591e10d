// A free TCP port on 127.0.0.1, for servers the tests and the bench start that cannot report the
// port they bound to (initdb clusters, PgBouncer, pgpool-II).
import net from 'node:net';

/** A port the kernel just handed out (and took back). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
