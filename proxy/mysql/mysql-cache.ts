// The MySQL side's shared cache service: the result store, the statement analysis (one analysis
// per statement shape and dialect), the session contexts entries are keyed under, what the probe
// (invalidation/mysql-probe.ts) taught about a session's context and the catalog facts of a
// statement's tables and functions, and invalidation. Sessions (relay.ts) call it; it knows
// nothing of sockets.
//
// What the probe learns about a table (its TABLE_TYPE) or a stored function (determinism, data
// access) depends on its name, the session's context and the catalog, never on the statement
// that named it: facts are kept per context and name until DDL, so a new statement over known
// tables and functions is judged without a probe.
import { LRUCache } from 'lru-cache';
import type { Metrics } from '../../telemetry/metrics.js';
import { shapeFingerprint, type StatementIdentity } from '../../telemetry/query-stats.js';
import { databaseTag, tableTag } from '../../cache/tags.js';
import { boundedMap } from '../bounded-map.js';
import { ResultCache, sharedContextPrefix } from '../result-cache.js';
import type { BypassReason } from '../cache-router.js';
import { contextPrefix, contextText } from './cache-key.js';
import type { Config } from '../../config/settings.js';
import type { MysqlAnalysisOptions, MysqlQualifiedName, MysqlStatementAnalysis } from '../../invalidation/mysql-analysis.js';
import { MysqlClassifier } from '../../invalidation/mysql-classifier.js';
import { buildMySqlProbeSql, MYSQL_KEYED_VARIABLES, mySqlCheckVerdict, readMySqlProbeRow, type MySqlProbeResult } from '../../invalidation/mysql-probe.js';
import { mysqlStatementSample, mysqlStatementShape } from '../../invalidation/mysql-shape.js';

/** How a statement leaves the session's context once it ran. */
export const enum SessionEffect {
  None,
  /** Changed something the probe reads (database, character set, time_zone, role...): probe again. */
  Stale,
  /** Changed something the probe cannot read (temporary tables, unknown settings, CALL): share nothing. */
  Private,
}

/** What the proxy derives once from the analysis of a statement shape. */
export interface MySqlStatementInfo {
  readonly analysis: MysqlStatementAnalysis;
  /** The dialect (sql_mode quoting rules) the text was read under: its analysis holds only under it. */
  readonly dialectKey: string;
  readonly identity: StatementIdentity;
  /** The text with its literals emptied (mysql-shape.ts): what a cache rule's regex is tested against. */
  readonly shape: string;
  /** Of the shape; identity.fingerprint is "other" past the stats' bound, this never is. */
  readonly fingerprint: string;
  /** The text's own verdict allows caching (one SELECT without time-dependent functions, locks, INTO...). */
  readonly readCacheable: boolean;
  /** Tables whose cached reads a commit of this statement makes stale. */
  readonly writes: readonly MysqlQualifiedName[];
  /** Invalidate everything on commit (DDL, CALL, stored functions, text not understood). */
  readonly writesUnlisted: boolean;
  /** The catalog may have changed: decisions (table types, function flags, triggers) are taken again. */
  readonly catalogChanged: boolean;
  readonly sessionEffect: SessionEffect;
  /** Temporary tables the statement creates or drops (this session's names from then on). */
  readonly temporaryTables: readonly string[];
  /** Ends the transaction without committing it (ROLLBACK, XA ROLLBACK). */
  readonly rollsBack: boolean;
}

/** What the probe decided for one statement in one context. */
export interface Decision {
  readonly generation: number;
  readonly cacheable: boolean;
  readonly reason: BypassReason | null;
  /** Entry tags: every table read plus the database of each. */
  readonly tags: readonly string[];
}

/** A probe's answer about one table or stored function, as of a catalog generation. */
interface CatalogFact {
  readonly generation: number;
  /** TABLE_TYPE, or IS_DETERMINISTIC:SQL_DATA_ACCESS; null when the probe found none. */
  readonly value: string | null;
}

const MAX_CONTEXTS = 10_000;
const MAX_TEXTS = 10_000;
const MAX_TEXT_KEY_LENGTH = 4096;
const MAX_DECISIONS_PER_CONTEXT = 10_000;
const MAX_FACTS_PER_CONTEXT = 10_000;

