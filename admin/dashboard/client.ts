// The dashboard's script, run in the browser. page.ts inlines the compiled file into the page as a
// module script, so it must stay one file with no runtime imports (type-only imports are erased).
// The first half is pure (history, rates, scales, formatting) and unit-tested in Node; start() at the
// bottom wires it to the page and runs only where there is a document.
import type { LatencySummary, Outcome, ProtocolStats, QueryItem, TableItem } from '../../telemetry/query-stats.js';
import type { ChangeStreamItem } from '../change-streams.js';
import type { FleetReport } from '../../fleet/fleet.js';
import type { StatsReport } from '../stats-report.js';

export const POLL_MS = 1000;
export const HISTORY_MS = 5 * 60_000;
/** The cards' "now" figures and the hit ratio line average over this window, so one quiet poll does not make them jump. */
export const WINDOW_MS = 5000;
/** Samples further apart than this (the proxy was unreachable) break the chart lines. */
export const GAP_MS = 3 * POLL_MS;
/** The chart's time axis spans at least this much, so the first seconds do not fill the width. */
export const MIN_SPAN_MS = 60_000;
export const TOP_ROWS = 10;
/** Asked of /stats per list: more than shown, so a one-protocol view still fills TOP_ROWS after filtering. */
export const TOP_FETCHED = 40;
/** The view summing every protocol. */
export const ALL = 'all';

/** The counters and gauges one view (ALL or a protocol) shows, as /stats gave them at one moment. */
export interface Counters {
  hits: number;
  misses: number;
  bypasses: number;
  writes: number;
  invalidations: number;
  evictions: number;
  entries: number;
  bytes: number;
  maxBytes: number;
}

export type CounterName = 'hits' | 'misses' | 'bypasses' | 'writes' | 'invalidations' | 'evictions';

export interface Sample {
  /** Wall-clock ms when the answer arrived. */
  at: number;
  views: Record<string, Counters>;
}

export interface Point {
  at: number;
  /** null where there is nothing to show: across a gap, or a ratio with no lookups. */
  value: number | null;
}

function pick(s: Counters): Counters {
  return {
    hits: s.hits, misses: s.misses, bypasses: s.bypasses, writes: s.writes, invalidations: s.invalidations,
    evictions: s.evictions, entries: s.entries, bytes: s.bytes, maxBytes: s.maxBytes,
  };
}

/** ALL from the report's totals, then one view per protocol. */
export function countersOf(report: StatsReport): Record<string, Counters> {
  const views: Record<string, Counters> = { [ALL]: pick(report) };
  for (const [protocol, stats] of Object.entries(report.protocols) as [string, ProtocolStats][]) views[protocol] = pick(stats);
  return views;
}

/** The last HISTORY_MS of samples, oldest first. */
export class History {
  readonly samples: Sample[] = [];

  add(sample: Sample): void {
    const last = this.samples[this.samples.length - 1];
    // Counters only grow; smaller ones mean the proxy restarted and the old deltas mean nothing.
    if (last !== undefined && restarted(last.views[ALL], sample.views[ALL])) this.samples.length = 0;
    this.samples.push(sample);
    const oldest = sample.at - HISTORY_MS;
    let drop = 0;
    while (drop < this.samples.length && this.samples[drop]!.at < oldest) drop++;
    this.samples.splice(0, drop);
  }
}

function restarted(before: Counters | undefined, after: Counters | undefined): boolean {
  if (before === undefined || after === undefined) return false;
  return after.hits < before.hits || after.misses < before.misses || after.bypasses < before.bypasses || after.writes < before.writes;
}

/** Per-second rate of `counter` in `view` over each poll interval, plotted at the interval's end. */
export function ratePoints(samples: readonly Sample[], view: string, counter: CounterName): Point[] {
  const points: Point[] = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1]!;
    const b = samples[i]!;
    const from = a.views[view];
    const to = b.views[view];
    const dt = b.at - a.at;
    const ok = from !== undefined && to !== undefined && dt > 0 && dt <= GAP_MS;
    points.push({ at: b.at, value: ok ? ((to[counter] - from[counter]) * 1000) / dt : null });
  }
  return points;
}

/**
 * The earliest sample within WINDOW_MS before samples[i] that reaches it without a gap; i itself
 * when the previous sample is already beyond the window or across a gap.
 */
