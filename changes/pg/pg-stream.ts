// One PostgreSQL change stream: a logical replication connection (node-postgres with
// `replication: 'database'`) to one database, a TEMPORARY slot with the pgoutput plugin, and the
// decoding of what it sends. Temporary: the slot goes with the connection, so a sidecache that dies
// leaves no WAL retained on the server; the price is that a stream lost is a stream restarted from
// the server's current position (the follower drops the database's entries meanwhile).
//
// Start: check wal_level, make sure the publication exists (FOR ALL TABLES; created when missing and
// allowed), install the DDL event trigger (--pg-cdc-ddl on), create the slot, START_REPLICATION at
// its consistent point. `started` resolves at the server's CopyBothResponse: every transaction that
// commits after the consistent point will be delivered, and every one that committed before it is
// visible to any query sent from then on (docs/consistency.md, "caught up").
//
// Why not pg-logical-replication: it decodes every tuple into JS values (CPU per change that
// invalidation never needs), sends a status update per message, has no temporary slots or DDL
// messages; node-postgres is already the proxy's client and its replication connection does the
// protocol, so only the pgoutput decoder (pgoutput.ts) is ours.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { CdcUrl } from '../../config/settings.js';
import type { UpstreamTlsPlan } from '../../proxy/tls.js';
import { startWithin, type ChangeSink, type ChangeStream } from '../follower.js';
import { DDL_FUNCTION, DDL_INSTALL_SQL, DDL_SCHEMA, DDL_TRIGGERS, isCurrentFunction } from './ddl-trigger.js';
import { decodePgoutput, decodeReplicationMessage, formatLsn, parseLsn, standbyStatusUpdate } from './pgoutput.js';
import { PgoutputTracker, type PgInvalidation } from './pgoutput-tracker.js';

export interface PgStreamOptions {
  source: CdcUrl;
  /** The pg-upstream URL's TLS settings (sslmode, sslrootcert, sslcert/sslkey), as the relay uses them; null: cleartext. */
  tls: UpstreamTlsPlan | null;
  database: string;
  publication: string;
  /** Install the DDL event trigger and ask for logical decoding messages. */
  ddl: boolean;
  /** Bound on everything before changes flow. */
  startTimeoutMs?: number;
  /** How often the position is confirmed (and the server asked to answer, which proves the connection alive). */
  statusIntervalMs?: number;
}

/** The stream could not start; the message says what to change. */
export class PgStreamError extends Error {
  override name = 'PgStreamError';
}

const DEFAULT_START_TIMEOUT_MS = 30_000;
const DEFAULT_STATUS_INTERVAL_MS = 10_000;
/** No message for this many status intervals (each asks for an answer): the connection is dead. */
const SILENT_INTERVALS = 3;
/** Where logical decoding messages and streaming (large transactions sent while in progress) begin. */
const PROTOCOL_2_VERSION = 140000;

export function openPgStream(options: PgStreamOptions, sink: ChangeSink<PgInvalidation>): ChangeStream {
  return new PgStream(options, sink);
}

interface ServerFacts {
  version: number;
  walLevel: string;
  user: string;
}

class PgStream implements ChangeStream {
  readonly started: Promise<void>;
  readonly ended: Promise<Error>;
  private end!: (why: Error) => void;
  private over = false;
  private client: pg.Client;
  /** Until the login is done a failure rejects connect() (start() reports it): the client's own events are not the stream's end. */
  private connecting = true;
  private readonly tracker = new PgoutputTracker();
  /** The WAL position of the last message received, and of the last commit processed. */
  private receivedLsn = 0;
  private flushedLsn = 0;
  private inTransaction = false;
  private statusTimer: NodeJS.Timeout | null = null;
  private lastMessageAt = Date.now();
  /** Date.now() - performance.now(), taken again at each status update: a wall clock with µs. */
  private clockOffset = Date.now() - performance.now();

  constructor(private readonly options: PgStreamOptions, private readonly sink: ChangeSink<PgInvalidation>) {
    this.ended = new Promise((resolve) => {
      this.end = resolve;
    });
    this.client = this.newClient(options.tls);
    const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.started = startWithin(this.start(), startTimeoutMs, () => new PgStreamError(`starting the change stream took longer than ${startTimeoutMs} ms`));
    this.started.catch((err: Error) => this.finish(err));
  }

