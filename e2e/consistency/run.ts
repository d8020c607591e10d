// `node dist/e2e/consistency/run.js [--protocol postgres|mysql|all] [--seconds 60] [--writers 4]
//  [--readers 8] [--keys 4] [--write-pause-ms 10] [--min-hits 1000] [--max-seconds 180]
//  [--direct-writes [--allowed-lag-ms 1000]] [--workers 1]`
//
// Runs the stale-read checker through a sidecache of its own and prints one summary line per
// protocol. --direct-writes: the writers write straight to a private server that sidecache follows
// through its change stream (change-stream-run.ts), and reads may lag the writes by the allowed lag. Exit code 0 when every protocol checked passed, 1 when one failed (a violation, a client
// error, too few hits), 2 for bad usage or a protocol named explicitly that has no driver yet.
// `--protocol all` checks every protocol with a driver and prints a note for the others.
import { parseArgs } from 'node:util';
import { DEFAULT_OPTIONS, type CheckOptions, type Progress } from './checker.js';
import { UnknownProtocolError, chooseDrivers } from './drivers.js';
import { DEFAULT_ALLOWED_LAG_MS, checkWithChangeStream, streamLine } from './change-stream-run.js';
import { checkThroughOwnProxy } from './own-proxy.js';
import { details, progressLine, summaryLine } from './summary.js';

class UsageError extends Error {
  override name = 'UsageError';
}

const USAGE = 'usage: run.js [--protocol postgres|mysql|all] [--seconds N] [--writers N] [--readers N] [--keys N] [--write-pause-ms N] [--min-hits N] [--max-seconds N] [--direct-writes [--allowed-lag-ms N]] [--workers N]';

function parseOptions(argv: string[]): { protocol: string; directWrites: boolean; options: CheckOptions } {
  const { values } = parseArgs({
    args: argv,
    options: {
      'protocol': { type: 'string', default: 'all' },
      'seconds': { type: 'string' },
      'writers': { type: 'string' },
      'readers': { type: 'string' },
      'keys': { type: 'string' },
      'write-pause-ms': { type: 'string' },
      'min-hits': { type: 'string' },
      'max-seconds': { type: 'string' },
      'direct-writes': { type: 'boolean', default: false },
      'allowed-lag-ms': { type: 'string' },
      'workers': { type: 'string' },
    },
    strict: true,
  });
  const number = (name: string, value: string | undefined, fallback: number, min: number, integer: boolean): number => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
      throw new UsageError(`--${name} takes ${integer ? 'an integer' : 'a number'} >= ${min}, got ${value}`);
    }
    return n;
  };
  const d = DEFAULT_OPTIONS;
  const seconds = number('seconds', values.seconds, d.seconds, 1, false);
  const directWrites = values['direct-writes'] === true;
  if (!directWrites && values['allowed-lag-ms'] !== undefined) throw new UsageError('--allowed-lag-ms goes with --direct-writes');
  return {
    protocol: values.protocol!,
    directWrites,
    options: {
      seconds,
      writers: number('writers', values.writers, d.writers, 1, true),
      readers: number('readers', values.readers, d.readers, 1, true),
      keys: number('keys', values.keys, d.keys, 2, true),
      writePauseMs: number('write-pause-ms', values['write-pause-ms'], d.writePauseMs, 0, false),
      minHits: number('min-hits', values['min-hits'], d.minHits, 0, true),
      maxSeconds: number('max-seconds', values['max-seconds'], Math.max(d.maxSeconds, seconds), seconds, false),
      allowedLagMs: directWrites ? number('allowed-lag-ms', values['allowed-lag-ms'], DEFAULT_ALLOWED_LAG_MS, 0, false) : 0,
      // Processes of the checker's sidecache: one unless asked.
      workers: number('workers', values.workers, 1, 1, true),
      progressSeconds: 10,
    },
  };
}

async function main(argv: string[]): Promise<number> {
  let protocol: string;
  let directWrites: boolean;
  let options: CheckOptions;
  let choices;
  try {
    ({ protocol, directWrites, options } = parseOptions(argv));
    choices = chooseDrivers(protocol);
  } catch (err) {
    if (!(err instanceof UsageError || err instanceof UnknownProtocolError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))) throw err;
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  let failed = false;
  for (const choice of choices) {
    if (!('driver' in choice)) {
      console.log(`consistency ${choice.protocol}: ${choice.unavailable}`);
      if (protocol !== 'all') return 2;
      continue;
    }
    const { driver } = choice;
    const checked = { ...options, onProgress: (p: Progress) => console.log(progressLine(driver.protocol, p)) };
    const run = directWrites ? await checkWithChangeStream(driver.protocol, checked) : null;
    const report = run?.report ?? await checkThroughOwnProxy(driver, checked);
    console.log(summaryLine(report));
    if (run !== null) console.log(streamLine(run));
    for (const line of details(report)) console.log(line);
    if (report.failures.length > 0) failed = true;
  }
  return failed ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
