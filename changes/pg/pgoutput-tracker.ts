// What a decoded pgoutput stream means for the cache: which relation names each committed
// transaction wrote, so their entries can be invalidated at its Commit. Pure state, no I/O.
//
// - Relation messages map relation ids to names; the name is what the cache tags by (per name
//   within the database, schema left out, as writes through the proxy are tagged).
// - Insert/Update/Delete/Truncate collect their relations into their transaction; its Commit (or
//   Stream Commit for a large transaction streamed while in progress) hands them out. An aborted
//   streamed transaction hands out nothing; a rolled-back one never reaches the stream at all.
// - A Relation message whose shape changed (columns, types, name) means DDL happened: that
//   relation's entries go at once, and the catalog facts the cache learnt are taken again.
// - A logical decoding message with prefix DDL_MESSAGE_PREFIX (written by the event trigger of
//   --pg-cdc-ddl, see ddl-trigger.ts) names the relations a DDL command touched, or none when it
//   cannot tell (then the whole database goes), at the commit of the DDL's transaction.
// - Anything it cannot attribute (a change of a relation never described, a message type it does
//   not know) invalidates the whole database: unsure means wide.
import type { PgoutputMessage, RelationColumn } from './pgoutput.js';

/** The prefix of the event trigger's messages; the content is JSON: {"relations": [names] | null}. */
export const DDL_MESSAGE_PREFIX = 'sidecache.ddl';

export interface PgInvalidation {
  /** Relation names whose entries go. */
  readonly tables: readonly string[];
  /** Everything of the database goes. */
  readonly wide: boolean;
  /** The catalog changed (DDL): decisions resting on it must be taken again. */
  readonly catalogChanged: boolean;
  /** When its transaction committed on the server (ms since 1970); null when not at a commit. */
  readonly commitTimeMs: number | null;
}

/** The writes of one transaction so far. */
class Writes {
  readonly relids = new Set<number>();
  readonly names = new Set<string>();
  wide = false;
  catalogChanged = false;

  get empty(): boolean {
    return this.relids.size === 0 && this.names.size === 0 && !this.wide && !this.catalogChanged;
  }
}

interface KnownRelation {
  name: string;
  shape: string;
}

export class PgoutputTracker {
  private readonly relations = new Map<number, KnownRelation>();
  /** The transaction between Begin and Commit (pgoutput sends a transaction whole, after it committed). */
  private current = new Writes();
  /** Large transactions streamed while in progress (protocol 2, streaming on), by xid. */
  private readonly streamed = new Map<number, Writes>();
  private streamXid: number | null = null;
  /** Counts for /stats: decoded messages and the ones that forced a database-wide invalidation. */
  messages = 0;
  unattributed = 0;

  /** Between Stream Start and Stream Stop: the decoder must read the xid each change carries. */
  get inStream(): boolean {
    return this.streamXid !== null;
  }

  /** Feeds one message; returns what to invalidate now, or null. */
  apply(m: PgoutputMessage): PgInvalidation | null {
    this.messages++;
    switch (m.type) {
      case 'begin':
        // Nothing is lost if a Commit was missed: what was collected goes with the next one.
        return null;
      case 'commit':
        return this.finish(this.takeCurrent(), m.commitTimeMs);
      case 'relation':
        return this.onRelation(m.relid, m.namespace, m.name, m.columns);
      case 'change':
        this.addRelid(this.writesOf(m.xid), m.relid);
        return null;
      case 'truncate': {
        const w = this.writesOf(m.xid);
        for (const relid of m.relids) this.addRelid(w, relid);
        return null;
      }
      case 'message':
        if (m.prefix !== DDL_MESSAGE_PREFIX) return null;
        if (!m.transactional) {
          const w = new Writes();
          this.addDdl(w, m.content);
          return this.finish(w, null);
        }
        this.addDdl(this.writesOf(m.xid), m.content);
        return null;
      case 'stream-start':
        this.streamXid = m.xid;
        if (!this.streamed.has(m.xid)) this.streamed.set(m.xid, new Writes());
        return null;
      case 'stream-stop':
        this.streamXid = null;
        return null;
      case 'stream-commit': {
        const w = this.streamed.get(m.xid);
        this.streamed.delete(m.xid);
        return w === undefined ? null : this.finish(w, m.commitTimeMs);
      }
      case 'stream-abort':
        // A subtransaction's abort keeps what the rest wrote; dropping it too would only save a miss.
        if (m.subxid === m.xid) this.streamed.delete(m.xid);
        return null;
      case 'ignored':
        return null;
      case 'unknown': {
        this.unattributed++;
        const w = this.streamXid === null ? this.current : this.writesOf(this.streamXid);
        w.wide = true;
        // Unsure whether it is part of a transaction: also invalidate now.
        return { tables: [], wide: true, catalogChanged: true, commitTimeMs: null };
      }
    }
  }

  private takeCurrent(): Writes {
    const w = this.current;
    this.current = new Writes();
    return w;
  }

  private writesOf(xid: number | null): Writes {
    if (xid === null) return this.current;
    let w = this.streamed.get(xid);
    if (w === undefined) {
      w = new Writes();
      this.streamed.set(xid, w);
    }
    return w;
  }

  private addRelid(w: Writes, relid: number): void {
    if (this.relations.has(relid)) w.relids.add(relid);
    else {
      // pgoutput describes a relation before its first change; one it did not is unattributable.
      this.unattributed++;
      w.wide = true;
    }
  }

  private onRelation(relid: number, namespace: string, name: string, columns: readonly RelationColumn[]): PgInvalidation | null {
    const shape = `${namespace}\u0000${name}\u0000${columns.map((c) => `${c.name}\u0001${c.typeOid}\u0001${c.typeModifier}`).join('\u0000')}`;
    const known = this.relations.get(relid);
    this.relations.set(relid, { name, shape });
    if (known === undefined || known.shape === shape) return null;
    // DDL changed it since it was last described: results of the old shape (and name) are stale now.
    return { tables: known.name === name ? [name] : [known.name, name], wide: false, catalogChanged: true, commitTimeMs: null };
  }

  private addDdl(w: Writes, content: Buffer): void {
    w.catalogChanged = true;
    let relations: unknown;
    try {
      relations = (JSON.parse(content.toString('utf8')) as { relations?: unknown }).relations;
    } catch {
      relations = null;
    }
    if (Array.isArray(relations) && relations.every((r) => typeof r === 'string')) {
      for (const r of relations as string[]) w.names.add(r);
    } else {
      w.wide = true;
    }
  }

  private finish(w: Writes, commitTimeMs: number | null): PgInvalidation | null {
    if (w.empty) return null;
    const tables = new Set(w.names);
    for (const relid of w.relids) tables.add(this.relations.get(relid)!.name);
    return { tables: [...tables], wide: w.wide, catalogChanged: w.catalogChanged, commitTimeMs };
  }
}
