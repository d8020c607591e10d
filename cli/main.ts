// The `sidecache` command: parse settings, start the proxy (or the quick start on an embedded
// database when no upstream is configured), print where to connect, stop cleanly on a signal.
import cluster from 'node:cluster';
import { ConfigReloader } from '../config/reload.js';
import { ConfigError, helpText, loadConfig, type Config, type HostPort } from '../config/settings.js';
import { createLogger, type Logger } from '../telemetry/log.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './quickstart.js';
import { checkListenPorts, ListenError, startSidecache, type RunningSidecache } from './sidecache.js';
import { SLOT_ENV, type Addresses } from '../workers/messages.js';
import { runPrimary } from '../workers/primary.js';
import { WorkerChannel } from '../workers/worker-channel.js';

/** When the quick start's default ports are taken, these are tried next, then any free port. */
const QUICKSTART_FALLBACK_PORTS: Record<'pgListen' | 'adminListen', number[]> = {
  pgListen: [15432, 0],
  adminListen: [19180, 0],
};
const SHUTDOWN_DEADLINE_MS = 10_000;

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  let parsed;
  try {
    parsed = loadConfig(argv, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sidecache: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (parsed.help) {
    process.stdout.write(helpText() + '\n');
    return 0;
  }
  const log = createLogger(parsed.config.logLevel, parsed.config.logFormat);
  let config = parsed.config;
  if (cluster.isWorker) return await runWorker(argv, config, log.child({ worker: Number(process.env[SLOT_ENV]) }));
  // The quick start's embedded database serves one session for all connections: one process is all it can use.
  if (config.workers > 1 && (config.pgUpstream !== null || config.mysqlUpstream !== null)) {
    try {
      await checkListenPorts(config);
    } catch (err) {
      if (!(err instanceof ListenError)) throw err;
      process.stderr.write(`${listenFailure(err)}\n`);
      return 1;
    }
    return await runPrimary({
      config,
      log,
      shutdownDeadlineMs: SHUTDOWN_DEADLINE_MS,
      onListening: (addresses) => printBanner(addresses, config.pgUpstream, config.mysqlUpstream, false, config.workers),
    });
  }
  let embedded: EmbeddedPostgres | null = null;
  // Either side can run alone; with no upstream at all the quick start gives PostgreSQL one.
  let upstream: HostPort | null = null;
  if (config.pgUpstream) {
    upstream = config.pgUpstream;
  } else if (!config.mysqlUpstream) {
    process.stdout.write('sidecache: no --pg-upstream given: starting the quick start on an embedded PostgreSQL (PGlite) with sample data, this takes a few seconds...\n');
    embedded = await startEmbeddedPostgres();
    upstream = embedded.address;
  }

  const source = new ConfigReloader(argv, process.env, parsed.config);
  let app: RunningSidecache | null = null;
  // Each listener walks its own fallback list: both the PostgreSQL and the admin port may be taken.
  const attempts = { pgListen: 0, adminListen: 0 };
  while (app === null) {
    try {
      app = await startSidecache(config, upstream, log, source);
    } catch (err) {
      if (!(err instanceof ListenError)) throw err;
      const key = err.flag === '--pg-listen' ? 'pgListen' : err.flag === '--admin-listen' ? 'adminListen' : null;
      const fallback = key === null ? undefined : QUICKSTART_FALLBACK_PORTS[key][attempts[key]++];
      // Only the quick start moves to another port by itself; a configured address is the operator's choice.
      if (embedded === null || key === null || parsed.explicit.has(key) || err.code !== 'EADDRINUSE' || fallback === undefined) {
        process.stderr.write(`${listenFailure(err)}\n`);
        await embedded?.stop();
        return 1;
      }
      process.stdout.write(`sidecache: ${err.flag} port ${err.at.port} is taken, trying ${fallback || 'any free port'}\n`);
      config = { ...config, [key]: { ...config[key], port: fallback } } as Config;
    }
  }

  const e = embedded;
  handleSignals(app, log, async () => {
    await e?.stop();
  });
  // Last: "ready" tells a supervisor (and the tests) that a signal now stops or reloads cleanly.
  printBanner(app, upstream, config.mysqlUpstream, embedded !== null, 1);
  return -1;
}

/** Stops on SIGTERM and SIGINT (then runs `after` and exits), reloads on SIGHUP; returns the stop. */
function handleSignals(running: RunningSidecache, log: Logger, after: () => Promise<void>): (reason: string, deadlineMs?: number) => Promise<void> {
  let stopping = false;
  const stop = async (reason: string, deadlineMs = SHUTDOWN_DEADLINE_MS): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: reason }, 'shutting down');
    await running.close(deadlineMs);
    await after();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // Reloads limits, cache sizes and TTL from the config file; open connections stay. A failure
  // is logged by reload() and changes nothing.
  process.on('SIGHUP', () => {
    try {
      running.reload();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
    }
  });
  return stop;
}