function windowStart(samples: readonly Sample[], i: number): number {
  const end = samples[i]!.at;
  let j = i;
  while (j > 0 && end - samples[j - 1]!.at <= WINDOW_MS && samples[j]!.at - samples[j - 1]!.at <= GAP_MS) j--;
  return j;
}

/** hits / (hits + misses) over the WINDOW_MS before each sample; null where there was no lookup. */
export function hitRatioPoints(samples: readonly Sample[], view: string): Point[] {
  const points: Point[] = [];
  for (let i = 1; i < samples.length; i++) {
    const from = samples[windowStart(samples, i)]!.views[view];
    const to = samples[i]!.views[view];
    let value: number | null = null;
    if (from !== undefined && to !== undefined) {
      const hits = to.hits - from.hits;
      const lookups = hits + to.misses - from.misses;
      value = lookups > 0 ? hits / lookups : null;
    }
    points.push({ at: samples[i]!.at, value });
  }
  return points;
}

/** Per-second rate of `counter` over the last WINDOW_MS; null until two samples span some time. */
export function recentRate(samples: readonly Sample[], view: string, counter: CounterName): number | null {
  if (samples.length < 2) return null;
  const i = samples.length - 1;
  const j = windowStart(samples, i);
  const from = samples[j]!;
  const to = samples[i]!;
  const a = from.views[view];
  const b = to.views[view];
  if (j === i || a === undefined || b === undefined) return null;
  return ((b[counter] - a[counter]) * 1000) / (to.at - from.at);
}

/**
 * A y axis from 0 that fits `peak` with at most `maxSteps` round steps (1, 2, 2.5 or 5 times a power
 * of ten): { max, step }. An empty chart (peak 0) gets 0..1.
 */
export function niceScale(peak: number, maxSteps = 4): { max: number; step: number } {
  if (!(peak > 0)) return { max: 1, step: 1 / maxSteps };
  const rough = peak / maxSteps;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => round(m * power)).find((s) => s >= rough * (1 - 1e-9))!;
  return { max: round(Math.ceil(peak / step - 1e-9) * step), step };
}

/** Without binary fractions' noise: 3 * 0.1 is 0.30000000000000004. */
function round(n: number): number {
  return Number(n.toPrecision(12));
}

const TICK_STEPS_MS = [5, 10, 15, 30, 60, 120, 300, 600].map((s) => s * 1000);

/** Round times between `from` and `to` for the x axis, at most `max` of them. */
export function timeTicks(from: number, to: number, max = 6): number[] {
  const step = TICK_STEPS_MS.find((s) => (to - from) / s <= max) ?? TICK_STEPS_MS[TICK_STEPS_MS.length - 1]!;
  const ticks: number[] = [];
  for (let t = Math.ceil(from / step) * step; t <= to; t += step) ticks.push(t);
  return ticks;
}

const COUNT = new Intl.NumberFormat('en-US');

export function formatCount(n: number): string {
  return COUNT.format(n);
}

/** A count in a narrow table column: exact below 100,000, then 123k and 1.2M. */
export function formatCompact(n: number): string {
  return n < 100_000 ? formatCount(n) : formatRate(n);
}

/** Per-second figures: one decimal below 10, then whole numbers, then k and M. */
export function formatRate(n: number | null): string {
  if (n === null) return '–';
  if (n < 10) return n.toFixed(1);
  if (n < 1000) return n.toFixed(0);
  if (n < 1e6) return `${(n / 1e3).toFixed(n < 1e4 ? 1 : 0)}k`;
  return `${(n / 1e6).toFixed(1)}M`;
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number): string {
  let unit = 0;
  while (n >= 1024 && unit < BYTE_UNITS.length - 1) {
    n /= 1024;
    unit++;
  }
  const digits = unit === 0 || n >= 100 ? 0 : n >= 10 ? 1 : 2;
  return `${n.toFixed(digits)} ${BYTE_UNITS[unit]}`;
}

/** A ratio as a percentage with one decimal; '–' before there is one. */
export function formatPercent(ratio: number | null): string {
  return ratio === null ? '–' : `${(ratio * 100).toFixed(1)}%`;
}

