// The stale-read checker (issue 5, item 1): N writers and M readers through one sidecache. Writers
// stamp versions from one counter with every write form the driver has; readers read over the
// simple, parameterised and named-prepared paths, one key or all of them, and every value read must
// be at least the highest version acknowledged on its key before the read was sent, and never a
// version that was rolled back. After the run, what the database holds must equal what was
// acknowledged, and reads through the proxy must return exactly that.
import { loadUntil } from '../support/until.js';
import { scrape, sumOf } from '../support/metrics.js';
import { COMMITS, KEYS_PER_WRITE, type ConsistencyDriver, type DriverConnection, type ReadPath, type Stamp, type WriteForm } from './driver.js';
import { VersionLedger, type Raise, type Violation, type ViolationKind } from './ledger.js';

export interface CheckOptions {
  /** The run lasts at least this long, then until it has `minHits` hits and every write form acknowledged. */
  seconds: number;
  /**
   * Reads answered from the cache that the run needs (a checker that never hits proves nothing); it
   * fails with fewer by `maxSeconds`. A count, not a ratio: how many reads hit between two writes
   * depends on how fast readers run next to writers, so on the machine's load.
   */
  minHits: number;
  /** The run stops here whatever it has. */
  maxSeconds: number;
  writers: number;
  readers: number;
  /** Rows in the table: few, so readers repeat the same statements and hit the cache. */
  keys: number;
  /** Each writer pauses up to this long between writes, so entries live long enough to be hit. */
  writePauseMs: number;
  /**
   * Writes go behind the proxy's back (a change stream must invalidate them): a read is held only
   * to what was acknowledged this long before it was sent. 0 (the default): to everything acknowledged.
   */
  allowedLagMs?: number;
  /** Worker processes of the checker's own sidecache (`--workers`); 1 when unset. */
  workers?: number;
  /** Called every `progressSeconds` while the run lasts. */
  onProgress?: (progress: Progress) => void;
  progressSeconds?: number;
}

export const DEFAULT_OPTIONS: Readonly<CheckOptions> = {
  seconds: 60,
  minHits: 1000,
  maxSeconds: 180,
  writers: 4,
  readers: 8,
  keys: 4,
  writePauseMs: 10,
};

/** Where the proxy under test listens. */
export interface Endpoint {
  port: number;
  adminPort: number;
  /** Writers connect here instead of `port`: only to show that the checker notices writes the proxy cannot see. */
  writePort?: number;
  /**
   * A fleet: readers spread over these proxies (not the writers' one) instead of `port`, and a read
   * through them is held to the writes acknowledged at least `allowedLagMs` before it was sent.
   */
  readPorts?: readonly number[];
  allowedLagMs?: number;
  /** Whose cache counters are summed for the report (the read proxies'); [adminPort] when absent. */
  adminPorts?: readonly number[];
  /**
   * A fleet's bus: a read through a proxy is held only to the writes whose invalidation that proxy
   * had applied before the read was sent (and acknowledged the allowed lag before it), so how fast
   * a loaded machine delivers the bus does not decide the verdict. Reads the allowed lag alone would
   * have judged stale are counted apart (`behindLag`).
   */
  bus?: BusProgress;
}

/** Where a fleet's bus is (e2e/support/fleet.ts). */
export interface BusProgress {
  /** How many entries the bus has numbered so far; null when it cannot be read now. */
  numbered(): Promise<number | null>;
  /** The number of the last entry the proxy with this admin port has applied. */
  applied(adminPort: number): Promise<number>;
}

/** How often each read proxy's bus position is sampled. */
const POSITION_SAMPLE_MS = 20;
/** A bus counter that cannot be read is asked again this often, for at most MARK_GIVE_UP_MS. */
const MARK_RETRY_MS = 50;
const MARK_GIVE_UP_MS = 30_000;

/**
 * Sets the mark of a write's raises: the bus's counter read after the write's acknowledgement, so
 * at least the number of its invalidation. While Redis cannot be read (killed, frozen, failing
 * over), asked again until it can: a read of it then still comes after the publish, which the
 * writing proxy sent before the acknowledgement. Null (the allowed lag alone) only if it never can.
 */
