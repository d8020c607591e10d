// test-timeout: 60
//
// --log-format and --log-level through the real binary: pretty mode writes one readable line per
// event (not JSON), including the last line before exit; the level filters and is reloadable;
// invalid values stop the start with exit code 2 and name the flag or file key.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connectPg } from './support/pg-direct.js';
import { DIRECT_PG, localServersConfig, spawnSidecache, startProxy, type RunningProxy } from './support/sidecache.js';

const dir = mkdtempSync(path.join(tmpdir(), 'sidecache-log-e2e-'));
const PRETTY_LINE = /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] (INFO|WARN|ERROR): \S/;

/** What the process writes to stderr from now on (the log; nothing is logged before "ready"). */
function stderrOf(proxy: RunningProxy): () => string[] {
  let text = '';
  proxy.child.stderr!.on('data', (d: string) => { text += d; });
  return () => text.split('\n').filter((l) => l !== '');
}

/** Stops the process and waits until its stderr is read to the end ('exit' may come first). */
async function stopped(proxy: RunningProxy): Promise<number | null> {
  const closed = new Promise((resolve) => proxy.child.once('close', resolve));
  const code = await proxy.stop();
  await closed;
  return code;
}

async function until(what: string, check: () => boolean, shown: () => unknown): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen:\n${JSON.stringify(shown(), null, 1)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function slowSelect(proxy: RunningProxy): Promise<void> {
  const c = await connectPg(proxy.pgPort);
  try {
    await c.query('SELECT pg_sleep(0.2)');
  } finally {
    await c.end();
  }
}

async function startFailure(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  try {
    const p = await spawnSidecache(args, env, 10_000);
    await p.stop();
  } catch (err) {
    return (err as Error).message;
  }
  return assert.unreachable(`started with ${args.join(' ')}`) as never;
}

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('pretty: readable lines with key=value fields, not JSON, down to the line logged at exit', async () => {
  const proxy = await startProxy({ args: ['--log-format', 'pretty', '--slow-query-threshold', '100ms'] });
  const lines = stderrOf(proxy);
  await slowSelect(proxy);
  await until('a slow-query line', () => lines().some((l) => l.includes('slow query')), lines);
  assert.is(await stopped(proxy), 0);
  const all = lines();
  assert.ok(all.length >= 2, JSON.stringify(all));
  for (const l of all) {
    assert.match(l, PRETTY_LINE);
    assert.not.ok(l.includes('{"'), l);
  }
  const slow = all.find((l) => l.includes('slow query'))!;
  assert.match(slow, /\] WARN: slow query protocol=postgres outcome=bypass durationMs=\d+(\.\d)? thresholdMs=100 fingerprint=[0-9a-f]{16} sample="SELECT pg_sleep\(0\.2\)" bypassReason=not-cacheable remote=127\.0\.0\.1:\d+ user=postgres database=\w+$/);
  assert.match(all[all.length - 1]!, /\] INFO: shutting down signal=SIGTERM$/);
});

test('SIDECACHE_LOG_FORMAT=pretty works as the flag does; json stays the default', async () => {
  const pretty = await startProxy({ env: { SIDECACHE_LOG_FORMAT: 'pretty' } });
  const prettyLines = stderrOf(pretty);
  await stopped(pretty);
  assert.match(prettyLines().at(-1)!, PRETTY_LINE);

  const json = await startProxy();
  const jsonLines = stderrOf(json);
  await stopped(json);
  const last = JSON.parse(jsonLines().at(-1)!) as Record<string, unknown>;
  assert.equal([last.level, last.msg, last.signal], [30, 'shutting down', 'SIGTERM']);
  assert.match(last.time as string, /^\d{4}-\d\d-\d\dT/);
});

test('the level filters lines and a reload of the file changes it', async () => {
  const file = path.join(dir, 'level.yaml');
  const write = (level: string): void => writeFileSync(file, [
    ...localServersConfig({ pg: true }),
    'log-format: pretty',
    'slow-query-threshold: 100ms',
    `log-level: ${level}`,
  ].join('\n') + '\n');
  write('warn');
  const proxy = await spawnSidecache(['--config', file]);
  const lines = stderrOf(proxy);
  try {
    proxy.child.kill('SIGHUP');
    await slowSelect(proxy);
    await until('a slow-query line', () => lines().some((l) => l.includes('slow query')), lines);
    assert.equal(lines().filter((l) => l.includes('INFO:')), [], 'the reload line is info: filtered at warn');

    write('info');
    proxy.child.kill('SIGHUP');
    await until('an info line', () => lines().some((l) => l.includes('INFO: config reloaded')), lines);
    assert.match(lines().find((l) => l.includes('INFO: config reloaded'))!, /applied=\["log-level"\]$/);
  } finally {
    await proxy.stop();
  }
});

test('invalid values exit 2 naming the flag, variable or file key', async () => {
  const upstream = ['--pg-upstream', `postgres://${DIRECT_PG.host}:${DIRECT_PG.port}`, '--pg-listen', '127.0.0.1:0', '--admin-listen', '127.0.0.1:0'];
  let message = await startFailure([...upstream, '--log-format', 'xml']);
  assert.ok(message.includes('exited with code 2') && message.includes('sidecache: --log-format: expected one of json, pretty, got "xml"'), message);
  message = await startFailure(upstream, { SIDECACHE_LOG_LEVEL: 'loud' });
  assert.ok(message.includes('exited with code 2') && message.includes('sidecache: SIDECACHE_LOG_LEVEL: expected one of trace, debug, info'), message);
  const file = path.join(dir, 'bad.yaml');
  writeFileSync(file, 'log-format: colorful\n');
  message = await startFailure([...upstream, '--config', file]);
  assert.ok(message.includes('exited with code 2') && message.includes(`sidecache: log-format in ${file}: expected one of json, pretty, got "colorful"`), message);
  message = await startFailure([...upstream, '--slow-query-threshold', 'slowish']);
  assert.ok(message.includes('exited with code 2') && message.includes('sidecache: --slow-query-threshold: expected a duration'), message);
});

test.run();
