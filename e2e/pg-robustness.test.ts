// A misbehaving client, a missing upstream or a busy port must cost the proxy nothing but that one
// connection: each case checks the protocol error the contract promises (FATAL, SQLSTATE, close), and
// that a bystander client in the middle of a query on the same proxy gets its full answer afterwards.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import pg from 'pg';
import {
  RawClient, codes, describeAll, errorOf, frontendMessage, serialize, sslRequest, startupMessage,
  type Received,
} from './support/pg-raw.js';
import { DIRECT_PG, connectPg, direct, sleep, waitForActiveQuery, waitForBackendGone } from './support/pg-direct.js';
import { BIN, startProxy, type RunningProxy } from './support/sidecache.js';

const LOGIN = { user: DIRECT_PG.user, database: DIRECT_PG.database };
const MAX_MESSAGE_BYTES = 1024 * 1024;

/** Default timeouts (so an immediate answer is clearly not a timeout) and a 1 MiB message limit. */
let main: RunningProxy;
/** Short stall and login timeouts. */
let impatient: RunningProxy;
/** At most two clients. */
let limited: RunningProxy;
/** An upstream nobody listens on. */
let orphan: RunningProxy;

test.before(async () => {
  [main, impatient, limited, orphan] = await Promise.all([
    startProxy({ args: ['--max-message-bytes', '1MiB'] }),
    startProxy({ args: ['--message-stall-timeout', '500ms', '--login-timeout', '500ms'] }),
    startProxy({ args: ['--max-client-connections', '2'] }),
    startProxy({ pgUpstream: 'postgres://127.0.0.1:1' }),
  ]);
});

test.after(async () => {
  await Promise.all([main, impatient, limited, orphan].map((p) => p?.stop()));
});

type KeyedClient = pg.Client & { processID: number };

/**
 * Runs `misbehave` while a bystander on the same proxy is inside `SELECT pg_sleep(1)`, then asserts
 * the bystander's answer is complete, its session goes on, and a new client is served.
 */
async function whileBystanderQueries(proxy: RunningProxy, misbehave: () => Promise<void>): Promise<void> {
  const bystander = await connectPg(proxy.pgPort) as KeyedClient;
  try {
    const answer = bystander.query('SELECT pg_sleep(1) AS slept, 42 AS answer');
    // If `misbehave` fails, the answer is never awaited; keep its rejection from crashing the run.
    answer.catch(() => undefined);
    await waitForActiveQuery(bystander.processID, 'pg_sleep(1)');
    await misbehave();
    assert.equal((await answer).rows, [{ slept: '', answer: 42 }], 'the bystander\'s query');
    assert.equal((await bystander.query('SELECT 2 AS two')).rows, [{ two: 2 }], 'the bystander\'s next query');
  } finally {
    await bystander.end();
  }
  await assertServing(proxy);
}

async function assertServing(proxy: RunningProxy): Promise<void> {
  const fresh = await connectPg(proxy.pgPort);
  try {
    assert.equal((await fresh.query('SELECT 3 AS three')).rows, [{ three: 3 }], 'a new client');
  } finally {
    await fresh.end();
  }
}

/** Reads until the proxy closes; asserts exactly one ErrorResponse, FATAL with `code`, came first. */
async function expectFatal(c: RawClient, code: string, timeoutMs = 2000): Promise<Record<string, string>> {
  const messages = await c.readUntilClosed(timeoutMs);
  assert.is(codes(messages), 'E', describeAll(messages).join(' | '));
  const error = errorOf(messages);
  assert.is(error.severity, 'FATAL');
  assert.is(error.code, code, error.message);
  return error;
}

/** Sends `bytes` on a new connection to `proxy` and expects FATAL `code` and a close. */
async function rejectBytes(proxy: RunningProxy, bytes: Buffer, code = '08P01'): Promise<Record<string, string>> {
  const c = await RawClient.connect(proxy.pgPort);
  try {
    c.send(bytes);
    return await expectFatal(c, code);
  } finally {
    c.destroy();
  }
}

test('garbage before the startup message: FATAL 08P01, close', async () => {
  await whileBystanderQueries(main, async () => {
    await rejectBytes(main, Buffer.from('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n'));
    // A well-formed frontend message where the startup message belongs.
    await rejectBytes(main, serialize.query('SELECT 1'));
    // A plausible length followed by an unknown request code and noise.
    const noise = Buffer.alloc(64, 0xa5);
    noise.writeInt32BE(64, 0);
    await rejectBytes(main, noise);
  });
});

/**
 * node-postgres' connect() followed at once by end(): its Terminate goes out before the startup
 * message. What the client saw once its connection ended: errors, and how connect() settled.
 */
