// The bench's network hop (bench/netns.ts, `make bench --rtt`): a private PostgreSQL in a network
// namespace of its own, reached over a veth pair through the delay relay. Checked: queries reach
// that server and no round trip is shorter than the RTT asked for (a lower bound, which does not
// depend on the machine's speed); stop() removes the namespace and the relay; and when the bench
// process is SIGKILLed, the namespace, the relay and the server still go.
// test-timeout: 240
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startNetworkHop } from '../bench/netns.js';

const RTT_US = 4000;

function namespaces(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('queries cross the hop to the private server, never faster than the RTT; stop() removes it all', async () => {
  const hop = await startNetworkHop(RTT_US);
  let client: pg.Client | undefined;
  try {
    assert.ok(namespaces().includes(hop.plan.namespace));
    client = new pg.Client({ ...hop.server, database: 'postgres' });
    await client.connect();
    // The private server listens on the namespace's loopback: the relay is its only way in.
    const { rows } = await client.query<{ addr: string; port: number }>('SELECT host(inet_server_addr()) AS addr, inet_server_port() AS port');
    assert.equal(rows[0], { addr: '127.0.0.1', port: 5432 });
    for (let i = 0; i < 20; i++) {
      const start = process.hrtime.bigint();
      await client.query('SELECT 1');
      const us = Number(process.hrtime.bigint() - start) / 1000;
      assert.ok(us >= RTT_US, `a query came back in ${us} µs, under the ${RTT_US} µs round trip`);
    }
    const rtt = (await hop.measureRtt(20, 10_000))!;
    assert.is(rtt.count, 20);
    assert.ok(rtt.minUs >= RTT_US, `echo RTT ${rtt.minUs} µs`);
    assert.match((await hop.lateness()) ?? '', /^chunks=\d+ bytes=\d+ late_avg_us=/);
  } finally {
    await client?.end();
    await hop.stop();
  }
  assert.not.ok(namespaces().includes(hop.plan.namespace), 'namespace left behind');
  assert.not.ok(alive(hop.relayPid), 'relay left running');
  assert.not.ok(existsSync(`/sys/class/net/${hop.plan.hostInterface}`), 'veth left behind');
});

test('a SIGKILLed bench leaves no namespace, relay or server behind', async () => {
  const netns = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bench/netns.js');
  const program = `import { startNetworkHop } from ${JSON.stringify(netns)};
const hop = await startNetworkHop(1000);
console.log(JSON.stringify({ namespace: hop.plan.namespace, relay: hop.relayPid }));
setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', program], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  try {
    await until('the hop to start', () => out.includes('\n') || child.exitCode !== null, 90_000);
    const started = JSON.parse(out.split('\n')[0]!) as { namespace: string; relay: number };
    const postmasters = (): string => execFileSync('sh', ['-c', `ip netns pids ${started.namespace} 2>/dev/null || true`], { encoding: 'utf8' }).trim();
    assert.ok(postmasters().length > 0, 'no process in the namespace');
    const inside = postmasters().split('\n').map(Number);
    child.kill('SIGKILL');
    await until('the relay to die', () => !alive(started.relay), 15_000);
    await until('the namespace to go', () => !namespaces().includes(started.namespace), 15_000);
    await until('the server to stop', () => inside.every((pid) => !alive(pid)), 30_000);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test.run();
