// test-timeout: 120
//
// The dashboard in a real browser: headless Chromium (Debian's `chromium`, driven by playwright-core,
// no browser download) opens the page the admin listener serves while real traffic goes through the
// proxy to the local PostgreSQL. The page must show what /stats says, keep updating without a
// reload, send ?token= as a bearer token, say when the proxy is gone, and look right: a screenshot
// is written to dist/e2e/dashboard.png for CI and for people. The same browser shows that a page of
// another site cannot flush the cache while the dashboard's own origin can, and that a name
// rebound to this machine (DNS rebinding, simulated with Chromium's host resolver rules) is refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { Browser, Page } from 'playwright-core';
import { createMetrics } from '../telemetry/metrics.js';
import { QueryStats } from '../telemetry/query-stats.js';
import { AdminServer } from '../admin/server.js';
import { cacheStats, measure } from './support/metrics.js';
import { connectPg, direct, sleep, uniqueName } from './support/pg-direct.js';
import { REPO_ROOT, startProxy, type RunningProxy } from './support/sidecache.js';

const CHROMIUM = process.env.SIDECACHE_CHROMIUM ?? '/usr/bin/chromium';
/** Names of other sites, which this browser resolves to loopback as their DNS would after a rebinding. */
const FOREIGN_SITE = 'foreign-site.test';
const REBOUND_SITE = 'rebound-site.test';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  `--host-resolver-rules=MAP ${FOREIGN_SITE} 127.0.0.1, MAP ${REBOUND_SITE} 127.0.0.1`];
const VIEWPORT = { width: 1280, height: 800 };
const SCREENSHOT_COPY = path.join(REPO_ROOT, 'dist/e2e/dashboard.png');
const TABLE = uniqueName('sc_dashboard');
const ORDERS = uniqueName('sc_dashboard_orders');
const ROWS = 200;

let proxy: RunningProxy;
let db: pg.Client;
let browser: Browser;
let page: Page;
let tmpDir: string;
const pageErrors: string[] = [];

interface Stats {
  hits: number;
  misses: number;
  bypasses: number;
  writes: number;
  invalidations: number;
  entries: number;
  hitRatio: number | null;
  topQueries: { byHits: { sample: string; hits: number; misses: number }[] };
}

async function stats(): Promise<Stats> {
  return (await cacheStats(proxy.adminPort)) as unknown as Stats;
}

async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: this test drives a real browser. Install it with ` +
      '`apt-get install -y chromium` (Debian/Ubuntu; `make test` does so when run as root), or set SIDECACHE_CHROMIUM to a Chromium binary.');
  }
  let chromium: typeof import('playwright-core').chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (err) {
    throw new Error(`playwright-core cannot be loaded (${(err as Error).message}): run \`npm ci\`, it is a devDependency`);
  }
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/** Polls `check` until it returns without throwing; after `timeoutMs`, throws its last error. */
async function eventually<T>(check: () => Promise<T>, timeoutMs = 8000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(200);
    }
  }
}

async function text(selector: string): Promise<string> {
  return ((await page.locator(selector).first().textContent()) ?? '').trim();
}

/** A count as the page shows it ("1,234"). */
async function count(selector: string): Promise<number> {
  const shown = await text(selector);
  assert.match(shown, /^\d[\d,]*$/, `${selector} shows a count, not "${shown}"`);
  return Number(shown.replace(/,/g, ''));
}

async function read(id: number): Promise<void> {
  await db.query(`SELECT id, v, name FROM ${TABLE} WHERE id = $1`, [id]);
}

/** Reads of `ids`, each repeated: the first read of an id misses, the repeats hit. */
async function traffic(ids: number[], repeats: number): Promise<void> {
  for (const id of ids) for (let i = 0; i < repeats; i++) await read(id);
}

/** A few more statement shapes over two tables, with a write now and then, as an application would. */
async function mixedTraffic(round: number): Promise<void> {
  await traffic([...Array(4 + ((round * 7) % 11)).keys()].map((i) => 1 + ((round * 13 + i) % ROWS)), 2 + (round % 4));
  for (let i = 0; i < 3; i++) await db.query(`SELECT count(*) AS n FROM ${TABLE} WHERE v > $1`, [(round % 5) * 100]);
  await db.query(`SELECT o.id, o.qty, t.name FROM ${ORDERS} o JOIN ${TABLE} t ON t.id = o.item WHERE o.id = $1`, [1 + (round % 3)]);
  await db.query(`SELECT name FROM ${TABLE} ORDER BY v DESC LIMIT 5`);
  if (round % 6 === 5) await db.query(`UPDATE ${ORDERS} SET qty = qty + 1 WHERE id = $1`, [1 + (round % 20)]);
  if (round % 4 === 0) await db.query('SELECT now()');
}

