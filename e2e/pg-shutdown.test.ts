// Graceful shutdown: SIGTERM stops accepting, lets a query in flight finish and reach its client,
// tells idle clients why they are disconnected (57P01), and exits 0.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import pg from 'pg';
import { waitForActiveQuery } from './support/pg-direct.js';
import { startProxy } from './support/sidecache.js';

function connect(port: number): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'test' });
  return c.connect().then(() => c);
}

test('SIGTERM: the query in flight completes, idle clients get 57P01, the listener closes, exit 0', async () => {
  const proxy = await startProxy();
  const busy = await connect(proxy.pgPort);
  const idle = await connect(proxy.pgPort);
  const idleEnded = new Promise<Error>((resolve) => idle.on('error', resolve));
  // After its query the busy client is told the same, once the reply is through.
  const busyEnded = new Promise<Error>((resolve) => busy.on('error', resolve));
  const inFlight = busy.query('SELECT pg_sleep(2) AS slept, 42 AS answer');
  // In flight means the server runs it; a fixed pause could end before the proxy even had it.
  await waitForActiveQuery((busy as pg.Client & { processID: number }).processID, 'pg_sleep(2)');
  const started = Date.now();
  proxy.child.kill('SIGTERM');
  const idleError = (await idleEnded) as Error & { code?: string };
  assert.is(idleError.code, '57P01', idleError.message);
  // New connections are refused once the listener is closed.
  await new Promise((r) => setTimeout(r, 100));
  const refused = await new Promise<boolean>((resolve) => {
    const s = net.connect(proxy.pgPort, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(false); });
    s.once('error', () => resolve(true));
  });
  assert.ok(refused, 'the listener stopped accepting');
  const result = await inFlight;
  assert.equal(result.rows, [{ slept: '', answer: 42 }]);
  assert.is(((await busyEnded) as Error & { code?: string }).code, '57P01');
  const code = await proxy.stop();
  assert.is(code, 0);
  assert.ok(Date.now() - started < 10_000, 'exited well before the shutdown deadline');
  await busy.end().catch(() => undefined);
  await idle.end().catch(() => undefined);
});

test.run();
