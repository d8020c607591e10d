// A raw MySQL wire-protocol client for end-to-end tests: it sends exactly the packets a test builds
// (commands, or malformed bytes) and returns what comes back packet by packet, raw, so a test can
// compare the bytes that reach a client through the proxy with those the server sends directly.
// It logs in with an empty password (mysql_native_password), the local MariaDB's root setup.
import net from 'node:net';
import { deflateSync, inflateSync } from 'node:zlib';

export const DEFAULT_TIMEOUT_MS = 5000;

/** Client capabilities of a plain 4.1 client without TLS or compression. */
export const CLIENT = {
  LONG_PASSWORD: 0x1,
  CONNECT_WITH_DB: 0x8,
  COMPRESS: 0x20,
  LOCAL_FILES: 0x80,
  PROTOCOL_41: 0x200,
  SSL: 0x800,
  TRANSACTIONS: 0x2000,
  SECURE_CONNECTION: 0x8000,
  MULTI_STATEMENTS: 0x10000,
  MULTI_RESULTS: 0x20000,
  PS_MULTI_RESULTS: 0x40000,
  PLUGIN_AUTH: 0x80000,
  SESSION_TRACK: 0x800000,
  DEPRECATE_EOF: 0x1000000,
} as const;

export const BASE_CAPABILITIES = CLIENT.LONG_PASSWORD | CLIENT.PROTOCOL_41 | CLIENT.TRANSACTIONS | CLIENT.SECURE_CONNECTION
  | CLIENT.MULTI_STATEMENTS | CLIENT.MULTI_RESULTS | CLIENT.PS_MULTI_RESULTS | CLIENT.PLUGIN_AUTH;

export interface Packet {
  seq: number;
  payload: Buffer;
}

export interface CompressedPacket {
  seq: number;
  /** The payload's length on the wire. */
  wireLength: number;
  /** The header's length before compression; 0: the payload was sent uncompressed. */
  inflatedLength: number;
  /** The plain bytes it carries. */
  plain: Buffer;
}

/** One compressed packet (7-byte header) carrying `plain`, deflated or as it is. */
export function compressedPacket(plain: Buffer, seq: number, deflate: boolean): Buffer {
  const payload = deflate ? deflateSync(plain) : plain;
  const header = Buffer.alloc(7);
  header.writeUIntLE(payload.length, 0, 3);
  header[3] = seq;
  header.writeUIntLE(deflate ? plain.length : 0, 4, 3);
  return Buffer.concat([header, payload]);
}

export class RawMySqlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RawMySqlError';
  }
}

export interface LoginOptions {
  user?: string;
  database?: string;
  capabilities?: number;
  /** MariaDB's extended capabilities (bytes 28-31), read by MariaDB only when LONG_PASSWORD is clear. */
  mariaDbCapabilities?: number;
}

/** MariaDB extended capability: COM_STMT_BULK_EXECUTE (array binding). */
export const MARIADB_CLIENT_STMT_BULK_OPERATIONS = 0x4;

export function packet(payload: Buffer, seq: number, declaredLength = payload.length): Buffer {
  const header = Buffer.alloc(4);
  header.writeUIntLE(declaredLength, 0, 3);
  header[3] = seq;
  return Buffer.concat([header, payload]);
}

/** A command packet (sequence id 0): the command byte and its argument. */
export function command(code: number, arg: Buffer | string = Buffer.alloc(0)): Buffer {
  return packet(Buffer.concat([Buffer.from([code]), typeof arg === 'string' ? Buffer.from(arg) : arg]), 0);
}

