// Cache rules: the `rules:` list of the config file, checked when the file is loaded and compiled
// once per config (regexes included). The proxy asks `match` once per statement shape and config,
// keeps the answer with the statement, and applies it when it fills: never store, store with
// another TTL, or refuse results above a smaller size. Hits outside transactions never evaluate
// rules; inside a transaction known to be read-only only a rule that opts in allows a hit.
import { isDeepStrictEqual } from 'node:util';
import { ConfigError } from './errors.js';

/** What a rule does; the first rule whose match fits a statement decides. */
export interface RuleOutcome {
  /** `rules[N]` of the rule that matched, null when none did (shown per query in /stats). */
  readonly label: string | null;
  /** Never store this statement's results. */
  readonly never: boolean;
  /** TTL of its entries in ms instead of --cache-ttl (0 = no expiry). */
  readonly ttlMs: number | undefined;
  /** Largest charged size of its entries, below --cache-max-entry-bytes. */
  readonly maxEntryBytes: number | undefined;
  /**
   * May be answered from the cache inside a transaction the proxy knows to be read-only (a hit may
   * then be newer than the transaction's snapshot; see docs/consistency.md).
   */
  readonly inReadOnlyTransactions: boolean;
}

/** What a rule is matched against: the facts of one statement shape. */
export interface RuleSubject {
  /** As /stats and /api/queries show it. */
  readonly fingerprint: string;
  /** The statement's shape (its text with literal values replaced), which the regex is tested against. */
  readonly shape: string;
  /** Bare names of the tables it reads or writes. */
  readonly tables: readonly string[];
}

/** One rule as written in the file (durations and sizes in their parsed form), for /api/config. */
export interface CacheRuleSpec {
  readonly match: { readonly table?: string; readonly fingerprint?: string; readonly regex?: string };
  readonly cache?: 'never';
  readonly ttlMs?: number;
  readonly maxEntryBytes?: number;
  readonly inReadOnlyTransactions?: boolean;
}

export const NO_RULE: RuleOutcome = Object.freeze({ label: null, never: false, ttlMs: undefined, maxEntryBytes: undefined, inReadOnlyTransactions: false });

interface CompiledRule {
  readonly spec: CacheRuleSpec;
  readonly regex: RegExp | null;
  readonly outcome: RuleOutcome;
}

export class CacheRules {
  static readonly NONE = new CacheRules([]);
  private readonly compiled: readonly CompiledRule[];

  constructor(specs: readonly CacheRuleSpec[]) {
    this.compiled = Object.freeze(specs.map((spec, i) => ({
      spec,
      // Validated by parseRules; compiled here once for every statement this config sees.
      regex: spec.match.regex === undefined ? null : new RegExp(spec.match.regex, 'is'),
      outcome: Object.freeze({
        label: `rules[${i}]`, never: spec.cache === 'never', ttlMs: spec.ttlMs, maxEntryBytes: spec.maxEntryBytes,
        inReadOnlyTransactions: spec.inReadOnlyTransactions === true,
      }),
    })));
    Object.freeze(this);
  }

  get size(): number {
    return this.compiled.length;
  }

  /** The first rule that fits, in file order; a rule with several match keys needs all of them. */
  match(s: RuleSubject): RuleOutcome {
    for (const r of this.compiled) {
      const m = r.spec.match;
      if (m.fingerprint !== undefined && m.fingerprint !== s.fingerprint) continue;
      if (m.table !== undefined && !s.tables.includes(m.table)) continue;
      if (r.regex !== null && !r.regex.test(s.shape)) continue;
      return r.outcome;
    }
    return NO_RULE;
  }

  equals(other: CacheRules): boolean {
    return isDeepStrictEqual(this.toJSON(), other.toJSON());
  }

  /** The rules as given, for /api/config. */
  toJSON(): readonly CacheRuleSpec[] {
    return this.compiled.map((r) => r.spec);
  }
}

const MATCH_KEYS = new Set(['table', 'fingerprint', 'regex']);
const RULE_KEYS = new Set(['match', 'cache', 'ttl', 'max-entry-bytes', 'in-read-only-transactions']);

/**
 * The `rules:` value of a config file. `where` is the file's path; errors name the rule and key,
 * e.g. `rules[1].ttl in /etc/sidecache.yaml: expected a duration ...`.
 */
