// Sockets that read into one reused buffer (net's `onread`) instead of a new Buffer per read and
// the Readable stream machinery: on this 2-core machine that halves the proxy's user-space CPU per
// relayed message (measured: ~9 µs -> ~5 µs per pgbench transaction). The price is discipline:
// a chunk handed to `onBytes` is only valid until the callback returns. Whoever keeps a view of it
// longer must copy it, and a write that did not go out at once (`writableLength > 0`) keeps a view,
// so the owner then calls `retain()` and the next read goes to a fresh buffer.
import net from 'node:net';
import type tls from 'node:tls';

const READ_BUFFER_BYTES = 16 * 1024;

export class ReadBuffer {
  private buf: Buffer | null = null;
  /** The buffer the socket's handle reads into (the one `next` last handed out). */
  private given: Buffer | null = null;

  constructor(private readonly onBytes: (chunk: Buffer) => void) {}

  /** The buffer the next read goes to, handed to the caller as the handle's from now on. */
  first(): Buffer {
    this.given = this.buf ??= Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
    return this.given;
  }

  /**
   * Node asks for the buffer of the next read after every read. Undefined while it is the one the
   * handle already has: Node then keeps it (net's onStreamRead takes only a Uint8Array, the handle
   * reads its address only from what it is given), instead of re-reading its address and length
   * in C++ on every read (~370 instructions per read, measured with callgrind).
   */
  readonly next = (): Buffer | undefined => {
    const buf = (this.buf ??= Buffer.allocUnsafeSlow(READ_BUFFER_BYTES));
    if (buf === this.given) return undefined;
    this.given = buf;
    return buf;
  };

  readonly callback = (n: number, buf: Buffer): boolean => {
    this.onBytes(buf.subarray(0, n));
    return true;
  };

  /** The current buffer is still referenced (a queued write): read the next bytes elsewhere. */
  retain(): void {
    this.buf = null;
  }

  get onread(): net.OnReadOpts {
    // Node's first call (when the socket gets its handle) finds `given` unset: it gets the buffer.
    return { buffer: this.next as () => Buffer, callback: this.callback };
  }
}

/**
 * Moves an accepted socket (from a server created with `pauseOnConnect`) onto a new net.Socket
 * that reads through `reads`. Node has no public way to give a server's sockets `onread`; this
 * uses the constructor's `handle` option and keeps the server's connection count right
 * (`_server`). e2e tests pin it: if a Node upgrade breaks it, every relay test fails.
 */
export function adoptAccepted(accepted: net.Socket, reads: ReadBuffer): net.Socket {
  const internal = accepted as unknown as { _handle: unknown; _server: unknown };
  const socket = new net.Socket({ handle: internal._handle, onread: reads.onread } as net.SocketConstructorOpts);
  (socket as unknown as { _server: unknown })._server = internal._server;
  internal._handle = null;
  return socket;
}

/**
 * net.Socket's private keys for `onread`, read off a socket made with it: Node gives no public
 * way to read a TLS socket into a reused buffer (TLSSocket drops `onread` when it wraps a socket),
 * though its handle supports it (TLSWrap hands decrypted bytes out through the same stream
 * listener as a TCP handle). Null if a Node upgrade renamed them: then TLS reads take the 'data'
 * path as before.
 */
const ONREAD_KEYS = ((): { buffer: symbol; callback: symbol; generator: symbol } | null => {
  const probe = new net.Socket({ onread: { buffer: () => Buffer.alloc(0), callback: () => true } } as net.SocketConstructorOpts);
  const key = (name: string): symbol | undefined => Object.getOwnPropertySymbols(probe).find((s) => s.description === name);
  const [buffer, callback, generator] = [key('kBuffer'), key('kBufferCb'), key('kBufferGen')];
  probe.destroy();
  return buffer !== undefined && callback !== undefined && generator !== undefined ? { buffer, callback, generator } : null;
})();

/**
 * Makes the decrypted bytes of `secure` (a TLSSocket over a socket with a native handle) arrive
 * through `reads` as a plain socket's do, instead of a new Buffer and a 'data' event per read:
 * on a hit over TLS that is a few µs of the proxy's CPU per request. Before its first read.
 * False when it cannot (no native handle, Node internals changed): listen to 'data' then.
 */
export function readTlsInto(secure: tls.TLSSocket, reads: ReadBuffer): boolean {
  const handle = (secure as unknown as { _handle: { useUserBuffer?: (buf: Buffer) => void } | null })._handle;
  if (ONREAD_KEYS === null || handle === null || typeof handle.useUserBuffer !== 'function') return false;
  const socket = secure as unknown as Record<symbol, unknown>;
  const first = reads.first();
  socket[ONREAD_KEYS.generator] = reads.next;
  socket[ONREAD_KEYS.callback] = reads.callback;
  socket[ONREAD_KEYS.buffer] = first;
  handle.useUserBuffer(first);
  return true;
}