/** The payload of a HandshakeResponse41 with an empty password. */
export function handshakeResponse(opts: LoginOptions = {}): Buffer {
  let caps = opts.capabilities ?? BASE_CAPABILITIES;
  if (opts.database !== undefined) caps |= CLIENT.CONNECT_WITH_DB;
  const fixed = Buffer.alloc(32);
  fixed.writeUInt32LE(caps >>> 0, 0);
  fixed.writeUInt32LE(1 << 24, 4);
  fixed[8] = 45; // utf8mb4_general_ci
  if (opts.mariaDbCapabilities !== undefined) fixed.writeUInt32LE(opts.mariaDbCapabilities >>> 0, 28);
  return Buffer.concat([
    fixed,
    Buffer.from((opts.user ?? 'root') + '\0'),
    Buffer.from([0]), // empty auth response
    opts.database !== undefined ? Buffer.from(opts.database + '\0') : Buffer.alloc(0),
    Buffer.from('mysql_native_password\0'),
  ]);
}

/** The 32-byte SSLRequest payload. */
export function sslRequest(): Buffer {
  const fixed = Buffer.alloc(32);
  fixed.writeUInt32LE((BASE_CAPABILITIES | CLIENT.SSL) >>> 0, 0);
  fixed.writeUInt32LE(1 << 24, 4);
  fixed[8] = 45;
  return fixed;
}

export interface ErrInfo {
  code: number;
  sqlState: string;
  message: string;
}

export function decodeErr(payload: Buffer): ErrInfo {
  const hasState = payload[3] === 0x23;
  return {
    code: payload.readUInt16LE(1),
    sqlState: hasState ? payload.toString('latin1', 4, 9) : '',
    message: payload.toString('utf8', hasState ? 9 : 3),
  };
}

export function isErr(p: Packet): boolean {
  return p.payload[0] === 0xff;
}

/** An EOF packet (the end of column definitions or rows without CLIENT_DEPRECATE_EOF), or an ERR. */
export function isEofOrErr(p: Packet): boolean {
  return (p.payload[0] === 0xfe && p.payload.length < 9) || isErr(p);
}

export class RawMySql {
  private pending: Buffer = Buffer.alloc(0);
  private ended = false;
  private wake: (() => void) | null = null;
  /** The server handshake's fields a test looks at. */
  handshake: { connectionId: number; capabilities: number; serverVersion: string } | null = null;

