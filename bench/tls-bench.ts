// The TLS part of `make bench`: a private PostgreSQL cluster with ssl=on (the shared server has no
// TLS), pgbench with sslmode=require straight at it ("direct TLS") and through sidecache with TLS on
// both legs ("sidecache TLS"), plus sidecache with a cleartext client leg (its upstream leg still
// TLS), so that the cost of TLS on a hit is the difference between the last two. Goals (issue 14):
// hot hits over TLS at least 1.5x direct TLS (the database pays TLS too), and TLS on the client leg
// costing a hit at most 25% (cleartext tps / TLS tps - 1).
import { makeCerts, type TestCerts } from '../e2e/support/certs.js';
import { startCluster, type Cluster } from '../e2e/support/cluster.js';
import { startProxy, type RunningProxy } from '../e2e/support/sidecache.js';
import { initPgbench, runPgbench, type PgbenchTarget } from './pgbench.js';
import { WORKLOADS, type WorkloadFiles } from './workloads.js';

const TLS_WORKLOADS = ['hot-simple', 'hot-prepared', 'select-simple'];
const TARGETS = ['direct TLS', 'sidecache TLS', 'sidecache cleartext client'] as const;
type TlsTarget = (typeof TARGETS)[number];
/** Seconds of pgbench per target before a hot workload's measured runs: fills the cache. */
const WARMUP_SECONDS = 2;
export const TLS_HIT_RATIO_GOAL = 1.5;
export const TLS_HIT_OVERHEAD_GOAL = 0.25;

export interface TlsBenchOptions {
  perRunSeconds: number;
  rounds: number;
  clients: number;
  scale: number;
  /** sidecache's --workers, as for the main table. */
  workers: number;
  /** How long sidecache may take to start (it grows with the workers). */
  startTimeoutMs: number;
}

/** Best tps per workload label and target. */
export type TlsResults = Map<string, Map<TlsTarget, number>>;

export async function runTlsBench(options: TlsBenchOptions, files: WorkloadFiles): Promise<TlsResults> {
  let certs: TestCerts | undefined;
  let cluster: Cluster | undefined;
  let proxy: RunningProxy | undefined;
  try {
    certs = await makeCerts();
    cluster = await startCluster({ tls: certs.good, hba: ['hostssl all all 127.0.0.1/32 trust'], maxConnections: 60 });
    const server: PgbenchTarget = { host: '127.0.0.1', port: cluster.port, user: 'postgres', database: 'postgres', sslmode: 'require' };
    console.log(`bench tls: pgbench -i -s ${options.scale} on a private cluster with ssl=on ...`);
    await initPgbench(server, options.scale, 600_000);
    proxy = await startProxy({
      pgUpstream: `postgres://localhost:${cluster.port}?sslmode=verify-full&sslrootcert=${certs.ca}`,
      args: ['--tls-cert', certs.good.cert, '--tls-key', certs.good.key, '--workers', String(options.workers)],
      timeoutMs: options.startTimeoutMs,
    });
    const endpoints: Record<TlsTarget, PgbenchTarget> = {
      'direct TLS': server,
      'sidecache TLS': { ...server, port: proxy.pgPort },
      'sidecache cleartext client': { ...server, port: proxy.pgPort, sslmode: 'disable' },
    };
    const results: TlsResults = new Map();
    for (const key of TLS_WORKLOADS) {
      const workload = WORKLOADS.find((w) => w.key === key)!;
      const best = new Map<TlsTarget, number>();
      results.set(workload.label, best);
      const run = async (target: TlsTarget, seconds: number): Promise<number> => {
        const args = [...workload.args(files), '-n', '-c', String(options.clients), '-j', '2', '-T', String(seconds)];
        return (await runPgbench({ target: endpoints[target], args, timeoutMs: 60_000 + seconds * 2000 })).tps;
      };
      if (workload.kind === 'hot') for (const target of TARGETS) await run(target, WARMUP_SECONDS);
      for (let round = 0; round < options.rounds; round++) {
        for (const target of round % 2 === 0 ? TARGETS : [...TARGETS].reverse()) {
          const tps = await run(target, options.perRunSeconds);
          console.log(`  tls ${workload.label.padEnd(14)} ${target.padEnd(26)} round ${round + 1}/${options.rounds}: ${tps.toFixed(0)} tps`);
          best.set(target, Math.max(best.get(target) ?? 0, tps));
        }
      }
    }
    return results;
  } finally {
    await proxy?.stop();
    await cluster?.stop();
    await certs?.remove();
  }
}

/** The table and the two goals with verdicts. */
export function formatTlsResults(results: TlsResults): string {
  const lines = [`TLS (pgbench sslmode=require; a private cluster with ssl=on; best tps per target)`];
  lines.push(`  ${'workload'.padEnd(14)} ${TARGETS.map((t) => t.padStart(26)).join(' ')}  sidecache TLS / direct TLS  TLS cost on sidecache`);
  for (const [label, best] of results) {
    const [direct, tls, clear] = TARGETS.map((t) => best.get(t) ?? NaN) as [number, number, number];
    lines.push(`  ${label.padEnd(14)} ${[direct, tls, clear].map((v) => v.toFixed(0).padStart(26)).join(' ')}  ${(tls / direct).toFixed(2).padStart(25)}x  ${`${((clear / tls - 1) * 100).toFixed(0)}%`.padStart(20)}`);
  }
  for (const [label, best] of results) {
    if (!label.startsWith('hot')) continue;
    const ratio = best.get('sidecache TLS')! / best.get('direct TLS')!;
    const overhead = best.get('sidecache cleartext client')! / best.get('sidecache TLS')! - 1;
    lines.push(`  goal: ${label} hits over TLS >= ${TLS_HIT_RATIO_GOAL}x direct TLS: ${ratio.toFixed(2)}x ${ratio >= TLS_HIT_RATIO_GOAL ? 'MET' : 'NOT MET'}`);
    lines.push(`  goal: ${label} TLS overhead on a hit <= ${TLS_HIT_OVERHEAD_GOAL * 100}% of a cleartext hit: ${(overhead * 100).toFixed(0)}% ${overhead <= TLS_HIT_OVERHEAD_GOAL ? 'MET' : 'NOT MET'}`);
  }
  return lines.join('\n');
}
