// The options of `make bench-mysql` (bench/mysql-run.ts): read and checked here, pure, so that a
// wrong one is a UsageError printed with the usage before anything starts.
import { parseArgs } from 'node:util';
import type { MysqlTargetId } from './mysql-report.js';
import { DEFAULT_MYSQL_WORKLOADS, MYSQL_WORKLOADS, type MysqlWorkload } from './mysql-workloads.js';
import { positiveInt, targetList, workloadList } from './options.js';
import { parseRtt } from './rtt.js';

export const ALL_MYSQL_TARGETS: readonly MysqlTargetId[] = ['direct', 'forwarder', 'sidecache', 'qcache'];

export const MYSQL_USAGE = `usage: node dist/bench/mysql-run.js [options]
  --seconds N      measured seconds per workload and target, split over the rounds (default 12, env BENCH_SECONDS)
  --rounds R       alternating runs per workload and target; the best is reported (default 2)
  --threads T      sysbench --threads (default 8)
  --workloads LIST comma-separated, from: ${MYSQL_WORKLOADS.map((w) => w.key).join(', ')} (default all)
  --targets LIST   comma-separated, from: ${ALL_MYSQL_TARGETS.join(', ')} (default all)
  --rtt T          put MariaDB behind a network hop with this round trip (e.g. 1ms, 0.4ms, 400us): a private
                   mariadbd in a network namespace, reached over a veth pair through a delaying relay (root, cc)`;

export interface MysqlOptions {
  seconds: number;
  rounds: number;
  threads: number;
  workloads: MysqlWorkload[];
  /** In ALL_MYSQL_TARGETS' order, whatever the order given. */
  targets: MysqlTargetId[];
  /** Round trip of the network hop in µs; undefined: the shared server on loopback. */
  rttUs: number | undefined;
}

/** The options `argv` asks for; undefined for --help. `env` gives BENCH_SECONDS. */
export function parseMysqlOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): MysqlOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string' },
      rounds: { type: 'string', default: '2' },
      threads: { type: 'string', default: '8' },
      workloads: { type: 'string', default: DEFAULT_MYSQL_WORKLOADS.join(',') },
      targets: { type: 'string', default: ALL_MYSQL_TARGETS.join(',') },
      rtt: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return undefined;
  const workloads = workloadList(values.workloads, MYSQL_WORKLOADS);
  const targets = targetList(values.targets, ALL_MYSQL_TARGETS);
  return {
    seconds: positiveInt('--seconds', values.seconds ?? env['BENCH_SECONDS'] ?? '12'),
    rounds: positiveInt('--rounds', values.rounds),
    threads: positiveInt('--threads', values.threads),
    workloads,
    targets: ALL_MYSQL_TARGETS.filter((t) => targets.includes(t)),
    rttUs: values.rtt === undefined ? undefined : parseRtt(values.rtt),
  };
}
