// caching_sha2_password through the proxy: MariaDB 10.11 has no server side for it, so a tiny fake
// server (e2e/support/mysql-fake-sha2-server.ts) speaks only that login, and mysql2 logs in through
// the real bin/sidecache: the fast path, full authentication with the public-key request, and an
// auth switch into it. The fake server checks the password, so a damaged exchange fails.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mysql from 'mysql2/promise';
import { startFakeSha2Server, type FakeSha2Server, type Sha2Mode } from './support/mysql-fake-sha2-server.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const PASSWORD = 'sha2-secret';

async function loginThrough(mode: Sha2Mode, password: string): Promise<{ server: FakeSha2Server; error: unknown; threadId: number | null }> {
  const server = await startFakeSha2Server(mode, PASSWORD);
  let proxy: RunningProxy | null = null;
  try {
    proxy = await startProxy({ pgUpstream: null, mysqlUpstream: `mysql://127.0.0.1:${server.port}` });
    try {
      const c = await mysql.createConnection({ host: '127.0.0.1', port: proxy.mysqlPort, user: 'sha2user', password });
      await c.ping();
      const threadId = c.threadId;
      await c.end();
      return { server, error: null, threadId };
    } catch (err) {
      return { server, error: err, threadId: null };
    }
  } finally {
    await proxy?.stop();
    await server.close();
  }
}

for (const mode of ['fast', 'full', 'switch'] as const) {
  test(`caching_sha2_password ${mode}: the exchange is relayed packet by packet with its sequence ids`, async () => {
    const { server, error, threadId } = await loginThrough(mode, PASSWORD);
    assert.is(error, null, String(error));
    assert.is(threadId, 100, 'the upstream\'s connection id');
    assert.is(server.logins.length, 1);
    assert.ok(server.logins[0]!.accepted);
    assert.is(server.logins[0]!.user, 'sha2user');
    // Login packets reach the server with the sequence ids the client gave them; then commands (0).
    const login = { fast: [1], full: [1, 3, 5], switch: [1, 3, 5, 7] }[mode];
    const sequence = server.logins[0]!.sequence;
    assert.equal(sequence.slice(0, login.length), login);
    assert.ok(sequence.length > login.length && sequence.slice(login.length).every((s) => s === 0), `commands after login: ${sequence}`);
  });
}

test('caching_sha2_password full auth with a wrong password: the server\'s error reaches the client', async () => {
  const { error } = await loginThrough('full', 'wrong');
  assert.is((error as { errno?: number }).errno, 1045);
  assert.match((error as Error).message, /Access denied \(fake\)/);
});

test.run();
