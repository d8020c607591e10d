// The pure parts of the network-hop bench (`--rtt`): reading the option, naming the namespace and
// its addresses, the delay each way, and summarising measured round trips. See netns.ts.
import { UsageError } from './options.js';

/** The round trip a `--rtt` value asks for, in µs: "1ms", "0.4ms", "400us" (or "400µs"). */
export function parseRtt(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|us|µs)\s*$/.exec(text);
  const us = m ? Number(m[1]) * (m[2] === 'ms' ? 1000 : 1) : NaN;
  // Below 20 µs the relay's own lateness (tens of µs) would be most of it; above 100 ms is no LAN.
  if (!(us >= 20 && us <= 100_000)) throw new UsageError(`--rtt must be a round trip such as 1ms, 0.4ms or 400us (20us to 100ms), got "${text}"`);
  return Math.round(us);
}

export interface HopPlan {
  namespace: string;
  /** The veth end in this process's namespace, and the one moved into the bench's namespace. */
  hostInterface: string;
  namespaceInterface: string;
  hostAddress: string;
  namespaceAddress: string;
  rttUs: number;
  /** Half the round trip, applied to each direction. */
  oneWayUs: number;
}

/**
 * Names and addresses from the bench's pid: two benches at once (other helpers) get different
 * namespaces and subnets. A /30 in 10.213.0.0/16: 16384 of them, the pid picks one.
 */
export function hopPlan(pid: number, rttUs: number): HopPlan {
  const block = pid % 16384;
  const third = Math.floor(block / 64);
  const fourth = (block % 64) * 4;
  // Interface names are limited to 15 characters: "scb" + up to 7 digits + one letter.
  const id = String(pid % 10_000_000);
  return {
    namespace: `sidecache-bench-${pid}`,
    hostInterface: `scb${id}h`,
    namespaceInterface: `scb${id}n`,
    hostAddress: `10.213.${third}.${fourth + 1}`,
    namespaceAddress: `10.213.${third}.${fourth + 2}`,
    rttUs,
    oneWayUs: Math.round(rttUs / 2),
  };
}

export interface RttSummary {
  count: number;
  minUs: number;
  p50Us: number;
  p90Us: number;
  avgUs: number;
  maxUs: number;
}

/** Order statistics of round-trip samples (µs); nearest-rank percentiles. Undefined for none. */
export function summarizeRtt(samples: readonly number[]): RttSummary | undefined {
  if (samples.length === 0) return undefined;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = (q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
  return {
    count: sorted.length,
    minUs: sorted[0]!,
    p50Us: rank(0.5),
    p90Us: rank(0.9),
    avgUs: sorted.reduce((s, x) => s + x, 0) / sorted.length,
    maxUs: sorted[sorted.length - 1]!,
  };
}

/** "p50 1.07 ms (min 1.02, p90 1.19, n 200)": how an RTT summary is printed. */
export function formatRtt(s: RttSummary | undefined): string {
  if (!s) return 'not measured';
  const ms = (us: number): string => (us / 1000).toFixed(2);
  return `p50 ${ms(s.p50Us)} ms (min ${ms(s.minUs)}, avg ${ms(s.avgUs)}, p90 ${ms(s.p90Us)}, n ${s.count})`;
}

/** The line a bench prints once its hop is up: the addresses, the delay each way and the idle RTT. */
export function formatHopStarted(plan: HopPlan, idleRtt: RttSummary | undefined): string {
  return `hop ${plan.hostAddress} -> ${plan.namespaceAddress} (namespace ${plan.namespace}), ${plan.oneWayUs} µs each way; measured RTT idle: ${formatRtt(idleRtt)}`;
}
