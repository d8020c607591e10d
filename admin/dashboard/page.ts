// The dashboard page the admin listener serves at / and /dashboard: one self-contained HTML document
// with its style and script inline (the script is client.ts, compiled next to this file), so it
// works with no build step and no network beyond the admin listener. A Content-Security-Policy
// allows exactly that inline style and script and requests to the page's own origin.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface DashboardPage {
  body: Buffer;
  headers: Record<string, string>;
}

/** client.js is missing or unusable next to page.js: the build is incomplete. */
export class DashboardScriptError extends Error {
  override name = 'DashboardScriptError';
}

const STYLE = `
:root {
  --bg: #f4f6f9; --panel: #ffffff; --border: #e2e7ee; --text: #18212f; --muted: #637083; --faint: #eef1f5;
  --hits: #16a34a; --misses: #e08a00; --bypasses: #7c8aa0; --ratio: #2563eb; --danger: #dc2626;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", "DejaVu Sans Mono", monospace;
}
* { box-sizing: border-box; }
html, body { margin: 0; }
body { background: var(--bg); color: var(--text); font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", "DejaVu Sans", sans-serif; }
header { display: flex; align-items: center; gap: 16px; height: 52px; padding: 0 24px; background: #101828; color: #fff; }
.brand { font-size: 16px; font-weight: 700; letter-spacing: .2px; }
.brand span { font-weight: 400; color: #98a2b3; margin-left: 6px; }
.spacer { flex: 1; }
.protocols { display: flex; border: 1px solid #344054; border-radius: 7px; overflow: hidden; }
.protocols button { font: inherit; color: #d0d5dd; background: transparent; border: 0; padding: 5px 12px; cursor: pointer; }
.protocols button + button { border-left: 1px solid #344054; }
.protocols button[aria-pressed="true"] { background: #344054; color: #fff; }
.protocols button:disabled { cursor: default; }
.status { display: flex; align-items: center; gap: 8px; color: #d0d5dd; }
.status b { color: #fff; }
.status .dot { width: 9px; height: 9px; border-radius: 50%; background: #98a2b3; }
.status.live .dot { background: #32d583; box-shadow: 0 0 0 3px rgba(50, 213, 131, .25); }
.status.down .dot { background: #f04438; box-shadow: 0 0 0 3px rgba(240, 68, 56, .3); }
.status.down b { color: #fda29b; }
.status-detail { color: #98a2b3; font-size: 12px; }
.fleet { color: #d0d5dd; font-size: 12px; padding: 3px 9px; border: 1px solid #344054; border-radius: 7px; }
.fleet.down { color: #fda29b; border-color: #f04438; }
main { padding: 16px 24px 24px; display: grid; gap: 16px; }
.panel { background: var(--panel); border: 1px solid var(--border); border-radius: 10px; padding: 14px 16px; min-width: 0; }
body.stale .panel { opacity: .6; }
h2 { margin: 0 0 10px; font-size: 12px; font-weight: 600; text-transform: uppercase; letter-spacing: .6px; color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(8, minmax(0, 1fr)); gap: 16px; }
.card { padding: 12px 14px; }
.card h2 { margin-bottom: 4px; }
.card .value { font-size: 26px; font-weight: 650; line-height: 1.2; font-variant-numeric: tabular-nums; white-space: nowrap; }
.card .sub { color: var(--muted); font-size: 12px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; font-variant-numeric: tabular-nums; }
.card.memory, .card.hit-ratio { grid-column: span 2; }
.card.hit-ratio .value { color: var(--ratio); }
.card .mark { display: inline-block; width: 8px; height: 8px; border-radius: 2px; margin-right: 6px; vertical-align: 1px; }
.memory .value small { font-size: 14px; font-weight: 500; color: var(--muted); margin-left: 4px; }
.meter { height: 8px; background: var(--faint); border-radius: 4px; overflow: hidden; margin: 6px 0 6px; }
.meter span { display: block; height: 100%; width: 0; background: var(--ratio); border-radius: 4px; transition: width .4s; }
.meter span.full { background: var(--misses); }
.charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; }
.chart-head { display: flex; align-items: baseline; gap: 12px; }
.chart-head h2 { margin: 0; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; margin-left: auto; color: var(--muted); font-size: 12px; }
.legend-item { display: inline-flex; align-items: center; gap: 5px; }
.legend-value { color: var(--text); font-variant-numeric: tabular-nums; }
.legend-time { color: var(--text); }
.swatch { width: 10px; height: 3px; border-radius: 2px; display: inline-block; }
svg.chart { display: block; width: 100%; height: 190px; margin-top: 8px; }
svg .grid { stroke: var(--faint); }
svg .tick { stroke: #c5cdd8; }
svg .axis { fill: var(--muted); font-size: 11px; font-variant-numeric: tabular-nums; }
svg .line { fill: none; stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
svg .area { stroke: none; opacity: .1; }
svg .crosshair { stroke: #98a2b3; stroke-dasharray: 3 3; }
svg .dot { stroke: #fff; stroke-width: 1.5; }
.s-ratio { stroke: var(--ratio); fill: var(--ratio); background: var(--ratio); }
.s-hits { stroke: var(--hits); fill: var(--hits); background: var(--hits); }
.s-misses { stroke: var(--misses); fill: var(--misses); background: var(--misses); }
.s-bypasses { stroke: var(--bypasses); fill: var(--bypasses); background: var(--bypasses); }
svg .line.s-ratio, svg .line.s-hits, svg .line.s-misses, svg .line.s-bypasses { fill: none; }
.lists { display: grid; grid-template-columns: minmax(0, 1.65fr) minmax(0, 1fr); gap: 16px; align-items: start; }
.column { display: grid; gap: 16px; min-width: 0; }
table { width: 100%; border-collapse: collapse; table-layout: fixed; font-variant-numeric: tabular-nums; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: 11.5px; padding: 0 8px 6px; border-bottom: 1px solid var(--border); white-space: nowrap; }
td { padding: 6px 8px; border-bottom: 1px solid var(--faint); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
tr:last-child td { border-bottom: 0; }
th.num, td.num { text-align: right; }
td.sql code { font-family: var(--mono); font-size: 12px; }
tr.empty td { color: var(--muted); text-align: center; padding: 14px; }
.ratio { display: flex; align-items: center; justify-content: flex-end; gap: 8px; }
.ratio-bar { width: 44px; height: 6px; border-radius: 3px; background: var(--faint); overflow: hidden; flex: none; }
.ratio-fill { display: block; height: 100%; background: var(--hits); }
.ratio-text { min-width: 44px; }
.badge { display: inline-block; font-size: 10.5px; font-weight: 600; border-radius: 4px; padding: 0 5px; margin-right: 6px; background: #e0eaff; color: #1d4ed8; vertical-align: 1px; }
.badge.mysql { background: #fdf1dc; color: #a15c00; }
.outcome::before { content: ""; display: inline-block; width: 8px; height: 8px; border-radius: 2px; margin-right: 6px; }
.outcome.hit::before { background: var(--hits); }
.stream-state.up { color: #067647; font-weight: 600; }
.stream-state.down, .stream-state.starting { color: #b42318; font-weight: 600; }
.outcome.miss::before { background: var(--misses); }
.outcome.bypass::before { background: var(--bypasses); }
.outcome.write::before { background: var(--danger); }
col.w-count { width: 72px; }
col.w-ratio { width: 108px; }
col.w-ms { width: 76px; }
.column.side col.w-count { width: 62px; }
.column.side col.w-ratio { width: 92px; }
.column.side col.w-ms { width: 70px; }
`;

