// A raw PostgreSQL wire-protocol client for end-to-end tests. It sends exactly the frontend messages a
// test builds (pg-protocol's `serialize`, or hand-made bytes for malformed input) and returns every
// backend message in arrival order, each with its raw frame, so a test can compare the complete
// message flow through the proxy with the flow of the same work done directly against PostgreSQL.
import net from 'node:net';
import { serialize } from 'pg-protocol';
import { Parser } from 'pg-protocol/dist/parser.js';
import type { BackendMessage } from 'pg-protocol/dist/messages.js';

export { serialize };

export const DEFAULT_TIMEOUT_MS = 5000;

/** One backend message: its type letter, the whole frame as sent, and pg-protocol's decoding of it. */
export interface Received {
  code: string;
  raw: Buffer;
  msg: BackendMessage;
}

export class RawTimeoutError extends Error {
  constructor(what: string, timeoutMs: number, history: readonly string[]) {
    super(`timed out after ${timeoutMs} ms waiting for ${what}; received so far: [${history.join(' | ')}]`);
    this.name = 'RawTimeoutError';
  }
}

export class RawClosedError extends Error {
  constructor(what: string, history: readonly string[]) {
    super(`connection closed while waiting for ${what}; received so far: [${history.join(' | ')}]`);
    this.name = 'RawClosedError';
  }
}

const HEADER_BYTES = 5;
const HISTORY_KEPT = 40;

export class RawClient {
  private pending: Buffer = Buffer.alloc(0);
  private ended = false;
  /** The one pending reader's wake-up; a test reads a connection from one place at a time. */
  private wake: (() => void) | null = null;
  private readonly parser = new Parser();
  /** Summaries of the latest messages, for error messages only. */
  private readonly history: string[] = [];
  /** Set from BackendKeyData during startup. */
  backendKey: { processID: number; secretKey: number } | null = null;
  /** ParameterStatus values seen so far (startup and later). */
  readonly parameters = new Map<string, string>();

