// The MySQL side's shared cache service: the result store, the statement analysis (one analysis
// per statement shape and dialect), the session contexts entries are keyed under, the probe that
// reads a session's context and the catalog facts of a statement's tables and functions, and
// invalidation. Sessions (relay.ts) call it; it knows nothing of sockets.
//
// What the probe learns about a table (its TABLE_TYPE) or a stored function (determinism, data
// access) depends on its name, the session's context and the catalog, never on the statement
// that named it: facts are kept per context and name until DDL, so a new statement over known
// tables and functions is judged without a probe.
import { createHash } from 'node:crypto';
import type { Metrics } from '../../admin/metrics.js';
import type { StatementIdentity } from '../../admin/query-stats.js';
import { databaseTag, tableTag } from '../../cache/tags.js';
import { ResultCache } from '../result-cache.js';
import type { Config } from '../../config/settings.js';
import type { MysqlAnalysisOptions, MysqlQualifiedName, MysqlStatementAnalysis } from '../../invalidation/mysql-analysis.js';
import { MysqlClassifier } from '../../invalidation/mysql-classifier.js';
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
export interface MysqlStatementInfo {
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
  readonly reason: string | null;
  /** Entry tags: every table read plus the database of each. */
  readonly tags: readonly string[];
}

/** A probe's answer about one table or stored function, as of a catalog generation. */
interface CatalogFact {
  readonly generation: number;
  /** TABLE_TYPE, or IS_DETERMINISTIC:SQL_DATA_ACCESS; null when the probe found none. */
  readonly value: string | null;
}

/** Everything a session's results depend on besides the statement itself, interned. */
export class MysqlContext {
  readonly decisions = new Map<MysqlStatementInfo, Decision>();
  /** Per table read, by database and name as the probe looked them up. */
  readonly tableTypes = new Map<string, CatalogFact>();
  /** Per stored function called, by database and name. */
  readonly functionFlags = new Map<string, CatalogFact>();
  constructor(readonly id: number, readonly database: string, readonly keyPrefix: string, readonly dialect: MysqlAnalysisOptions) {}
}

/**
 * Session variables that change a result or its bytes, read by the probe into the context.
 * Setting any other variable that may change results makes the session private (SessionEffect).
 */
const KEYED_VARIABLES = [
  'character_set_client', 'character_set_connection', 'character_set_results', 'collation_connection',
  'character_set_database', 'collation_database', 'time_zone', 'sql_mode', 'div_precision_increment',
  'lc_time_names', 'group_concat_max_len', 'default_week_format', 'sql_select_limit', 'max_sort_length',
  'sql_auto_is_null',
] as const;
/** Each server has some of its own; the other would fail the probe on them. */
const KEYED_MARIADB_VARIABLES = ['system_versioning_asof'] as const;
const KEYED_MYSQL_VARIABLES = ['block_encryption_mode'] as const;
const KEYED_SET: ReadonlySet<string> = new Set<string>([...KEYED_VARIABLES, ...KEYED_MARIADB_VARIABLES, ...KEYED_MYSQL_VARIABLES]);
/** Table types whose rows change only through writes the proxy sees (views are resolved later, not cached). */
const CACHEABLE_TABLE_TYPES: ReadonlySet<string> = new Set(['BASE TABLE', 'SYSTEM VERSIONED']);

/** The probe's row: DATABASE(), CURRENT_USER(), USER(), CURRENT_ROLE(), the keyed variables, fan-out, then the checks. */
const SETTINGS_COLUMN = 4;
const FAN_OUT_COLUMN = 5;
const FIRST_CHECK_COLUMN = 6;

const MAX_CONTEXTS = 10_000;
const MAX_TEXTS = 10_000;
const MAX_TEXT_KEY_LENGTH = 4096;
const MAX_DECISIONS_PER_CONTEXT = 10_000;
const MAX_FACTS_PER_CONTEXT = 10_000;

/** The probe's row, read. */
export interface MysqlProbeResult {
  readonly database: string | null;
  /** The identity and settings part of the context key. */
  readonly contextText: string;
  readonly sqlMode: string;
  /** Tables of the current database whose writes reach other tables (triggers, cascading foreign keys); null = unknown. */
  readonly fanOut: ReadonlySet<string> | null;
  /** Per statement check: the values of its table-type and routine columns. */
  readonly checks: readonly (string | null)[];
}

export class MysqlProbeError extends Error {
  override name = 'MysqlProbeError';
}

export class MySqlCache extends ResultCache<MysqlStatementInfo> {
  /** One classifier per dialect: the same text can read differently under another sql_mode. */
  private readonly classifiers = new Map<string, MysqlClassifier>();
  private readonly infos = new WeakMap<MysqlStatementAnalysis, MysqlStatementInfo>();
  private readonly infoByText = new Map<string, MysqlStatementInfo>();
  private readonly contexts = new Map<string, MysqlContext>();
  /** Bumped on DDL: decisions and fan-out taken before may rest on a catalog that changed. */
  private generationCount = 0;
  /** Probes of sessions that had changed nothing since login, by login (see MySqlRelay). */
  private readonly startupProbes = new Map<string, { probe: MysqlProbeResult; generation: number }>();
  private readonly fanOut = new Map<string, { generation: number; tables: ReadonlySet<string> | null }>();
  private nextContextId = 1;

