// The PostgreSQL side's shared cache service: the result store, the statement analysis (one parse
// per statement shape), the session contexts entries are keyed under with what probes taught
// about the catalog in each, and invalidation. Sessions call it; it knows nothing of sockets.
import { LRUCache } from 'lru-cache';
import type { Metrics } from '../../telemetry/metrics.js';
import { shapeFingerprint, type StatementIdentity } from '../../telemetry/query-stats.js';
import { databaseTag, tableTag } from '../../cache/tags.js';
import { boundedMap } from '../bounded-map.js';
import { ResultCache, sharedContextPrefix } from '../result-cache.js';
import type { CatalogBypassReason } from '../cache-router.js';
import { WriteScope } from '../request-ledger.js';
import { RecentMap } from '../recent-map.js';
import { contextPrefix } from './cache-key.js';

export { WriteScope };
import type { Config } from '../../config/settings.js';
import type { StatementAnalysis } from '../../invalidation/pg-analysis.js';
import { PgClassifier } from '../../invalidation/pg-classifier.js';
import { judgeProbed, judgeStatement, learnFacts, type FunctionFacts, type RelationFacts, type StatementVerdict } from '../../invalidation/pg-facts.js';
import { PROBED_SETTINGS, type ProbeResult } from '../../invalidation/pg-probe.js';
import { statementShape } from '../../invalidation/pg-shape.js';

/** What the proxy derives once from the analysis of a statement shape. */
export interface StatementInfo {
  readonly analysis: StatementAnalysis;
  readonly identity: StatementIdentity;
  /** The text with its literals replaced (pg-shape.ts): what a cache rule's regex is tested against. */
  readonly shape: string;
  /** Of the shape; identity.fingerprint is "other" past the stats' bound, this never is. */
  readonly fingerprint: string;
  /** The text's own verdict allows caching (a single plain SELECT ...). */
  readonly readCacheable: boolean;
  /**
   * What the catalog says of its relations and functions (a probe, or the facts its context
   * learned from one) must be known before this statement can be cached or its functions judged.
   */
  readonly needsCatalog: boolean;
  /** Relation names whose cached reads a commit of this statement makes stale. */
  readonly writes: readonly string[];
  /** Invalidate the whole database on commit (DDL, unparsable, CALL/DO, writes calling functions). */
  readonly writesUnlisted: boolean;
  /** Invalidate every database on commit (roles, memberships, server and database settings). */
  readonly writesServer: boolean;
  /** Calls functions: user ones may write anything or change settings; the probe tells. */
  readonly callsFunctions: boolean;
  /** May change what a session context holds (SET, RESET, DISCARD, SET ROLE, set_config, DO...). */
  readonly changesSession: boolean;
}

/** What besides the probe's row tells a session's context apart. */
export interface SessionIdentity {
  /** Unique per session: used when the session must not share (temporary relations, unknown settings). */
  readonly id: number;
  /** The keyed ParameterStatus values. */
  readonly reported: string;
  /** The StartupMessage's parameters (options=-c ... may set anything). */
  readonly startupKey: string;
  /** The session changed something the probe cannot read (set_config with a computed name). */
  readonly ownContext: boolean;
}

/** What the catalog decided for one statement shape in one context (from a probe or known facts). */
export interface Decision {
  readonly generation: number;
  readonly cacheable: boolean;
  readonly reason: CatalogBypassReason | 'not-cacheable' | null;
  /** Entry tags: every relation a write to which may change the result, plus the database. */
  readonly tags: readonly string[];
  readonly functionsBuiltin: boolean;
}

const MAX_CONTEXTS = 10_000;
/** How the probe joins PROBED_SETTINGS' values, and where the default isolation level is among them. */
const SETTINGS_SEPARATOR = '\u001f';
const ISOLATION_INDEX = PROBED_SETTINGS.indexOf('default_transaction_isolation');
/** Texts without literals remembered by exact text (the rest go through their shape), and the longest kept. */
const MAX_TEXTS = 10_000;
const MAX_TEXT_KEY_LENGTH = 4096;
const MAX_DECISIONS_PER_CONTEXT = 10_000;
const MAX_FACTS_PER_CONTEXT = 10_000;