async function openDashboard(target: Page, query = ''): Promise<void> {
  await target.goto(`http://127.0.0.1:${proxy.adminPort}/dashboard${query}`);
}

test.before(async () => {
  try {
    browser = await launchChromium();
  } catch (err) {
    // uvu does not print an error thrown by a hook: without this line the run shows only "0 passed".
    console.error(`e2e/dashboard: ${(err as Error).message}`);
    throw err;
  }
  await direct(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, v int NOT NULL, name text NOT NULL)`);
  await direct(`INSERT INTO ${TABLE} SELECT g, g * 10, 'row ' || g FROM generate_series(1, ${ROWS}) g`);
  await direct(`CREATE TABLE ${ORDERS} (id int PRIMARY KEY, item int NOT NULL, qty int NOT NULL)`);
  await direct(`INSERT INTO ${ORDERS} SELECT g, 1 + g % ${ROWS}, 1 FROM generate_series(1, 50) g`);
  proxy = await startProxy();
  db = await connectPg(proxy.pgPort);
  tmpDir = await mkdtemp(path.join(os.tmpdir(), 'sc-dashboard-'));
  page = await browser.newPage({ viewport: VIEWPORT });
  page.on('pageerror', (err) => pageErrors.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') pageErrors.push(`console ${msg.type()}: ${msg.text()}`);
  });
});

test.after(async () => {
  await browser?.close();
  await db?.end().catch(() => undefined);
  await proxy?.stop();
  await direct(`DROP TABLE IF EXISTS ${TABLE}, ${ORDERS}`).catch(() => undefined);
  if (tmpDir) await rm(tmpDir, { recursive: true, force: true });
});

test('the dashboard shows the numbers /stats reports, and the top query and table', async () => {
  await traffic([1, 2, 3], 4);
  await db.query(`UPDATE ${TABLE} SET v = v + 1 WHERE id = 1`);
  await traffic([1], 3);
  await db.query('SELECT now()');
  await openDashboard(page);

  await eventually(async () => assert.is(await text('#status-text'), 'Live'));
  // Nothing else goes through the proxy, so the page settles on exactly what /stats says.
  const expected = await stats();
  assert.ok(expected.hits >= 9 && expected.misses >= 4 && expected.invalidations >= 1 && expected.bypasses >= 1, JSON.stringify(expected));
  await eventually(async () => {
    assert.is(await count('#hits'), expected.hits, 'hits');
    assert.is(await count('#misses'), expected.misses, 'misses');
    assert.is(await count('#bypasses'), expected.bypasses, 'bypasses');
    assert.is(await count('#invalidations'), expected.invalidations, 'invalidations');
    assert.is(await count('#writes'), expected.writes, 'writes');
    assert.is(await count('#entries'), expected.entries, 'entries');
  });
  const ratio = parseFloat(await text('#hit-ratio'));
  assert.ok(ratio > 0, 'hit ratio above 0');
  assert.ok(Math.abs(ratio - expected.hitRatio! * 100) <= 0.05, `hit ratio ${ratio}% vs ${expected.hitRatio}`);
  assert.match(await text('#memory-percent'), /^\d+\.\d% used$/);

  const top = expected.topQueries.byHits[0]!;
  assert.match(top.sample, TABLE);
  const row = page.locator('#queries-by-hits tr').first();
  assert.is(((await row.locator('td.sql code').textContent()) ?? '').trim(), top.sample);
  const cells = await row.locator('td.num').allTextContents();
  assert.equal(cells.slice(0, 2).map((c) => Number(c.replace(/,/g, ''))), [top.hits, top.misses]);
  assert.match(await text('#tables tr'), TABLE);
  assert.match(await text('#latency'), 'hit');
});

/** Runs mixedTraffic in rounds with uneven pauses until the returned stop() is awaited. */
function backgroundTraffic(): () => Promise<void> {
  let running = true;
  const loop = (async () => {
    for (let round = 0; running; round++) {
      await mixedTraffic(round);
      await sleep(100 + (round % 5) * 40);
    }
  })();
  return async () => {
    running = false;
    await loop;
  };
}

test('the page keeps updating without a reload: counters and charts follow new traffic', async () => {
  await page.evaluate(() => Object.assign(window, { sameDocument: true }));
  const before = await count('#hits');
  // About ten seconds of uneven traffic, so both charts have a shape worth looking at.
  const stop = backgroundTraffic();
  await sleep(10_000);
  await stop();
  const expected = await stats();
  assert.ok(expected.hits > before);
  await eventually(async () => assert.is(await count('#hits'), expected.hits));
  assert.is(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument), true, 'no reload');
  assert.ok(await page.locator('#chart-ratio path.line').count() >= 1, 'the hit ratio chart has a line');
  assert.ok(await page.locator('#chart-rates path.line.s-hits').count() >= 1, 'the rates chart has a hits line');
  assert.match(await text('#hits-rate'), /^[\d.]+k? \/s$/);
});

test('a screenshot at 1280x800 shows the whole dashboard', async () => {
  // Taken under load, so the rate cards and the legends show live figures rather than zeros.
  const stop = backgroundTraffic();
  const file = path.join(tmpDir, 'dashboard.png');
  try {
    await sleep(3000);
    await page.screenshot({ path: file, fullPage: true });
  } finally {
    await stop();
  }
  const png = await readFile(file);
  assert.equal([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  assert.is(width, VIEWPORT.width);
  assert.ok(height >= VIEWPORT.height, `height ${height}`);
  // A blank or unstyled page compresses to a few kilobytes; this one has charts, text and tables.
  assert.ok(png.length > 40_000, `screenshot is only ${png.length} bytes`);
  await mkdir(path.dirname(SCREENSHOT_COPY), { recursive: true });
  await copyFile(file, SCREENSHOT_COPY);
  console.log(`dashboard screenshot (${width}x${height}): ${SCREENSHOT_COPY}`);
  assert.equal(pageErrors, [], 'no script errors and no Content-Security-Policy violations');
});

test('?token= is sent as a bearer token on every /stats request', async () => {
  const withToken = await browser.newPage({ viewport: VIEWPORT });
  try {
    const request = withToken.waitForRequest((r) => new URL(r.url()).pathname === '/stats');
    await openDashboard(withToken, '?token=t0k%2Ben');
    assert.is((await request).headers().authorization, 'Bearer t0k+en');
    const plain = page.waitForRequest((r) => new URL(r.url()).pathname === '/stats');
    assert.is((await plain).headers().authorization, undefined, 'no token, no header');
  } finally {
    await withToken.close();
  }
});

test('with two protocols, the selector switches every figure to the chosen one', async () => {
  // The MySQL side does not count into /stats yet, so this admin server runs in-process with the
  // same QueryStats the proxy sides fill.
  const metrics = createMetrics();
  const postgres = new QueryStats('postgres', metrics);
  const mysql = new QueryStats('mysql', metrics);
  const pgQuery = postgres.identify('pg1', 'SELECT * FROM pg_side WHERE id = $1', ['pg_side']);
  const myQuery = mysql.identify('my1', 'SELECT * FROM my_side WHERE id = ?', ['my_side']);
  for (let i = 0; i < 30; i++) postgres.hit(pgQuery, 0.00005);
  for (let i = 0; i < 10; i++) postgres.miss(pgQuery, 0.002);
  for (let i = 0; i < 5; i++) mysql.hit(myQuery, 0.00005);
  for (let i = 0; i < 5; i++) mysql.miss(myQuery, 0.002);
  const admin = new AdminServer(metrics);
  const at = await admin.listen({ host: '127.0.0.1', port: 0 });
  const two = await browser.newPage({ viewport: VIEWPORT });
  const shows = async (protocol: string, hits: string, ratio: string, statements: string[]): Promise<void> => {
    await two.click(`#protocols button[data-protocol="${protocol}"]`);
    await eventually(async () => {
      assert.is(await two.locator(`#protocols button[data-protocol="${protocol}"]`).getAttribute('aria-pressed'), 'true');
      assert.is((await two.locator('#hits').textContent())?.trim(), hits, `${protocol} hits`);
      assert.is((await two.locator('#hit-ratio').textContent())?.trim(), ratio, `${protocol} hit ratio`);
      assert.equal((await two.locator('#queries-by-hits td.sql code').allTextContents()).sort(), statements.sort());
    });
  };
  try {
    await two.goto(`http://127.0.0.1:${at.port}/`);
    await eventually(async () => assert.equal(await two.locator('#protocols button').allTextContents(), ['All', 'PostgreSQL', 'MySQL']));
    await shows('all', '35', '70.0%', [pgQuery.sample, myQuery.sample]);
    assert.equal(await two.locator('#queries-by-hits .badge').allTextContents(), ['pg', 'mysql'], 'each row says its protocol');
    await shows('mysql', '5', '50.0%', [myQuery.sample]);
    assert.equal(await two.locator('#tables td.name').allTextContents(), ['my_side']);
    await shows('postgres', '30', '75.0%', [pgQuery.sample]);
  } finally {
    await two.close();
    await admin.close();
  }
});

