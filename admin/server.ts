// The admin HTTP listener: health, Prometheus metrics, the JSON cache statistics and the admin API.
import http from 'node:http';
import type net from 'node:net';
import type { HostPort } from '../config/settings.js';
import type { FleetReport } from '../fleet/fleet.js';
import { sendJson, tokenMatches, type AdminApi } from './api.js';
import { crossSiteRefusal, hostAllowed, hostPolicy, isSafeMethod, type HostPolicy } from './browser-guard.js';
import { dashboardPage } from './dashboard/page.js';
import type { Metrics } from '../telemetry/metrics.js';
import { buildStatsReport, DEFAULT_TOP, MAX_TOP } from './stats-report.js';

const ROUTES = '/ (the dashboard), /healthz, /metrics, /stats, /api/';
/**
 * Answered whatever the Host header says: they change nothing and hold no statement text, and
 * Prometheus and Kubernetes probes send the name or address they were configured with.
 */
const ANY_HOST_PATHS = new Set(['/healthz', '/metrics']);

export interface AdminOptions {
  /** Serves /api/*; without it /api/* is not found. */
  api?: AdminApi | null;
  /**
   * When set, /api/* and /stats need `Authorization: Bearer <token>`. /metrics and /healthz stay
   * open (scrapers and probes rarely send tokens, and PgBouncer and ProxySQL expose their stats
   * alike); so does the dashboard page, which forwards its `?token=` to /stats itself.
   */
  token?: string | null;
  /** Host names answered besides localhost and IP addresses; null: the listen host's (see hostPolicy). */
  allowedHosts?: readonly string[] | null;
  /** The fleet's state for /stats and the dashboard; absent or null without a fleet. */
  fleet?: () => FleetReport | null;
  /** With several workers (workers/): /metrics and /stats of the whole proxy instead of this process's. */
  whole?: WholeProxy | null;
}

/** Every worker's metrics and statistics, gathered through the cluster primary. */
export interface WholeProxy {
  metrics(): Promise<string>;
  stats(top: number): Promise<object>;
}

export class AdminServer {
  private readonly server: http.Server;
  private readonly api: AdminApi | null;
  private readonly token: string | null;
  private readonly allowedHosts: readonly string[] | null;
  private readonly fleet: () => FleetReport | null;
  private readonly whole: WholeProxy | null;
  /** Set by listen(), which knows the listen host. */
  private hosts: HostPolicy;

  /** /stats reports every QueryStats registered in `metrics` (QueryStats' constructor does that). */
  constructor(private readonly metrics: Metrics, options: AdminOptions = {}) {
    this.api = options.api ?? null;
    this.token = options.token ?? null;
    this.allowedHosts = options.allowedHosts ?? null;
    this.fleet = options.fleet ?? (() => null);
    this.whole = options.whole ?? null;
    this.hosts = hostPolicy('localhost', this.allowedHosts);
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`internal error: ${err.message}\n`);
      });
    });
  }

  listen(at: HostPort): Promise<net.AddressInfo> {
    this.hosts = hostPolicy(at.host, this.allowedHosts);
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(at.port, at.host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const isApi = url.pathname.startsWith('/api/');
    if (!ANY_HOST_PATHS.has(url.pathname) && !hostAllowed(req.headers.host, this.hosts)) {
      sendJson(res, 421, { error: 'misdirected-request', message: `this admin listener does not answer the name in Host: ${req.headers.host}; add it to --admin-allowed-hosts` });
      return;
    }
    const crossSite = isSafeMethod(req.method) ? null : crossSiteRefusal(req.headers);
    if (crossSite !== null) {
      sendJson(res, 403, { error: 'cross-site', message: `${crossSite}: the admin listener takes changes only from its own pages and from clients that are not browsers` });
      return;
    }
    if (this.token !== null && (isApi || url.pathname === '/stats') && !tokenMatches(req.headers.authorization, this.token)) {
      res.setHeader('www-authenticate', 'Bearer');
      sendJson(res, 401, { error: 'unauthorized', message: 'send the admin token as Authorization: Bearer <token>' });
      return;
    }
    if (isApi && this.api !== null) {
      await this.api.handle(req, res, url);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    switch (url.pathname) {
      case '/':
      case '/dashboard': {
        const page = dashboardPage();
        res.writeHead(200, page.headers).end(page.body);
        return;
      }
      case '/healthz':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      case '/metrics': {
        const body = this.whole === null ? await this.metrics.registry.metrics() : await this.whole.metrics();
        res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(body);
        return;
      }
      case '/stats': {
        const top = parseTop(url.searchParams.get('top'));
        if (top === null) {
          res.writeHead(400, { 'content-type': 'text/plain' }).end(`top must be an integer from 0 to ${MAX_TOP}\n`);
          return;
        }
        const report = this.whole === null
          ? buildStatsReport(this.metrics.cacheStats.values(), top, this.metrics.changeStreams, this.fleet())
          : await this.whole.stats(top);
        const body = JSON.stringify(report, null, 2);
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(`${body}\n`);
        return;
      }
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: try ${ROUTES}\n`);
    }
  }
}

/** `?top=N`: DEFAULT_TOP when absent, null when not an integer in 0..MAX_TOP. */
export function parseTop(value: string | null): number | null {
  if (value === null) return DEFAULT_TOP;
  if (!/^\d{1,4}$/.test(value)) return null;
  const n = Number(value);
  return n <= MAX_TOP ? n : null;
}