/** Everything a session's results depend on besides the statement itself, interned. */
export class PgContext {
  /**
   * Statement decisions under this context (shapes are few in practice). Read for every statement
   * (twice for a write in a block: does it call user functions?): recent-map.ts, not lru-cache.
   */
  readonly decisions = new RecentMap<StatementInfo, Decision>(MAX_DECISIONS_PER_CONTEXT);
  /**
   * What probes in this context taught about relations (by relationKey: names resolve through the
   * context's search_path) and functions, as of catalog generation `factsGeneration`.
   */
  readonly relations = boundedMap<string, RelationFacts>(MAX_FACTS_PER_CONTEXT);
  readonly functions = boundedMap<string, FunctionFacts>(MAX_FACTS_PER_CONTEXT);
  factsGeneration = 0;
  /** Bumped whenever the facts above change (learned, or dropped for a new generation). */
  factsVersion = 0;
  /**
   * Statements the facts could not decide, with the factsVersion they were judged at: a write
   * inside a transaction block asks for its decision at every execution (does it call user
   * functions?) and is never probed, so without this it would be judged again and again in vain.
   */
  readonly undecided = new RecentMap<StatementInfo, number>(MAX_DECISIONS_PER_CONTEXT);
  constructor(
    readonly id: number,
    readonly database: string,
    readonly keyPrefix: string,
    /** Its entries' prefix in the fleet's second tier; null for a session's own context (shares nothing). */
    readonly sharedPrefix: string | null,
    /**
     * default_transaction_isolation is read committed: each statement of an implicit transaction
     * (a Sync group of several) takes its own snapshot, as if it ran alone.
     */
    readonly snapshotPerStatement: boolean,
  ) {}
}

/** Settings reported by ParameterStatus that change results or their text. */
export const KEYED_PARAMETERS = [
  'client_encoding', 'DateStyle', 'IntervalStyle', 'TimeZone', 'integer_datetimes',
  'standard_conforming_strings', 'session_authorization', 'server_version',
] as const;

export class PgCache extends ResultCache<StatementInfo> {
  private readonly infos = new WeakMap<StatementAnalysis, StatementInfo>();
  /**
   * Infos by statement shape (pg-shape.ts), each analysed from its shape. A text without literals
   * is its own shape, so it is found by its text, without computing the shape. Looked up for
   * every statement: a hand-written map (recent-map.ts), not lru-cache.
   */
  private readonly infoByShape = new RecentMap<string, StatementInfo>(MAX_TEXTS);
  private readonly contexts = new Map<string, PgContext>();
  /** Bumped per database on DDL: decisions taken before may rest on a catalog that changed. */
  private readonly generations = new Map<string, number>();
  /** Added to every database's generation: bumped when DDL may have run in any of them, or the server changed. */
  private everyDatabaseGeneration = 0;
  private nextContextId = 1;
  /**
   * What the probe found in a session that had changed nothing since it started, by its startup
   * parameters: a new session with the same ones starts in the same state (same role, database,
   * ALTER ROLE/DATABASE settings), so it can be answered from its first statement.
   */
  private readonly startupProbes = new LRUCache<string, { probe: ProbeResult; generation: number }>({ max: MAX_CONTEXTS });
  /**
   * Table tags by database and relation name, each built once: a commit looks its tags up in the
   * store's tag index and the tag versions, and a string built anew would be hashed (and compared
   * by content with the entries' own tags) at every commit. Bounded like the contexts' facts.
   */
  private readonly tableTags = new Map<string, Map<string, string>>();
  /** Each info's copy for texts that are not valid UTF-8 (undecodable). */
  private readonly undecodableInfos = new WeakMap<StatementInfo, StatementInfo>();
  /** Per database, as of a catalog generation: relations whose writes may change other tables. */
  private readonly fanOut = new Map<string, { generation: number; tables: ReadonlySet<string> }>();

