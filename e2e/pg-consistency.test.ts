// test-timeout: 120
//
// The stale-read checker (e2e/consistency/, issue 5 item 1) at CI size: writers stamping versions
// with every write form (autocommit simple/parameterised/prepared, upsert, multi-statement, explicit
// transactions that commit, roll back or fail), readers over the simple, unnamed and named-prepared
// paths, all through one sidecache in front of PostgreSQL. No read may return a version older than
// one acknowledged before it was sent, or one that was rolled back; the reads must hit the cache
// (a count of hits, reached however slowly the machine runs). A second run sends the writes
// straight to PostgreSQL, behind the proxy's back: the checker must then report stale reads, which
// shows it can fail. `make check-consistency` is the one-minute run.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_OPTIONS, type CheckOptions } from './consistency/checker.js';
import { checkThroughOwnProxy } from './consistency/own-proxy.js';
import { pgDriver } from './consistency/pg-driver.js';
import { details, summaryLine } from './consistency/summary.js';
import { DIRECT_PG } from './support/sidecache.js';

// At least 5 s, then until 500 hits (about 1 s more on a loaded machine), at most 40 s.
const CI_RUN: CheckOptions = { ...DEFAULT_OPTIONS, seconds: 5, minHits: 500, maxSeconds: 40, writers: 3, readers: 6 };

test('through one sidecache, no read is older than an acknowledged write, and reads hit the cache', async () => {
  const report = await checkThroughOwnProxy(pgDriver, CI_RUN);
  const text = [summaryLine(report), ...details(report)].join('\n');
  console.log(text);
  assert.is(report.violations, 0, text);
  assert.equal(report.errors, [], text);
  assert.ok(report.reads > 0, text);
  assert.ok(report.hits >= CI_RUN.minHits, text);
  assert.ok(report.committed > 0 && report.rolledBack > 0, text);
  assert.equal(report.failures, [], text);
});

test('writes that bypass the proxy are reported as stale reads (the checker can fail)', async () => {
  const report = await checkThroughOwnProxy(pgDriver, { ...CI_RUN, seconds: 3 }, DIRECT_PG.port);
  const text = [summaryLine(report), ...details(report)].join('\n');
  assert.ok((report.violationsByKind.stale ?? 0) > 0, text);
  assert.ok(report.failures.some((f) => f.includes('violations')), text);
});

test.run();
