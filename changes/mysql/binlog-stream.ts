// One MySQL/MariaDB change stream: a replica's binlog dump (COM_BINLOG_DUMP on a mysql2
// connection, binlog-dump.ts) decoded by binlog-events.ts and binlog-tracker.ts, plus a control
// connection that checks the server at start and probes its binlog position for the lag.
//
// Start: log_bin must be ON and binlog_format ROW (the rows a statement changed, by table; in
// STATEMENT or MIXED format writes arrive as SQL text, which would drop everything each time). On
// MariaDB the dump starts from a GTID position (@slave_connect_state): the one the previous stream
// of this sidecache reached, so a reconnect misses nothing, else the server's current
// @@gtid_binlog_pos. MariaDB has no COM_BINLOG_DUMP_GTID; MySQL's GTID sets are not followed here,
// MySQL starts from its current file and position. `started` resolves at the first event the
// server sends (the artificial Rotate): the dump was accepted and everything after the start
// position will follow.
//
// Why not @vlasky/zongji (0.9 follows MariaDB GTIDs well): it decodes every row into JS values and
// fetches each table's columns from INFORMATION_SCHEMA on first sight, pausing the stream; for
// invalidation a rows event only needs its table id.
import mysql from 'mysql2';
import type { CdcUrl } from '../../config/settings.js';
import type { UpstreamTlsPlan } from '../../proxy/tls.js';
import { startWithin, type ChangeSink, type ChangeStream } from '../follower.js';
import { BinlogDumpCommand } from './binlog-dump.js';
import { decodeBinlogPacket, type BinlogFormat } from './binlog-events.js';
import { BinlogTracker, type BinlogInvalidation } from './binlog-tracker.js';

export interface BinlogStreamOptions {
  source: CdcUrl;
  /** The mysql-upstream URL's TLS settings (ssl-mode, ssl-ca, ssl-cert/ssl-key), as the relay uses them; null: cleartext. */
  tls: UpstreamTlsPlan | null;
  serverId: number;
  /** The GTID position a previous stream reached ('' for none); updated as transactions commit. */
  kept: { gtid: string };
  startTimeoutMs?: number;
  /** The server sends a heartbeat when idle this long; silence for SILENT_HEARTBEATS of them means dead. */
  heartbeatMs?: number;
  /** How often the binlog position is probed for the lag. */
  lagProbeMs?: number;
}

export class BinlogStreamError extends Error {
  override name = 'BinlogStreamError';
}

const DEFAULT_START_TIMEOUT_MS = 30_000;
const DEFAULT_HEARTBEAT_MS = 1000;
const DEFAULT_LAG_PROBE_MS = 500;
const SILENT_HEARTBEATS = 5;
/** The server's answer when a dump asks for a GTID or file position it no longer has. */
const ER_MASTER_FATAL_ERROR_READING_BINLOG = 1236;

export function openBinlogStream(options: BinlogStreamOptions, sink: ChangeSink<BinlogInvalidation>): ChangeStream {
  return new BinlogStream(options, sink);
}

/** A binlog position: comparable within one server (file names sort by their sequence number). */
interface FilePosition {
  file: string;
  pos: number;
}

/** Resolves at the end of the connection's handshake: null once logged in, else the error. */
function loggedIn(c: mysql.Connection): Promise<Error | null> {
  return new Promise((resolve) => {
    const onError = (err: Error): void => {
      c.off('connect', onConnect);
      // A failed connection may still report; nothing listens to it any more.
      c.on('error', () => undefined);
      c.destroy();
      resolve(err);
    };
    const onConnect = (): void => {
      c.off('error', onError);
      resolve(null);
    };
    c.once('error', onError);
    c.once('connect', onConnect);
  });
}

function atOrAfter(a: FilePosition, b: FilePosition): boolean {
  return a.file > b.file || (a.file === b.file && a.pos >= b.pos);
}

class BinlogStream implements ChangeStream {
  readonly started: Promise<void>;
  readonly ended: Promise<Error>;
  private end!: (why: Error) => void;
  private over = false;
  /** Opened by start(). */
  private control: mysql.Connection | null = null;
  /** ssl-mode=PREFERRED and the server has no TLS: the dump connection goes in cleartext too. */
  private cleartext = false;
  private dump: mysql.Connection | null = null;
  private tracker: BinlogTracker;
  private format: BinlogFormat = { checksum: true, tableIdBytes: 6 };
  private at: FilePosition = { file: '', pos: 0 };
  private lastPacketAt = Date.now();
  private timers: NodeJS.Timeout[] = [];
  /** The lag probe in flight: the position the server reported, and when it was asked. */
  private probe: { target: FilePosition; askedAt: number } | null = null;
  private probing = false;
  private firstEvent: (() => void) | null = null;
  /** lower_case_table_names is not 0: table-level invalidation cannot match clients' spelling. */
  private caseFolded = false;