/** Everything a session's results depend on besides the statement itself, interned. */
export class MySqlContext {
  readonly decisions = boundedMap<MySqlStatementInfo, Decision>(MAX_DECISIONS_PER_CONTEXT);
  /** Per table read, by database and name as the probe looked them up. */
  readonly tableTypes = boundedMap<string, CatalogFact>(MAX_FACTS_PER_CONTEXT);
  /** Per stored function called, by database and name. */
  readonly functionFlags = boundedMap<string, CatalogFact>(MAX_FACTS_PER_CONTEXT);
  constructor(
    readonly id: number,
    readonly database: string,
    readonly keyPrefix: string,
    readonly dialect: MysqlAnalysisOptions,
    /** Its entries' prefix in the fleet's second tier; null for a session's own context (shares nothing). */
    readonly sharedPrefix: string | null,
  ) {}
}

export class MySqlCache extends ResultCache<MySqlStatementInfo> {
  /** One classifier per dialect: the same text can read differently under another sql_mode. */
  private readonly classifiers = new Map<string, MysqlClassifier>();
  private readonly infos = new WeakMap<MysqlStatementAnalysis, MySqlStatementInfo>();
  private readonly infoByText = new LRUCache<string, MySqlStatementInfo>({ max: MAX_TEXTS });
  private readonly contexts = new Map<string, MySqlContext>();
  /** Bumped on DDL: decisions and fan-out taken before may rest on a catalog that changed. */
  private generationCount = 0;
  /** Probes of sessions that had changed nothing since login, by login (see MySqlRelay). */
  private readonly startupProbes = new LRUCache<string, { probe: MySqlProbeResult; generation: number }>({ max: MAX_CONTEXTS });
  private readonly fanOut = new Map<string, { generation: number; tables: ReadonlySet<string> | null }>();
  private nextContextId = 1;

  constructor(config: Config, metrics: Metrics) {
    super('mysql', config, metrics);
  }

  get generation(): number {
    return this.generationCount;
  }


  /** The analysis and derived facts of a statement text under a dialect (analysed once per shape). */
  info(text: string, dialect: MysqlAnalysisOptions, dialectKey: string): MySqlStatementInfo {
    const textKey = dialectKey + text;
    const known = this.infoByText.get(textKey);
    if (known !== undefined) return known;
    let classifier = this.classifiers.get(dialectKey);
    if (classifier === undefined) {
      classifier = new MysqlClassifier({ dialect });
      this.classifiers.set(dialectKey, classifier);
    }
    const shape = mysqlStatementShape(text, dialect);
    const analysis = classifier.classify(shape);
    let info = this.infos.get(analysis);
    if (info === undefined) {
      info = this.derive(analysis, shape, dialect, dialectKey);
      this.infos.set(analysis, info);
    }
    if (text.length <= MAX_TEXT_KEY_LENGTH) {
      this.infoByText.set(textKey, info);
    }
    return info;
  }

  private derive(a: MysqlStatementAnalysis, shape: string, dialect: MysqlAnalysisOptions, dialectKey: string): MySqlStatementInfo {
    const fingerprint = shapeFingerprint(shape);
    const tables = [...a.tablesRead, ...a.tablesWritten].map((t) => t.name);
    let effect = SessionEffect.None;
    const temporaryTables: string[] = [];
    for (const change of a.sessionChanges) {
      if (change.global || !change.affectsResults) continue;
      switch (change.action) {
        case 'database':
        case 'role':
          effect = Math.max(effect, SessionEffect.Stale);
          break;
        case 'variable':
          effect = Math.max(effect, change.setting !== null && MYSQL_KEYED_VARIABLES.has(change.setting) ? SessionEffect.Stale : SessionEffect.Private);
          break;
        case 'temporary-table':
          if (change.setting !== null) temporaryTables.push(change.setting);
          effect = SessionEffect.Private;
          break;
        default:
          effect = SessionEffect.Private;
      }
    }
    const transactions = a.statements.map((s) => s.transaction);
    const catalogChanged = a.kind === 'ddl' || a.kind === 'unknown' || a.writesUnlisted;
    return Object.freeze({
      analysis: a,
      dialectKey,
      // /stats and the slow-query log show the shape with its literals marked `?`, never values.
      identity: this.stats.identify(fingerprint, mysqlStatementSample(shape, dialect), [...new Set(tables)]),
      shape,
      fingerprint,
      readCacheable: a.cacheable && a.kind === 'read',
      writes: a.tablesWritten,
      writesUnlisted: catalogChanged,
      catalogChanged,
      sessionEffect: effect,
      temporaryTables: Object.freeze(temporaryTables),
      rollsBack: transactions.includes('rollback') || transactions.includes('xa_rollback'),
    });
  }