/**
 * One of several workers (workers/): serves on the ports the primary shares, tells it when it
 * listens; the primary prints the banner once all do.
 */
async function runWorker(argv: string[], config: Config, log: Logger): Promise<number> {
  let stop: ((reason: string, deadlineMs?: number) => Promise<void>) | null = null;
  // Without the primary nothing else stops this worker; what it may still serve is fenced by the channel.
  const channel = new WorkerChannel(Number(process.env[SLOT_ENV]), log, () => {
    if (stop === null) process.exit(1);
    else void stop('primary-lost', 0);
  });
  // Every worker that joined before this one sends it its invalidations from now on: only then may
  // it fill (and so serve) anything.
  await channel.joined;
  let app: RunningSidecache;
  try {
    app = await startSidecache(config, config.pgUpstream, log, new ConfigReloader(argv, process.env, config), channel);
  } catch (err) {
    if (!(err instanceof ListenError)) throw err;
    await channel.failed(listenFailure(err));
    return 1;
  }
  stop = handleSignals(app, log, async () => {});
  channel.listening({ pgAddress: app.pgAddress, mysqlAddress: app.mysqlAddress, adminAddress: app.adminAddress });
  return -1;
}

/** The one line an operator reads when a listener cannot bind. */
function listenFailure(err: ListenError): string {
  return `sidecache: ${err.message}${err.code === 'EADDRINUSE' ? ` (pass another ${err.flag} HOST:PORT)` : ''}`;
}

function printBanner(addresses: Addresses, upstream: HostPort | null, mysqlUpstream: HostPort | null, quickstart: boolean, workers: number): void {
  const { pgAddress: pg, mysqlAddress: mysql, adminAddress: admin } = addresses;
  const adminHost = connectHost(admin);
  const lines: string[] = [];
  if (pg !== null && upstream !== null) {
    lines.push(`sidecache: postgres listening on ${pg.address}:${pg.port} -> upstream postgres://${upstream.host}:${upstream.port}${quickstart ? ' (embedded PGlite)' : ''}`);
  }
  if (mysql !== null && mysqlUpstream !== null) {
    lines.push(`sidecache: mysql listening on ${mysql.address}:${mysql.port} -> upstream mysql://${mysqlUpstream.host}:${mysqlUpstream.port}`);
  }
  lines.push(`sidecache: admin listening on http://${adminHost}:${admin.port} (dashboard at /, /stats, /metrics, /healthz)`);
  if (pg === null) lines.push('sidecache: no --pg-upstream given: the PostgreSQL side is not running');
  if (mysql === null && !quickstart) lines.push('sidecache: no --mysql-upstream given: the MySQL side is not running');
  if (workers > 1) lines.push(`sidecache: ${workers} worker processes share these ports (--workers)`);
  if (quickstart && pg !== null) {
    lines.push(
      '',
      '  Connect:  psql "postgres://postgres@' + connectHost(pg) + ':' + pg.port + '/postgres?sslmode=disable"',
      '  Try:      SELECT category, count(*) FROM products GROUP BY category;   (run it twice: the second is a hit)',
      `  Watch:    http://${adminHost}:${admin.port}/   (the dashboard: hit ratio, latency, top queries)`,
      `  Metrics:  curl http://${adminHost}:${admin.port}/metrics   or   curl http://${adminHost}:${admin.port}/stats`,
      '  Stop:     Ctrl-C',
      '',
      '  The embedded database keeps nothing on disk and serves one session shared by all connections;',
      '  point sidecache at a real server with --pg-upstream postgres://HOST:PORT.',
      '  No MySQL upstream is configured: the MySQL side is not running (add --mysql-upstream mysql://HOST:PORT).',
      '',
    );
  }
  lines.push('sidecache: ready');
  process.stdout.write(lines.join('\n') + '\n');
}

/** Where a local client reaches a listener bound to `at` (a wildcard address means loopback). */
function connectHost(at: { address: string }): string {
  return at.address === '0.0.0.0' || at.address === '::' ? '127.0.0.1' : at.address;
}

main().then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`sidecache: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