  constructor(private readonly options: BinlogStreamOptions, private readonly sink: ChangeSink<BinlogInvalidation>) {
    this.ended = new Promise((resolve) => {
      this.end = resolve;
    });
    this.tracker = new BinlogTracker(options.kept.gtid);
    const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.started = startWithin(this.start(), startTimeoutMs, () => new BinlogStreamError(`starting the binlog stream took longer than ${startTimeoutMs} ms`));
    this.started.catch((err: Error) => this.finish(err));
  }

  position(): string | null {
    if (this.at.file === '') return null;
    const gtid = this.tracker.gtidPosition;
    return `${this.at.file}:${this.at.pos}${gtid === '' ? '' : `, gtid ${gtid}`}`;
  }

  close(): void {
    this.finish(new Error('closed'));
  }

  /**
   * A logged-in connection with the upstream's TLS settings; under ssl-mode=PREFERRED a server
   * without TLS is used in cleartext, as the relay does. Its errors end the stream from then on.
   */
  private async open(): Promise<mysql.Connection> {
    const tls = this.options.tls;
    let c = this.connect(tls === null || this.cleartext ? null : tls);
    let failed = await loggedIn(c);
    if (failed !== null && tls?.optional === true && (failed as { code?: string }).code === 'HANDSHAKE_NO_SSL_SUPPORT') {
      this.cleartext = true;
      c = this.connect(null);
      failed = await loggedIn(c);
    }
    if (failed !== null) throw this.explain(failed as mysql.QueryError);
    c.on('error', (err) => this.finish(this.explain(err)));
    c.on('end', () => this.finish(new Error('the server closed a binlog connection')));
    return c;
  }

  private connect(tls: UpstreamTlsPlan | null): mysql.Connection {
    const { source } = this.options;
    return mysql.createConnection({
      host: source.host,
      port: source.port,
      user: source.user,
      password: source.password ?? undefined,
      connectTimeout: this.options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
      enableKeepAlive: true,
      // mysql2 reads its own field for the host check (the plan's checkServerIdentity is node:tls's).
      ...(tls === null ? {} : { ssl: { ...tls.options(source.host), verifyIdentity: tls.mode === 'verify-full' } as mysql.SslOptions }),
    });
  }

  private finish(why: Error): void {
    if (this.over) return;
    this.over = true;
    for (const t of this.timers) clearInterval(t);
    this.control?.destroy();
    this.dump?.destroy();
    this.end(why);
  }

  private query<T>(c: mysql.Connection, sql: string): Promise<T[]> {
    return new Promise((resolve, reject) => {
      c.query(sql, (err, rows) => (err ? reject(this.explain(err)) : resolve(rows as T[])));
    });
  }

  private async start(): Promise<void> {
    const control = await this.open();
    if (this.over) {
      control.destroy();
      return;
    }
    this.control = control;
    const [{ version }] = await this.query<{ version: string }>(control, 'SELECT @@version AS version');
    const mariadb = /mariadb/i.test(version);
    const [server] = await this.query<{ log_bin: number; format: string; checksum: string; server_id: number; lctn: number }>(control,
      'SELECT @@global.log_bin AS log_bin, @@global.binlog_format AS format, @@global.binlog_checksum AS checksum, @@global.server_id AS server_id, '
        + '@@lower_case_table_names AS lctn');
    // With case-folded names the binlog spells a table in lower case and clients may not: their
    // entries' tags would not match, so every change drops everything there.
    this.caseFolded = Number(server!.lctn) !== 0;
    if (Number(server!.log_bin) !== 1) {
      throw new BinlogStreamError('the binary log is off (log_bin=OFF): start the server with --log-bin (log_bin in its config) and binlog_format=ROW; '
        + "on Amazon RDS turn on automated backups, which turns the binlog on, and keep it long enough: CALL mysql.rds_set_configuration('binlog retention hours', 24)");
    }
    if (String(server!.format).toUpperCase() !== 'ROW') {
      throw new BinlogStreamError(`binlog_format is ${server!.format}: the stream needs ROW (SET GLOBAL binlog_format = 'ROW' and binlog_format=ROW in the server's config; `
        + 'on Amazon RDS in the DB parameter group); writes in other formats arrive as SQL text');
    }
    if (Number(server!.server_id) === this.options.serverId) {
      throw new BinlogStreamError(`--mysql-cdc-server-id ${this.options.serverId} is the server's own server_id: choose another`);
    }
    this.format = { checksum: String(server!.checksum).toUpperCase() !== 'NONE', tableIdBytes: 6 };
    let start: FilePosition = { file: '', pos: 4 };
    let gtid = '';
    if (mariadb) {
      gtid = this.options.kept.gtid;
      if (gtid === '') [{ gtid }] = await this.query<{ gtid: string }>(control, 'SELECT @@global.gtid_binlog_pos AS gtid');
      this.tracker = new BinlogTracker(gtid);
    } else {
      start = (await this.masterStatus()) ?? start;
    }
    const dump = await this.open();
    if (this.over) {
      dump.destroy();
      return;
    }
    this.dump = dump;
    const heartbeatNs = BigInt(this.options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS) * 1_000_000n;
    await this.query(dump, 'SET @master_binlog_checksum = @@global.binlog_checksum');
    await this.query(dump, `SET @master_heartbeat_period = ${heartbeatNs}`);
    if (mariadb) {
      await this.query(dump, 'SET @mariadb_slave_capability = 4');
      await this.query(dump, `SET @slave_connect_state = ${dump.escape(gtid)}`);
    }
    const flowing = new Promise<void>((resolve) => {
      this.firstEvent = resolve;
    });
    (dump as unknown as { addCommand(cmd: BinlogDumpCommand): void }).addCommand(
      new BinlogDumpCommand({ serverId: this.options.serverId, file: start.file, position: start.pos }, (payload) => this.onPayload(payload)));
    await Promise.race([flowing, this.ended.then((why) => Promise.reject(why))]);
    const heartbeatMs = this.options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.timers.push(setInterval(() => {
      if (Date.now() - this.lastPacketAt > heartbeatMs * SILENT_HEARTBEATS) {
        this.finish(new Error(`no event or heartbeat from the server for ${Math.round((Date.now() - this.lastPacketAt) / 1000)} s: the connection is presumed dead`));
      }
    }, heartbeatMs));
    this.timers.push(setInterval(() => void this.probeLag(), this.options.lagProbeMs ?? DEFAULT_LAG_PROBE_MS));
    for (const t of this.timers) t.unref();
  }

