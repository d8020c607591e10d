// The protocols the stale-read checker can drive. A protocol listed in UNAVAILABLE has a slot but no
// driver yet: `--protocol all` skips it with its note, naming it explicitly is an error.
import type { ConsistencyDriver } from './driver.js';
import { mysqlDriver } from './mysql-driver.js';
import { pgDriver } from './pg-driver.js';

const DRIVERS: ReadonlyMap<string, ConsistencyDriver> = new Map([
  [pgDriver.protocol, pgDriver],
  [mysqlDriver.protocol, mysqlDriver],
]);

/** Why a known protocol cannot be checked yet. Its entry goes when its driver is registered above. */
const UNAVAILABLE: ReadonlyMap<string, string> = new Map();

export class UnknownProtocolError extends Error {
  override name = 'UnknownProtocolError';
}

export type DriverChoice = { driver: ConsistencyDriver } | { protocol: string; unavailable: string };

/** The drivers `--protocol` names: one protocol, or `all` (every known protocol, available or not). */
export function chooseDrivers(protocol: string): DriverChoice[] {
  const names = protocol === 'all' ? [...DRIVERS.keys(), ...UNAVAILABLE.keys()] : [protocol];
  return names.map((name) => {
    const driver = DRIVERS.get(name);
    if (driver !== undefined) return { driver };
    const unavailable = UNAVAILABLE.get(name);
    if (unavailable !== undefined) return { protocol: name, unavailable };
    throw new UnknownProtocolError(`unknown protocol ${name}; known: ${[...DRIVERS.keys(), ...UNAVAILABLE.keys(), 'all'].join(', ')}`);
  });
}
