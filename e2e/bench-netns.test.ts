// The bench's network hop (bench/netns.ts, `make bench --rtt`, `make bench-mysql --rtt`): a private
// PostgreSQL or MariaDB in a network namespace of its own, reached over a veth pair through the
// delay relay. Checked: queries reach that server and no round trip is shorter than the RTT asked
// for (a lower bound, which does not depend on the machine's speed); stop() removes the namespace,
// the relay and the server; and when the bench process is SIGKILLed, the namespace, the relay and
// the server still go.
// test-timeout: 360
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { MARIADB_BEHIND_HOP } from '../bench/mysql-server.js';
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

test('MariaDB behind the hop (bench-mysql --rtt): queries cross it, never faster than the RTT; stop() removes it all', async () => {
  const hop = await startNetworkHop(RTT_US, MARIADB_BEHIND_HOP);
  let connection: mysql.Connection | undefined;
  let serverPids: number[] = [];
  try {
    serverPids = namespacePids(hop.plan.namespace).filter((pid) => pid !== hop.relayPid);
    assert.ok(serverPids.length > 0, 'no server process in the namespace');
    connection = await mysql.createConnection({ ...hop.server });
    // The private server listens on the namespace's loopback: the relay is its only way in.
    const [rows] = await connection.query<mysql.RowDataPacket[]>('SELECT @@bind_address AS addr, @@port AS port');
    assert.equal({ ...rows[0] }, { addr: '127.0.0.1', port: 3306 });
    for (let i = 0; i < 20; i++) {
      const start = process.hrtime.bigint();
      await connection.query('SELECT 1');
      const us = Number(process.hrtime.bigint() - start) / 1000;
      assert.ok(us >= RTT_US, `a query came back in ${us} µs, under the ${RTT_US} µs round trip`);
    }
  } finally {
    await connection?.end();
    await hop.stop();
  }
  assert.not.ok(namespaces().includes(hop.plan.namespace), 'namespace left behind');
  assert.not.ok(alive(hop.relayPid), 'relay left running');
  assert.ok(serverPids.every((pid) => !alive(pid)), 'mariadbd left running');
});

function namespacePids(namespace: string): number[] {
  return execFileSync('sh', ['-c', `ip netns pids ${namespace} 2>/dev/null || true`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
}

for (const database of ['POSTGRES_BEHIND_HOP', 'MARIADB_BEHIND_HOP'] as const) test(`a SIGKILLed bench leaves no namespace, relay or server behind (${database})`, async () => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const netns = path.resolve(here, '../bench/netns.js');
  const mysqlServer = path.resolve(here, '../bench/mysql-server.js');
  const program = `import { startNetworkHop, POSTGRES_BEHIND_HOP } from ${JSON.stringify(netns)};
import { MARIADB_BEHIND_HOP } from ${JSON.stringify(mysqlServer)};
const hop = await startNetworkHop(1000, ${database});
console.log(JSON.stringify({ namespace: hop.plan.namespace, relay: hop.relayPid }));
setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', program], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  try {
    await until('the hop to start', () => out.includes('\n') || child.exitCode !== null, 90_000);
    const started = JSON.parse(out.split('\n')[0]!) as { namespace: string; relay: number };
    const inside = namespacePids(started.namespace);
    assert.ok(inside.length > 0, 'no process in the namespace');
    child.kill('SIGKILL');
    await until('the relay to die', () => !alive(started.relay), 15_000);
    await until('the namespace to go', () => !namespaces().includes(started.namespace), 15_000);
    await until('the server to stop', () => inside.every((pid) => !alive(pid)), 30_000);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test.run();