  private newClient(tls: UpstreamTlsPlan | null): pg.Client {
    const { source, database } = this.options;
    // `replication` is a connection parameter node-postgres passes on but its typings leave out.
    const config: pg.ClientConfig & { replication: string } = {
      host: source.host,
      port: source.port,
      user: source.user,
      password: source.password ?? undefined,
      database,
      replication: 'database',
      application_name: 'sidecache-cdc',
      connectionTimeoutMillis: this.options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
      keepAlive: true,
      ssl: tls === null ? false : tls.options(source.host),
    };
    const client = new pg.Client(config);
    client.on('error', (err) => {
      if (!this.connecting) this.finish(explain(err, this.options));
    });
    client.on('end', () => {
      if (!this.connecting) this.finish(new Error('the server closed the replication connection'));
    });
    return client;
  }

  /** Logs in with the upstream's TLS settings; under sslmode=prefer a server without TLS is used in cleartext, as the relay does. */
  private async connect(): Promise<void> {
    try {
      await this.client.connect();
    } catch (err) {
      if (this.options.tls?.optional !== true || !/does not support SSL/.test((err as Error).message)) throw explain(err as Error, this.options);
      this.client = this.newClient(null);
      try {
        await this.client.connect();
      } catch (again) {
        throw explain(again as Error, this.options);
      }
    }
    this.connecting = false;
  }

  position(): string | null {
    if (this.receivedLsn === 0) return null;
    return `${formatLsn(this.receivedLsn)} (confirmed ${formatLsn(this.flushedLsn)})`;
  }

  close(): void {
    this.finish(new Error('closed'));
  }

  private finish(why: Error): void {
    if (this.over) return;
    this.over = true;
    if (this.statusTimer !== null) clearInterval(this.statusTimer);
    this.client.end().catch(() => undefined);
    this.end(why);
  }

  private async start(): Promise<void> {
    await this.connect();
    const facts = await this.facts();
    if (facts.walLevel !== 'logical') {
      throw new PgStreamError(`wal_level is ${facts.walLevel}: logical replication needs wal_level = logical `
        + '(ALTER SYSTEM SET wal_level = logical, then restart the server; on Amazon RDS set rds.logical_replication = 1 in the DB parameter group and reboot)');
    }
    const protocol2 = facts.version >= PROTOCOL_2_VERSION;
    if (this.options.ddl && !protocol2) throw new PgStreamError('--pg-cdc-ddl on needs PostgreSQL 14 or later (logical decoding messages in pgoutput)');
    await this.ensurePublication(facts);
    if (this.options.ddl) await this.ensureDdlTrigger();
    const slot = `sidecache_${process.pid}_${randomBytes(4).toString('hex')}`;
    let consistentPoint: string;
    try {
      const created = await this.client.query<{ consistent_point: string }>(`CREATE_REPLICATION_SLOT ${slot} TEMPORARY LOGICAL pgoutput NOEXPORT_SNAPSHOT`);
      consistentPoint = created.rows[0]!.consistent_point;
    } catch (err) {
      throw explain(err as Error, this.options);
    }
    this.receivedLsn = this.flushedLsn = parseLsn(consistentPoint);
    const pub = this.client.escapeLiteral(this.client.escapeIdentifier(this.options.publication));
    const pluginOptions = [`proto_version '${protocol2 ? 2 : 1}'`, `publication_names ${pub}`];
    if (protocol2) pluginOptions.push("streaming 'on'");
    if (this.options.ddl) pluginOptions.push("messages 'true'");
    const connection = (this.client as unknown as { connection: ReplicationConnection }).connection;
    const flowing = new Promise<void>((resolve) => connection.once('replicationStart', () => resolve()));
    connection.on('copyData', (msg) => this.onCopyData(msg.chunk));
    this.client.query(`START_REPLICATION SLOT ${slot} LOGICAL ${consistentPoint} (${pluginOptions.join(', ')})`).then(
      () => this.finish(new Error('the server ended the replication stream')),
      (err: Error) => this.finish(explain(err, this.options)),
    );
    await Promise.race([flowing, this.ended.then((why) => Promise.reject(why))]);
    const interval = this.options.statusIntervalMs ?? DEFAULT_STATUS_INTERVAL_MS;
    this.statusTimer = setInterval(() => this.onStatusTimer(interval, connection), interval);
    this.statusTimer.unref();
  }

