// test-timeout: 120
//
// Cache rules of the config file, through the real binary on PostgreSQL: a "never" rule keeps a
// table's reads out of the cache, a TTL rule expires its entries while others stay, a max-entry-bytes
// rule refuses larger results of one statement, /stats names the rule, and a reload changes rules.
// The MySQL side is checked for "never" and TTL on MariaDB with the same rules.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { connectPg, direct, uniqueName } from './support/pg-direct.js';
import { cacheStats, measure } from './support/metrics.js';
import { connectMySql, directMySql, type MySqlConnection } from './support/mysql-direct.js';
import { measureMySql } from './support/mysql-metrics.js';
import { localServersConfig, spawnSidecache, type RunningProxy } from './support/sidecache.js';
import { withinWindow } from './support/until.js';

const NEVER = uniqueName('sc_rule_never');
const SHORT = uniqueName('sc_rule_ttl');
const PLAIN = uniqueName('sc_rule_plain');
const dir = mkdtempSync(path.join(tmpdir(), 'sidecache-rules-e2e-'));
const file = path.join(dir, 'sidecache.yaml');
let proxy: RunningProxy;
let c: pg.Client;
let my: MySqlConnection;

function writeConfig(rules: string): void {
  writeFileSync(file, [
    ...localServersConfig({ pg: true, mysql: true }),
    'cache-ttl: 0', // no expiry unless a rule says otherwise
    'rules:',
    rules,
  ].join('\n') + '\n');
}

const RULES = [
  `  - match: {table: ${NEVER}}`,
  '    cache: never',
  `  - match: {table: ${SHORT}}`,
  '    ttl: 1s',
  `  - match: {regex: 'repeat\\('}`,
  '    max-entry-bytes: 2KiB',
].join('\n');

async function pgV(sql: string): Promise<number> {
  return (await c.query<{ v: number }>(sql)).rows[0]!.v;
}

async function v(table: string): Promise<number> {
  return pgV(`SELECT v FROM ${table} WHERE id = 1`);
}

/**
 * The ttl rule's two sides, with `read` through the proxy and `writeBehind` straight to the server:
 * a read that comes back within 0.9 s of when its entry's fill was sent still gets the cached value
 * (the margin covers the store's coarse clock; a try that a loaded machine stalled longer proves
 * nothing, and the next uses its own entry), and one 1.3 s later the new value.
 */
async function assertShortTtl(read: (sql: string) => Promise<number>, writeBehind: (sql: string) => Promise<unknown>): Promise<void> {
  const ttl = await withinWindow(900, async (n) => {
    const sql = `SELECT v FROM ${SHORT} WHERE id = 1 AND ${n} > 0`;
    const filled = await read(sql);
    await writeBehind(`UPDATE ${SHORT} SET v = v + 1`);
    return { sql, filled, read: await read(sql) };
  });
  assert.is(ttl.read, ttl.filled, 'cached');
  await new Promise((r) => setTimeout(r, 1300));
  assert.is(await read(ttl.sql), ttl.filled + 1, 'expired by the rule');
}

test.before(async () => {
  for (const t of [NEVER, SHORT, PLAIN]) {
    await direct(`CREATE TABLE ${t} (id int PRIMARY KEY, v int NOT NULL)`);
    await direct(`INSERT INTO ${t} VALUES (1, 1)`);
    await directMySql(`CREATE TABLE ${t} (id int PRIMARY KEY, v int NOT NULL)`, `INSERT INTO ${t} VALUES (1, 1)`);
  }
  writeConfig(RULES);
  proxy = await spawnSidecache(['--config', file]);
  c = await connectPg(proxy.pgPort);
  my = await connectMySql(proxy.mysqlPort);
});

test.after(async () => {
  await c?.end().catch(() => {});
  await my?.end().catch(() => {});
  await proxy?.stop();
  for (const t of [NEVER, SHORT, PLAIN]) {
    await direct(`DROP TABLE IF EXISTS ${t}`);
    await directMySql(`DROP TABLE IF EXISTS ${t}`);
  }
  rmSync(dir, { recursive: true, force: true });
});

test('cache: never: reads of the table are never hits and always fresh', async () => {
  const { delta } = await measure(proxy.adminPort, async () => {
    for (let i = 0; i < 3; i++) assert.is(await v(NEVER), 1);
  });
  assert.is(delta.hits, 0);
  assert.is(delta.bypassByReason.rule, 3, JSON.stringify(delta.bypassByReason));
  await direct(`UPDATE ${NEVER} SET v = 2`);
  assert.is(await v(NEVER), 2, 'a write that bypassed sidecache shows at once');
});

test('ttl rule: its entries expire after 1s while other entries (cache-ttl 0) stay', async () => {
  assert.is(await v(PLAIN), 1);
  await direct(`UPDATE ${PLAIN} SET v = 2`);
  await assertShortTtl(pgV, (sql) => direct(sql));
  assert.is(await v(PLAIN), 1, 'no expiry without a rule');
  const stats = await cacheStats(proxy.adminPort) as { topQueries: { byMisses: { sample: string; rule: string | null }[] } };
  const short = stats.topQueries.byMisses.find((q) => q.sample.includes(SHORT));
  const plain = stats.topQueries.byMisses.find((q) => q.sample.includes(PLAIN));
  assert.is(short?.rule, 'rules[1]', '/stats names the rule that matched');
  assert.is(plain?.rule, null);
});

test('max-entry-bytes rule: larger results of the matched statement are not kept, smaller ones are', async () => {
  const small = `SELECT repeat('s', 100) AS r FROM ${PLAIN}`;
  const large = `SELECT repeat('l', 5000) AS r FROM ${PLAIN}`;
  const { delta } = await measure(proxy.adminPort, async () => {
    for (let i = 0; i < 2; i++) {
      assert.is((await c.query(small)).rows[0].r.length, 100);
      assert.is((await c.query(large)).rows[0].r.length, 5000);
    }
  });
  assert.is(delta.hits, 1, 'only the small result was kept');
  assert.is(delta.misses, 3);
});

async function mySqlV(sql: string): Promise<number> {
  const [rows] = await my.query(sql);
  return (rows as { v: number }[])[0]!.v;
}

async function myV(table: string): Promise<number> {
  return mySqlV(`SELECT v FROM ${table} WHERE id = 1`);
}

test('MySQL: a never rule bypasses the cache, a TTL rule expires entries', async () => {
  const { delta } = await measureMySql(proxy.adminPort, async () => {
    for (let i = 0; i < 3; i++) assert.is(await myV(NEVER), 1);
  });
  assert.is(delta.hits, 0, 'never a hit');
  assert.is(delta.bypassByReason.rule, 3, JSON.stringify(delta.bypassByReason));
  await assertShortTtl(mySqlV, (sql) => directMySql(sql));
});

test('a reload that removes the never rule lets the table be cached', async () => {
  writeConfig(RULES.split('\n').slice(2).join('\n'));
  const before = proxy.output().split('config reloaded').length;
  proxy.child.kill('SIGHUP');
  for (let i = 0; i < 100 && proxy.output().split('config reloaded').length === before; i++) await new Promise((r) => setTimeout(r, 20));
  assert.match(proxy.output(), /"applied":\["rules"\]/);
  const { delta } = await measure(proxy.adminPort, async () => {
    await v(NEVER);
    await v(NEVER);
  });
  assert.is(delta.hits, 1);
});

test.run();