  constructor(config: Config, metrics: Metrics) {
    super('mysql', config, metrics);
  }

  get generation(): number {
    return this.generationCount;
  }


  /** The analysis and derived facts of a statement text under a dialect (analysed once per shape). */
  info(text: string, dialect: MysqlAnalysisOptions, dialectKey: string): MysqlStatementInfo {
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
      if (this.infoByText.size >= MAX_TEXTS) this.infoByText.clear();
      this.infoByText.set(textKey, info);
    }
    return info;
  }

  private derive(a: MysqlStatementAnalysis, shape: string, dialect: MysqlAnalysisOptions, dialectKey: string): MysqlStatementInfo {
    const fingerprint = createHash('sha1').update(shape).digest('hex').slice(0, 16);
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
          effect = Math.max(effect, change.setting !== null && KEYED_SET.has(change.setting) ? SessionEffect.Stale : SessionEffect.Private);
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
   * The probe for a statement: one row of the session's context (database, users, role, keyed
   * variables), the current database's fan-out tables, then one column per table read (its
   * TABLE_TYPE), per stored function called (determinism and data access) and per table written
   * (its TABLE_TYPE). Names travel as hex literals so neither sql_mode nor the character set can
   * change how they read.
   */
  probeSql(info: MysqlStatementInfo, mariadb: boolean): string {
    const variables = [...KEYED_VARIABLES, ...(mariadb ? KEYED_MARIADB_VARIABLES : KEYED_MYSQL_VARIABLES)];
    const columns = [
      'DATABASE()', 'CURRENT_USER()', 'USER()', 'CURRENT_ROLE()',
      // CONCAT_WS skips NULLs (character_set_results may be NULL): mark them so positions hold.
      `CONCAT_WS(X'00', ${variables.map((v) => `IFNULL(@@SESSION.${v}, X'01')`).join(', ')})`,
      // Writes to these reach other tables (triggers, cascading foreign keys, updatable views):
      // invalidated wide. The count tells a truncated list.
      "(SELECT CONCAT(COUNT(DISTINCT t), ':', IFNULL(GROUP_CONCAT(DISTINCT HEX(t)), '')) FROM ("
        + 'SELECT EVENT_OBJECT_TABLE AS t FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = DATABASE() UNION '
        + 'SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE() UNION '
        + "SELECT REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE UNIQUE_CONSTRAINT_SCHEMA = DATABASE() AND (DELETE_RULE NOT IN ('RESTRICT', 'NO ACTION') OR UPDATE_RULE NOT IN ('RESTRICT', 'NO ACTION'))"
        + ') f)',
    ];
    for (const t of info.analysis.tablesRead) columns.push(tableTypeColumn(t));
    for (const r of info.analysis.routines) {
      columns.push(`(SELECT CONCAT(IS_DETERMINISTIC, ':', SQL_DATA_ACCESS) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ${schemaOf(r)} AND ROUTINE_NAME = ${literal(r.name)} AND ROUTINE_TYPE = 'FUNCTION' LIMIT 1)`);
    }
    for (const t of info.analysis.tablesWritten) columns.push(tableTypeColumn(t));
    return `SELECT ${columns.join(', ')}`;
  }

  /** Reads the probe's row (text protocol values, NULL as null). */
  readProbe(row: readonly (string | null)[], info: MysqlStatementInfo): MysqlProbeResult {
    const { tablesRead, routines, tablesWritten } = info.analysis;
    const expected = FIRST_CHECK_COLUMN + tablesRead.length + routines.length + tablesWritten.length;
    if (row.length !== expected) throw new MysqlProbeError(`probe returned ${row.length} columns, expected ${expected}`);
    const settings = row[SETTINGS_COLUMN] ?? '';
    const sqlMode = settings.split('\u0000')[KEYED_VARIABLES.indexOf('sql_mode')] ?? '';
    return {
      database: row[0] ?? null,
      contextText: row.slice(0, SETTINGS_COLUMN + 1).map((v) => v ?? '\u0001').join('\u0000'),
      sqlMode,
      fanOut: readFanOut(row[FAN_OUT_COLUMN] ?? null),
      checks: row.slice(FIRST_CHECK_COLUMN),
    };
  }

  /**
   * The context for a probe's view of the session plus the capabilities that shape result bytes.
   * `privateId` is set when the session must share nothing (temporary tables, unreadable settings).
   */
  context(probe: MysqlProbeResult, capabilities: string, privateId: number | null): MysqlContext | null {
    if (probe.database === null) return null;
    const text = `${probe.contextText}\u0000${capabilities}\u0000${privateId ?? ''}`;
    let ctx = this.contexts.get(text);
    if (ctx === undefined) {
      if (this.contexts.size >= MAX_CONTEXTS) return null;
      const id = this.nextContextId++;
      ctx = new MysqlContext(id, probe.database, `${id}\u0001`, dialectOf(probe.sqlMode));
      this.contexts.set(text, ctx);
    }
    return ctx;
  }

  rememberStartup(startupKey: string, probe: MysqlProbeResult): void {
    if (this.startupProbes.size >= MAX_CONTEXTS) this.startupProbes.clear();
    this.startupProbes.set(startupKey, { probe, generation: this.generationCount });
  }

  /** The probe of an earlier session with the same login, unless DDL happened since. */
  startupProbe(startupKey: string): MysqlProbeResult | undefined {
    const known = this.startupProbes.get(startupKey);
    return known !== undefined && known.generation === this.generationCount ? known.probe : undefined;
  }

  /** Records what the probe found for `info` under `ctx`: its tables' and functions' facts and its decision. */
  decide(ctx: MysqlContext, info: MysqlStatementInfo, probe: MysqlProbeResult): Decision {
    this.fanOut.set(ctx.database, { generation: this.generationCount, tables: probe.fanOut });
    const { tablesRead, routines, tablesWritten } = info.analysis;
    const generation = this.generationCount;
    const fact = (i: number): CatalogFact => ({ generation, value: probe.checks[i] ?? null });
    tablesRead.forEach((t, i) => remember(ctx.tableTypes, nameKey(ctx, t), fact(i)));
    routines.forEach((r, i) => remember(ctx.functionFlags, nameKey(ctx, r), fact(tablesRead.length + i)));
    tablesWritten.forEach((t, i) => remember(ctx.tableTypes, nameKey(ctx, t), fact(tablesRead.length + routines.length + i)));
    return this.record(ctx, info, probe.checks);
  }

  /**
   * Have the tables `info` writes been looked up under `ctx` since the last DDL? A probe before a
   * write to one that has not refreshes what the database's fan-out (triggers, cascades, views)
   * is known to be, so a view or trigger made since the last probe is not missed.
   */
  knowsWrittenTables(ctx: MysqlContext, info: MysqlStatementInfo): boolean {
    return info.analysis.tablesWritten.every((t) => ctx.tableTypes.get(nameKey(ctx, t))?.generation === this.generationCount);
  }

  /**
   * The decision for `info` under `ctx`: taken before, or taken now from the facts known about
   * its tables and functions; undefined when one of them is not known (a probe is needed).
   */
  decision(ctx: MysqlContext, info: MysqlStatementInfo): Decision | undefined {
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
  private record(ctx: MysqlContext, info: MysqlStatementInfo, checks: readonly (string | null)[]): Decision {
    const a = info.analysis;
    let reason: string | null = info.readCacheable ? null : a.reasonNotCacheable ?? 'not-cacheable';
    const tags = new Set<string>([databaseTag(ctx.database)]);
    a.tablesRead.forEach((t, i) => {
      const type = checks[i] ?? null;
      if (reason === null && type === null) reason = 'unknown-table'; // a temporary table, or one that does not exist
      else if (reason === null && !CACHEABLE_TABLE_TYPES.has(type!)) reason = type === 'VIEW' ? 'view' : 'table-type';
      const db = t.database ?? ctx.database;
      tags.add(databaseTag(db));
      tags.add(tableTag(db, '', t.name));
    });
    a.routines.forEach((_r, i) => {
      const flags = checks[a.tablesRead.length + i] ?? null;
      if (reason === null && flags !== 'YES:NO SQL' && flags !== 'YES:CONTAINS SQL') reason = 'user-function';
    });
    const decision: Decision = Object.freeze({ generation: this.generationCount, cacheable: reason === null, reason, tags: Object.freeze([...tags]) });
    if (ctx.decisions.size >= MAX_DECISIONS_PER_CONTEXT) ctx.decisions.clear();
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

function readFanOut(value: string | null): ReadonlySet<string> | null {
  if (value === null) return null;
  const colon = value.indexOf(':');
  const count = Number(value.slice(0, colon));
  const list = value.slice(colon + 1);
  const names = list === '' ? [] : list.split(',').map((hex) => Buffer.from(hex, 'hex').toString('utf8'));
  // GROUP_CONCAT stops at group_concat_max_len: a short list means names are missing.
  return names.length === count ? new Set(names) : null;
}

/** A table's or function's key among a context's facts: its database (the context's when unnamed) and name. */
function nameKey(ctx: MysqlContext, name: MysqlQualifiedName): string {
  return `${name.database ?? ctx.database}\u0000${name.name}`;
}

function remember(facts: Map<string, CatalogFact>, key: string, fact: CatalogFact): void {
  if (facts.size >= MAX_FACTS_PER_CONTEXT && !facts.has(key)) facts.clear();
  facts.set(key, fact);
}

function literal(name: string): string {
  return `CONVERT(X'${Buffer.from(name, 'utf8').toString('hex')}' USING utf8mb4)`;
}

function tableTypeColumn(t: MysqlQualifiedName): string {
  return `(SELECT TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${schemaOf(t)} AND TABLE_NAME = ${literal(t.name)})`;
}

function schemaOf(name: MysqlQualifiedName): string {
  return name.database === null ? 'DATABASE()' : literal(name.database);
}
