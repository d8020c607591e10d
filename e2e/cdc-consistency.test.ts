// test-timeout: 420
// The stale-read checker in its change-stream mode at CI size, on both protocols: the writers write
// straight to a private server, behind sidecache's back, and only the change stream can invalidate
// what they change. No read may be older than a write acknowledged more than the allowed lag before
// it, none may see a rolled-back version, and once the writers stop every read path must return
// exactly what the database holds. The same run without the change stream must report stale reads:
// the checker can fail. `make check-consistency ARGS=--direct-writes` is the long run. Each protocol
// also runs through two worker processes (docs/workers.md): one follows the stream, the other
// mirrors its fence and receives its invalidations through the primary.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkWithChangeStream, streamLine } from './consistency/change-stream-run.js';
import { DEFAULT_OPTIONS, type CheckOptions } from './consistency/checker.js';
import { details, summaryLine } from './consistency/summary.js';

// Each invalidation is echoed (changes/echo.ts), so fewer reads hit than through the proxy alone: fewer hits asked.
const CI_RUN: CheckOptions = { ...DEFAULT_OPTIONS, seconds: 5, minHits: 200, maxSeconds: 40, writers: 3, readers: 6, allowedLagMs: 1000 };

for (const [protocol, workers] of [['postgres', 1], ['mysql', 1], ['postgres', 2], ['mysql', 2]] as const) {
  test(`${protocol}${workers > 1 ? `, ${workers} workers` : ''}: writes straight to the database are seen within the lag, rollbacks never, and reads hit the cache`, async () => {
    const run = await checkWithChangeStream(protocol, { ...CI_RUN, workers });
    const text = [summaryLine(run.report), streamLine(run), ...details(run.report)].join('\n');
    console.log(text);
    assert.is(run.report.violations, 0, text);
    assert.equal(run.report.errors, [], text);
    assert.ok(run.report.hits > 0, text);
    assert.ok(run.report.committed > 0 && run.report.rolledBack > 0, text);
    assert.ok(run.stream !== undefined && run.stream.invalidations > 0, text);
    assert.equal(run.report.failures, [], text);
  });
}

test('postgres: the same writes without the change stream are reported as stale reads (the checker can fail)', async () => {
  const run = await checkWithChangeStream('postgres', { ...CI_RUN, seconds: 3 }, false);
  const text = [summaryLine(run.report), ...details(run.report)].join('\n');
  assert.ok((run.report.violationsByKind.stale ?? 0) > 0, text);
});

test.run();
