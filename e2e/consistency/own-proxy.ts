// Runs the stale-read checker the way `make check-consistency` and the e2e test do: its own sidecache
// (the real bin/sidecache), its own table, both gone afterwards.
import { randomBytes } from 'node:crypto';
import { startProxy, type StartOptions } from '../support/sidecache.js';
import { checkConsistency, type CheckOptions, type CheckReport } from './checker.js';
import type { ConsistencyDriver } from './driver.js';

/** `writePort`: writers connect there instead of through the proxy (only to show the checker notices). */
export async function checkThroughOwnProxy(driver: ConsistencyDriver, options: CheckOptions, writePort?: number): Promise<CheckReport> {
  const table = `sc_consistency_${process.pid}_${randomBytes(4).toString('hex')}`;
  await driver.createTable(table, options.keys);
  try {
    const proxy = await startProxy(withWorkers(driver.proxyOptions(), options));
    try {
      return await checkConsistency(driver, { port: driver.portOf(proxy), adminPort: proxy.adminPort, writePort }, table, options);
    } finally {
      await proxy.stop();
    }
  } finally {
    await driver.dropTable(table);
  }
}

/**
 * The checker's sidecache with `options.workers` worker processes (one when unset). Each worker
 * starts as a whole sidecache does (the SQL parser's WASM among the rest), all at once: on a
 * loaded machine that takes longer than one, hence more time to report ready.
 */
export function withWorkers(given: StartOptions, options: CheckOptions): StartOptions {
  const workers = options.workers ?? 1;
  return { ...given, args: [...(given.args ?? []), '--workers', String(workers)], timeoutMs: (given.timeoutMs ?? 30_000) * workers };
}
