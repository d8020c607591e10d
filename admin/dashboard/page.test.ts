import { createHash } from 'node:crypto';
import { request } from 'undici';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMetrics } from '../../telemetry/metrics.js';
import { QueryStats } from '../../telemetry/query-stats.js';
import { AdminServer } from '../server.js';
import { buildDashboardPage, DashboardScriptError } from './page.js';

const metrics = createMetrics();
new QueryStats('postgres', metrics);
const admin = new AdminServer(metrics);
let base = '';

test.before(async () => {
  const at = await admin.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${at.port}`;
});

test.after(async () => {
  await admin.close();
});

async function get(path: string, method: 'GET' | 'HEAD' = 'GET'): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const res = await request(`${base}${path}`, { method });
  const headers = Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, String(v)]));
  return { status: res.statusCode, headers, body: await res.body.text() };
}

function between(html: string, open: string, close: string): string {
  const start = html.indexOf(open);
  assert.ok(start >= 0, `page has ${open}`);
  const end = html.indexOf(close, start + open.length);
  assert.ok(end >= 0, `page has ${close} after ${open}`);
  return html.slice(start + open.length, end);
}

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

for (const path of ['/', '/dashboard', '/dashboard?token=abc']) {
  test(`GET ${path} serves the dashboard as HTML`, async () => {
    const res = await get(path);
    assert.is(res.status, 200);
    assert.is(res.headers['content-type'], 'text/html; charset=utf-8');
    assert.match(res.body, /^<!doctype html>/);
    assert.match(res.body, '<title>sidecache dashboard</title>');
    assert.match(res.body, 'id="chart-ratio"');
    assert.match(res.body, 'id="change-streams"');
    // The compiled client script is inlined, not referenced.
    assert.match(res.body, 'class Dashboard');
  });
}

test('HEAD / answers with the headers and no body', async () => {
  const res = await get('/', 'HEAD');
  assert.is(res.status, 200);
  assert.match(res.headers['content-type']!, 'text/html');
  assert.is(res.body, '');
});

test('the page references nothing outside the admin listener', async () => {
  const { body } = await get('/dashboard');
  const references = [...body.matchAll(/\b(?:src|href|action|srcset)\s*=\s*["']?([^"'\s>]+)/gi)].map((m) => m[1]!);
  assert.ok(references.length > 0, 'the favicon is a reference');
  // Inline data is fine; any other scheme or a protocol-relative URL would leave the admin listener.
  for (const ref of references) assert.not.match(ref, /^(?!data:)(?:[a-z][a-z0-9+.-]*:|\/\/)/i, `absolute reference ${ref}`);
  assert.not.match(body, /url\(\s*["']?(?:[a-z]+:|\/\/)/i, 'no CSS url() to another origin');
  assert.not.match(body, /@import/i);
  // The only absolute URL in the page is the SVG namespace, which is a name, never fetched.
  const urls = [...body.matchAll(/\b(?:https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}[^\s"'`)]*/gi)].map((m) => m[0]);
  assert.equal([...new Set(urls)], ['http://www.w3.org/2000/svg']);
  assert.not.match(body, 'sourceMappingURL');
});

test('the Content-Security-Policy allows exactly the inline style and script and same-origin fetches', async () => {
  const { body, headers } = await get('/');
  const csp = headers['content-security-policy']!;
  assert.ok(csp, 'CSP header present');
  const directives = Object.fromEntries(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...values]) => [name!, values.join(' ')]));
  assert.is(directives['default-src'], "'none'");
  assert.is(directives['connect-src'], "'self'");
  assert.is(directives['script-src'], sha256(between(body, '<script type="module">', '</script>')));
  assert.is(directives['style-src'], sha256(between(body, '<style>', '</style>')));
  assert.is(headers['referrer-policy'], 'no-referrer');
  assert.is(headers['x-content-type-options'], 'nosniff');
});

test('a script that cannot run inlined is refused when the page is built', () => {
  assert.match(buildDashboardPage('console.log(1)').body.toString(), '<script type="module">console.log(1)</script>');
  assert.throws(() => buildDashboardPage("import { x } from './x.js';\nx();"), (err: Error) => err instanceof DashboardScriptError);
  assert.throws(() => buildDashboardPage("const s = '</script>';"), (err: Error) => err instanceof DashboardScriptError);
});

test('other paths are still not found, and the 404 names the dashboard', async () => {
  const res = await get('/nope');
  assert.is(res.status, 404);
  assert.match(res.body, '/ (the dashboard)');
});

test.run();