const BODY = `
<header>
  <div class="brand">sidecache<span>dashboard</span></div>
  <div class="spacer"></div>
  <nav class="protocols" id="protocols" aria-label="protocol"></nav>
  <div class="fleet" id="fleet" hidden></div>
  <div class="status" id="status"><i class="dot"></i><b id="status-text">Connecting</b><span class="status-detail" id="status-detail">waiting for /stats</span></div>
</header>
<main>
  <section class="cards">
    <div class="panel card hit-ratio"><h2>Hit ratio</h2><div class="value" id="hit-ratio">–</div><div class="sub" id="hit-ratio-sub">&nbsp;</div><div class="sub" id="hit-ratio-recent">&nbsp;</div></div>
    <div class="panel card"><h2><i class="mark s-hits"></i>Hits</h2><div class="value" id="hits">–</div><div class="sub" id="hits-rate">&nbsp;</div></div>
    <div class="panel card"><h2><i class="mark s-misses"></i>Misses</h2><div class="value" id="misses">–</div><div class="sub" id="misses-rate">&nbsp;</div></div>
    <div class="panel card"><h2><i class="mark s-bypasses"></i>Bypasses</h2><div class="value" id="bypasses">–</div><div class="sub" id="bypasses-rate">&nbsp;</div></div>
    <div class="panel card memory"><h2>Memory</h2><div class="value"><span id="bytes">–</span><small id="max-bytes"></small></div>
      <div class="meter"><span id="memory-fill"></span></div>
      <div class="sub"><span id="memory-percent">&nbsp;</span> · <span id="entries">–</span> entries · <span id="evictions">–</span> evictions</div></div>
    <div class="panel card"><h2>Invalidations</h2><div class="value" id="invalidations">–</div><div class="sub"><span id="writes">–</span> writes</div></div>
  </section>
  <section class="charts">
    <div class="panel"><div class="chart-head"><h2>Hit ratio over time</h2><div class="legend" id="legend-ratio"></div></div><svg class="chart" id="chart-ratio" role="img" aria-label="hit ratio over time"></svg></div>
    <div class="panel"><div class="chart-head"><h2>Requests per second</h2><div class="legend" id="legend-rates"></div></div><svg class="chart" id="chart-rates" role="img" aria-label="hits, misses and bypasses per second"></svg></div>
  </section>
  <section class="lists">
    <div class="column">
      <div class="panel"><h2>Top queries by hits</h2>
        <table><colgroup><col><col class="w-count"><col class="w-count"><col class="w-ratio"><col class="w-ms"><col class="w-ms"></colgroup>
          <thead><tr><th>Statement</th><th class="num">Hits</th><th class="num">Misses</th><th class="num">Hit ratio</th><th class="num">Hit mean</th><th class="num">Miss mean</th></tr></thead>
          <tbody id="queries-by-hits"></tbody></table></div>
      <div class="panel"><h2>Top queries by misses</h2>
        <table><colgroup><col><col class="w-count"><col class="w-count"><col class="w-ratio"><col class="w-ms"><col class="w-ms"></colgroup>
          <thead><tr><th>Statement</th><th class="num">Hits</th><th class="num">Misses</th><th class="num">Hit ratio</th><th class="num">Hit mean</th><th class="num">Miss mean</th></tr></thead>
          <tbody id="queries-by-misses"></tbody></table></div>
    </div>
    <div class="column side">
      <div class="panel"><h2>Top tables</h2>
        <table><colgroup><col><col class="w-count"><col class="w-count"><col class="w-ratio"><col class="w-count"></colgroup>
          <thead><tr><th>Table</th><th class="num">Hits</th><th class="num">Misses</th><th class="num">Hit ratio</th><th class="num">Invalid.</th></tr></thead>
          <tbody id="tables"></tbody></table></div>
      <div class="panel"><h2>Latency</h2>
        <table><colgroup><col><col class="w-count"><col class="w-ms"><col class="w-ms"><col class="w-ms"></colgroup>
          <thead><tr><th>Outcome</th><th class="num">Count</th><th class="num">Mean</th><th class="num">p50</th><th class="num">p99</th></tr></thead>
          <tbody id="latency"></tbody></table></div>
      <div class="panel"><h2>Bypass reasons</h2>
        <table><colgroup><col><col class="w-count"></colgroup>
          <thead><tr><th>Reason</th><th class="num">Count</th></tr></thead>
          <tbody id="bypass-reasons"></tbody></table></div>
      <div class="panel"><h2>Change streams</h2>
        <table><colgroup><col><col class="w-count"><col class="w-ms"><col class="w-ms"><col class="w-count"></colgroup>
          <thead><tr><th>Database</th><th>State</th><th class="num">Lag p50</th><th class="num">Lag p99</th><th class="num">Invalid.</th></tr></thead>
          <tbody id="change-streams"></tbody></table></div>
    </div>
  </section>
</main>
`;