async function markRaises(bus: BusProgress, raises: readonly (Raise | null)[]): Promise<void> {
  const deadline = performance.now() + MARK_GIVE_UP_MS;
  let mark: number | null = null;
  while (mark === null && performance.now() < deadline) {
    mark = await bus.numbered().catch(() => null);
    if (mark === null) await sleep(MARK_RETRY_MS);
  }
  for (const r of raises) if (r !== null) r.mark = mark;
}

export interface CacheCounts {
  hits: number;
  misses: number;
  bypass: number;
  /** Of the hits: misses answered from a fill another client had in flight (request coalescing). */
  coalesced: number;
}

export interface Progress extends CacheCounts {
  elapsedSeconds: number;
  reads: number;
  committed: number;
  rolledBack: number;
  violations: number;
}

export interface CheckReport extends CacheCounts {
  protocol: string;
  options: Omit<CheckOptions, 'onProgress' | 'progressSeconds'>;
  elapsedSeconds: number;
  reads: number;
  readsByPath: Record<ReadPath, number>;
  /** Acknowledged writes that committed, and acknowledged writes that rolled back, per form. */
  writesByForm: Partial<Record<WriteForm, number>>;
  committed: number;
  rolledBack: number;
  violations: number;
  violationsByKind: Partial<Record<ViolationKind, number>>;
  /** The first few violations, for the report. */
  violationSamples: Violation[];
  /** Unexpected client errors; each stopped its client. */
  errors: string[];
  /** Why the run failed; empty when it passed. */
  failures: string[];
  /**
   * With a fleet's bus: reads older than a write acknowledged more than the allowed lag before
   * them whose proxy had not applied that write's invalidation yet (the bus lagged): counted, not
   * violations.
   */
  behindLag: number;
}

const READ_PATHS: readonly ReadPath[] = ['simple', 'parameterised', 'prepared'];
const MAX_SAMPLES = 20;

/** The cache counters of one proxy, or summed over several (a fleet). */
export async function cacheCounts(adminPorts: number | readonly number[], metricsProtocol: string): Promise<CacheCounts> {
  const labels = { protocol: metricsProtocol };
  const total: CacheCounts = { hits: 0, misses: 0, bypass: 0, coalesced: 0 };
  for (const port of typeof adminPorts === 'number' ? [adminPorts] : adminPorts) {
    const samples = await scrape(port);
    total.hits += sumOf(samples, 'sidecache_cache_hits_total', labels);
    total.misses += sumOf(samples, 'sidecache_cache_misses_total', labels);
    total.bypass += sumOf(samples, 'sidecache_cache_bypass_total', labels);
    total.coalesced += sumOf(samples, 'sidecache_coalesced_total', labels);
  }
  return total;
}