  /** SHOW MASTER STATUS (SHOW BINARY LOG STATUS since MySQL 8.4): the end of the binlog now. */
  private async masterStatus(): Promise<FilePosition | null> {
    let rows: { File: string; Position: number }[];
    try {
      rows = await this.query(this.control!, 'SHOW MASTER STATUS');
    } catch {
      rows = await this.query(this.control!, 'SHOW BINARY LOG STATUS');
    }
    return rows[0] === undefined ? null : { file: rows[0].File, pos: Number(rows[0].Position) };
  }

  /** Returns false to end the dump command. */
  private onPayload(payload: Buffer): boolean {
    this.lastPacketAt = Date.now();
    if (this.over) return false;
    try {
      const packet = decodeBinlogPacket(payload, this.format);
      if (packet.kind === 'error') {
        if (packet.code === ER_MASTER_FATAL_ERROR_READING_BINLOG) this.options.kept.gtid = ''; // the next stream starts afresh
        const why = this.explain(Object.assign(new Error(`the server stopped the binlog stream: ${packet.code} ${packet.message}`), { errno: packet.code }));
        this.finish(packet.code === ER_MASTER_FATAL_ERROR_READING_BINLOG
          ? new BinlogStreamError(`${why.message} (the position is gone: the next stream starts from the current one)`) : why);
        return false;
      }
      if (packet.kind === 'eof') {
        this.finish(new Error('the server ended the binlog stream'));
        return false;
      }
      const e = packet.event;
      this.firstEvent?.();
      this.firstEvent = null;
      if (e.kind === 'rotate') this.at = { file: e.nextFile, pos: e.position };
      else if (e.header.logPos > 0) this.at = { file: this.at.file, pos: e.header.logPos };
      if (e.kind === 'format') this.format = { checksum: this.format.checksum, tableIdBytes: e.tableIdBytes };
      this.sink.decoded(1);
      const inv = this.tracker.apply(e);
      if (inv !== null) this.sink.invalidate(this.caseFolded && !inv.wide ? { tables: [], wide: true, catalogChanged: inv.catalogChanged } : inv);
      this.options.kept.gtid = this.tracker.gtidPosition;
      if (this.probe !== null && atOrAfter(this.at, this.probe.target)) this.probeReached();
      return true;
    } catch (err) {
      this.finish(new Error(`undecodable binlog event: ${(err as Error).message}`));
      return false;
    }
  }

  /**
   * The lag, measured: ask the server where its binlog ends, and time how long until the stream
   * has applied up to there. Every transaction committed before the question is at or before that
   * position, so this bounds their commit-to-invalidation lag from above.
   */
  private async probeLag(): Promise<void> {
    if (this.probing || this.over) return;
    this.probing = true;
    const askedAt = performance.now();
    try {
      const target = await this.masterStatus();
      if (target === null) return;
      this.probe = { target, askedAt };
      if (atOrAfter(this.at, target)) this.probeReached();
    } catch {
      // The control connection's own error handler ends the stream.
    } finally {
      this.probing = false;
    }
  }

  private probeReached(): void {
    this.sink.lag((performance.now() - this.probe!.askedAt) / 1000);
    this.probe = null;
  }

  /** What the server's refusal means for the operator (privileges, limits), without the password. */
  private explain(err: Error): Error {
    if (err instanceof BinlogStreamError) return err;
    const e = err as Error & { errno?: number; code?: string };
    const at = this.options.source.url;
    if (e.errno === 1227) return new BinlogStreamError(`${at}: ${e.message}: the --mysql-cdc user needs REPLICATION SLAVE and REPLICATION CLIENT (GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO ...)`);
    if (e.errno === 1040) return new BinlogStreamError(`${at}: ${e.message}: the server refuses more connections (max_connections)`);
    return new BinlogStreamError(`${at}: ${e.message}`);
  }
}
