// Starts a throwaway pgpool-II with its in-memory query cache in front of PostgreSQL: the other
// caching proxy sidecache is compared with. One backend, no load balancing, no replication, no
// failover, trust auth passed through; config, pid file, sockets and cache state in a temp dir.
import { execFileSync, spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { captureOutput, freePort, stopChild, waitForListener } from './relay-process.js';
import { processTreeCpuSeconds } from './process-tree-cpu.js';

export interface RunningPgpool {
  port: number;
  pid: number;
  /** CPU of the main process and its per-client children (pgpool forks one process per client). */
  cpuSeconds(): Promise<number | undefined>;
  output(): string;
  stop(): Promise<void>;
}

export class PgpoolStartError extends Error {
  override name = 'PgpoolStartError';
}

export interface PgpoolConfigOptions {
  port: number;
  /** Holds the pid file, the unix sockets, the backend status file and the cache's table map. */
  dir: string;
  upstream: { host: string; port: number };
  /** Client connections it must accept at once; it pre-forks one process per connection. */
  clients: number;
}

/** Path of the pgpool binary (Debian package pgpool2), or undefined when it is not installed. */
export function findPgpool(): string | undefined {
  for (const candidate of ['pgpool', '/usr/sbin/pgpool']) {
    try {
      return execFileSync('which', [candidate], { encoding: 'utf8' }).trim() || undefined;
    } catch {
      // not on PATH under this name; try the next
    }
  }
  return undefined;
}

/** pgpool.conf text: everything not set here keeps pgpool's compiled-in default. */
export function pgpoolConfig(opts: PgpoolConfigOptions): string {
  const settings: Record<string, string | number> = {
    // raw mode: one backend, queries passed on as they are; the query cache works in every mode.
    backend_clustering_mode: `'raw'`,
    listen_addresses: `'127.0.0.1'`,
    port: opts.port,
    socket_dir: `'${opts.dir}'`,
    // The admin (PCP) listener only on a unix socket in the temp dir: nothing else to collide with.
    pcp_listen_addresses: `''`,
    pcp_socket_dir: `'${opts.dir}'`,
    backend_hostname0: `'${opts.upstream.host}'`,
    backend_port0: opts.upstream.port,
    backend_weight0: 1,
    backend_flag0: `'DISALLOW_TO_FAILOVER'`,
    // No pool_hba and no pool_passwd: authentication is passed through to PostgreSQL (trust here).
    enable_pool_hba: 'off',
    pool_passwd: `''`,
    num_init_children: Math.max(32, opts.clients + 8),
    // Children live for the whole run, so the CPU of every child that served the bench is counted.
    child_life_time: 0,
    pid_file_name: `'${path.join(opts.dir, 'pgpool.pid')}'`,
    logdir: `'${opts.dir}'`,
    load_balance_mode: 'off',
    sr_check_period: 0,
    health_check_period: 0,
    failover_on_backend_error: 'off',
    use_watchdog: 'off',
    memory_cache_enabled: 'on',
    memqcache_method: `'shmem'`,
    memqcache_oiddir: `'${path.join(opts.dir, 'oiddir')}'`,
    log_min_messages: 'warning',
  };
  return Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n';
}

export async function startPgpool(binary: string, upstream: { host: string; port: number }, clients: number): Promise<RunningPgpool> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(tmpdir(), 'sidecache-pgpool-'));
  // Readable by the postgres user too, should pgpool ever be run as that user.
  await chmod(dir, 0o755);
  await mkdir(path.join(dir, 'oiddir'));
  const conf = path.join(dir, 'pgpool.conf');
  const pcpConf = path.join(dir, 'pcp.conf');
  await writeFile(conf, pgpoolConfig({ port, dir, upstream, clients }), { mode: 0o644 });
  await writeFile(pcpConf, '', { mode: 0o644 });
  // -n: stay in the foreground, so stopping the child stops pgpool and its output is ours.
  const child = spawn(binary, ['-n', '-f', conf, '-F', pcpConf], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = captureOutput(child);
  const stop = async (): Promise<void> => {
    // SIGINT is pgpool's fast shutdown: clients are disconnected instead of waited for.
    await stopChild(child, 'SIGINT');
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForListener(child, 'pgpool', port, 15_000);
  } catch (err) {
    await stop();
    throw new PgpoolStartError(`${(err as Error).message}\n--- pgpool output ---\n${output().trimEnd()}`);
  }
  const pid = child.pid!;
  return { port, pid, cpuSeconds: () => processTreeCpuSeconds(pid), output, stop };
}
