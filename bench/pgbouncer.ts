// Starts a throwaway PgBouncer in session mode as the peer sidecache is compared with: the same
// one-server-connection-per-client shape, so the difference is the relay itself.
import { execFileSync, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { captureOutput, freePort, stopChild, waitForListener } from './relay-process.js';

export interface RunningPgbouncer {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

export class PgbouncerStartError extends Error {
  override name = 'PgbouncerStartError';
}

/** Path of the pgbouncer binary, or undefined when it is not installed. */
export function findPgbouncer(): string | undefined {
  for (const candidate of ['pgbouncer', '/usr/sbin/pgbouncer']) {
    try {
      return execFileSync('which', [candidate], { encoding: 'utf8' }).trim() || undefined;
    } catch {
      // not on PATH under this name; try the next
    }
  }
  return undefined;
}

export async function startPgbouncer(binary: string, upstream: { host: string; port: number; user: string }): Promise<RunningPgbouncer> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(tmpdir(), 'sidecache-pgbouncer-'));
  // PgBouncer refuses to run as root; as root it is told to switch to the postgres user, who
  // must then be able to read the config.
  await chmod(dir, 0o755);
  const ini = path.join(dir, 'pgbouncer.ini');
  await writeFile(ini, [
    '[databases]',
    // auth_type=any ignores the client's user name and logs in as the user named here.
    `* = host=${upstream.host} port=${upstream.port} user=${upstream.user}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = any',
    'pool_mode = session',
    'max_client_conn = 200',
    'default_pool_size = 50',
    'log_connections = 0',
    'log_disconnections = 0',
    '',
  ].join('\n'), { mode: 0o644 });
  const asRoot = process.getuid?.() === 0;
  const child = spawn(binary, [...(asRoot ? ['-u', 'postgres'] : []), ini], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = captureOutput(child);
  const stop = async (): Promise<void> => {
    await stopChild(child);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForListener(child, 'pgbouncer', port, 10_000);
  } catch (err) {
    await stop();
    throw new PgbouncerStartError(`${(err as Error).message}\n--- pgbouncer output ---\n${output().trimEnd()}`);
  }
  return { port, pid: child.pid!, stop };
}