async function connectThenEnd(port: number): Promise<{ errors: string[]; connect: string }> {
  const client = new pg.Client({ ...LOGIN, host: '127.0.0.1', port });
  const errors: string[] = [];
  client.on('error', (err) => errors.push(err.message));
  const ended = new Promise<void>((resolve) => client.once('end', resolve));
  let connect = 'pending';
  client.connect().then(() => { connect = 'resolved'; }, (err: Error) => { connect = `rejected: ${err.message}`; });
  await client.end();
  await ended;
  // Whatever the server sent was read before the close; let the promise callbacks run.
  await new Promise((resolve) => setImmediate(resolve));
  return { errors, connect };
}

test('a Terminate before the startup message: closed without a reply, as PostgreSQL does', async () => {
  await whileBystanderQueries(main, async () => {
    for (const port of [DIRECT_PG.port, main.pgPort]) {
      const c = await RawClient.connect(port);
      try {
        c.send(serialize.end());
        assert.equal(describeAll(await c.readUntilClosed(2000)), [], `port ${port}`);
      } finally {
        c.destroy();
      }
      // A reply would reject connect(), which ends a program that does not catch it.
      assert.equal(await connectThenEnd(port), { errors: [], connect: 'pending' }, `node-postgres, port ${port}`);
    }
  });
});

test('absurd startup lengths are rejected at once, without waiting for the body', async () => {
  await whileBystanderQueries(main, async () => {
    for (const length of [0, 4, 7, 10_001, 0x7fffffff, -1]) {
      const header = Buffer.alloc(8);
      header.writeInt32BE(length, 0);
      header.writeInt32BE(196608, 4); // protocol 3.0
      await rejectBytes(main, header);
    }
  });
});

test('unsupported protocol versions 2.0, 4.0 and 1.9999: FATAL 08P01, close', async () => {
  await whileBystanderQueries(main, async () => {
    for (const [major, minor] of [[2, 0], [4, 0], [1, 9999]] as const) {
      await rejectBytes(main, startupMessage(LOGIN, major, minor));
    }
  });
});

test('after startup, a message length of 3 is a protocol error naming the length', async () => {
  await whileBystanderQueries(main, async () => {
    const c = await RawClient.login(main.pgPort);
    const pid = c.backendKey!.processID;
    c.send(frontendMessage('Q', Buffer.alloc(0), 3));
    const error = await expectFatal(c, '08P01');
    assert.match(error.message!, /\b3\b/);
    await waitForBackendGone(pid, 3000);
  });
});

test('--max-message-bytes 1MiB: a message just under passes, one over is refused naming both sizes', async () => {
  await whileBystanderQueries(main, async () => {
    const c = await RawClient.login(main.pgPort);
    const pid = c.backendKey!.processID;
    const filler = 'x'.repeat(MAX_MESSAGE_BYTES - 100);
    const answer = await c.query(`SELECT length('${filler}') AS n`);
    assert.equal(describeAll(answer).slice(1), [`D ["${filler.length}"]`, 'C SELECT 1', 'Z I']);

    const tooLong = 2 * MAX_MESSAGE_BYTES;
    c.send(frontendMessage('Q', Buffer.from('SELECT 1'), tooLong));
    const error = await expectFatal(c, '08P01');
    assert.match(error.message!, new RegExp(`\\b${tooLong}\\b`));
    assert.match(error.message!, /\b1048576\b|\b1 ?MiB\b/);
    await waitForBackendGone(pid, 3000);
  });
});

test('a truncated message and then a close: the proxy lets go of that upstream only', async () => {
  await whileBystanderQueries(main, async () => {
    const c = await RawClient.login(main.pgPort);
    const pid = c.backendKey!.processID;
    c.send(frontendMessage('Q', Buffer.from('SELECT 1'), 100).subarray(0, 12));
    c.socket.end();
    await c.readUntilClosed(2000);
    await waitForBackendGone(pid, 3000);

    const half = await RawClient.connect(main.pgPort);
    half.send(serialize.startup(LOGIN).subarray(0, 10));
    half.destroy();
  });
});

test('--message-stall-timeout 500ms: a client stuck mid-message gets FATAL 08P01; idle clients stay', async () => {
  await whileBystanderQueries(impatient, async () => {
    const idle = await RawClient.login(impatient.pgPort);
    for (const cut of [3, 12]) {
      const c = await RawClient.login(impatient.pgPort);
      const pid = c.backendKey!.processID;
      const started = Date.now();
      c.send(frontendMessage('Q', Buffer.from('SELECT 1'), 100).subarray(0, cut));
      await expectFatal(c, '08P01', 3000);
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 450, `closed after ${elapsed} ms, before the stall timeout`);
      await waitForBackendGone(pid, 3000);
    }
    // Waiting between messages is not a stall.
    assert.is(codes(await idle.query('SELECT 1')), 'TDCZ');
    idle.destroy();
  });
});

