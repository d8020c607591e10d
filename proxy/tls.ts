// TLS for both legs with node:tls: the context clients are shown (--tls-cert/--tls-key, rebuilt on
// every reload), the options of a connection to a TLS upstream (libpq's sslmode semantics), and the
// upgrade of a client socket whose first TLS bytes may already have been read with the request
// that asked for TLS (a MySQL SSLRequest and the ClientHello in one read; PostgreSQL's direct TLS).
import { readFileSync } from 'node:fs';
import type net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { ConfigError, type ClientTlsMode, type Config, type UpstreamTls } from '../config/settings.js';

/** What the client leg offers, as a listener holds it (replaced whole by a reload). */
export interface ClientTls {
  readonly mode: ClientTlsMode;
  /** Null when mode is `disable`. */
  readonly context: tls.SecureContext | null;
}

/** Reads --tls-cert/--tls-key again (a reload after the files were renewed in place). Throws ConfigError. */
export function clientTls(config: Config): ClientTls {
  if (config.tlsCert === null || config.tlsKey === null) return { mode: 'disable', context: null };
  const mode = config.clientTls ?? 'allow';
  if (mode === 'disable') return { mode, context: null };
  let context: tls.SecureContext;
  try {
    context = tls.createSecureContext({ cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) });
  } catch (err) {
    throw new ConfigError('--tls-cert', `cannot use ${config.tlsCert} with ${config.tlsKey}: ${(err as Error).message}`);
  }
  return { mode, context };
}

/**
 * How to reach one upstream over TLS, built once per listener (the files are read at start). Null
 * when TLS is off (`disable`).
 */
export interface UpstreamTlsPlan {
  readonly mode: UpstreamTls['mode'];
  /** `prefer`: a server without TLS is used in cleartext. */
  readonly optional: boolean;
  /** What to tell the operator about the setting, in the URL's own words (`sslmode=verify-full`). */
  readonly describe: string;
  options(servername: string): tls.ConnectionOptions;
}

export function upstreamTlsPlan(settings: UpstreamTls, describe: string): UpstreamTlsPlan | null {
  if (settings.mode === 'disable') return null;
  const verify = settings.mode === 'verify-ca' || settings.mode === 'verify-full';
  const base: tls.ConnectionOptions = {
    rejectUnauthorized: verify,
    ...(settings.ca === null ? {} : { ca: readFileSync(settings.ca) }),
    ...(settings.cert === null ? {} : { cert: readFileSync(settings.cert), key: readFileSync(settings.key!) }),
    // verify-ca checks the chain only, as libpq does: the certificate need not name the host.
    ...(settings.mode === 'verify-full' ? {} : { checkServerIdentity: () => undefined }),
  };
  return {
    mode: settings.mode,
    optional: settings.mode === 'prefer',
    describe,
    options: (servername) => ({ ...base, ...(isIpAddress(servername) ? {} : { servername }) }),
  };
}

/** The --mysql-upstream URL's spelling of each mode, for messages. */
const MYSQL_SSL_MODES = { disable: 'DISABLED', prefer: 'PREFERRED', require: 'REQUIRED', 'verify-ca': 'VERIFY_CA', 'verify-full': 'VERIFY_IDENTITY' } as const;

/** The plan of --pg-upstream's TLS settings, described in its URL's words; the relay and the change stream share it. */
export function pgUpstreamTlsPlan(settings: UpstreamTls): UpstreamTlsPlan | null {
  return upstreamTlsPlan(settings, `sslmode=${settings.mode}`);
}

/** The plan of --mysql-upstream's TLS settings, described in its URL's words. */
export function mysqlUpstreamTlsPlan(settings: UpstreamTls): UpstreamTlsPlan | null {
  return upstreamTlsPlan(settings, `ssl-mode=${MYSQL_SSL_MODES[settings.mode]}`);
}

function isIpAddress(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}

/** Words for a failed upstream handshake: Node's messages already name the certificate problem. */
export function tlsFailure(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code !== undefined && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
}

/**
 * Starts TLS as the server on `socket`. `already` holds bytes of the client's handshake read
 * before the switch: they go first, through a stream wrapper (then the session must hand every
 * later raw read to `feed`); without them the TLS layer takes the socket's handle over directly.
 */
export function serverTls(socket: net.Socket, context: tls.SecureContext, already: Buffer | null, alpn: string[] | undefined):
  { tls: tls.TLSSocket; feed: ((chunk: Buffer) => void) | null } {
  const options: tls.TLSSocketOptions = { isServer: true, secureContext: context, ...(alpn === undefined ? {} : { ALPNProtocols: alpn }) };
  if (already === null || already.length === 0) return { tls: new tls.TLSSocket(socket, options), feed: null };
  const raw = new Duplex({
    read: () => socket.resume(),
    write: (chunk: Buffer, _enc, done) => {
      socket.write(chunk, done as (err?: Error | null) => void);
    },
    final: (done) => {
      socket.end();
      done();
    },
    destroy: (err, done) => {
      socket.destroy();
      done(err);
    },
  });
  raw.push(already);
  socket.once('end', () => raw.push(null));
  socket.once('close', () => raw.destroy());
  const feed = (chunk: Buffer): void => {
    // The read buffer is reused after this returns.
    if (!raw.push(Buffer.from(chunk))) socket.pause();
  };
  return { tls: new tls.TLSSocket(raw as unknown as net.Socket, options), feed };
}