  private constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
      this.notify();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.ended = true;
      this.notify();
    });
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawMySql> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host });
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawMySql(socket));
      });
      socket.once('error', reject);
    });
  }

  /** Connects and logs in; fails on an ERR. */
  static async login(port: number, opts: LoginOptions = {}): Promise<RawMySql> {
    const c = await RawMySql.connect(port);
    await c.readHandshake();
    c.send(packet(handshakeResponse(opts), 1));
    for (;;) {
      const p = await c.readPacket();
      if (p.payload[0] === 0x00) return c;
      if (isErr(p)) throw new RawMySqlError(`login refused: ${decodeErr(p.payload).message}`);
      // An auth switch (0xFE): answer with the empty password.
      c.send(packet(Buffer.alloc(0), p.seq + 1));
    }
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Reads the server's first packet and records the handshake (or returns the ERR it sent). */
  async readHandshake(): Promise<Packet> {
    const p = await this.readPacket();
    if (!isErr(p)) {
      const versionEnd = p.payload.indexOf(0, 1);
      const connectionId = p.payload.readUInt32LE(versionEnd + 1);
      const capsAt = versionEnd + 1 + 4 + 8 + 1;
      const capabilities = (p.payload.readUInt16LE(capsAt) | (p.payload.readUInt16LE(capsAt + 5) << 16)) >>> 0;
      this.handshake = { connectionId, capabilities, serverVersion: p.payload.toString('latin1', 1, versionEnd) };
    }
    return p;
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The next packet (its payload without header; a continued payload is not joined). */
  async readPacket(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Packet> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.pending.length >= 4) {
        const length = this.pending.readUIntLE(0, 3);
        if (this.pending.length >= 4 + length) {
          const p = { seq: this.pending[3]!, payload: Buffer.from(this.pending.subarray(4, 4 + length)) };
          this.pending = this.pending.subarray(4 + length);
          return p;
        }
      }
      if (this.ended) throw new RawMySqlError('connection closed while waiting for a packet');
      if (!(await this.waitForData(deadline - Date.now()))) throw new RawMySqlError(`no packet within ${timeoutMs} ms`);
    }
  }

  /** Packets up to and including the first for which `last` holds: a reply whose end the test knows. */
  async readPacketsUntil(last: (p: Packet) => boolean, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Packet[]> {
    const packets: Packet[] = [];
    for (;;) {
      const p = await this.readPacket(timeoutMs);
      packets.push(p);
      if (last(p)) return packets;
    }
  }

  /** What has arrived, after waiting up to `timeoutMs` for a first byte; empty when none came. */
  async readAvailable(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Buffer> {
    if (this.pending.length === 0 && !this.ended) await this.waitForData(timeoutMs);
    const all = this.pending;
    this.pending = Buffer.alloc(0);
    return all;
  }

  /**
   * The packets of a text result set up to its second EOF (for a client without
   * CLIENT_DEPRECATE_EOF, as login() is by default), or up to an ERR.
   */
  async readResultSet(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Packet[]> {
    const deadline = Date.now() + timeoutMs;
    const packets: Packet[] = [];
    let eofs = 0;
    while (eofs < 2) {
      const p = await this.readPacket(Math.max(1, deadline - Date.now()));
      packets.push(p);
      if (isErr(p)) return packets;
      if (p.payload[0] === 0xfe && p.payload.length < 9) eofs++;
    }
    return packets;
  }

  /**
   * The next compressed packet (CLIENT_COMPRESS, after the login): its header's fields and its
   * payload as sent and inflated.
   */
  async readCompressedPacket(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<CompressedPacket> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.pending.length >= 7) {
        const wireLength = this.pending.readUIntLE(0, 3);
        if (this.pending.length >= 7 + wireLength) {
          const inflatedLength = this.pending.readUIntLE(4, 3);
          const payload = Buffer.from(this.pending.subarray(7, 7 + wireLength));
          const seq = this.pending[3]!;
          this.pending = this.pending.subarray(7 + wireLength);
          return { seq, wireLength, inflatedLength, plain: inflatedLength === 0 ? payload : inflateSync(payload) };
        }
      }
      if (this.ended) throw new RawMySqlError('connection closed while waiting for a compressed packet');
      if (!(await this.waitForData(deadline - Date.now()))) throw new RawMySqlError(`no compressed packet within ${timeoutMs} ms`);
    }
  }

  /**
   * Every byte that arrives until nothing more comes for `quietMs`. Only for showing that nothing
   * (more) comes: a reply slower than `quietMs`, as on a loaded machine, would be cut short.
   */
  async readQuiet(quietMs = 150, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    let seen = -1;
    while (seen !== this.pending.length && Date.now() < deadline && !this.ended) {
      seen = this.pending.length;
      await this.waitForData(quietMs);
    }
    const all = this.pending;
    this.pending = Buffer.alloc(0);
    return all;
  }

  /** Packets until the peer closes (or the timeout): what a refused connection receives. */
  async readUntilClosed(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Packet[]> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (!(await this.waitForData(deadline - Date.now()))) throw new RawMySqlError(`not closed within ${timeoutMs} ms`);
    }
    const packets: Packet[] = [];
    while (this.pending.length >= 4) {
      const length = this.pending.readUIntLE(0, 3);
      if (this.pending.length < 4 + length) break;
      packets.push({ seq: this.pending[3]!, payload: Buffer.from(this.pending.subarray(4, 4 + length)) });
      this.pending = this.pending.subarray(4 + length);
    }
    return packets;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private waitForData(ms: number): Promise<boolean> {
    if (ms <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = null;
        resolve(false);
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve(true);
      };
    });
  }

  private notify(): void {
    this.wake?.();
  }
}