test('--login-timeout 500ms: a client that sends nothing, or stops after SSLRequest, is closed', async () => {
  await whileBystanderQueries(impatient, async () => {
    const silent = await RawClient.connect(impatient.pgPort);
    const afterSsl = await RawClient.connect(impatient.pgPort);
    afterSsl.send(sslRequest());
    assert.is((await afterSsl.readBytes(1)).toString('latin1'), 'N');
    const started = Date.now();
    for (const c of [silent, afterSsl]) {
      const messages = await c.readUntilClosed(3000);
      assert.is(codes(messages), 'E');
      assert.is(errorOf(messages).severity, 'FATAL');
      assert.is(errorOf(messages).code, '08P01');
    }
    assert.ok(Date.now() - started >= 300, 'closed before the login timeout');
  });
});

test('a logged-in client may stay idle longer than the login timeout', async () => {
  const c = await RawClient.login(impatient.pgPort);
  await sleep(1000);
  assert.is(codes(await c.query('SELECT 1')), 'TDCZ');
  c.destroy();
});

test('upstream unreachable: FATAL 08006 naming the upstream and the refusal, with or without SSLRequest', async () => {
  for (const ssl of [false, true]) {
    const c = await RawClient.connect(orphan.pgPort);
    if (ssl) {
      c.send(sslRequest());
      assert.is((await c.readBytes(1)).toString('latin1'), 'N');
    }
    c.send(serialize.startup(LOGIN));
    const error = await expectFatal(c, '08006', 3000);
    assert.match(error.message!, /upstream/);
    assert.match(error.message!, /127\.0\.0\.1:1\b/);
    // Answered on the refusal, not when --upstream-connect-timeout runs out (a clock bound would
    // measure the machine instead).
    assert.match(error.message!, /ECONNREFUSED/);
    c.destroy();
  }
  assert.is((await fetch(`http://127.0.0.1:${orphan.adminPort}/healthz`)).status, 200, 'the proxy is still up');
});

test('the upstream ends a session (pg_terminate_backend): the client gets the server\'s FATAL, then a close', async () => {
  const terminated = async (port: number): Promise<Received[]> => {
    const c = await RawClient.login(port);
    await direct('SELECT pg_terminate_backend($1)', [c.backendKey!.processID]);
    try {
      return await c.readUntilClosed(3000);
    } finally {
      c.destroy();
    }
  };
  const viaServer = await terminated(DIRECT_PG.port);
  assert.is(errorOf(viaServer).code, '57P01');
  await whileBystanderQueries(main, async () => {
    assert.equal(describeAll(await terminated(main.pgPort)), describeAll(viaServer));
  });
});

test('--max-client-connections 2: the third client gets FATAL 53300, a freed slot is reused', async () => {
  const second = await connectPg(limited.pgPort);
  let secondEnded = false;
  try {
    await whileBystanderQueries(limited, async () => {
      const third = await RawClient.connect(limited.pgPort);
      third.send(serialize.startup(LOGIN));
      const error = await expectFatal(third, '53300');
      assert.match(error.message!, /too many clients/);
      third.destroy();
      await second.end();
      secondEnded = true;
    });
  } finally {
    if (!secondEnded) await second.end();
  }
  // whileBystanderQueries already connected a new client once the bystander left; two at once now:
  const [a, b] = await Promise.all([connectPg(limited.pgPort), connectPg(limited.pgPort)]);
  assert.equal((await a.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
  await Promise.all([a.end(), b.end()]);
});

/** Starts a second sidecache with `args`; resolves with its exit code and stderr once it exits. */
function runToExit(args: string[], timeoutMs = 10_000): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sidecache did not exit within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

test('a listen port already in use: exit non-zero with one stderr line naming the flag', async () => {
  await whileBystanderQueries(main, async () => {
    const upstream = ['--pg-upstream', `postgres://${DIRECT_PG.host}:${DIRECT_PG.port}`];
    const busy = [
      { flag: '--pg-listen', listen: ['--pg-listen', `127.0.0.1:${main.pgPort}`, '--admin-listen', '127.0.0.1:0'] },
      { flag: '--admin-listen', listen: ['--pg-listen', '127.0.0.1:0', '--admin-listen', `127.0.0.1:${main.adminPort}`] },
    ];
    for (const { flag, listen } of busy) {
      const { code, stderr } = await runToExit([...upstream, ...listen]);
      assert.ok(code !== 0 && code !== null, `exit code ${code}`);
      const lines = stderr.split('\n').filter((l) => l.trim() !== '');
      assert.is(lines.length, 1, stderr);
      assert.ok(lines[0]!.includes(flag), lines[0]);
    }
  });
});

test('/healthz answers 200 on every running proxy', async () => {
  await whileBystanderQueries(main, async () => {
    for (const proxy of [main, impatient, limited, orphan]) {
      const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/healthz`);
      assert.is(res.status, 200);
      await res.arrayBuffer();
    }
  });
});

test.run();