  static async create(config: Config, metrics: Metrics): Promise<PgCache> {
    return new PgCache(config, metrics, await PgClassifier.create());
  }

  private constructor(config: Config, metrics: Metrics, private readonly classifier: PgClassifier) {
    super('postgres', config, metrics);
  }

  /** The analysis and derived facts of a statement text (parsed once per shape). */
  info(text: string): StatementInfo {
    const known = this.infoByShape.get(text);
    if (known !== undefined) return known;
    const shape = statementShape(text);
    if (shape !== text) {
      // The shape's info holds for each text of that shape but those analysed as they are (analysedAsText).
      const byShape = this.infoByShape.get(shape);
      if (byShape !== undefined && !analysedAsText(byShape.analysis)) return text.includes('\uFFFD') ? this.undecodable(byShape) : byShape;
    }
    let analysis = this.classifier.classify(shape);
    const asText = shape !== text && analysedAsText(analysis);
    if (asText) analysis = this.classifier.classify(text);
    let info = this.infos.get(analysis);
    if (info === undefined) {
      info = this.derive(analysis, text, shape);
      this.infos.set(analysis, info);
    }
    // A text with literals of its own is rarely sent again (pgbench's `-S` and TPC-B never repeat
    // one): its shape is remembered, not the text, and found by computing the shape again. A shape
    // holding U+FFFD (outside literals, so in every text of that shape) is not remembered.
    if (!asText && shape.length <= MAX_TEXT_KEY_LENGTH && !shape.includes('\uFFFD')) this.infoByShape.set(shape, info);
    return text.includes('\uFFFD') ? this.undecodable(info) : info;
  }

  /**
   * The info of a text holding U+FFFD: most often bytes that are not UTF-8 (a client_encoding such
   * as LATIN1), which all decode to U+FFFD, so two statements that differ only in them would read
   * as one text and share a key (psql with PGCLIENTENCODING=LATIN1 got 'x\xf6' = 'x\xf6''s count
   * for 'x\xe9' = 'x\xf6'). Never cached; what it writes is still invalidated, and its functions
   * are judged by the catalog as derive() says for statements the cache cannot store.
   */
  private undecodable(info: StatementInfo): StatementInfo {
    let copy = this.undecodableInfos.get(info);
    if (copy === undefined) {
      copy = Object.freeze({ ...info, readCacheable: false, needsCatalog: (info.analysis.kind === 'read' || info.analysis.kind === 'write') && info.callsFunctions });
      this.undecodableInfos.set(info, copy);
    }
    return copy;
  }

  private derive(a: StatementAnalysis, text: string, shape: string): StatementInfo {
    const isRead = a.kind === 'read';
    const callsFunctions = a.functions.length > 0;
    const needsCatalog = (a.cacheable && isRead) || ((isRead || a.kind === 'write') && callsFunctions);
    const fingerprint = shapeFingerprint(shape);
    // Bare names, as invalidation spells them (tags are per relation name within a database).
    const tables = [...a.tablesRead, ...a.tablesWritten].map((t) => t.name);
    return Object.freeze({
      analysis: a,
      identity: this.stats.identify(fingerprint, text, [...new Set(tables)]),
      shape,
      fingerprint,
      readCacheable: a.cacheable && isRead,
      needsCatalog,
      writes: Object.freeze([...new Set(a.tablesWritten.map((t) => t.name))]),
      writesUnlisted: a.writesUnlisted || a.kind === 'ddl' || a.kind === 'unknown',
      writesServer: a.serverWide,
      callsFunctions,
      changesSession: a.sessionChanges.length > 0 || a.kind === 'unknown' || a.writesUnlisted,
    });
  }