export function parseRules(value: unknown, where: string, parseDuration: (key: string, text: string) => number, parseBytes: (key: string, text: string) => number): CacheRules {
  if (value === null) return CacheRules.NONE;
  if (!Array.isArray(value)) throw new ConfigError(`rules in ${where}`, 'expected a list of rules, e.g. "- match: {table: orders}" with "ttl: 5s" below it');
  const specs = value.map((raw: unknown, i): CacheRuleSpec => {
    const key = (k: string): string => `rules[${i}]${k === '' ? '' : '.' + k} in ${where}`;
    if (!isMapping(raw)) throw new ConfigError(key(''), 'expected a mapping with "match" and an action (cache: never, ttl, max-entry-bytes, in-read-only-transactions)');
    for (const k of Object.keys(raw)) {
      if (!RULE_KEYS.has(k)) throw new ConfigError(key(k), `unknown key; a rule has ${[...RULE_KEYS].join(', ')}`);
    }
    const m = raw.match;
    if (!isMapping(m) || Object.keys(m).length === 0) throw new ConfigError(key('match'), 'expected a mapping with table, fingerprint and/or regex');
    const match: { table?: string; fingerprint?: string; regex?: string } = {};
    for (const [k, v] of Object.entries(m)) {
      if (!MATCH_KEYS.has(k)) throw new ConfigError(key(`match.${k}`), 'unknown key; match by table, fingerprint or regex');
      if (typeof v !== 'string' || v === '') throw new ConfigError(key(`match.${k}`), 'expected a non-empty string');
      match[k as 'table'] = v;
    }
    if (match.table !== undefined && match.table.includes('.')) {
      throw new ConfigError(key('match.table'), `give the bare table name ("${match.table.split('.').pop()}"): a table is matched by name in every schema`);
    }
    if (match.regex !== undefined) {
      try {
        new RegExp(match.regex, 'is');
      } catch (err) {
        throw new ConfigError(key('match.regex'), `not a valid regular expression: ${(err as Error).message}`);
      }
    }
    const spec: { match: typeof match; cache?: 'never'; ttlMs?: number; maxEntryBytes?: number; inReadOnlyTransactions?: boolean } = { match: Object.freeze(match) };
    if (raw.cache !== undefined) {
      if (raw.cache !== 'never') throw new ConfigError(key('cache'), `expected "never", got ${JSON.stringify(raw.cache)}`);
      spec.cache = 'never';
    }
    if (raw.ttl !== undefined) spec.ttlMs = parseDuration(key('ttl'), scalarText(raw.ttl, key('ttl')));
    if (raw['max-entry-bytes'] !== undefined) spec.maxEntryBytes = parseBytes(key('max-entry-bytes'), scalarText(raw['max-entry-bytes'], key('max-entry-bytes')));
    const inTx = raw['in-read-only-transactions'];
    if (inTx !== undefined) {
      if (typeof inTx !== 'boolean') throw new ConfigError(key('in-read-only-transactions'), `expected true or false, got ${JSON.stringify(inTx)}`);
      // A rule decides alone (the first match wins): "never" and hits inside transactions contradict.
      if (inTx && spec.cache === 'never') throw new ConfigError(key('in-read-only-transactions'), 'cannot be combined with cache: never (nothing is stored to hit)');
      if (inTx) spec.inReadOnlyTransactions = true;
    }
    if (spec.cache === undefined && spec.ttlMs === undefined && spec.maxEntryBytes === undefined && spec.inReadOnlyTransactions === undefined) {
      throw new ConfigError(key(''), 'has no action: add cache: never, ttl, max-entry-bytes or in-read-only-transactions: true');
    }
    return Object.freeze(spec);
  });
  return new CacheRules(specs);
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function scalarText(v: unknown, key: string): string {
  if (typeof v !== 'string' && typeof v !== 'number') throw new ConfigError(key, 'expected a single value');
  return String(v);
}

/**
 * Each statement's rule under the current rules, evaluated once per statement info (the proxy
 * keeps one info per statement shape) and forgotten when a reload brings other rules.
 */
export class StatementRules<I extends { readonly identity: { rule: string | null } }> {
  private outcomes = new WeakMap<I, RuleOutcome>();

  constructor(private rules: CacheRules, private readonly subject: (info: I) => RuleSubject) {}

  /** The rule for a cacheable read; also noted on its identity for /stats. */
  get(info: I): RuleOutcome {
    if (this.rules.size === 0) return NO_RULE;
    let outcome = this.outcomes.get(info);
    if (outcome === undefined) {
      outcome = this.rules.match(this.subject(info));
      this.outcomes.set(info, outcome);
      info.identity.rule = outcome.label;
    }
    return outcome;
  }

  /** Takes the rules of a reloaded config; true when they differ from the ones in force. */
  replace(rules: CacheRules): boolean {
    if (rules.equals(this.rules)) return false;
    this.rules = rules;
    this.outcomes = new WeakMap();
    return true;
  }
}