/**
 * The header's fleet line: whether the bus is followed, its lag, what this proxy leads, the change
 * streams the fleet's leader reports up; null alone.
 */
export function fleetLine(fleet: FleetReport | null | undefined): { ok: boolean; text: string } | null {
  if (fleet === null || fleet === undefined) return null;
  if (!fleet.connected) return { ok: false, text: `Fleet: ${fleet.state === 'starting' ? 'connecting to Redis' : 'bus down'}, cache off (bypass "bus-down")` };
  const leads = Object.entries(fleet.leader).filter(([, leading]) => leading).map(([task]) => task);
  const lag = fleet.lagMs.p99Ms === null ? '' : ` · lag p99 ${formatMs(fleet.lagMs.p99Ms)}`;
  const l2 = fleet.l2 === null ? '' : ` · L2 hits ${formatCompact(fleet.l2.hits)} / ${formatCompact(fleet.l2.hits + fleet.l2.misses)}`;
  const streams = Object.entries(fleet.streams ?? {}).map(([protocol, v]) => ` · ${protocol} CDC ${v.leading ? 'here' : 'by leader'}: ${streamsUp(v.up)}`).join('');
  return { ok: true, text: `Fleet: live${lag}${leads.length > 0 ? ` · leads ${leads.join(', ')}` : ''}${streams}${l2}` };
}

function streamsUp(up: readonly string[]): string {
  if (up.length === 0) return 'none up';
  return up.length === 1 && up[0] === '*' ? 'up' : `${up.length} up`;
}

export function formatMs(ms: number | null): string {
  if (ms === null) return '–';
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  return `${ms.toFixed(ms < 10 ? 2 : ms < 100 ? 1 : 0)} ms`;
}

/** The admin token from the page's own `?token=`, sent as a bearer token on every fetch. */
export function authHeaders(search: string): Record<string, string> {
  const token = new URLSearchParams(search).get('token');
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** The tables of both top lists (one list alone would hide tables that only miss), most lookups first. */
export function topTables(report: StatsReport, view: string, n: number): TableItem[] {
  const byName = new Map<string, TableItem>();
  for (const t of [...report.topTables.byHits, ...report.topTables.byMisses]) {
    if (view === ALL || t.protocol === view) byName.set(`${t.protocol} ${t.table}`, t);
  }
  return [...byName.values()].sort((a, b) => b.hits + b.misses - (a.hits + a.misses) || b.hits - a.hits).slice(0, n);
}

export function topQueries(items: readonly QueryItem[], view: string, n: number): QueryItem[] {
  return items.filter((q) => view === ALL || q.protocol === view).slice(0, n);
}

// ---- the page ----------------------------------------------------------------------------------

const SVG = 'http://www.w3.org/2000/svg';
/** Room around a chart's plot area for the axis labels, in px. */
const MARGIN = { left: 48, right: 12, top: 10, bottom: 22 } as const;
const PROTOCOL_NAMES: Record<string, string> = { postgres: 'PostgreSQL', mysql: 'MySQL' };

interface Series {
  label: string;
  /** CSS class giving the colour (see page.ts). */
  cls: string;
  points: Point[];
  format: (n: number | null) => string;
}

interface ChartSpec {
  svg: SVGSVGElement;
  legend: HTMLElement;
  series: Series[];
  /** A fixed y axis, or null to scale it to the data. */
  yScale: { max: number; step: number } | null;
  yFormat: (n: number) => string;
  from: number;
  to: number;
  /** The time under the mouse, shown with a crosshair and in the legend; null shows the latest values. */
  hoverAt: number | null;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls = '', text = ''): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text) node.textContent = text;
  return node;
}

function svgEl(tag: string, attrs: Record<string, string | number>, text = ''): SVGElement {
  const node = document.createElementNS(SVG, tag) as SVGElement;
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text) node.textContent = text;
  return node;
}

function byId<T extends Element = HTMLElement>(id: string): T {
  const node = document.querySelector<T>(`#${id}`);
  if (node === null) throw new Error(`dashboard: #${id} is missing from the page`);
  return node;
}

function setText(id: string, text: string): void {
  const node = byId(id);
  if (node.textContent !== text) node.textContent = text;
}

function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString('en-GB', { hour12: false });
}