  private async facts(): Promise<ServerFacts> {
    const r = await this.client.query<{ version: string; wal_level: string; user: string }>(
      "SELECT current_setting('server_version_num') AS version, current_setting('wal_level') AS wal_level, current_user AS user");
    const row = r.rows[0]!;
    return { version: Number(row.version), walLevel: row.wal_level, user: row.user };
  }

  /** The publication must publish every change of every table; created FOR ALL TABLES when missing. */
  private async ensurePublication(facts: ServerFacts): Promise<void> {
    const { publication, database } = this.options;
    const c = this.client;
    const name = c.escapeIdentifier(publication);
    const create = `CREATE PUBLICATION ${name} FOR ALL TABLES`;
    const existing = async (): Promise<{ puballtables: boolean; pubinsert: boolean; pubupdate: boolean; pubdelete: boolean; pubtruncate: boolean } | undefined> =>
      (await c.query(`SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = ${c.escapeLiteral(publication)}`)).rows[0];
    let pub = await existing();
    if (pub === undefined) {
      // A publication of updates and deletes makes them fail on tables without a replica
      // identity: sidecache does not do that to an application behind the operator's back.
      const unidentified = (await c.query<{ name: string }>(UNIDENTIFIED_TABLES_SQL)).rows.map((r) => r.name);
      if (unidentified.length > 0) {
        throw new PgStreamError(`publication ${name} does not exist in database "${database}", and creating it FOR ALL TABLES would make UPDATE and DELETE fail `
          + `on tables without a primary key or replica identity: ${unidentified.join(', ')}; give them one (ALTER TABLE ... REPLICA IDENTITY FULL), then restart, `
          + `or have a DBA run: ${create};`);
      }
      try {
        await c.query(create);
      } catch (err) {
        const e = err as pg.DatabaseError;
        if (e.code === '42501') {
          throw new PgStreamError(`publication ${name} does not exist in database "${database}" and role "${facts.user}" may not create it `
            + `(FOR ALL TABLES needs a superuser): a superuser must run in database "${database}": ${create};`);
        }
        if (e.code !== '42710') throw err; // another sidecache created it meanwhile
      }
      pub = await existing();
    }
    if (pub === undefined || !pub.puballtables || !pub.pubinsert || !pub.pubupdate || !pub.pubdelete || !pub.pubtruncate) {
      throw new PgStreamError(`publication ${name} in database "${database}" must publish inserts, updates, deletes and truncates of all tables `
        + `(${create}); writes to what it leaves out would never be seen. Fix it (ALTER PUBLICATION ${name} SET (publish = 'insert, update, delete, truncate')) `
        + 'or name another with --pg-cdc-publication');
    }
  }

  private async ensureDdlTrigger(): Promise<void> {
    const c = this.client;
    const fn = await c.query<{ src: string }>(`SELECT p.prosrc AS src FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = '${DDL_SCHEMA}' AND p.proname = 'ddl_message'`);
    const triggers = new Set((await c.query<{ evtname: string }>(`SELECT evtname FROM pg_event_trigger
      WHERE evtname IN ('${DDL_TRIGGERS.end}', '${DDL_TRIGGERS.drop}') AND evtenabled <> 'D'`)).rows.map((r) => r.evtname));
    const needed = DDL_INSTALL_SQL.filter((sql, i) =>
      (i <= 1 && !isCurrentFunction(fn.rows[0]?.src ?? null)) || (i === 2 && !triggers.has(DDL_TRIGGERS.end)) || (i === 3 && !triggers.has(DDL_TRIGGERS.drop)));
    for (const sql of needed) {
      try {
        await c.query(sql);
      } catch (err) {
        const e = err as pg.DatabaseError;
        if (e.code === '42710') continue; // another sidecache installed it meanwhile
        if (e.code === '42501') {
          throw new PgStreamError(`--pg-cdc-ddl on: role "${this.options.source.user}" may not install the event trigger in database "${this.options.database}" `
            + `(event triggers need a superuser); a superuser can install it once: ${DDL_INSTALL_SQL.join('; ')}; (or turn --pg-cdc-ddl off: DDL is then bounded by cache-ttl)`);
        }
        throw new PgStreamError(`installing the event trigger ${DDL_FUNCTION}: ${e.message}`);
      }
    }
  }

