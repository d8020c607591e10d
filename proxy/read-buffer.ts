// Sockets that read into one reused buffer (net's `onread`) instead of a new Buffer per read and
// the Readable stream machinery: on this 2-core machine that halves the proxy's user-space CPU per
// relayed message (measured: ~9 µs -> ~5 µs per pgbench transaction). The price is discipline:
// a chunk handed to `onBytes` is only valid until the callback returns. Whoever keeps a view of it
// longer must copy it, and a write that did not go out at once (`writableLength > 0`) keeps a view,
// so the owner then calls `retain()` and the next read goes to a fresh buffer.
import net from 'node:net';

const READ_BUFFER_BYTES = 16 * 1024;

export class ReadBuffer {
  private buf: Buffer | null = null;

  constructor(private readonly onBytes: (chunk: Buffer) => void) {}

  /** Node asks for the buffer of the next read before every read. */
  readonly next = (): Buffer => (this.buf ??= Buffer.allocUnsafeSlow(READ_BUFFER_BYTES));

  readonly callback = (n: number, buf: Buffer): boolean => {
    this.onBytes(buf.subarray(0, n));
    return true;
  };

  /** The current buffer is still referenced (a queued write): read the next bytes elsewhere. */
  retain(): void {
    this.buf = null;
  }

  get onread(): net.OnReadOpts {
    return { buffer: this.next, callback: this.callback };
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
