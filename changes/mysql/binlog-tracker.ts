// What a decoded binlog means for the cache: the tables each committed transaction wrote, handed
// out at its commit marker, and the MariaDB GTID position reached. Pure state, no I/O.
//
// - TABLE_MAP events name the table behind a table id. The server writes one for every table a
//   statement locked for writing, when it logs the statement's first row: the tables its rows
//   change, and also those a foreign-key cascade changes, whose rows it does not log (the
//   replica's engine would cascade itself). So every table mapped in a transaction is
//   invalidated at its commit; a rows event of an unmapped id makes it wide. The map is cleared at
//   each commit: the maps come again with every statement, and this keeps it bounded. Triggers'
//   changes are logged as rows of their own.
// - A transaction ends at its XID event (InnoDB), a COMMIT Query (non-transactional engines, which
//   MariaDB logs as their own group), or an XA PREPARE event; a MariaDB standalone group (DDL) is
//   one Query. Rolled-back transactions never reach the binlog, but for their non-transactional
//   changes, which a ROLLBACK Query ends and which are invalidated like a commit.
// - Any other Query (DDL, GRANT, a statement-format write, something new) and anything the decoder
//   cannot read drop every entry: a MySQL statement can reach any database, and the proxy's own
//   rule for DDL through it is the same.
import type { BinlogEvent } from './binlog-events.js';

export interface BinlogTable {
  readonly database: string;
  readonly name: string;
}

export interface BinlogInvalidation {
  readonly tables: readonly BinlogTable[];
  /** Every entry goes. */
  readonly wide: boolean;
  /** The catalog may have changed (DDL): decisions resting on it are taken again. */
  readonly catalogChanged: boolean;
}

/** Statements the server writes as Query events around row events; none changes data by itself. */
const TRANSACTION_CONTROL = /^(?:BEGIN|SAVEPOINT\s|ROLLBACK\s+TO\s|RELEASE\s+SAVEPOINT\s|XA\s+(?:START|BEGIN|END)\s)/i;
const COMMIT = /^COMMIT\s*$/i;
/** In the binlog only when non-transactional tables changed in a transaction that rolled back. */
const ROLLBACK = /^ROLLBACK\s*$/i;

export class BinlogTracker {
  private readonly tableIds = new Map<number, BinlogTable>();
  private readonly tables = new Map<string, BinlogTable>();
  private wide = false;
  private catalogChanged = false;
  /** Inside a BEGIN ... COMMIT group (a MariaDB GTID that is not standalone, or a BEGIN Query). */
  private inGroup = false;
  /** The GTID of the group being read, applied to the position when it commits. */
  private pendingGtid: { domainId: number; gtid: string } | null = null;
  /** MariaDB's position: the last committed GTID per replication domain, and as text. */
  private readonly gtids = new Map<number, string>();
  private position = '';
  events = 0;
  /** Events that forced everything to be dropped (statements, unknown events). */
  unattributed = 0;

  /** Seeds the GTID position (MariaDB's @@gtid_binlog_pos: `domain-server-sequence`, comma separated). */
  constructor(startPosition = '') {
    for (const gtid of startPosition.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
      this.gtids.set(Number(gtid.split('-')[0]), gtid);
    }
    this.position = this.formatPosition();
  }

  /** The GTID position reached (`0-1-42,1-1-7`), what a resumed dump starts from; '' on MySQL. */
  get gtidPosition(): string {
    return this.position;
  }

  private formatPosition(): string {
    return [...this.gtids.keys()].sort((a, b) => a - b).map((d) => this.gtids.get(d)!).join(',');
  }

  /** Feeds one event; returns what to invalidate now, or null. */
  apply(e: BinlogEvent): BinlogInvalidation | null {
    this.events++;
    switch (e.kind) {
      case 'mariadb-gtid':
        this.pendingGtid = { domainId: e.domainId, gtid: `${e.domainId}-${e.header.serverId}-${e.sequence}` };
        this.inGroup = !e.standalone;
        return null;
      case 'table-map': {
        const t = { database: e.schema, name: e.table };
        this.tableIds.set(e.tableId, t);
        this.tables.set(`${t.database}\u0000${t.name}`, t);
        return null;
      }
      case 'rows':
        if (!this.tableIds.has(e.tableId)) {
          this.unattributed++;
          this.wide = true;
        }
        return null;
      case 'xid':
      case 'xa-prepare':
        return this.commit();
      case 'query':
        return this.onQuery(e.sql);
      case 'transaction-payload':
      case 'opaque-statement':
      case 'incident':
      case 'unknown':
        this.unattributed++;
        this.wide = true;
        this.catalogChanged ||= e.kind !== 'transaction-payload';
        return this.commit();
      case 'mysql-gtid':
      case 'rotate':
      case 'format':
      case 'heartbeat':
      case 'ignored':
        return null;
    }
  }

  private onQuery(sql: string): BinlogInvalidation | null {
    const text = sql.trimStart();
    if (COMMIT.test(text) || ROLLBACK.test(text)) return this.commit();
    if (TRANSACTION_CONTROL.test(text)) {
      if (/^BEGIN/i.test(text)) this.inGroup = true;
      return null;
    }
    // DDL and everything else logged as text. Inside a BEGIN ... COMMIT group (statement-format
    // writes) the group's commit applies it; a statement outside one has committed already.
    this.unattributed++;
    this.wide = true;
    this.catalogChanged = true;
    return this.inGroup ? null : this.commit();
  }

  private commit(): BinlogInvalidation | null {
    if (this.pendingGtid !== null) {
      this.gtids.set(this.pendingGtid.domainId, this.pendingGtid.gtid);
      this.position = this.formatPosition();
    }
    this.pendingGtid = null;
    this.inGroup = false;
    this.tableIds.clear();
    if (this.tables.size === 0 && !this.wide) return null;
    const out: BinlogInvalidation = { tables: [...this.tables.values()], wide: this.wide, catalogChanged: this.catalogChanged };
    this.tables.clear();
    this.wide = false;
    this.catalogChanged = false;
    return out;
  }
}