  /**
   * The context for a probe's view of the session plus its reported parameters. A session with
   * temporary relations gets one of its own (`sessionId`): its names may resolve to its own tables.
   */
  context(probe: ProbeResult, session: SessionIdentity): PgContext | null {
    const own = probe.hasTempRelations || session.ownContext ? `session ${session.id}` : '';
    const text = [probe.database, probe.sessionUser, probe.currentUser, probe.settings, session.reported, session.startupKey, own].join('\u0000');
    let ctx = this.contexts.get(text);
    if (ctx === undefined) {
      if (this.contexts.size >= MAX_CONTEXTS) return null;
      const id = this.nextContextId++;
      const isolation = probe.settings.split(SETTINGS_SEPARATOR)[ISOLATION_INDEX];
      ctx = new PgContext(id, probe.database, contextPrefix(id), own === '' ? sharedContextPrefix(text) : null, isolation === 'read committed');
      this.contexts.set(text, ctx);
    }
    return ctx;
  }

  /**
   * Bumped whenever the startup probes change: a session that found none for its startup need not
   * look again (building and hashing its key) until this or its own parameters move.
   */
  startupProbesVersion = 0;

  /** A session with this startup found another context than the one remembered: the next one probes. */
  forgetStartup(startupKey: string): void {
    this.startupProbes.delete(startupKey);
    this.startupProbesVersion++;
  }

  rememberStartup(startupKey: string, probe: ProbeResult): void {
    this.startupProbes.set(startupKey, { probe, generation: this.generation(probe.database) });
    this.startupProbesVersion++;
  }

  /** The probe of an earlier session with the same startup, unless DDL happened since. */
  startupProbe(startupKey: string, database: string): ProbeResult | undefined {
    const known = this.startupProbes.get(startupKey);
    return known !== undefined && known.generation === this.generation(database) ? known.probe : undefined;
  }

  /**
   * May a write to `table` change other tables (triggers, rules)? Unknown for this catalog
   * generation counts as yes; nothing of this generation is cached before a probe anyway.
   */
  writeFansOut(database: string, table: string): boolean {
    const known = this.fanOut.get(database);
    return known === undefined || known.generation !== this.generation(database) || known.tables.has(table);
  }

  /**
   * Learns what `probe` (run for `info`, sent under catalog `generation`) tells about the
   * relations and functions it reported, in `ctx`, and decides `info` by it. A probe that DDL
   * overtook (the generation moved on while it ran) may have read the old catalog: its decision
   * is already stale, and nothing is learned from it.
   */
  decide(ctx: PgContext, info: StatementInfo, probe: ProbeResult, generation: number): Decision {
    const learned = learnFacts(probe.relations, probe.functions, (definition) => this.classifier.classify(definition));
    const decision = this.remember(ctx, info, judgeProbed(info.analysis, learned), generation);
    if (generation !== this.generation(ctx.database)) return decision;
    this.fanOut.set(ctx.database, { generation, tables: new Set(probe.fanOutTables) });
    this.currentFacts(ctx, generation);
    for (const [key, facts] of learned.relations) ctx.relations.set(key, facts);
    for (const [name, facts] of learned.functions) ctx.functions.set(name, facts);
    ctx.factsVersion++;
    return decision;
  }

  /**
   * A decision still valid for this context: taken before, or derived from what the context knows
   * of every relation and function the statement names. Undefined when something is not known:
   * the statement must be probed.
   */
  decision(ctx: PgContext, info: StatementInfo): Decision | undefined {
    const generation = this.generation(ctx.database);
    const d = ctx.decisions.get(info);
    if (d !== undefined && d.generation === generation) return d;
    this.currentFacts(ctx, generation);
    if (ctx.undecided.get(info) === ctx.factsVersion) return undefined;
    const verdict = judgeStatement(info.analysis, (key) => ctx.relations.get(key), (name) => ctx.functions.get(name));
    if (verdict === undefined) {
      ctx.undecided.set(info, ctx.factsVersion);
      return undefined;
    }
    return this.remember(ctx, info, verdict, generation);
  }