  /**
   * The probe for a statement (invalidation/mysql-probe.ts) in a session whose current database is
   * `database`. A read's probe leaves out the fan-out search when this catalog generation's complete
   * answer for that database is known: the search scans every database's foreign keys, and ran
   * again at each new statement's probe in every session. A write's probe keeps it: a write to a
   * name never looked up is how a view, trigger or cascade made behind sidecache's back is found
   * (docs/consistency.md), once per name. Should the session be in another database after all, the
   * probe's NULL fan-out counts as unknown there (writes invalidated wide).
   */
  probeSql(info: MySqlStatementInfo, mariadb: boolean, database: string | null): string {
    const known = database === null ? undefined : this.fanOut.get(database);
    const fanOutKnown = known !== undefined && known.generation === this.generationCount && known.tables !== null;
    return buildMySqlProbeSql(info.analysis, mariadb, !fanOutKnown || info.analysis.tablesWritten.length > 0);
  }

  /** Reads the probe's row for `info` (text protocol values, NULL as null); throws MySqlProbeError. */
  readProbe(row: readonly (string | null)[], info: MySqlStatementInfo): MySqlProbeResult {
    return readMySqlProbeRow(row, info.analysis);
  }

  /**
   * The context for a probe's view of the session plus the capabilities that shape result bytes.
   * `privateId` is set when the session must share nothing (temporary tables, unreadable settings).
   */
  context(probe: MySqlProbeResult, capabilities: string, privateId: number | null): MySqlContext | null {
    if (probe.database === null) return null;
    const text = contextText(probe.contextText, capabilities, privateId);
    let ctx = this.contexts.get(text);
    if (ctx === undefined) {
      if (this.contexts.size >= MAX_CONTEXTS) return null;
      const id = this.nextContextId++;
      ctx = new MySqlContext(id, probe.database, contextPrefix(id), dialectOf(probe.sqlMode), privateId === null ? sharedContextPrefix(text) : null);
      this.contexts.set(text, ctx);
    }
    return ctx;
  }

  rememberStartup(startupKey: string, probe: MySqlProbeResult): void {
    this.startupProbes.set(startupKey, { probe, generation: this.generationCount });
  }

  /** A session with this login found another context than the one remembered: the next one probes. */
  forgetStartup(startupKey: string): void {
    this.startupProbes.delete(startupKey);
  }

  /** The probe of an earlier session with the same login, unless DDL happened since. */
  startupProbe(startupKey: string): MySqlProbeResult | undefined {
    const known = this.startupProbes.get(startupKey);
    return known !== undefined && known.generation === this.generationCount ? known.probe : undefined;
  }

  /** Records what the probe found for `info` under `ctx`: its tables' and functions' facts and its decision. */
  decide(ctx: MySqlContext, info: MySqlStatementInfo, probe: MySqlProbeResult): Decision {
    // The fan-out is the database's, whoever looked: a complete answer of this catalog generation
    // stays when a login that cannot see it all probes later.
    const known = this.fanOut.get(ctx.database);
    if (probe.fanOut !== null || known?.generation !== this.generationCount || known.tables === null) {
      this.fanOut.set(ctx.database, { generation: this.generationCount, tables: probe.fanOut });
    }
    const { tablesRead, routines, tablesWritten } = info.analysis;
    const generation = this.generationCount;
    const fact = (i: number): CatalogFact => ({ generation, value: probe.checks[i] ?? null });
    tablesRead.forEach((t, i) => ctx.tableTypes.set(nameKey(ctx, t), fact(i)));
    routines.forEach((r, i) => ctx.functionFlags.set(nameKey(ctx, r), fact(tablesRead.length + i)));
    tablesWritten.forEach((t, i) => ctx.tableTypes.set(nameKey(ctx, t), fact(tablesRead.length + routines.length + i)));
    return this.record(ctx, info, probe.checks);
  }

  /**
   * Have the tables `info` writes been looked up under `ctx` since the last DDL? A probe before a
   * write to one that has not refreshes what the database's fan-out (triggers, cascades, views)
   * is known to be, so a view or trigger made since the last probe is not missed.
   */
  knowsWrittenTables(ctx: MySqlContext, info: MySqlStatementInfo): boolean {
    return info.analysis.tablesWritten.every((t) => ctx.tableTypes.get(nameKey(ctx, t))?.generation === this.generationCount);
  }

