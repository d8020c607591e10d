// What keeps a web page in the operator's browser from using the admin listener: a page of another
// site may send requests to it (cross-site request forgery) and, once its own name resolves to this
// machine (DNS rebinding), read the answers. docs/admin-api.md says what each check protects.
import type http from 'node:http';
import net from 'node:net';

/** The Host names a listener answers. IP addresses and localhost are always answered. */
export interface HostPolicy {
  readonly anyName: boolean;
  readonly names: ReadonlySet<string>;
}

/** Listen hosts that accept connections on every address, so any name may lead here. */
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::']);

/**
 * The names a listener on `listenHost` answers: `allowed` when configured, else its own name, or
 * any name when it listens on every address (scrapers, probes and people then reach it by names it
 * cannot know). localhost is always answered: no other site can be given that name by DNS.
 */
export function hostPolicy(listenHost: string, allowed: readonly string[] | null): HostPolicy {
  if (allowed !== null) return { anyName: false, names: new Set(['localhost', ...allowed]) };
  if (WILDCARD_HOSTS.has(listenHost)) return { anyName: true, names: new Set() };
  const own = hostName(net.isIPv6(listenHost) ? `[${listenHost}]` : listenHost);
  return { anyName: false, names: new Set(own === null ? ['localhost'] : ['localhost', own]) };
}

/** The host name of a Host header: lower-case, no port, brackets or trailing dot; null when malformed. */
export function hostName(header: string): string | null {
  const m = /^(?:\[([0-9a-f:.]+)\]|([^:[\]/@?#\s]+))(?::\d{1,5})?$/i.exec(header);
  if (m === null) return null;
  return (m[1] ?? m[2]!).toLowerCase().replace(/\.$/, '');
}

/**
 * Does the listener answer a request with this Host header? An IP address always passes: DNS
 * rebinding needs a name that the attacker's DNS server answers. No header at all (HTTP/1.0) is not
 * a browser's request.
 */
export function hostAllowed(header: string | undefined, policy: HostPolicy): boolean {
  if (header === undefined) return true;
  const name = hostName(header);
  if (name === null) return false;
  return net.isIP(name) !== 0 || policy.anyName || policy.names.has(name);
}

/** Methods that change nothing; a browser sends other methods to another site only as below. */
export function isSafeMethod(method: string | undefined): boolean {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
}

/**
 * Why a state-changing request must be refused as sent by a page of another site, or null. Browsers
 * say where a request comes from in Origin (on every POST) and Sec-Fetch-Site (to loopback and
 * HTTPS addresses); a page of this listener's own origin (the dashboard) passes, and so do clients
 * that send neither (curl).
 */
export function crossSiteRefusal(headers: http.IncomingHttpHeaders): string | null {
  const site = headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site is ${site}`;
  const origin = headers.origin;
  if (origin === undefined) return null;
  const from = originHost(origin);
  if (from === null || headers.host === undefined || from !== originHost(`http://${headers.host}`)) return `Origin ${origin} is not this server`;
  return null;
}

/** `host:port` of an origin (the default port left out), null for `null` or anything unparsable. */
function originHost(origin: string): string | null {
  try {
    const url = new URL(origin);
    return url.host === '' ? null : url.host;
  } catch {
    return null;
  }
}

/**
 * Is the body declared JSON? A page can send another site a POST without asking first only as a
 * form or text (application/x-www-form-urlencoded, multipart/form-data, text/plain); JSON makes the
 * browser ask (a CORS preflight), which this listener never grants.
 */
export function declaresJson(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.split(';')[0]!.trim().toLowerCase() === 'application/json';
}
