// `make bench-fleet` (node dist/bench/fleet-lag.js [--readers 2] [--rate 500] [--seconds 10]):
// the fleet bus's publish-to-apply lag. A private redis-server, reader processes each following the
// bus as a sidecache does (fleet/bus.ts on its own connections), and this process publishing
// invalidations at a steady rate. Each reader notes, per invalidation, the time from the publish
// call in this process to the moment its caches had applied it (the same machine's wall clock), and
// the p50 / p99 / max over all readers are printed against the goal p99 < 10 ms.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { Protocol } from '../telemetry/metrics.js';
import { parseRedisUrl } from '../config/redis-target.js';
import { startRedis } from '../e2e/support/redis-server.js';
import { InvalidationBus, wallClockMs, type BusCache } from '../fleet/bus.js';
import { fleetKeys } from '../fleet/keys.js';
import { openRedis, type RedisConnection } from '../fleet/redis-connection.js';
import type { Invalidation } from '../proxy/result-cache.js';

const GOAL_P99_MS = 10;
const keys = fleetKeys('bench');
const log = pino({ level: 'silent' });

function connect(port: number, name: string): RedisConnection {
  return openRedis({ target: parseRedisUrl(`redis://127.0.0.1:${port}`), cluster: false, password: null, ca: null }, name, 5000);
}

/** A bus on connections of its own; `stop` closes both. */
function bus(port: number, instance: string, caches: ReadonlyMap<Protocol, BusCache>): { bus: InvalidationBus; stop: () => Promise<void> } {
  const connections = [connect(port, `${instance}-commands`), connect(port, `${instance}-reader`)];
  const b = new InvalidationBus(connections[0]!, connections[1]!, caches, { keys, instance, maxLength: 100_000, blockMs: 1000, graceMs: 1000, log });
  b.start();
  return {
    bus: b,
    async stop() {
      await b.close();
      for (const c of connections) c.disconnect();
    },
  };
}

/** A cache that notes the lag of each invalidation: the publisher put its send time in the fingerprint. */
class LagRecorder implements BusCache {
  readonly lags: number[] = [];
  applyInvalidation(invalidation: Invalidation): number {
    if (invalidation.scope === 'fingerprint') this.lags.push(wallClockMs() - Number(invalidation.fingerprint));
    return 0;
  }
  suspend(): void {}
  resume(): void {}
}

async function reader(port: number, expected: number, seconds: number): Promise<void> {
  const recorder = new LagRecorder();
  const { bus: b, stop } = bus(port, `reader-${process.pid}`, new Map([['postgres', recorder]]));
  while (!b.isLive) await sleep(10);
  process.stdout.write('ready\n');
  const deadline = Date.now() + (seconds + 30) * 1000;
  while (recorder.lags.length < expected && Date.now() < deadline) await sleep(50);
  process.stdout.write(`${JSON.stringify({ lags: recorder.lags, fences: b.status().fences })}\n`);
  await stop();
  process.exit(0);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      readers: { type: 'string', default: '2' }, rate: { type: 'string', default: '500' }, seconds: { type: 'string', default: '10' },
      'reader-of': { type: 'string' }, expect: { type: 'string' },
    },
  });
  const seconds = Number(values.seconds);
  if (values['reader-of'] !== undefined) return reader(Number(values['reader-of']), Number(values.expect), seconds);
  const readers = Number(values.readers);
  const rate = Number(values.rate);
  const total = Math.round(rate * seconds);
  const redis = await startRedis();
  const children: ChildProcess[] = [];
  try {
    const self = fileURLToPath(import.meta.url);
    const outputs: Promise<string>[] = [];
    const ready: Promise<void>[] = [];
    for (let i = 0; i < readers; i++) {
      const child = spawn(process.execPath, [self, '--reader-of', String(redis.port), '--expect', String(total), '--seconds', String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(child);
      let out = '';
      ready.push(new Promise((resolve) => child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready\n')) resolve();
      })));
      outputs.push(new Promise((resolve) => child.once('exit', () => resolve(out))));
    }
    await Promise.all(ready);
    const { bus: publisher, stop } = bus(redis.port, 'publisher', new Map());
    while (!publisher.isLive) await sleep(10);
    const started = performance.now();
    for (let n = 0; n < total; n++) {
      // Steady rate: wait for the moment of the n-th publish.
      const due = started + (n * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      publisher.publish('postgres', { scope: 'fingerprint', fingerprint: String(wallClockMs()) });
    }
    const results = (await Promise.all(outputs)).map((out) => JSON.parse(out.slice(out.indexOf('{'))) as { lags: number[]; fences: Record<string, number> });
    await stop();
    const lags = results.flatMap((r) => r.lags).sort((x, y) => x - y);
    const at = (q: number): number => lags[Math.min(lags.length - 1, Math.floor(q * lags.length))]!;
    const p99 = at(0.99);
    console.log(`fleet bus lag, publish to apply: ${readers} readers, ${rate}/s for ${seconds} s, ${lags.length} of ${total * readers} applied`);
    console.log(`  p50 ${at(0.5).toFixed(3)} ms, p99 ${p99.toFixed(3)} ms, max ${lags[lags.length - 1]!.toFixed(3)} ms; fences ${JSON.stringify(results.map((r) => r.fences))}`);
    console.log(`  goal p99 < ${GOAL_P99_MS} ms: ${p99 < GOAL_P99_MS ? 'PASS' : 'MISS'} (machine load ${(await import('node:os')).loadavg()[0]!.toFixed(1)})`);
  } finally {
    for (const child of children) child.kill('SIGKILL');
    await redis.stop();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

await main();