  /**
   * The decision for `info` under `ctx`: taken before, or taken now from the facts known about
   * its tables and functions; undefined when one of them is not known (a probe is needed).
   */
  decision(ctx: MySqlContext, info: MySqlStatementInfo): Decision | undefined {
    const d = ctx.decisions.get(info);
    if (d !== undefined && d.generation === this.generationCount) return d;
    const a = info.analysis;
    const checks: (string | null)[] = [];
    for (const t of a.tablesRead) {
      const fact = ctx.tableTypes.get(nameKey(ctx, t));
      if (fact === undefined || fact.generation !== this.generationCount) return undefined;
      checks.push(fact.value);
    }
    for (const r of a.routines) {
      const fact = ctx.functionFlags.get(nameKey(ctx, r));
      if (fact === undefined || fact.generation !== this.generationCount) return undefined;
      checks.push(fact.value);
    }
    return this.record(ctx, info, checks);
  }

  /** Judges `info` from its tables' types and its functions' flags (in probe column order) and keeps the decision. */
  private record(ctx: MySqlContext, info: MySqlStatementInfo, checks: readonly (string | null)[]): Decision {
    const a = info.analysis;
    const reason: BypassReason | null = info.readCacheable ? mySqlCheckVerdict(a, checks) : a.reasonNotCacheable ?? 'not-cacheable';
    const tags = new Set<string>([databaseTag(ctx.database)]);
    for (const t of a.tablesRead) {
      const db = t.database ?? ctx.database;
      tags.add(databaseTag(db));
      tags.add(tableTag(db, '', t.name));
    }
    const decision: Decision = Object.freeze({ generation: this.generationCount, cacheable: reason === null, reason, tags: Object.freeze([...tags]) });
    ctx.decisions.set(info, decision);
    return decision;
  }

  /**
   * A commit wrote `tables`, resolved against `database` (the session's current one; null when
   * unknown). Writes the proxy cannot bound (unknown database, triggers, cascades, DDL) drop everything.
   */
  invalidate(database: string | null, tables: Iterable<MysqlQualifiedName>, wide: boolean, catalogChanged: boolean): void {
    const tags: string[] = [];
    const names: string[] = [];
    // Catalog changes come from statements the analysis cannot bound (writesUnlisted): wide anyway.
    wide ||= catalogChanged;
    if (!wide) {
      for (const t of tables) {
        const db = t.database ?? database;
        if (db === null || this.writeFansOut(db, t.name)) {
          wide = true;
          break;
        }
        tags.push(tableTag(db, '', t.name));
        names.push(t.name);
      }
    }
    if (wide) this.invalidateEverywhere({ scope: 'all', catalog: catalogChanged });
    else if (tags.length > 0) this.invalidateEverywhere({ scope: 'tags', tags, tables: names, catalog: null });
  }

  /** A MySQL statement can reach any database: DDL voids the decisions of all of them. */
  protected catalogChanged(): void {
    this.generationCount++;
  }

  /**
   * CDC (changes/): the tables a transaction wrote as the binlog names them. Every table it opened
   * for writing has a TABLE_MAP there, foreign-key cascade targets included, and triggers' writes
   * are logged as rows: exactly these go, without the fan-out rule writes through the proxy need.
   */
  invalidateStreamed(tables: readonly { database: string; name: string }[], wide: boolean, catalogChanged: boolean): void {
    // Through the seam, as PostgreSQL's stream does: the other workers (docs/workers.md), which do
    // not read the binlog themselves, and a fleet's proxies apply it too.
    if (wide) {
      this.invalidateEverywhere({ scope: 'all', catalog: catalogChanged });
      return;
    }
    if (tables.length === 0 && !catalogChanged) return;
    // MySQL's catalog generation is one for every database: any name stands for "changed".
    const catalog = catalogChanged ? tables[0]?.database ?? '*' : null;
    this.invalidateEverywhere({ scope: 'tags', tags: tables.map((t) => tableTag(t.database, '', t.name)), tables: tables.map((t) => t.name), catalog });
  }

  /** May a write to `table` change other tables? Unknown for this catalog generation counts as yes. */
  private writeFansOut(database: string, table: string): boolean {
    const known = this.fanOut.get(database);
    return known === undefined || known.generation !== this.generationCount || known.tables === null || known.tables.has(table);
  }
}

/** The analysis dialect a session's sql_mode implies. */
export function dialectOf(sqlMode: string): MysqlAnalysisOptions {
  const modes = sqlMode.toUpperCase().split(',');
  return {
    ansiQuotes: modes.includes('ANSI_QUOTES') || modes.includes('ANSI'),
    noBackslashEscapes: modes.includes('NO_BACKSLASH_ESCAPES'),
  };
}

/** A table's or function's key among a context's facts: its database (the context's when unnamed) and name. */
function nameKey(ctx: MySqlContext, name: MysqlQualifiedName): string {
  return `${name.database ?? ctx.database}\u0000${name.name}`;
}