/** A read that fills the cache, so a flush would show as a miss on the next one. */
async function filled(): Promise<void> {
  await read(7);
  assert.is((await measure(proxy.adminPort, () => read(7))).delta.hits, 1, 'cached');
}

test('a page of another site cannot flush the cache, by form-like POST or by JSON', async () => {
  await filled();
  // Another site, served from this machine so the test needs no network.
  const site = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>another site</title>'));
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  const foreign = await browser.newPage();
  try {
    await foreign.goto(`http://${FOREIGN_SITE}:${(site.address() as net.AddressInfo).port}/`);
    const flushUrl = `http://127.0.0.1:${proxy.adminPort}/api/flush`;
    const refused = foreign.waitForResponse((r) => r.url() === flushUrl);
    // What any page may send anywhere: a POST with a text body, its answer unreadable to the page.
    await foreign.evaluate(async (url) => { await fetch(url, { method: 'POST', mode: 'no-cors', body: '{"all":true}' }); }, flushUrl);
    assert.is((await refused).status(), 403, 'refused as cross-site');
    // A JSON POST makes the browser ask first (a CORS preflight), which is never granted.
    const json = await foreign.evaluate(async (url) => {
      try {
        await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"all":true}' });
        return 'sent';
      } catch (err) {
        return `blocked: ${(err as Error).message}`;
      }
    }, flushUrl);
    assert.match(json, /^blocked/);
  } finally {
    await foreign.close();
    await new Promise((resolve) => site.close(resolve));
  }
  assert.is((await measure(proxy.adminPort, () => read(7))).delta.hits, 1, 'nothing was flushed');
});

