import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { analyzeSql, loadPgParser } from './pg-analysis.js';
import { judgeProbed, judgeStatement, learnFacts, type FunctionFacts, type RelationFacts } from './pg-facts.js';
import type { ClosureRelation, ProbedFunction, ProbedRelation } from './pg-probe.js';

function rel(name: string, over: Partial<ClosureRelation> = {}): ClosureRelation {
  return { name, kind: 'r', persistence: 'p', schema: 'public', definition: null, policies: [], ...over };
}

function probed(name: string, closure: ClosureRelation[] | null, calls: Partial<Pick<ProbedRelation, 'callsSafe' | 'callsBuiltin'>> = {}): ProbedRelation {
  return { name, closure, callsSafe: true, callsBuiltin: true, ...calls };
}

const fn = (name: string, safe = true, builtin = true, found = true): ProbedFunction => ({ name, safe, builtin, found });

test.before(async () => {
  await loadPgParser();
});

test('what a relation is: its kind and what stands behind it, learned per name', () => {
  const learned = learnFacts([
    probed('"orders"', [rel('orders'), rel('customers')]),
    probed('"scratch"', [rel('scratch', { persistence: 't' })]),
    probed('"remote"', [rel('remote', { kind: 'f' })]),
    probed('"seq"', [rel('seq', { kind: 'S' })]),
    probed('"pg_class"', [rel('pg_class', { schema: 'pg_catalog' })]),
    probed('"idx"', [rel('idx', { kind: 'i' })]),
    probed('"over_temp"', [rel('over_temp', { kind: 'v', definition: 'SELECT * FROM scratch' }), rel('scratch', { persistence: 't' })]),
    probed('"missing"', null),
  ], [], analyzeSql);
  const hazard = (k: string): string | null | undefined => learned.relations.get(k)?.hazard;
  assert.is(hazard('"orders"'), null);
  assert.equal(learned.relations.get('"orders"')!.dependsOn, ['orders', 'customers']);
  assert.is(hazard('"scratch"'), 'temporary-table');
  assert.is(hazard('"remote"'), 'foreign-table');
  assert.is(hazard('"seq"'), 'sequence');
  assert.is(hazard('"pg_class"'), 'system-catalog');
  assert.is(hazard('"idx"'), 'unsupported-relation');
  assert.is(hazard('"over_temp"'), 'temporary-table', 'a view over a temporary table');
  assert.not.ok(learned.relations.has('"missing"'), 'a name that does not resolve is not remembered: the next statement probes it');
});

test('what views and policies behind a relation compute is judged by the text analysis', () => {
  const learned = learnFacts([
    probed('"v_now"', [rel('v_now', { kind: 'v', definition: 'SELECT id, now() AS at FROM t' }), rel('t')]),
    probed('"v_plain"', [rel('v_plain', { kind: 'v', definition: 'SELECT id FROM t' }), rel('t')]),
    probed('"by_time"', [rel('by_time', { policies: ['(public_at <= now())'] })]),
    probed('"by_tenant"', [rel('by_tenant', { policies: ["(tenant = current_setting('app.tenant'::text, true))"] })]),
    probed('"v_locking"', [rel('v_locking', { kind: 'v', definition: 'SELECT id FROM t FOR UPDATE' })]),
  ], [], analyzeSql);
  const hazard = (k: string): string | null | undefined => learned.relations.get(k)?.definitionHazard;
  assert.is(hazard('"v_now"'), 'view-time-dependent');
  assert.is(hazard('"v_plain"'), null);
  assert.is(hazard('"by_time"'), 'view-time-dependent');
  assert.is(hazard('"by_tenant"'), null, 'current_setting() in a policy: the settings are keyed');
  assert.is(hazard('"v_locking"'), 'view-locking-clause');
});

const facts = (over: Partial<RelationFacts> = {}): RelationFacts =>
  ({ hazard: null, definitionHazard: null, callsSafe: true, callsBuiltin: true, dependsOn: [], ...over });
const builtin: FunctionFacts = { safe: true, builtin: true, found: true };

