// What the catalog says about one relation or one function in a session context, learned from a
// probe (pg-probe.ts), and the verdict on a statement derived from the facts of the names it
// uses. A relation's kind, partitions, cascades, the views and policies behind it and the
// functions they call do not depend on literal values or on which statement named it: learned
// once per relation and context, they judge every statement over known names without a probe.
// Pure: probe rows and analyses in, facts and verdicts out.
import type { NotCacheableReason, StatementAnalysis } from './pg-analysis.js';
import { isSystemRelation } from './pg-builtins.js';
import { relationKey, type ClosureRelation, type ProbedFunction, type ProbedRelation } from './pg-probe.js';

/** Why a read of a relation may not be cached, by its kind, persistence and schema. */
export type RelationHazard = 'temporary-table' | 'foreign-table' | 'sequence' | 'system-catalog' | 'unsupported-relation';

export interface RelationFacts {
  /** Why a read may not be cached for what a relation of its closure is (the first, in the probe's order). */
  readonly hazard: RelationHazard | null;
  /** Why a read may not be cached for what a view or policy of its closure computes (the text analysis). */
  readonly definitionHazard: ViewHazard | null;
  /** The functions its views and policies call are IMMUTABLE or built-in STABLE ones. */
  readonly callsSafe: boolean;
  /** ... and all live in pg_catalog. */
  readonly callsBuiltin: boolean;
  /** The relation names of its closure: a write to any may change a read of it. */
  readonly dependsOn: readonly string[];
}

export type FunctionFacts = Omit<ProbedFunction, 'name'>;

/** What a probe taught about each name, keyed as statements name them (relationKey, bare function names). */
export interface LearnedFacts {
  /** Names that resolve; one that does not is left out (a statement naming it is probed again). */
  readonly relations: ReadonlyMap<string, RelationFacts>;
  readonly functions: ReadonlyMap<string, FunctionFacts>;
}

/** Why a read of a statement may not be cached, as far as the catalog and the definitions behind it tell. */
export type CatalogReason = RelationHazard | 'unresolved-table' | 'function' | ViewHazard;

/** A view or policy of the closure computes something not cacheable (its text's analysis says what). */
export type ViewHazard = `view-${NotCacheableReason | 'not-cacheable'}`;

export interface StatementVerdict {
  /** null when the catalog allows caching the statement's result. */
  readonly reason: CatalogReason | null;
  /** Every relation name a write to which may change the result. */
  readonly dependsOn: readonly string[];
  /** Every function the statement and the views it reads call lives in pg_catalog. */
  readonly functionsBuiltin: boolean;
}

/**
 * Tables, partitioned tables, views (judged further by their definitions) and materialized views
 * (changed only by REFRESH, a write to their name) may be cached; what changes without a write
 * sidecache can see, or belongs to one session, may not.
 */
function relationHazard({ kind, persistence, schema, name }: ClosureRelation): RelationHazard | null {
  if (persistence === 't') return 'temporary-table';
  if (kind === 'f') return 'foreign-table';
  if (kind === 'S') return 'sequence';
  if (isSystemRelation(schema, name)) return 'system-catalog';
  return kind === 'r' || kind === 'p' || kind === 'v' || kind === 'm' ? null : 'unsupported-relation';
}

/**
 * Why one of the views read computes something that may not be cached (now(), random(), a
 * locking clause, a catalog, ...), judged by the analysis a statement text gets (`analyze`): the
 * catalog records no dependency on built-ins, so only the definition shows them. Null when every
 * definition may be cached; the probe has judged the functions they call and the relations they read.
 */
export function viewDefinitionHazard(definitions: readonly string[], analyze: (text: string) => StatementAnalysis): ViewHazard | null {
  for (const definition of definitions) {
    const a = analyze(definition);
    if (a.kind !== 'read') return 'view-not-a-read';
    if (!a.cacheable) return `view-${a.reasonNotCacheable ?? 'not-cacheable'}`;
  }
  return null;
}

/**
 * A row-level security policy's USING expression as a query the text analysis can judge like a
 * view's definition: a policy calling now() filters differently as time passes, without a write.
 * current_setting() is allowed here (it is not in a view): it is how policies read the tenant, and
 * the settings a session sets, or its startup options, are part of its context key.
 */