/** Runs the check against a proxy already listening at `endpoint`, on the driver's table `table`. */
export async function checkConsistency(driver: ConsistencyDriver, endpoint: Endpoint, table: string, options: CheckOptions): Promise<CheckReport> {
  const { onProgress, progressSeconds, ...plain } = options;
  const ledger = new VersionLedger(options.keys);
  const report: CheckReport = {
    protocol: driver.protocol, options: plain, elapsedSeconds: 0,
    reads: 0, readsByPath: { simple: 0, parameterised: 0, prepared: 0 }, hits: 0, misses: 0, bypass: 0, coalesced: 0,
    writesByForm: {}, committed: 0, rolledBack: 0,
    violations: 0, violationsByKind: {}, violationSamples: [], errors: [], failures: [], behindLag: 0,
  };
  const record = (found: readonly Violation[]): void => {
    for (const v of found) {
      report.violations++;
      report.violationsByKind[v.kind] = (report.violationsByKind[v.kind] ?? 0) + 1;
      if (report.violationSamples.length < MAX_SAMPLES) report.violationSamples.push(v);
    }
  };
  const connections: DriverConnection[] = [];
  const connect = async (port = endpoint.port): Promise<DriverConnection> => {
    const c = await driver.connect(port, table);
    connections.push(c);
    return c;
  };

  const writer = async (w: number, running: () => boolean): Promise<void> => {
    const c = await connect(endpoint.writePort);
    const forms = driver.writeForms;
    for (let i = w; running(); i++) {
      const form = forms[i % forms.length]!;
      const commits = COMMITS[form];
      // Versions are taken before the write is sent; keys in order so transactions cannot deadlock.
      const stamps: Stamp[] = pickKeys(options.keys, KEYS_PER_WRITE[form]).map((key) => ({ key, version: ledger.issue() }));
      if (!commits) for (const s of stamps) ledger.doom(s.version);
      await c.write(form, stamps);
      if (commits) {
        const raises = stamps.map((s) => ledger.acknowledge(s.key, s.version));
        if (bus !== undefined) void markRaises(bus, raises);
      }
      report.writesByForm[form] = (report.writesByForm[form] ?? 0) + 1;
      if (commits) report.committed++;
      else report.rolledBack++;
      await sleep(Math.random() * options.writePauseMs);
    }
  };

  // Writes behind the proxy's back (a change stream) or through another proxy of a fleet (its bus):
  // a read is held to what was acknowledged the allowed lag before it was sent.
  const lagMs = Math.max(options.allowedLagMs ?? 0, endpoint.allowedLagMs ?? 0);
  const readPorts = endpoint.readPorts ?? [endpoint.port];
  const adminPorts = endpoint.adminPorts ?? [endpoint.adminPort];
  const bus = endpoint.bus;
  // The last bus position each read proxy reported: it had applied that much before the sample
  // was answered, so before any read sent after it.
  const positions: (number | undefined)[] = readPorts.map(() => undefined);
  const sampler = (p: number) => async (running: () => boolean): Promise<void> => {
    while (running()) {
      positions[p] = await bus!.applied(adminPorts[p % adminPorts.length]!).catch(() => positions[p]);
      await sleep(POSITION_SAMPLE_MS);
    }
  };
  const reader = async (r: number, running: () => boolean): Promise<void> => {
    const port = r % readPorts.length;
    const c = await connect(readPorts[port]);
    for (let i = r; running(); i++) {
      const path = READ_PATHS[i % READ_PATHS.length]!;
      // Every key and, as often as one key, all keys at once.
      const scope = Math.floor(i / READ_PATHS.length) % (options.keys + 1);
      const key = scope === options.keys ? null : scope;
      const asOf = performance.now() - lagMs;
      const byLag = lagMs > 0 ? ledger.floors(asOf) : ledger.floors();
      // Before any position is known, nothing is held by the bus.
      const floors = bus === undefined ? byLag : ledger.floors(asOf, positions[port] ?? 0);
      const rows = await c.read(path, key);
      report.reads++;
      report.readsByPath[path]++;
      const how = `${path} read of ${key === null ? 'all keys' : `key ${key}`}`;
      const found = ledger.judgeRows(rows, key, floors, how);
      record(found);
      if (bus !== undefined && found.length === 0 && ledger.judgeRows(rows, key, byLag, how).length > 0) report.behindLag++;
    }
  };

  const guarded = (role: string, run: (running: () => boolean) => Promise<void>) => (running: () => boolean): Promise<void> =>
    run(running).catch((err: Error) => { report.errors.push(`${role}: ${err.message}`); });

  const before = await cacheCounts(adminPorts, driver.metricsProtocol);
  const started = Date.now();
  const enough = async (): Promise<boolean> => {
    if (driver.writeForms.some((f) => (report.writesByForm[f] ?? 0) === 0)) return false;
    const now = await cacheCounts(adminPorts, driver.metricsProtocol).catch(() => null);
    return now !== null && now.hits - before.hits >= options.minHits;
  };
  const progress = onProgress === undefined ? null : setInterval(() => {
    void cacheCounts(adminPorts, driver.metricsProtocol).then((now) => onProgress({
      elapsedSeconds: (Date.now() - started) / 1000,
      reads: report.reads, committed: report.committed, rolledBack: report.rolledBack, violations: report.violations,
      ...countsDelta(now, before),
    }), () => undefined);
  }, (progressSeconds ?? 10) * 1000);
  try {
    await loadUntil([
      ...Array.from({ length: options.writers }, (_, w) => guarded(`writer ${w}`, (running) => writer(w, running))),
      ...Array.from({ length: options.readers }, (_, r) => guarded(`reader ${r}`, (running) => reader(r, running))),
      ...(bus === undefined ? [] : readPorts.map((_, p) => guarded(`bus position ${p}`, sampler(p)))),
    ], { minMs: options.seconds * 1000, maxMs: options.maxSeconds * 1000, enough, failed: () => report.errors.length > 0 });
    report.elapsedSeconds = (Date.now() - started) / 1000;
    Object.assign(report, countsDelta(await cacheCounts(adminPorts, driver.metricsProtocol), before));
    if (report.errors.length === 0) {
      await sleep(lagMs);
      for (const port of readPorts) record(await finalCheck(driver, table, ledger, () => connect(port)));
    }
  } finally {
    if (progress !== null) clearInterval(progress);
    await Promise.all(connections.map((c) => c.close().catch(() => undefined)));
  }
  report.failures = verdict(report, driver.writeForms);
  return report;
}