test('the dashboard\'s own origin can POST a flush as JSON', async () => {
  await filled();
  const status = await page.evaluate(async () => (await fetch('api/flush', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"all":true}' })).status);
  assert.is(status, 200);
  assert.is((await measure(proxy.adminPort, () => read(7))).delta.misses, 1, 'flushed');
});

test('a name rebound to this machine (DNS rebinding) gets no page and no data; /healthz still answers', async () => {
  const rebound = await browser.newPage();
  try {
    const dashboard = await rebound.goto(`http://${REBOUND_SITE}:${proxy.adminPort}/dashboard`);
    assert.is(dashboard?.status(), 421);
    const queries = await rebound.evaluate(async () => (await fetch('/api/queries')).status);
    assert.is(queries, 421);
    assert.is((await rebound.goto(`http://${REBOUND_SITE}:${proxy.adminPort}/healthz`))?.status(), 200);
  } finally {
    await rebound.close();
  }
});

test('when the proxy goes away the page says so and keeps retrying', async () => {
  // The page must have caught up with the last traffic before the proxy stops: a poll answered just
  // before the stop would otherwise change the numbers after they were read.
  await db.end();
  const last = await stats();
  await eventually(async () => assert.is(await count('#hits'), last.hits));
  const hitsShown = await text('#hits');
  await proxy.stop();
  await eventually(async () => assert.is(await text('#status-text'), 'Disconnected'));
  assert.match(await text('#status-detail'), 'retrying');
  assert.is(await text('#hits'), hitsShown, 'the last numbers stay on screen');
  await page.screenshot({ path: path.join(tmpDir, 'disconnected.png') });
});

test.run();