/** An inline icon, so the browser does not ask for /favicon.ico. */
const FAVICON = `data:image/svg+xml,${encodeURIComponent(
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#101828"/><path d="M4 11V8M8 11V5M12 11V7" stroke="#32d583" stroke-width="2" stroke-linecap="round"/></svg>',
)}`;

function cspHash(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/** The compiled client.ts, without the source-map comment (a URL the page must not reference). */
function readClientScript(): string {
  const file = new URL('./client.js', import.meta.url);
  let script: string;
  try {
    script = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DashboardScriptError(`dashboard script ${file.pathname} cannot be read (${(err as Error).message}); run \`make build\``);
  }
  return script.replace(/\n\/\/# sourceMappingURL=.*\s*$/, '\n');
}

/** The page around `script`; refuses a script that would not run inlined as it does on its own. */
export function buildDashboardPage(script: string): DashboardPage {
  // A runtime import would fetch a URL the policy forbids; a closing tag would end the script early.
  if (/^\s*import\s/m.test(script) || /<\/script/i.test(script)) {
    throw new DashboardScriptError('the dashboard script has a runtime import or a </script>: it cannot be inlined');
  }
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<link rel="icon" href="${FAVICON}">
<title>sidecache dashboard</title>
<style>${STYLE}</style>
</head>
<body>${BODY}<script type="module">${script}</script>
</body>
</html>
`;
  const csp = [
    "default-src 'none'",
    `script-src ${cspHash(script)}`,
    `style-src ${cspHash(STYLE)}`,
    "connect-src 'self'",
    "img-src data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return {
    body: Buffer.from(html, 'utf8'),
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': csp,
      // A token in the page's URL (?token=) must not leak to anything it links to.
      'referrer-policy': 'no-referrer',
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-cache',
    },
  };
}

let built: DashboardPage | null = null;

/** The page, assembled on first use: the script does not change while the process runs. */
export function dashboardPage(): DashboardPage {
  built ??= buildDashboardPage(readClientScript());
  return built;
}