/** The point at or just before `at`, or the last one when `at` is null. */
function pointAt(points: readonly Point[], at: number | null): Point | undefined {
  if (at === null) return points[points.length - 1];
  let found: Point | undefined;
  for (const p of points) {
    if (p.at > at) break;
    found = p;
  }
  return found;
}

function drawChart(spec: ChartSpec): void {
  const { svg, from, to } = spec;
  const width = svg.clientWidth;
  const height = svg.clientHeight;
  svg.replaceChildren();
  if (width === 0 || height === 0) return;
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const m = MARGIN;
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  let peak = 0;
  for (const s of spec.series) for (const p of s.points) if (p.value !== null && p.at >= from && p.value > peak) peak = p.value;
  const { max: yMax, step } = spec.yScale ?? niceScale(peak);
  const x = (t: number): number => m.left + ((t - from) / (to - from)) * w;
  const y = (v: number): number => m.top + h - (v / yMax) * h;

  for (let i = 0; i * step <= yMax * (1 + 1e-9); i++) {
    const v = i * step;
    svg.append(svgEl('line', { class: 'grid', x1: m.left, x2: m.left + w, y1: y(v), y2: y(v) }));
    svg.append(svgEl('text', { class: 'axis', x: m.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, spec.yFormat(v)));
  }
  for (const t of timeTicks(from, to)) {
    svg.append(svgEl('line', { class: 'tick', x1: x(t), x2: x(t), y1: m.top + h, y2: m.top + h + 4 }));
    // A label centred on a tick near the right edge would be cut off: end it at the edge instead.
    const nearEdge = x(t) > width - 28;
    svg.append(svgEl('text', { class: 'axis', x: nearEdge ? width - 1 : x(t), y: height - 4, 'text-anchor': nearEdge ? 'end' : 'middle' }, clock(t)));
  }

  for (const s of spec.series) {
    // Runs of consecutive non-null points, each drawn as its own line over a faint area.
    let run: Point[] = [];
    const flush = (): void => {
      if (run.length > 0) {
        const line = run.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.at).toFixed(1)},${y(p.value!).toFixed(1)}`).join('');
        const base = y(0).toFixed(1);
        svg.append(svgEl('path', { class: `area ${s.cls}`, d: `${line}L${x(run[run.length - 1]!.at).toFixed(1)},${base}L${x(run[0]!.at).toFixed(1)},${base}Z` }));
        svg.append(svgEl('path', { class: `line ${s.cls}`, d: run.length === 1 ? `${line}h0.01` : line }));
      }
      run = [];
    };
    for (const p of s.points) {
      if (p.value === null || p.at < from) flush();
      else run.push(p);
    }
    flush();
  }

  if (spec.hoverAt !== null) {
    svg.append(svgEl('line', { class: 'crosshair', x1: x(spec.hoverAt), x2: x(spec.hoverAt), y1: m.top, y2: m.top + h }));
    for (const s of spec.series) {
      const p = pointAt(s.points, spec.hoverAt);
      if (p?.value != null) svg.append(svgEl('circle', { class: `dot ${s.cls}`, cx: x(p.at), cy: y(p.value), r: 3.5 }));
    }
  }

  spec.legend.replaceChildren(
    ...spec.series.map((s) => {
      const item = el('span', 'legend-item');
      item.append(el('i', `swatch ${s.cls}`), el('span', 'legend-label', s.label), el('b', 'legend-value', s.format(pointAt(s.points, spec.hoverAt)?.value ?? null)));
      return item;
    }),
  );
  if (spec.hoverAt !== null) spec.legend.append(el('span', 'legend-time', clock(spec.hoverAt)));
}

function cell(text: string, cls = ''): HTMLTableCellElement {
  return el('td', cls, text);
}

/** A count, compact when large, exact in its tooltip. */
function countCell(n: number): HTMLTableCellElement {
  const td = cell(formatCompact(n), 'num');
  td.title = formatCount(n);
  return td;
}

/** A percentage with a small bar behind it. */
function ratioCell(ratio: number | null): HTMLTableCellElement {
  const td = el('td', 'num');
  const box = el('div', 'ratio');
  const bar = el('span', 'ratio-bar');
  const fill = el('span', 'ratio-fill');
  fill.style.width = `${((ratio ?? 0) * 100).toFixed(1)}%`;
  bar.append(fill);
  box.append(bar, el('span', 'ratio-text', formatPercent(ratio)));
  td.append(box);
  return td;
}

function protocolBadge(protocol: string): HTMLElement {
  return el('span', `badge ${protocol}`, protocol === 'postgres' ? 'pg' : protocol);
}

/** Statement samples and table names come from clients: always textContent, never markup. */
function fillRows(tbody: HTMLElement, columns: number, rows: HTMLTableRowElement[], empty: string): void {
  if (rows.length === 0) {
    const tr = el('tr', 'empty');
    const td = cell(empty);
    td.colSpan = columns;
    tr.append(td);
    rows = [tr];
  }
  tbody.replaceChildren(...rows);
}

function queryRows(items: QueryItem[], showProtocol: boolean): HTMLTableRowElement[] {
  return items.map((q) => {
    const tr = el('tr');
    const sql = el('td', 'sql');
    if (showProtocol) sql.append(protocolBadge(q.protocol));
    sql.append(el('code', '', q.sample));
    sql.title = `${q.sample}\n\ntables: ${q.tables.join(', ') || '–'}\nfingerprint: ${q.fingerprint}`;
    tr.append(sql, countCell(q.hits), countCell(q.misses), ratioCell(q.hitRatio),
      cell(formatMs(q.meanMs.hit), 'num'), cell(formatMs(q.meanMs.miss), 'num'));
    return tr;
  });
}

function tableRows(items: TableItem[], showProtocol: boolean): HTMLTableRowElement[] {
  return items.map((t) => {
    const tr = el('tr');
    const name = el('td', 'name');
    if (showProtocol) name.append(protocolBadge(t.protocol));
    name.append(el('span', '', t.table));
    name.title = t.table;
    tr.append(name, countCell(t.hits), countCell(t.misses), ratioCell(t.hitRatio), countCell(t.invalidations));
    return tr;
  });
}


function latencyRows(protocols: [string, ProtocolStats][], showProtocol: boolean): HTMLTableRowElement[] {
  const rows: HTMLTableRowElement[] = [];
  for (const [protocol, stats] of protocols) {
    for (const [outcome, l] of Object.entries(stats.latencyMs) as [Outcome, LatencySummary][]) {
      if (l.count === 0) continue;
      const tr = el('tr');
      const name = el('td', 'name');
      if (showProtocol) name.append(protocolBadge(protocol));
      name.append(el('span', `outcome ${outcome}`, outcome));
      tr.append(name, countCell(l.count), cell(formatMs(l.meanMs), 'num'), cell(formatMs(l.p50Ms), 'num'), cell(formatMs(l.p99Ms), 'num'));
      rows.push(tr);
    }
  }
  return rows;
}

function reasonRows(protocols: [string, ProtocolStats][], showProtocol: boolean): HTMLTableRowElement[] {
  const reasons: { protocol: string; reason: string; count: number }[] = [];
  for (const [protocol, stats] of protocols) {
    for (const [reason, count] of Object.entries(stats.bypassReasons)) if (count > 0) reasons.push({ protocol, reason, count });
  }
  reasons.sort((a, b) => b.count - a.count);
  return reasons.slice(0, TOP_ROWS).map((r) => {
    const tr = el('tr');
    const name = el('td', 'name');
    if (showProtocol) name.append(protocolBadge(r.protocol));
    name.append(el('span', '', r.reason));
    tr.append(name, countCell(r.count));
    return tr;
  });
}

/** One row per change stream: a stream not up means its database's reads bypass the cache. */
function streamRows(items: readonly ChangeStreamItem[], view: string): HTMLTableRowElement[] {
  return items.filter((s) => view === ALL || s.protocol === view).map((s) => {
    const tr = el('tr');
    const name = el('td', 'name');
    name.append(protocolBadge(s.protocol), el('span', '', s.database === '*' ? 'all databases' : s.database));
    name.title = `${s.position ?? 'no position yet'}${s.lastError === null ? '' : `\nlast error: ${s.lastError}`}\nsince ${s.since}`;
    const state = cell(s.state, `stream-state ${s.state}`);
    tr.append(name, state, cell(formatMs(s.lag.p50Ms), 'num'), cell(formatMs(s.lag.p99Ms), 'num'), countCell(s.invalidations));
    return tr;
  });
}

class Dashboard {
  private readonly history = new History();
  private readonly headers = authHeaders(location.search);
  private report: StatsReport | null = null;
  private view = ALL;
  private hoverAt: number | null = null;
  private protocolKey = '';

  start(): void {
    for (const id of ['chart-ratio', 'chart-rates']) {
      const svg = byId<SVGSVGElement>(id);
      svg.addEventListener('mousemove', (e) => this.hover(svg, e));
      svg.addEventListener('mouseleave', () => {
        this.hoverAt = null;
        this.render();
      });
    }
    window.addEventListener('resize', () => this.render());
    void this.poll();
  }

  private async poll(): Promise<void> {
    try {
      const res = await fetch(`stats?top=${TOP_FETCHED}`, { headers: this.headers, cache: 'no-store', signal: AbortSignal.timeout(GAP_MS) });
      if (res.status === 401 || res.status === 403) throw new Error(`HTTP ${res.status}: open this page with ?token=<admin token>`);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const report = (await res.json()) as StatsReport;
      const at = Date.now();
      this.report = report;
      this.history.add({ at, views: countersOf(report) });
      this.setStatus(true, `updated ${clock(at)}`);
      this.setFleet(fleetLine(report.fleet));
      this.render();
    } catch (err) {
      this.setStatus(false, `${(err as Error).message || 'no answer'} · retrying every ${POLL_MS / 1000} s`);
    } finally {
      setTimeout(() => void this.poll(), POLL_MS);
    }
  }

  private setStatus(live: boolean, detail: string): void {
    const status = byId('status');
    status.className = live ? 'status live' : 'status down';
    setText('status-text', live ? 'Live' : 'Disconnected');
    setText('status-detail', detail);
    document.body.classList.toggle('stale', !live);
  }

  private setFleet(line: { ok: boolean; text: string } | null): void {
    const fleet = byId('fleet');
    fleet.hidden = line === null;
    if (line === null) return;
    fleet.className = line.ok ? 'fleet' : 'fleet down';
    fleet.textContent = line.text;
  }

  private hover(svg: SVGSVGElement, e: MouseEvent): void {
    const samples = this.history.samples;
    if (samples.length < 2) return;
    const { from, to } = this.span();
    const box = svg.getBoundingClientRect();
    const at = from + ((e.clientX - box.left - MARGIN.left) / (box.width - MARGIN.left - MARGIN.right)) * (to - from);
    // The plotted points start at the second sample (each is a difference to the one before).
    let nearest: number | null = null;
    if (at >= samples[1]!.at - POLL_MS) {
      nearest = samples[1]!.at;
      for (let i = 2; i < samples.length; i++) if (Math.abs(samples[i]!.at - at) < Math.abs(nearest - at)) nearest = samples[i]!.at;
    }
    if (nearest !== this.hoverAt) {
      this.hoverAt = nearest;
      this.render();
    }
  }

  private span(): { from: number; to: number } {
    const samples = this.history.samples;
    const to = samples[samples.length - 1]?.at ?? Date.now();
    const first = samples[0]?.at ?? to;
    return { from: Math.min(first, to - MIN_SPAN_MS), to };
  }

  private renderProtocols(protocols: string[]): void {
    const key = protocols.join(',');
    if (key === this.protocolKey) return;
    this.protocolKey = key;
    if (this.view !== ALL && !protocols.includes(this.view)) this.view = ALL;
    const box = byId('protocols');
    const choices = protocols.length > 1 ? [ALL, ...protocols] : protocols;
    box.replaceChildren(
      ...choices.map((p) => {
        const button = el('button', '', p === ALL ? 'All' : (PROTOCOL_NAMES[p] ?? p));
        button.type = 'button';
        button.dataset.protocol = p;
        button.disabled = choices.length === 1;
        button.addEventListener('click', () => {
          this.view = p;
          this.render();
        });
        return button;
      }),
    );
  }

  private render(): void {
    const report = this.report;
    if (report === null) return;
    const protocols = Object.keys(report.protocols);
    this.renderProtocols(protocols);
    for (const button of byId('protocols').querySelectorAll('button')) {
      const selected = button.dataset.protocol === this.view || protocols.length === 1;
      button.setAttribute('aria-pressed', String(selected));
    }
    const view = this.view;
    const samples = this.history.samples;
    const now = countersOf(report)[view] ?? pick(report);
    const ratio = view === ALL ? report.hitRatio : (report.protocols[view as keyof StatsReport['protocols']]?.hitRatio ?? null);

    setText('hit-ratio', formatPercent(ratio));
    setText('hit-ratio-sub', `${formatCount(now.hits)} hits of ${formatCount(now.hits + now.misses)} cache lookups`);
    const recent = hitRatioPoints(samples, view).at(-1)?.value ?? null;
    setText('hit-ratio-recent', `last ${WINDOW_MS / 1000} s: ${formatPercent(recent)}`);
    for (const counter of ['hits', 'misses', 'bypasses'] as const) {
      setText(counter, formatCount(now[counter]));
      setText(`${counter}-rate`, `${formatRate(recentRate(samples, view, counter))} /s`);
    }
    setText('bytes', formatBytes(now.bytes));
    setText('max-bytes', now.maxBytes > 0 ? ` / ${formatBytes(now.maxBytes)}` : '');
    const used = now.maxBytes > 0 ? now.bytes / now.maxBytes : 0;
    setText('memory-percent', now.maxBytes > 0 ? `${formatPercent(used)} used` : 'caching is off');
    byId('memory-fill').style.width = `${Math.min(100, used * 100).toFixed(2)}%`;
    byId('memory-fill').classList.toggle('full', used >= 0.9);
    setText('entries', formatCount(now.entries));
    setText('evictions', formatCount(now.evictions));
    setText('invalidations', formatCount(now.invalidations));
    setText('writes', formatCount(now.writes));

    const { from, to } = this.span();
    const percent = (n: number): string => `${Math.round(n * 100)}%`;
    drawChart({
      svg: byId<SVGSVGElement>('chart-ratio'),
      legend: byId('legend-ratio'),
      series: [{ label: `hit ratio (${WINDOW_MS / 1000} s window)`, cls: 's-ratio', points: hitRatioPoints(samples, view), format: formatPercent }],
      yScale: { max: 1, step: 0.25 },
      yFormat: percent,
      from,
      to,
      hoverAt: this.hoverAt,
    });
    const perSecond = (n: number | null): string => `${formatRate(n)}/s`;
    drawChart({
      svg: byId<SVGSVGElement>('chart-rates'),
      legend: byId('legend-rates'),
      series: [
        { label: 'hits', cls: 's-hits', points: ratePoints(samples, view, 'hits'), format: perSecond },
        { label: 'misses', cls: 's-misses', points: ratePoints(samples, view, 'misses'), format: perSecond },
        { label: 'bypasses', cls: 's-bypasses', points: ratePoints(samples, view, 'bypasses'), format: perSecond },
      ],
      yScale: null,
      yFormat: (n) => formatRate(n).replace(/\.0(?=[kM]?$)/, ''),
      from,
      to,
      hoverAt: this.hoverAt,
    });

    const many = protocols.length > 1 && view === ALL;
    const shown = Object.entries(report.protocols).filter(([p]) => view === ALL || p === view) as [string, ProtocolStats][];
    fillRows(byId('queries-by-hits'), 6, queryRows(topQueries(report.topQueries.byHits, view, TOP_ROWS), many), 'No cache hits yet');
    fillRows(byId('queries-by-misses'), 6, queryRows(topQueries(report.topQueries.byMisses, view, TOP_ROWS), many), 'No cache misses yet');
    fillRows(byId('tables'), 5, tableRows(topTables(report, view, TOP_ROWS), many), 'No table reads yet');
    fillRows(byId('latency'), 5, latencyRows(shown, many), 'No statements yet');
    fillRows(byId('bypass-reasons'), 2, reasonRows(shown, many), 'No bypasses');
    const ledElsewhere = Object.values(report.fleet?.streams ?? {}).some((v) => !v.leading);
    fillRows(byId('change-streams'), 5, streamRows(report.changeStreams ?? [], view),
      ledElsewhere ? 'Followed by another proxy of the fleet (its leader; see the fleet line)' : 'None configured (--pg-cdc, --mysql-cdc)');
  }
}

if (typeof document !== 'undefined') new Dashboard().start();