function judge(sql: string, relations: Record<string, RelationFacts>, functions: Record<string, FunctionFacts> = {}) {
  return judgeStatement(analyzeSql(sql), (k) => relations[k], (f) => functions[f]);
}

test('a statement naming only known relations and functions is judged without a probe; anything unknown asks for one', () => {
  const known = { '"a"': facts({ dependsOn: ['a'] }), '"s"."b"': facts({ dependsOn: ['b', 'b_part'] }) };
  assert.equal(judge('SELECT * FROM a JOIN s.b USING (id) WHERE a.v = 1', known),
    { reason: null, dependsOn: ['a', 'b', 'b_part'], functionsBuiltin: true });
  assert.is(judge('SELECT * FROM a JOIN b USING (id)', known), undefined, 'b unqualified is another name than s.b');
  assert.is(judge('SELECT lower(v) FROM a', known), undefined, 'lower() is not known yet');
  assert.equal(judge('SELECT lower(v) FROM a', known, { lower: builtin })?.reason, null);
  assert.equal(judge('SELECT 1', {}), { reason: null, dependsOn: [], functionsBuiltin: true }, 'no names: nothing to learn');
  assert.equal(judge('WITH w AS (SELECT * FROM a) SELECT * FROM w', known)?.dependsOn, ['a'], 'a CTE is no relation');
});

test('the verdict: a relation\'s kind first, then the functions (the statement\'s and its views\'), then what views compute', () => {
  const relations = {
    '"temp"': facts({ hazard: 'temporary-table', definitionHazard: 'view-time-dependent' }),
    '"v_now"': facts({ definitionHazard: 'view-time-dependent' }),
    '"v_volatile"': facts({ callsSafe: false, callsBuiltin: false }),
    '"v_immutable"': facts({ callsBuiltin: false }),
    '"t"': facts(),
  };
  const functions = { f_volatile: { safe: false, builtin: false, found: true }, f_immutable: { safe: true, builtin: false, found: true }, lower: builtin };
  const reason = (sql: string): string | null | undefined => judge(sql, relations, functions)?.reason;
  assert.is(reason('SELECT * FROM v_now JOIN temp USING (id)'), 'temporary-table');
  assert.is(reason('SELECT f_volatile(1) FROM v_now'), 'function');
  assert.is(reason('SELECT * FROM v_now JOIN v_volatile USING (id)'), 'function');
  assert.is(reason('SELECT * FROM t JOIN v_now USING (id)'), 'view-time-dependent');
  assert.is(reason('SELECT f_immutable(id) FROM v_immutable'), null);
  const builtinOnly = (sql: string): boolean | undefined => judge(sql, relations, functions)?.functionsBuiltin;
  assert.is(builtinOnly('SELECT lower(v) FROM t'), true);
  assert.is(builtinOnly('SELECT f_immutable(id) FROM t'), false, 'a user function may change settings');
  assert.is(builtinOnly('SELECT * FROM v_immutable'), false, 'so may one a view calls');
  assert.is(judge('SELECT nope(1) FROM t', relations, { nope: { safe: true, builtin: true, found: false } })?.reason, 'function',
    'a function pg_proc does not have');
});

test('from a statement\'s own probe: a name that does not resolve refuses it; the rest is judged as known facts would', () => {
  const analysis = analyzeSql('SELECT lower(v) FROM a JOIN missing USING (id)');
  const learned = learnFacts([probed('"a"', [rel('a')]), probed('"missing"', null)], [fn('lower')], analyzeSql);
  assert.equal(judgeProbed(analysis, learned), { reason: 'unresolved-table', dependsOn: ['a'], functionsBuiltin: true });
  const ok = analyzeSql('SELECT lower(v) FROM a');
  assert.equal(judgeProbed(ok, learned), { reason: null, dependsOn: ['a'], functionsBuiltin: true });
  assert.equal(judgeProbed(ok, learned), judgeStatement(ok, (k) => learned.relations.get(k), (f) => learned.functions.get(f)),
    'what a probe decides and what its facts decide later agree');
});

test.run();
