import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMetrics } from '../../telemetry/metrics.js';
import { databaseTag, tableTag } from '../../cache/tags.js';
import { loadConfig } from '../../config/settings.js';
import type { ProbeResult, ProbedRelation } from '../../invalidation/pg-probe.js';
import { PgCache, WriteScope, type SessionIdentity } from './pg-cache.js';

let cache: PgCache;

test.before(async () => {
  cache = await PgCache.create(loadConfig([], {}).config, createMetrics());
});

function probeOf(relations: ProbedRelation[], functions: ProbeResult['functions'] = [], user = 'app'): ProbeResult {
  return {
    database: 'db', currentUser: user, sessionUser: user, settings: 'public', relations, functions,
    hasTempRelations: false, fanOutTables: [],
  };
}

const table = (name: string, also: string[] = []): ProbedRelation => ({
  name: `"${name}"`,
  closure: [name, ...also].map((n) => ({ name: n, kind: 'r', persistence: 'p', schema: 'public', definition: null, policies: [] })),
  callsSafe: true,
  callsBuiltin: true,
});

let nextSession = 1;
const session = (): SessionIdentity => ({ id: nextSession++, reported: '', startupKey: '', ownContext: false });

test('texts differing only in literal values share one analysis and statement info; a literal naming a time does not', () => {
  const a = cache.info("SELECT id FROM t WHERE v = 'a' AND n = 1");
  assert.is(cache.info("SELECT id FROM t WHERE v = 'b' AND n = 2"), a);
  assert.is(a.shape, "SELECT id FROM t WHERE v = '' AND n = 0");
  const now = cache.info("SELECT id FROM t WHERE at > 'now'::timestamptz");
  assert.is.not(now, cache.info("SELECT id FROM t WHERE at > '2026-01-01'::timestamptz"));
  assert.not.ok(now.readCacheable);
  assert.ok(cache.info("SELECT id FROM t WHERE at > '2026-01-02'::timestamptz").readCacheable);
});

test('a text whose session change is spelled in literals is analysed as it is', () => {
  const a = cache.info("SELECT set_config('app.tenant', 'a', false)");
  const b = cache.info("SELECT set_config('app.other', 'a', false)");
  assert.equal(a.analysis.sessionChanges.map((c) => c.setting), ['app.tenant']);
  assert.equal(b.analysis.sessionChanges.map((c) => c.setting), ['app.other']);
});

test('a text of the shape of a session change is remembered; texts with literals of that shape are still analysed as they are', () => {
  const shape = cache.info("SELECT set_config('', '', false)");
  assert.equal(shape.analysis.sessionChanges.map((c) => c.setting), ['']);
  const a = cache.info("SELECT set_config('app.shaped', 'a', false)");
  assert.equal(a.analysis.sessionChanges.map((c) => c.setting), ['app.shaped']);
});

test('a text with U+FFFD in a literal is never cacheable, though its shape is', () => {
  assert.ok(cache.info("SELECT v FROM undecodable WHERE k = 'a'").readCacheable);
  assert.not.ok(cache.info("SELECT v FROM undecodable WHERE k = '\uFFFD'").readCacheable);
  assert.ok(cache.info("SELECT v FROM undecodable WHERE k = 'b'").readCacheable);
});

test('a text whose shape the parser rejects is analysed as it is', () => {
  const text = "SELECT U&'d!0061t' UESCAPE '!' FROM t";
  const info = cache.info(text);
  assert.is(info.analysis.kind, 'read');
  assert.ok(info.readCacheable);
});

test('a probe teaches the context about each relation and function: a new statement over them is decided without one', () => {
  const ctx = cache.context(probeOf([]), session())!;
  const first = cache.info('SELECT * FROM orders WHERE id = 1');
  const decided = cache.decide(ctx, first, probeOf([table('orders', ['customers'])]), cache.generation('db'));
  assert.equal([decided.cacheable, decided.tags], [true, [databaseTag('db'), tableTag('db', '', 'orders'), tableTag('db', '', 'customers')]]);
  const second = cache.info('SELECT count(*) FROM orders o JOIN orders p USING (id)');
  assert.is(cache.decision(ctx, second), undefined, 'count() is not known yet');
  const third = cache.info('SELECT customer_id FROM orders ORDER BY id LIMIT 5');
  const derived = cache.decision(ctx, third);
  assert.ok(derived?.cacheable);
  assert.equal(derived!.tags, decided.tags);
  assert.is(cache.decision(ctx, third), derived, 'remembered');
  const other = cache.context(probeOf([], [], 'someone-else'), session())!;
  assert.is(cache.decision(other, third), undefined, 'another context knows nothing of it');
});

test('DDL forgets what the context learned: the next statement is probed again', () => {
  const ctx = cache.context(probeOf([], [], 'ddl'), session())!;
  cache.decide(ctx, cache.info('SELECT * FROM items WHERE id = 1'), probeOf([table('items')], [], 'ddl'), cache.generation('db'));
  const next = cache.info('SELECT v FROM items');
  assert.ok(cache.decision(ctx, next));
  cache.invalidate('db', [], WriteScope.Tables, true);
  assert.is(cache.decision(ctx, next), undefined);
});

test('a probe that DDL overtook teaches nothing, and its decision does not outlive it', () => {
  const ctx = cache.context(probeOf([], [], 'raced'), session())!;
  const sent = cache.generation('db');
  cache.invalidate('db', [], WriteScope.Tables, true);
  const info = cache.info('SELECT * FROM raced WHERE id = 1');
  assert.ok(cache.decide(ctx, info, probeOf([table('raced')], [], 'raced'), sent).cacheable);
  assert.is(cache.decision(ctx, info), undefined, 'the statement is probed again');
  assert.is(cache.decision(ctx, cache.info('SELECT v FROM raced')), undefined, 'nothing was learned of the relation');
});

test('a statement the facts could not decide is judged again once a probe teaches more, or DDL forgets', () => {
  const ctx = cache.context(probeOf([], [], 'undecided'), session())!;
  // A read inside transaction blocks only: never probed itself, asked for its decision each time.
  const read = cache.info('SELECT v FROM ledger WHERE id = 7');
  assert.is(cache.decision(ctx, read), undefined, 'nothing known of ledger');
  assert.is(cache.decision(ctx, read), undefined, 'still nothing (remembered as undecided)');
  cache.decide(ctx, cache.info('SELECT count(v) FROM ledger'), probeOf([table('ledger')], [], 'undecided'), cache.generation('db'));
  const decided = cache.decision(ctx, read);
  assert.ok(decided?.cacheable, 'the probe of another statement taught what it lacked');
  cache.invalidate('db', [], WriteScope.Tables, true);
  assert.is(cache.decision(ctx, read), undefined, 'DDL forgot it');
  cache.decide(ctx, cache.info('SELECT count(v) FROM ledger'), probeOf([table('ledger')], [], 'undecided'), cache.generation('db'));
  assert.ok(cache.decision(ctx, read)?.cacheable, 'learned again');
});

test('a text with literals is not remembered by its text; one without is', () => {
  const withLiteral = 'SELECT v FROM remembered WHERE id = 42';
  const info = cache.info(withLiteral);
  assert.is(cache.info(withLiteral), info, 'the same info through its shape');
  const parameterised = 'SELECT v FROM remembered WHERE id = $1';
  assert.is(cache.info(parameterised), cache.info(parameterised));
});

test.run();