/**
 * Once every client is quiet: the database must hold exactly the highest acknowledged version of
 * each key (else the bookkeeping, not the proxy, is wrong), and every read path through the proxy
 * must now return exactly that.
 */
async function finalCheck(driver: ConsistencyDriver, table: string, ledger: VersionLedger, connect: () => Promise<DriverConnection>): Promise<Violation[]> {
  const found: Violation[] = [];
  const held = await driver.readDirect(table);
  for (const row of held) {
    if (row.version !== ledger.ackedOf(row.key)) {
      found.push({ kind: 'final', key: row.key, returned: row.version, required: ledger.ackedOf(row.key), how: 'direct read after the run (the checker\'s bookkeeping)' });
    }
  }
  const c = await connect();
  for (const path of READ_PATHS) {
    for (const key of [null, ...held.map((r) => r.key)]) {
      const rows = await c.read(path, key);
      const expected = key === null ? held : held.filter((r) => r.key === key);
      const how = `${path} read of ${key === null ? 'all keys' : `key ${key}`} after the run`;
      if (rows.length !== expected.length) found.push({ kind: 'rows', key: key ?? -1, returned: null, required: expected.length, how });
      rows.forEach((r, i) => {
        const want = expected[i];
        if (want === undefined || r.key !== want.key || r.version !== want.version) {
          found.push({ kind: 'final', key: r.key, returned: r.version, required: want?.version ?? -1, how });
        }
      });
    }
  }
  return found;
}

function verdict(report: CheckReport, forms: readonly WriteForm[]): string[] {
  const failures: string[] = [];
  if (report.violations > 0) failures.push(`${report.violations} violations`);
  if (report.errors.length > 0) failures.push(`${report.errors.length} client errors`);
  if (report.reads === 0) failures.push('no reads');
  if (report.hits < report.options.minHits) {
    failures.push(`${report.hits} hits, fewer than ${report.options.minHits} in ${report.elapsedSeconds.toFixed(1)} s: too few reads were answered from the cache to prove anything`);
  }
  const unexercised = forms.filter((f) => (report.writesByForm[f] ?? 0) === 0);
  if (unexercised.length > 0) failures.push(`write forms never acknowledged: ${unexercised.join(', ')}`);
  return failures;
}

function countsDelta(after: CacheCounts, before: CacheCounts): CacheCounts {
  return { hits: after.hits - before.hits, misses: after.misses - before.misses, bypass: after.bypass - before.bypass, coalesced: after.coalesced - before.coalesced };
}

/** `count` distinct keys out of 0..keys-1, in ascending order. */
function pickKeys(keys: number, count: number): number[] {
  const chosen = new Set<number>();
  const n = Math.min(count, keys);
  while (chosen.size < n) chosen.add(Math.floor(Math.random() * keys));
  return [...chosen].sort((a, b) => a - b);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