  /** Forgets the facts a context learned under an older catalog generation (DDL happened since). */
  private currentFacts(ctx: PgContext, generation: number): void {
    if (ctx.factsGeneration === generation) return;
    ctx.relations.clear();
    ctx.functions.clear();
    ctx.factsGeneration = generation;
    ctx.factsVersion++;
  }

  private remember(ctx: PgContext, info: StatementInfo, verdict: StatementVerdict, generation: number): Decision {
    const reason = !info.readCacheable ? 'not-cacheable' : verdict.reason;
    const tags = [databaseTag(ctx.database), ...verdict.dependsOn.map((name) => this.tableTagOf(ctx.database, name))];
    const decision: Decision = Object.freeze({
      generation,
      cacheable: reason === null,
      reason,
      tags: Object.freeze(tags),
      functionsBuiltin: verdict.functionsBuiltin,
    });
    ctx.decisions.set(info, decision);
    return decision;
  }

  /** Both parts only grow, so their sum is the same only while neither changed. */
  generation(database: string): number {
    return this.everyDatabaseGeneration + (this.generations.get(database) ?? 0);
  }

  protected catalogChanged(database: string | null): void {
    if (database === null) this.everyDatabaseGeneration++;
    else this.generations.set(database, (this.generations.get(database) ?? 0) + 1);
  }

  /**
   * A commit wrote `tables` (relation names) of `database`, or as far as `scope` says; when
   * `catalogChanged` (DDL, DO, CALL, ...) the decisions taken under the old catalog go too.
   */
  invalidate(database: string, tables: Iterable<string>, scope: WriteScope, catalogChanged: boolean): void {
    if (scope === WriteScope.Server) {
      this.invalidateServer();
      return;
    }
    if (scope === WriteScope.Database || catalogChanged) {
      this.invalidateEverywhere({ scope: 'tags', tags: [databaseTag(database)], tables: 'database', catalog: catalogChanged ? database : null });
      return;
    }
    const tags: string[] = [];
    const names: string[] = [];
    for (const t of tables) {
      tags.push(this.tableTagOf(database, t));
      names.push(t);
    }
    if (tags.length > 0) this.invalidateEverywhere({ scope: 'tags', tags, tables: names, catalog: null });
  }

  /** The tag of relation `table` of `database`, the same string object each time (tableTags). */
  private tableTagOf(database: string, table: string): string {
    let byTable = this.tableTags.get(database);
    if (byTable === undefined) {
      if (this.tableTags.size >= MAX_CONTEXTS) this.tableTags.clear();
      byTable = new Map();
      this.tableTags.set(database, byTable);
    }
    let tag = byTable.get(table);
    if (tag === undefined) {
      if (byTable.size >= MAX_FACTS_PER_CONTEXT) byTable.clear();
      tag = tableTag(database, '', table);
      byTable.set(table, tag);
    }
    return tag;
  }

  /**
   * CDC (changes/): the change stream saw DDL bounded to `tables` (relation names): their entries
   * go, and decisions taken under the old catalog are taken again; other entries stay.
   */
  catalogChangedFor(database: string, tables: readonly string[]): void {
    this.catalogChanged(database);
    this.invalidate(database, tables, WriteScope.Tables, false);
  }
}

/**
 * What a statement changes in the session may be spelled in a literal (set_config('app.tenant',
 * ...), SET x = '...'), and a shape the parser rejects tells nothing of its text (U&'...' UESCAPE
 * '!' with the escape character emptied): a text whose shape reads so is analysed as it is.
 */
function analysedAsText(analysis: StatementAnalysis): boolean {
  return analysis.sessionChanges.length > 0 || analysis.kind === 'unknown';
}