function policyAsQuery(expression: string): string {
  return `SELECT 1 WHERE ${expression.replace(/\bcurrent_setting\s*\(/gi, 'lower(')}`;
}

/** What the views of a closure compute and its policies filter with, as queries for the text analysis. */
export function closureDefinitions(closure: readonly ClosureRelation[]): string[] {
  return closure.flatMap((r) => [...(r.definition === null ? [] : [r.definition]), ...r.policies.map(policyAsQuery)]);
}

/** The facts of each name a probe reported; `analyze` judges view definitions and policies. */
export function learnFacts(relations: readonly ProbedRelation[], functions: readonly ProbedFunction[],
  analyze: (text: string) => StatementAnalysis): LearnedFacts {
  const learned = new Map<string, RelationFacts>();
  for (const r of relations) {
    if (r.closure === null) continue;
    let hazard: RelationHazard | null = null;
    for (const rel of r.closure) if ((hazard = relationHazard(rel)) !== null) break;
    learned.set(r.name, Object.freeze({
      hazard,
      definitionHazard: viewDefinitionHazard(closureDefinitions(r.closure), analyze),
      callsSafe: r.callsSafe,
      callsBuiltin: r.callsBuiltin,
      dependsOn: Object.freeze([...new Set(r.closure.map((c) => c.name))]),
    }));
  }
  const functionFacts = new Map<string, FunctionFacts>();
  for (const f of functions) functionFacts.set(f.name, Object.freeze({ safe: f.safe, builtin: f.builtin, found: f.found }));
  return { relations: learned, functions: functionFacts };
}

/**
 * The catalog's verdict on a statement from the facts of every relation it reads and every
 * function it calls, or undefined when one of them is not known (the statement must be probed).
 * A name that does not resolve is never known (a probe tells that). In order: a relation's kind,
 * then the functions, then what a view or policy computes.
 */
export function judgeStatement(analysis: StatementAnalysis, relation: (key: string) => RelationFacts | undefined,
  func: (name: string) => FunctionFacts | undefined): StatementVerdict | undefined {
  const relations: RelationFacts[] = [];
  for (const t of analysis.tablesRead) {
    const facts = relation(relationKey(t));
    if (facts === undefined) return undefined;
    relations.push(facts);
  }
  let functionsSafe = true;
  let functionsBuiltin = true;
  for (const f of analysis.functions) {
    const facts = func(f.name);
    if (facts === undefined) return undefined;
    functionsSafe &&= facts.safe && facts.found;
    functionsBuiltin &&= facts.builtin && facts.found;
  }
  const dependsOn = new Set<string>();
  let reason: CatalogReason | null = null;
  for (const r of relations) {
    for (const name of r.dependsOn) dependsOn.add(name);
    functionsSafe &&= r.callsSafe;
    functionsBuiltin &&= r.callsBuiltin;
    reason ??= r.hazard;
  }
  if (reason === null && !functionsSafe) reason = 'function';
  for (const r of relations) reason ??= r.definitionHazard;
  return { reason, dependsOn: [...dependsOn], functionsBuiltin };
}

/** A name the probe reported as not resolving: nothing behind it, and the statement is refused. */
const UNRESOLVED: RelationFacts = Object.freeze({ hazard: null, definitionHazard: null, callsSafe: true, callsBuiltin: true, dependsOn: [] });
const NO_FUNCTION: FunctionFacts = Object.freeze({ safe: false, builtin: false, found: false });

/** The verdict on a statement from what its own probe, which reported every name it uses, taught. */
export function judgeProbed(analysis: StatementAnalysis, learned: LearnedFacts): StatementVerdict {
  const verdict = judgeStatement(analysis, (k) => learned.relations.get(k) ?? UNRESOLVED, (f) => learned.functions.get(f) ?? NO_FUNCTION)!;
  // A name that does not resolve: the statement will fail, or creates the relation first.
  const unresolved = analysis.tablesRead.some((t) => !learned.relations.has(relationKey(t)));
  return unresolved ? { ...verdict, reason: 'unresolved-table' } : verdict;
}