  private onCopyData(chunk: Buffer): void {
    this.lastMessageAt = Date.now();
    if (this.over) return;
    try {
      const msg = decodeReplicationMessage(chunk);
      if (msg.kind === 'keepalive') {
        if (msg.walEnd > this.receivedLsn) this.receivedLsn = msg.walEnd;
        if (msg.replyRequested) this.sendStatus(false);
        return;
      }
      if (msg.walStart > this.receivedLsn) this.receivedLsn = msg.walStart;
      this.sink.decoded(1);
      const m = decodePgoutput(msg.payload, this.tracker.inStream);
      const inv = this.tracker.apply(m);
      if (inv !== null) this.sink.invalidate(inv);
      if (m.type === 'begin') this.inTransaction = true;
      else if (m.type === 'commit' || m.type === 'stream-commit') {
        this.inTransaction = false;
        if (m.endLsn > this.flushedLsn) this.flushedLsn = m.endLsn;
        this.sink.lag((performance.now() + this.clockOffset - m.commitTimeMs) / 1000);
      }
    } catch (err) {
      // Something the decoder cannot read: what follows cannot be trusted either.
      this.finish(new Error(`undecodable replication message: ${(err as Error).message}`));
    }
  }

  private onStatusTimer(interval: number, connection: ReplicationConnection): void {
    this.clockOffset = Date.now() - performance.now();
    if (Date.now() - this.lastMessageAt > interval * SILENT_INTERVALS) {
      this.finish(new Error(`no message from the server for ${Math.round((Date.now() - this.lastMessageAt) / 1000)} s: the connection is presumed dead`));
      return;
    }
    this.sendStatus(true, connection);
  }

  /**
   * Confirms what was processed: the last commit, or everything received when between
   * transactions. The slot is temporary, so this only lets the server recycle WAL.
   */
  private sendStatus(askReply: boolean, connection = (this.client as unknown as { connection: ReplicationConnection }).connection): void {
    const flushed = this.inTransaction ? this.flushedLsn : Math.max(this.flushedLsn, this.receivedLsn);
    this.flushedLsn = flushed;
    connection.sendCopyFromChunk(standbyStatusUpdate(flushed, Date.now(), askReply));
  }
}

/** node-postgres' connection, as far as a replication stream uses it. */
interface ReplicationConnection {
  once(event: 'replicationStart', listener: () => void): void;
  on(event: 'copyData', listener: (msg: { chunk: Buffer }) => void): void;
  sendCopyFromChunk(chunk: Buffer): void;
}

/** Tables that UPDATE and DELETE would fail on once a publication of all tables publishes them. */
const UNIDENTIFIED_TABLES_SQL = `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND c.relpersistence = 'p' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
    AND (c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))
  ORDER BY 1 LIMIT 20`;

/** What the server's refusal means for the operator (limits, privileges), without the password. */
function explain(err: Error, options: PgStreamOptions): Error {
  if (err instanceof PgStreamError) return err;
  const e = err as pg.DatabaseError;
  const at = `${options.source.url}/${options.database}`;
  if (/max_wal_senders/.test(e.message)) {
    return new PgStreamError(`${at}: ${e.message}: each sidecache opens one replication connection per database it follows; raise max_wal_senders on the server (a restart) or follow fewer databases`);
  }
  if (e.code === '53400' || /replication slots/.test(e.message)) {
    return new PgStreamError(`${at}: ${e.message}: each followed database needs a replication slot; raise max_replication_slots on the server (a restart)`);
  }
  if (e.code === '42501' && /replication|walsender/.test(e.message)) {
    return new PgStreamError(`${at}: ${e.message}: the --pg-cdc role needs REPLICATION (ALTER ROLE "${options.source.user}" WITH REPLICATION)`);
  }
  if (e.code === '53300') return new PgStreamError(`${at}: ${e.message}: the server refuses more connections (max_connections)`);
  return new PgStreamError(`${at}: ${e.message}`);
}
