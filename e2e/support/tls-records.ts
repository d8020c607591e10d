// A client over TLS (after PostgreSQL's SSLRequest, or at once) that also sees the encrypted side: it counts
// the TLS records the server sends, so a test can say how many records (hence TLS writes) a reply
// took. The TLS layer reads the socket through a Duplex that tees every raw chunk to the counter.
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
const RECORD_HEADER_BYTES = 5;
const TIMEOUT_MS = 10_000;

export class RecordingTlsClient {
  /** Complete TLS records received so far (every content type). */
  records = 0;
  private raw = Buffer.alloc(0);
  private plain = Buffer.alloc(0);
  private wake: (() => void) | null = null;

  private constructor(private readonly secure: tls.TLSSocket) {
    secure.on('data', (d: Buffer) => {
      this.plain = Buffer.concat([this.plain, d]);
      this.wake?.();
    });
    secure.on('error', () => undefined);
  }

  /** `sslRequest`: ask for TLS as a PostgreSQL client does first (default). */
  static async connect(port: number, ca: Buffer, sslRequest = true): Promise<RecordingTlsClient> {
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    if (sslRequest) {
      socket.write(SSL_REQUEST);
      const answer = await new Promise<Buffer>((resolve) => socket.once('data', resolve));
      if (answer.length !== 1 || answer[0] !== 0x53) throw new Error(`SSLRequest answered ${answer.toString('latin1')}`);
    }
    let client: RecordingTlsClient | null = null;
    const tee = new Duplex({
      read: () => undefined,
      write: (chunk: Buffer, _enc, done) => void socket.write(chunk, done),
      final: (done) => {
        socket.end();
        done();
      },
    });
    socket.on('data', (d: Buffer) => {
      client?.count(d);
      tee.push(d);
    });
    socket.on('close', () => tee.push(null));
    const secure = tls.connect({ socket: tee as unknown as net.Socket, ca, servername: 'localhost' });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    client = new RecordingTlsClient(secure);
    return client;
  }

  private count(chunk: Buffer): void {
    this.raw = Buffer.concat([this.raw, chunk]);
    while (this.raw.length >= RECORD_HEADER_BYTES) {
      const size = RECORD_HEADER_BYTES + this.raw.readUInt16BE(3);
      if (this.raw.length < size) break;
      this.records++;
      this.raw = this.raw.subarray(size);
    }
  }

  send(...messages: Buffer[]): void {
    this.secure.write(Buffer.concat(messages));
  }

  /** The backend messages (code and body) up to and including the `n`th ReadyForQuery from now. */
  async untilReady(n = 1): Promise<{ code: string; body: Buffer }[]> {
    const out: { code: string; body: Buffer }[] = [];
    while (n > 0) {
      await this.waitFor(() => this.plain.length >= 5 && this.plain.length >= 1 + this.plain.readUInt32BE(1), () => out.map((m) => m.code).join(''));
      const end = 1 + this.plain.readUInt32BE(1);
      const code = String.fromCharCode(this.plain[0]!);
      out.push({ code, body: this.plain.subarray(5, end) });
      this.plain = this.plain.subarray(end);
      if (code === 'Z') n--;
    }
    return out;
  }

  /** The next `n` decrypted bytes. */
  async read(n: number): Promise<Buffer> {
    await this.waitFor(() => this.plain.length >= n, () => `${this.plain.length} of ${n} bytes`);
    const bytes = this.plain.subarray(0, n);
    this.plain = this.plain.subarray(n);
    return bytes;
  }

  private async waitFor(ready: () => boolean, got: () => string): Promise<void> {
    const deadline = Date.now() + TIMEOUT_MS;
    while (!ready()) {
      if (Date.now() > deadline) throw new Error(`not within ${TIMEOUT_MS} ms; got ${got()}`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
    }
  }

  close(): void {
    this.secure.destroy();
  }
}
