// parseSearchPath and resolveTables, the second checked against PostgreSQL's own name resolution
// (to_regclass) on a real session with schemas, a temporary table and a pg_catalog look-alike.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type pg from 'pg';
import { parseSearchPath, relationSearchOrder, resolveTables, SearchPathSyntaxError } from './pg-search-path.js';
import { connectPg, DIRECT_PG, uniqueName } from '../e2e/support/pg-direct.js';

test('parseSearchPath reads what SHOW search_path prints', () => {
  assert.equal(parseSearchPath('"$user", public', 'bob'), ['bob', 'public']);
  assert.equal(parseSearchPath('', 'bob'), []);
  assert.equal(parseSearchPath('  ', 'bob'), []);
  assert.equal(parseSearchPath('a, "B", "c""d", "x,y"', 'bob'), ['a', 'B', 'c"d', 'x,y']);
  assert.equal(parseSearchPath('  App ,b', 'bob'), ['app', 'b']);
  assert.equal(parseSearchPath('$user,"$User"', 'Bob'), ['Bob', '$User']);
});

test('parseSearchPath rejects malformed settings with a typed error', () => {
  for (const bad of ['a,,b', '"unterminated', 'a b', 'a,', ',a']) {
    assert.throws(() => parseSearchPath(bad, 'bob'), (err: unknown) =>
      err instanceof SearchPathSyntaxError && err.code === 'SEARCH_PATH_SYNTAX', bad);
  }
});

test('relationSearchOrder puts pg_temp and pg_catalog first unless the path names them', () => {
  assert.equal(relationSearchOrder([]), ['pg_temp', 'pg_catalog']);
  assert.equal(relationSearchOrder(['public']), ['pg_temp', 'pg_catalog', 'public']);
  assert.equal(relationSearchOrder(['public', 'pg_catalog']), ['pg_temp', 'public', 'pg_catalog']);
  assert.equal(relationSearchOrder(['app', 'pg_temp', 'public']), ['pg_catalog', 'app', 'pg_temp', 'public']);
  assert.equal(relationSearchOrder(['a', 'b', 'a']), ['pg_temp', 'pg_catalog', 'a', 'b']);
});

test('resolveTables keeps qualified names, searches unqualified ones, reports the missing', () => {
  const exists = new Set(['app\0users', 'public\0users', 'public\0orders', 'pg_catalog\0pg_class']);
  const r = resolveTables(
    [{ schema: 'public', name: 'users' }, { schema: null, name: 'users' }, { schema: null, name: 'orders' },
      { schema: null, name: 'pg_class' }, { schema: null, name: 'nope' }, { schema: 'gone', name: 'x' }],
    ['app', 'public'], (s, n) => exists.has(`${s}\0${n}`));
  assert.equal(r.resolved, [
    { schema: 'public', name: 'users' }, { schema: 'app', name: 'users' }, { schema: 'public', name: 'orders' },
    { schema: 'pg_catalog', name: 'pg_class' }, { schema: 'gone', name: 'x' },
  ]);
  assert.equal(r.unresolved, [{ schema: null, name: 'nope' }]);
});

// Against the server: the same answer as to_regclass for every path and name below.
const s1 = uniqueName('inv_sp');
const s2 = `${s1}_two`;
const spaced = `${s1} Mixed`;
let client: pg.Client;

test.before(async () => {
  client = await connectPg(DIRECT_PG.port);
  await client.query(`
    CREATE SCHEMA ${s1}; CREATE SCHEMA ${s2}; CREATE SCHEMA "${spaced}";
    CREATE TABLE ${s1}.t1 (x int); CREATE TABLE ${s2}.t1 (x int); CREATE TABLE ${s2}.t2 (x int);
    CREATE TABLE ${s1}.t3 (x int); CREATE TEMP TABLE t3 (x int);
    CREATE TABLE ${s1}.pg_class (x int); CREATE TABLE "${spaced}"."T4" (x int);
  `);
});

test.after(async () => {
  await client.query(`DROP SCHEMA IF EXISTS ${s1}, ${s2}, "${spaced}" CASCADE`);
  await client.end();
});

test('resolveTables agrees with PostgreSQL for every search_path', async () => {
  const rows = await client.query<{ nspname: string; relname: string; temp: boolean }>(
    `SELECT n.nspname, c.relname, n.oid = pg_my_temp_schema() AS temp
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ANY($1) OR n.oid = pg_my_temp_schema()`, [[s1, s2, spaced, 'pg_catalog']]);
  const exists = new Set(rows.rows.map((r) => `${r.temp ? 'pg_temp' : r.nspname}\0${r.relname}`));
  const lookup = (schema: string, name: string): boolean => exists.has(`${schema}\0${name}`);

  const settings = [
    `${s1}, ${s2}`, `${s2}, ${s1}`, `${s1}, pg_catalog`, `pg_catalog, ${s1}`, `${s2}, pg_temp, ${s1}`,
    `"$user", ${s2}`, `''`, `"${spaced}", ${s1}`,
  ];
  const names = ['t1', 't2', 't3', 'pg_class', 'T4', 'missing'];
  for (const setting of settings) {
    await client.query(`SET search_path = ${setting}`);
    const shown = (await client.query<{ search_path: string }>('SHOW search_path')).rows[0]!.search_path;
    const path = parseSearchPath(shown, DIRECT_PG.user);
    const ours = resolveTables(names.map((name) => ({ schema: null, name })), path, lookup);
    // qualified: one of the paths puts a table named pg_class before pg_catalog
    const theirs = await client.query<{ name: string; nspname: string | null; temp: boolean }>(
      `SELECT name, n.nspname, n.oid = pg_my_temp_schema() AS temp
         FROM unnest($1::text[]) WITH ORDINALITY AS u(name, i)
         LEFT JOIN pg_catalog.pg_class c ON c.oid = to_regclass(quote_ident(name))
         LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        ORDER BY i`, [names]);
    const expected = theirs.rows.filter((r) => r.nspname !== null)
      .map((r) => ({ schema: r.temp ? 'pg_temp' : r.nspname!, name: r.name }));
    assert.equal(ours.resolved, expected, `search_path = ${setting}`);
    assert.equal(ours.unresolved.map((u) => u.name), theirs.rows.filter((r) => r.nspname === null).map((r) => r.name));
  }
});

test.run();