  private constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
      this.notify();
    });
    // A reset by the peer is an ordinary way for a test connection to end; the test looks at `closed`.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.ended = true;
      this.notify();
    });
  }

  static connect(port: number, host = '127.0.0.1', timeoutMs = DEFAULT_TIMEOUT_MS): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${host}:${port} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', reject);
        resolve(new RawClient(socket));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /** Connects and completes a trust-auth startup (user postgres, database test unless overridden). */
  static async login(port: number, params: Record<string, string> = {}, host = '127.0.0.1'): Promise<RawClient> {
    const client = await RawClient.connect(port, host);
    await client.startup(params);
    return client;
  }

  get closed(): boolean {
    return this.ended;
  }

  /** Writes all messages with one socket write, so a pipeline reaches the peer together. */
  send(...messages: Buffer[]): void {
    this.socket.write(messages.length === 1 ? messages[0]! : Buffer.concat(messages));
  }

  async startup(params: Record<string, string> = {}, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Received[]> {
    this.send(serialize.startup({ user: 'postgres', database: 'test', ...params }));
    return this.readUntilReadyForQuery(timeoutMs);
  }

  /** A simple Query; returns everything up to and including its ReadyForQuery. */
  async query(sql: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Received[]> {
    this.send(serialize.query(sql));
    return this.readUntilReadyForQuery(timeoutMs);
  }

  /** Raw bytes that are not a framed message, e.g. the single-byte answer to SSLRequest. */
  async readBytes(n: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Buffer> {
    await this.waitFor(() => this.pending.length >= n, `${n} raw byte(s)`, timeoutMs);
    const bytes = Buffer.from(this.pending.subarray(0, n));
    this.pending = this.pending.subarray(n);
    return bytes;
  }

  async next(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Received> {
    await this.waitFor(() => this.frameLength() !== null, 'a backend message', timeoutMs);
    const length = this.frameLength()!;
    // Copy the frame: pg-protocol's decoded views (e.g. CopyData chunks) point into the buffer it parsed.
    const raw = Buffer.from(this.pending.subarray(0, length));
    this.pending = this.pending.subarray(length);
    let decoded: BackendMessage | null = null;
    this.parser.parse(raw, (msg) => {
      decoded = msg;
    });
    const received: Received = { code: String.fromCharCode(raw[0]!), raw, msg: decoded! };
    this.remember(received);
    return received;
  }

  /** Reads messages up to and including the first one that satisfies `done`. */
  async readUntil(done: (m: Received) => boolean, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs;
    const out: Received[] = [];
    for (;;) {
      const m = await this.next(Math.max(1, deadline - Date.now()));
      out.push(m);
      if (done(m)) return out;
    }
  }

  readUntilReadyForQuery(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Received[]> {
    return this.readUntil((m) => m.code === 'Z', timeoutMs);
  }

  /** Reads exactly `codes.length` messages and fails unless their type letters are `codes` (e.g. '12DCZ'). */
  async expectMessages(codes: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs;
    const out: Received[] = [];
    for (const expected of codes) {
      const m = await this.next(Math.max(1, deadline - Date.now()));
      out.push(m);
      if (m.code !== expected) {
        throw new Error(`expected message types "${codes}", got "${out.map((r) => r.code).join('')}": ` +
          out.map(describe).join(' | '));
      }
    }
    return out;
  }

  /** Fails if any complete message or any byte arrives within `ms`. */
  async expectSilence(ms: number): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    if (this.pending.length > 0) {
      throw new Error(`expected no message within ${ms} ms, but ${this.pending.length} byte(s) arrived`);
    }
  }

  /**
   * Reads whatever messages still arrive until the peer closes the connection; fails if it stays
   * open longer than `timeoutMs` or leaves a partial message behind.
   */
  async readUntilClosed(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs;
    const out: Received[] = [];
    for (;;) {
      await this.waitFor(() => this.ended || this.frameLength() !== null, 'the connection to close',
        Math.max(1, deadline - Date.now()));
      if (this.frameLength() !== null) {
        out.push(await this.next());
        continue;
      }
      if (this.pending.length > 0) {
        throw new Error(`connection closed with a partial message of ${this.pending.length} byte(s) pending`);
      }
      return out;
    }
  }

  /** Sends Terminate and waits for the peer to close. */
  async terminate(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Received[]> {
    this.send(serialize.end());
    return this.readUntilClosed(timeoutMs);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private frameLength(): number | null {
    if (this.pending.length < HEADER_BYTES) return null;
    const length = 1 + this.pending.readUInt32BE(1);
    return this.pending.length >= length ? length : null;
  }

  private remember(m: Received): void {
    this.history.push(describe(m));
    if (this.history.length > HISTORY_KEPT) this.history.shift();
    if (m.code === 'K') {
      const k = m.msg as unknown as { processID: number; secretKey: number };
      this.backendKey = { processID: k.processID, secretKey: k.secretKey };
    } else if (m.code === 'S') {
      const s = m.msg as unknown as { parameterName: string; parameterValue: string };
      this.parameters.set(s.parameterName, s.parameterValue);
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private async waitFor(ready: () => boolean, what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (this.ended) throw new RawClosedError(what, this.history);
      const left = deadline - Date.now();
      if (left <= 0) throw new RawTimeoutError(what, timeoutMs, this.history);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}

/** A StartupMessage with any protocol version, for testing versions the server does not speak. */
export function startupMessage(params: Record<string, string>, major = 3, minor = 0): Buffer {
  const parts: Buffer[] = [Buffer.alloc(8)];
  for (const [k, v] of Object.entries(params)) parts.push(Buffer.from(`${k}\0${v}\0`));
  parts.push(Buffer.from([0]));
  const msg = Buffer.concat(parts);
  msg.writeInt32BE(msg.length, 0);
  msg.writeUInt16BE(major, 4);
  msg.writeUInt16BE(minor, 6);
  return msg;
}

const SSL_REQUEST_CODE = 80877103;
const GSSENC_REQUEST_CODE = 80877104;

export function sslRequest(): Buffer {
  return specialRequest(SSL_REQUEST_CODE);
}

export function gssEncRequest(): Buffer {
  return specialRequest(GSSENC_REQUEST_CODE);
}

function specialRequest(code: number): Buffer {
  const msg = Buffer.alloc(8);
  msg.writeInt32BE(8, 0);
  msg.writeInt32BE(code, 4);
  return msg;
}

/** A frontend message with an arbitrary type byte and body; `length` overrides the length field. */
export function frontendMessage(type: string, body: Buffer, length = body.length + 4): Buffer {
  const msg = Buffer.alloc(HEADER_BYTES + body.length);
  msg.write(type, 0, 'latin1');
  msg.writeUInt32BE(length >>> 0, 1);
  body.copy(msg, HEADER_BYTES);
  return msg;
}

/**
 * Sends a CancelRequest (length 16, code 80877102, pid, secret) on a new connection, as libpq does,
 * and waits until the peer closes that connection.
 */
export async function sendCancelRequest(port: number, processID: number, secretKey: number,
  host = '127.0.0.1', timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
  const client = await RawClient.connect(port, host, timeoutMs);
  client.send(serialize.cancel(processID, secretKey));
  const answer = await client.readUntilClosed(timeoutMs);
  if (answer.length > 0) throw new Error(`CancelRequest got an answer: ${answer.map(describe).join(' | ')}`);
}

const NOTICE_FIELDS = ['severity', 'code', 'message', 'detail', 'hint', 'position', 'internalPosition',
  'internalQuery', 'where', 'schema', 'table', 'column', 'dataType', 'constraint', 'file', 'line', 'routine'] as const;

/** Fields of an ErrorResponse or NoticeResponse that are present. */
export function noticeFields(m: Received): Record<string, string> {
  const fields: Record<string, string> = {};
  const msg = m.msg as unknown as Record<string, unknown>;
  for (const f of NOTICE_FIELDS) {
    if (typeof msg[f] === 'string') fields[f] = msg[f] as string;
  }
  return fields;
}

/** The first ErrorResponse among `messages`, as its fields; fails if there is none. */
export function errorOf(messages: readonly Received[]): Record<string, string> {
  const e = messages.find((m) => m.code === 'E');
  if (!e) throw new Error(`expected an ErrorResponse, got: ${messages.map(describe).join(' | ')}`);
  return noticeFields(e);
}

/**
 * A one-line summary holding every field that is not specific to one backend process: two runs of
 * the same work, one direct and one through the proxy, must produce equal summaries. BackendKeyData
 * and the sender's pid in NotificationResponse are left out for that reason.
 */
export function describe(m: Received): string {
  const msg = m.msg as unknown as Record<string, unknown>;
  switch (m.code) {
    case 'R': return `R ${msg.name as string}`;
    case 'S': return `S ${msg.parameterName as string}=${msg.parameterValue as string}`;
    case 'K': return 'K';
    case 'Z': return `Z ${msg.status as string}`;
    case 'C': return `C ${msg.text as string}`;
    case 'D': return `D ${JSON.stringify(msg.fields)}`;
    case 'T': {
      const fields = msg.fields as Array<Record<string, unknown>>;
      return 'T ' + fields.map((f) =>
        `${f.name as string}:${f.dataTypeID as number}/${f.dataTypeSize as number}/${f.dataTypeModifier as number}` +
        `/${f.format as string}@${f.tableID as number}.${f.columnID as number}`).join(',');
    }
    case 't': return `t ${JSON.stringify(msg.dataTypeIDs)}`;
    case 'E': case 'N': return `${m.code} ${JSON.stringify(noticeFields(m))}`;
    case 'A': return `A ${msg.channel as string} ${JSON.stringify(msg.payload)}`;
    case 'd': return `d ${JSON.stringify((msg.chunk as Buffer).toString('latin1'))}`;
    case 'G': case 'H': case 'W':
      return `${m.code} binary=${String(msg.binary)} cols=${JSON.stringify(msg.columnTypes)}`;
    case '1': case '2': case '3': case 'n': case 's': case 'I': case 'c':
      return m.code;
    default: return `${m.code} ${m.raw.subarray(HEADER_BYTES).toString('hex')}`;
  }
}

export function describeAll(messages: readonly Received[]): string[] {
  return messages.map(describe);
}

/** Type letters in order, runs of ten or more written as `D{20000}` so failures stay readable. */
export function codes(messages: readonly Received[]): string {
  return messages.map((m) => m.code).join('').replace(/(.)\1{9,}/g, (run, code: string) => `${code}{${run.length}}`);
}

/** Frames whose bytes are specific to one backend process: BackendKeyData, and a notifier's pid. */
const PROCESS_SPECIFIC = new Set(['K', 'A']);

/** Every frame's bytes in hex, except those of process-specific frames, for comparing two runs. */
export function rawFrames(messages: readonly Received[]): string[] {
  return messages.map((m) => (PROCESS_SPECIFIC.has(m.code) ? m.code : m.raw.toString('hex')));
}

export type Scenario = (c: RawClient) => Promise<Received[]>;

/** Logs in on `port`, runs `scenario`, closes the connection and returns what the scenario read. */
export async function runScenario(port: number, scenario: Scenario,
  params: Record<string, string> = {}): Promise<Received[]> {
  const client = await RawClient.login(port, params);
  try {
    return await scenario(client);
  } finally {
    client.destroy();
  }
}
