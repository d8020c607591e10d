// Does a cached read still match the database after TPC-B wrote through sidecache? Before the run
// the hot rows are read through sidecache until they are hits (simple and extended protocol);
// after it, the same reads through sidecache must return what PostgreSQL itself returns. TPC-B
// updates random accounts, so some hot rows change and a missed invalidation shows up as a
// difference — the promise "no read older than an acknowledged write" checked under load.
import pg from 'pg';
import { withClient } from './bench-database.js';
import { readCache, readingDelta } from './cache-metrics.js';
import type { PgbenchTarget } from './pgbench.js';
import { HOT_KEYS } from './workloads.js';

const SIMPLE = (aid: number): string => `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid}`;
const EXTENDED = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1';

/** Balances of aid 1..HOT_KEYS, index aid-1, read both ways a client may ask. */
interface HotBalances {
  simple: number[];
  extended: number[];
}

export interface PrimedReads {
  /** What PostgreSQL held before the run, to count the rows the run changed. */
  before: number[];
  /** Hits the second pass through sidecache scored; 2 x HOT_KEYS when every read was cached. */
  hits: number;
}

export interface FreshnessResult {
  /** Hot rows whose balance the run changed: the check has teeth only when this is above zero. */
  changed: number;
  /** One line per read through sidecache that differs from PostgreSQL. */
  stale: string[];
}

async function readHot(client: pg.Client): Promise<HotBalances> {
  const simple: number[] = [];
  const extended: number[] = [];
  for (let aid = 1; aid <= HOT_KEYS; aid++) {
    simple.push((await client.query<{ abalance: number }>(SIMPLE(aid))).rows[0]!.abalance);
    extended.push((await client.query<{ abalance: number }>(EXTENDED, [aid])).rows[0]!.abalance);
  }
  return { simple, extended };
}

/** Reads the hot rows through sidecache twice (fill, then hit) and PostgreSQL's values directly. */
export async function primeHotReads(proxy: PgbenchTarget, adminPort: number, direct: PgbenchTarget): Promise<PrimedReads> {
  const before = (await withClient(direct, readHot)).simple;
  const hits = await withClient(proxy, async (client) => {
    await readHot(client);
    const start = await readCache(adminPort);
    await readHot(client);
    return readingDelta(await readCache(adminPort), start).hits;
  });
  return { before, hits };
}

export async function checkHotReads(proxy: PgbenchTarget, direct: PgbenchTarget, primed: PrimedReads): Promise<FreshnessResult> {
  const actual = (await withClient(direct, readHot)).simple;
  const cached = await withClient(proxy, readHot);
  const stale: string[] = [];
  for (let i = 0; i < HOT_KEYS; i++) {
    for (const mode of ['simple', 'extended'] as const) {
      if (cached[mode][i] !== actual[i]) stale.push(`aid ${i + 1} (${mode}): sidecache ${cached[mode][i]}, PostgreSQL ${actual[i]}`);
    }
  }
  const changed = actual.filter((balance, i) => balance !== primed.before[i]).length;
  return { changed, stale };
}
