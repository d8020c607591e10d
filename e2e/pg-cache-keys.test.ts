// What a result depends on never gets shared between sessions that differ in it: roles under
// row-level security (as login users and via SET ROLE), search_path (same-named tables in two
// schemas), TimeZone and the other settings that change a value's text, binary vs text result
// formats, temp tables (including one that shadows a cached regular table). Locking reads, volatile
// and time-dependent functions, and user STABLE functions that read tables behind the text's back
// are never cached. A failed query is not cached.
// Every check first proves the cache is in play (a hit), so a passing test means the key worked.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { DIRECT_PG, direct, pgConfig, rejectionOf, sleep, uniqueName } from './support/pg-direct.js';
import { measure } from './support/metrics.js';
import { psqlScript } from './support/psql.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const PREFIX = uniqueName('sc_keys');
const ROLE_A = `${PREFIX}_alice`;
const ROLE_B = `${PREFIX}_bob`;
const SECURED = `${PREFIX}_secured`;
const SCHEMA_1 = `${PREFIX}_s1`;
const SCHEMA_2 = `${PREFIX}_s2`;
const TIMES = `${PREFIX}_times`;
const PLAIN = `${PREFIX}_plain`;
const SEQUENCE = `${PREFIX}_seq`;
const STABLE_FN = `${PREFIX}_stable_reader`;
const VOLATILE_FN = `${PREFIX}_volatile`;

let proxy: RunningProxy;
const open: pg.Client[] = [];

/** Values as PostgreSQL's text, so settings that change the text form (TimeZone, DateStyle) show. */
const TEXT_TYPES = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

async function connect(extra: pg.ClientConfig = {}): Promise<pg.Client> {
  const c = new pg.Client(pgConfig(proxy.pgPort, { types: TEXT_TYPES, ...extra }));
  await c.connect();
  open.push(c);
  return c;
}

/** Rows of `sql`; with `values` (even none) in the extended protocol, which node-postgres then uses. */
async function rows(c: pg.Client, sql: string, values?: unknown[]): Promise<unknown[]> {
  if (values === undefined) return (await c.query(sql)).rows;
  // queryMode is in node-postgres but not in its typings.
  return (await c.query({ text: sql, values, queryMode: 'extended' } as pg.QueryConfig)).rows;
}

/** Reads `sql` twice on `c`; the second read must be a hit (the cache is in play); returns the rows. */
async function readCached(c: pg.Client, sql: string, what: string): Promise<unknown[]> {
  const first = await rows(c, sql);
  const { result, delta } = await measure(proxy.adminPort, () => rows(c, sql));
  assert.equal(result, first, what);
  assert.is(delta.hits, 1, `${what}: the repeat must be a hit to make this test meaningful: ${JSON.stringify(delta)}`);
  return first;
}

test.before(async () => {
  for (const sql of [
    `CREATE ROLE ${ROLE_A} LOGIN`,
    `CREATE ROLE ${ROLE_B} LOGIN`,
    `CREATE TABLE ${SECURED} (owner name NOT NULL, secret text NOT NULL)`,
    `INSERT INTO ${SECURED} VALUES ('${ROLE_A}', 'alice secret'), ('${ROLE_B}', 'bob secret')`,
    `ALTER TABLE ${SECURED} ENABLE ROW LEVEL SECURITY`,
    `CREATE POLICY own_rows ON ${SECURED} USING (owner = current_user)`,
    `GRANT SELECT ON ${SECURED} TO ${ROLE_A}, ${ROLE_B}`,
    `CREATE SCHEMA ${SCHEMA_1}`,
    `CREATE SCHEMA ${SCHEMA_2}`,
    `CREATE TABLE ${SCHEMA_1}.items (name text)`,
    `CREATE TABLE ${SCHEMA_2}.items (name text)`,
    `INSERT INTO ${SCHEMA_1}.items VALUES ('from s1')`,
    `INSERT INTO ${SCHEMA_2}.items VALUES ('from s2')`,
    `CREATE TABLE ${TIMES} (ts timestamptz, d date, i interval, f float8, b bytea, t text)`,
    `INSERT INTO ${TIMES} VALUES ('2024-01-31 12:00:00+00', '2024-01-31', '1 day 02:03:04', 1.0 / 3, '\\xdeadbeef', 'café')`,
    `CREATE TABLE ${PLAIN} (id int PRIMARY KEY, v int NOT NULL)`,
    `INSERT INTO ${PLAIN} VALUES (1, 10), (2, 20)`,
    `CREATE SEQUENCE ${SEQUENCE}`,
    `CREATE FUNCTION ${STABLE_FN}() RETURNS int STABLE LANGUAGE sql AS 'SELECT sum(v)::int FROM ${PLAIN}'`,
    `CREATE FUNCTION ${VOLATILE_FN}() RETURNS bigint VOLATILE LANGUAGE sql AS 'SELECT nextval(''${SEQUENCE}'')'`,
  ]) await direct(sql);
  proxy = await startProxy();
});

test.after(async () => {
  await Promise.all(open.map((c) => c.end().catch(() => undefined)));
  await proxy?.stop();
  for (const sql of [
    `DROP FUNCTION IF EXISTS ${STABLE_FN}()`,
    `DROP FUNCTION IF EXISTS ${VOLATILE_FN}()`,
    `DROP SEQUENCE IF EXISTS ${SEQUENCE}`,
    `DROP TABLE IF EXISTS ${SECURED}, ${TIMES}, ${PLAIN}`,
    `DROP SCHEMA IF EXISTS ${SCHEMA_1} CASCADE`,
    `DROP SCHEMA IF EXISTS ${SCHEMA_2} CASCADE`,
    `DROP ROLE IF EXISTS ${ROLE_A}`,
    `DROP ROLE IF EXISTS ${ROLE_B}`,
  ]) await direct(sql).catch(() => undefined);
});

/** One session in a key test: its connection, what it must read, and a label for failures. */
interface Session {
  label: string;
  client: pg.Client;
  expected: unknown[];
}

/**
 * Each session reads `sql` twice (the first read after a context change may go upstream with the
 * proxy's probe; the second uses the session's key), then all sessions read in turn, twice round.
 * If the key missed what tells two sessions apart, the round robin serves one session another's
 * entry. Both protocols: the simple Query text and, when `extended`, the same with `WHERE $1`.
 */
async function assertSessionsApart(sql: string, sessions: Session[]): Promise<void> {
  const forms: Array<[string, (c: pg.Client) => Promise<unknown[]>]> = [
    ['simple', (c) => rows(c, sql)],
    ['extended', (c) => rows(c, `SELECT * FROM (${sql}) AS q WHERE $1`, [true])],
  ];
  for (const [form, read] of forms) {
    for (const s of sessions) {
      for (let i = 0; i < 2; i++) assert.equal(await read(s.client), s.expected, `${s.label}, ${form}, settling read ${i + 1}`);
    }
    const { delta } = await measure(proxy.adminPort, async () => {
      for (let round = 1; round <= 2; round++) {
        for (const s of sessions) assert.equal(await read(s.client), s.expected, `${s.label}, ${form}, round ${round}`);
      }
    });
    // Every session has its own entry by now; hits prove the round robin exercised the cache.
    assert.ok(delta.hits >= sessions.length, `${form}: round robin should hit: ${JSON.stringify(delta)}`);
  }
}

async function session(label: string, expected: unknown[], extra: pg.ClientConfig = {}, setup: string[] = []): Promise<Session> {
  const client = await connect(extra);
  for (const sql of setup) await client.query(sql);
  return { label, client, expected };
}

const ALICE_ROWS = [{ secret: 'alice secret' }];
const BOB_ROWS = [{ secret: 'bob secret' }];
const ALL_ROWS = [{ secret: 'alice secret' }, { secret: 'bob secret' }];

test('row-level security, different login users: each sees only its own rows', async () => {
  const sql = `SELECT secret FROM ${SECURED} ORDER BY secret`;
  const alice = await connect({ user: ROLE_A });
  assert.equal(await readCached(alice, sql, 'alice'), ALICE_ROWS);
  // A new login of another role right after alice's entry exists.
  const bob = await connect({ user: ROLE_B });
  assert.equal(await rows(bob, sql), BOB_ROWS, 'bob\'s first read');
  await assertSessionsApart(sql, [
    { label: 'alice', client: alice, expected: ALICE_ROWS },
    { label: 'bob', client: bob, expected: BOB_ROWS },
    await session('bob again', BOB_ROWS, { user: ROLE_B }),
    await session('superuser', ALL_ROWS),
  ]);
});

test('row-level security via SET ROLE: each role sees its own rows, also after switching back', async () => {
  const sql = `SELECT secret FROM ${SECURED} ORDER BY secret`;
  const switcher = await connect();
  await switcher.query(`SET ROLE ${ROLE_A}`);
  assert.equal(await readCached(switcher, sql, 'SET ROLE alice'), ALICE_ROWS);
  for (const [change, expected] of [
    [`SET ROLE ${ROLE_B}`, BOB_ROWS], ['RESET ROLE', ALL_ROWS], [`SELECT set_config('role', '${ROLE_B}', false)`, BOB_ROWS],
    [`SET ROLE ${ROLE_A}`, ALICE_ROWS], ['SET ROLE NONE', ALL_ROWS],
  ] as const) {
    await switcher.query(change);
    for (let i = 0; i < 2; i++) assert.equal(await rows(switcher, sql), expected, `after ${change}, read ${i + 1}`);
  }
  await switcher.query(`SET ROLE ${ROLE_B}`);
  await assertSessionsApart(sql, [
    { label: 'postgres SET ROLE bob', client: switcher, expected: BOB_ROWS },
    await session('postgres SET ROLE alice', ALICE_ROWS, {}, [`SET ROLE ${ROLE_A}`]),
    await session('postgres', ALL_ROWS),
    await session('login alice', ALICE_ROWS, { user: ROLE_A }),
  ]);
});

const FROM_S1 = [{ name: 'from s1' }];
const FROM_S2 = [{ name: 'from s2' }];

test('search_path: same-named tables in two schemas never share an entry', async () => {
  const sql = 'SELECT name FROM items';
  const one = await connect();
  await one.query(`SET search_path TO ${SCHEMA_1}`);
  assert.equal(await readCached(one, sql, 'search_path s1'), FROM_S1);
  for (const [change, expected] of [
    [`SET search_path TO ${SCHEMA_2}, ${SCHEMA_1}`, FROM_S2],
    [`SELECT set_config('search_path', '${SCHEMA_1}', false)`, FROM_S1],
    [`SET search_path = ${SCHEMA_2}`, FROM_S2],
    [`SET search_path = ${SCHEMA_1}`, FROM_S1],
  ] as const) {
    await one.query(change);
    for (let i = 0; i < 2; i++) assert.equal(await rows(one, sql), expected, `after ${change}, read ${i + 1}`);
  }
  await assertSessionsApart(sql, [
    { label: 'SET search_path s1', client: one, expected: FROM_S1 },
    await session('startup search_path s2', FROM_S2, { options: `-c search_path=${SCHEMA_2}` }),
    await session('SET search_path s2, s1', FROM_S2, {}, [`SET search_path TO ${SCHEMA_2}, ${SCHEMA_1}`]),
    await session('startup search_path s1', FROM_S1, { options: `-c search_path=${SCHEMA_1}` }),
  ]);
  await one.query('RESET search_path');
  assert.match((await rejectionOf(one.query(sql))).message, /relation "items" does not exist/, 'after RESET: no items on the path');
});

test('search_path changes that end with the transaction (SET LOCAL, SET then ROLLBACK) are not keyed wrongly', async () => {
  const sql = 'SELECT name FROM items';
  const one = await connect({ options: `-c search_path=${SCHEMA_1}` });
  const two = await connect({ options: `-c search_path=${SCHEMA_2}` });
  for (const c of [one, two, one, two]) await rows(c, sql);
  await one.query('BEGIN');
  await one.query(`SET LOCAL search_path TO ${SCHEMA_2}`);
  assert.equal(await rows(one, sql), FROM_S2, 'SET LOCAL inside the transaction');
  await one.query('COMMIT');
  for (let i = 0; i < 2; i++) assert.equal(await rows(one, sql), FROM_S1, `SET LOCAL ended with COMMIT, read ${i + 1}`);
  await one.query('BEGIN');
  await one.query(`SET search_path TO ${SCHEMA_2}`);
  assert.equal(await rows(one, sql), FROM_S2, 'SET inside the transaction');
  await one.query('ROLLBACK');
  for (let i = 0; i < 2; i++) assert.equal(await rows(one, sql), FROM_S1, `SET undone by ROLLBACK, read ${i + 1}`);
  await assertSessionsApart(sql, [
    { label: 's1 after the transactions', client: one, expected: FROM_S1 },
    { label: 's2', client: two, expected: FROM_S2 },
  ]);
});

test('TimeZone: timestamptz text differs per session and is never shared (SET, startup, SET LOCAL)', async () => {
  const sql = `SELECT ts FROM ${TIMES}`;
  const UTC = [{ ts: '2024-01-31 12:00:00+00' }];
  const TOKYO = [{ ts: '2024-01-31 21:00:00+09' }];
  const NEW_YORK = [{ ts: '2024-01-31 07:00:00-05' }];
  const KOLKATA = [{ ts: '2024-01-31 17:30:00+05:30' }];
  const switcher = await connect();
  await switcher.query(`SET TimeZone = 'UTC'`);
  assert.equal(await readCached(switcher, sql, 'UTC'), UTC);
  await switcher.query(`SET TimeZone = 'America/New_York'`);
  for (let i = 0; i < 2; i++) assert.equal(await rows(switcher, sql), NEW_YORK);
  await switcher.query('BEGIN');
  await switcher.query(`SET LOCAL TimeZone = 'Asia/Kolkata'`);
  assert.equal(await rows(switcher, sql), KOLKATA);
  await switcher.query('COMMIT');
  for (let i = 0; i < 2; i++) assert.equal(await rows(switcher, sql), NEW_YORK, `SET LOCAL ended with the transaction, read ${i + 1}`);
  await assertSessionsApart(sql, [
    { label: 'SET America/New_York', client: switcher, expected: NEW_YORK },
    await session('startup Asia/Tokyo', TOKYO, { options: '-c TimeZone=Asia/Tokyo' }),
    await session('startup UTC', UTC, { options: '-c TimeZone=UTC' }),
    await session('SET Asia/Kolkata', KOLKATA, {}, [`SET TimeZone = 'Asia/Kolkata'`]),
  ]);
});

const TEXT_SETTINGS: Array<[string, string, string]> = [
  ['DateStyle', 'ISO, MDY', 'SQL, DMY'],
  ['IntervalStyle', 'postgres', 'iso_8601'],
  ['extra_float_digits', '1', '-3'],
  ['bytea_output', 'hex', 'escape'],
  ['client_encoding', 'UTF8', 'LATIN1'],
];

for (const [setting, first, second] of TEXT_SETTINGS) {
  test(`${setting}: '${first}' and '${second}' results are not shared`, async () => {
    const sql = `SELECT ts, d, i, f, b, t FROM ${TIMES}`;
    const expected = async (value: string): Promise<unknown[]> => {
      const c = new pg.Client({ ...DIRECT_PG, types: TEXT_TYPES, options: '-c TimeZone=UTC' });
      await c.connect();
      try {
        await c.query(`SET ${setting} = '${value}'`);
        return await rows(c, sql);
      } finally {
        await c.end();
      }
    };
    const [want1, want2] = [await expected(first), await expected(second)];
    assert.not.equal(want1, want2, 'the setting changes the text');
    const switcher = await connect({ options: '-c TimeZone=UTC' });
    await switcher.query(`SET ${setting} = '${first}'`);
    assert.equal(await readCached(switcher, sql, `${setting} ${first}`), want1);
    await switcher.query(`SET ${setting} = '${second}'`);
    for (let i = 0; i < 2; i++) assert.equal(await rows(switcher, sql), want2);
    await assertSessionsApart(sql, [
      { label: `SET ${setting} ${second}`, client: switcher, expected: want2 },
      await session(`SET ${setting} ${first}`, want1, { options: '-c TimeZone=UTC' }, [`SET ${setting} = '${first}'`]),
    ]);
  });
}

test('result format is part of the key: binary and text results of one statement are not shared', async () => {
  const sql = `SELECT ts, f, b, t FROM ${TIMES} WHERE $1`;
  // Binary values arrive as Buffers; hex makes them comparable.
  const readShown = async (c: pg.Client): Promise<string> =>
    JSON.stringify((await rows(c, sql, [true])).map((r) => Object.values(r as Record<string, unknown>)
      .map((v) => (Buffer.isBuffer(v) ? `\\x${v.toString('hex')}` : v))));
  const expectedFor = async (binary: boolean): Promise<string> => {
    const c = new pg.Client({ ...DIRECT_PG, types: TEXT_TYPES, binary, options: '-c TimeZone=UTC' } as pg.ClientConfig);
    await c.connect();
    try {
      return await readShown(c);
    } finally {
      await c.end();
    }
  };
  const [text, binary] = [await expectedFor(false), await expectedFor(true)];
  assert.not.equal(text, binary);
  const sessions = [
    { label: 'text', client: await connect({ options: '-c TimeZone=UTC' }), expected: text },
    { label: 'binary', client: await connect({ binary: true, options: '-c TimeZone=UTC' } as pg.ClientConfig), expected: binary },
  ];
  const { delta } = await measure(proxy.adminPort, async () => {
    for (let round = 1; round <= 3; round++) {
      for (const s of sessions) assert.is(await readShown(s.client), s.expected, `${s.label}, round ${round}`);
    }
  });
  assert.ok(delta.hits >= 2, JSON.stringify(delta));
});

test('locking reads (FOR UPDATE, FOR SHARE) are never cached', async () => {
  const c = await connect();
  const { delta } = await measure(proxy.adminPort, async () => {
    for (const lock of ['FOR UPDATE', 'FOR SHARE', 'FOR NO KEY UPDATE SKIP LOCKED']) {
      for (let i = 0; i < 2; i++) assert.equal(await rows(c, `SELECT v FROM ${PLAIN} WHERE id = 2 ${lock}`), [{ v: '20' }]);
    }
  });
  assert.is(delta.hits, 0, JSON.stringify(delta));
});

const USER_VOLATILE_READ = `SELECT ${VOLATILE_FN}() AS x`;
const VOLATILE_READS: Array<[string, string]> = [
  ['now()', 'SELECT now() AS x'],
  ['current_timestamp', 'SELECT current_timestamp AS x'],
  ["'now'::timestamptz", "SELECT 'now'::timestamptz AS x"],
  ['clock_timestamp()', 'SELECT clock_timestamp() AS x'],
  ['random()', 'SELECT random() AS x'],
  ['gen_random_uuid()', 'SELECT gen_random_uuid() AS x'],
  ['nextval()', `SELECT nextval('${SEQUENCE}') AS x`],
  ['a user VOLATILE function', USER_VOLATILE_READ],
  ['now() next to a table', `SELECT v, now() AS x FROM ${PLAIN} WHERE id = 1`],
  ['random() with a parameter', 'SELECT random() + $1 AS x'],
];

for (const [what, sql] of VOLATILE_READS) {
  test(`${what} is never cached: repeated reads differ, no hits`, async () => {
    const c = await connect();
    const params = sql.includes('$1') ? [0] : undefined;
    const { result, delta } = await measure(proxy.adminPort, async () => {
      const values: unknown[] = [];
      for (let i = 0; i < 3; i++) {
        values.push(((await rows(c, sql, params))[0] as { x: unknown }).x);
        await sleep(2); // timestamps have microsecond resolution; make sure the clock moves
      }
      return values;
    });
    assert.is(new Set(result).size, 3, `three different values: ${JSON.stringify(result)}`);
    assert.is(delta.hits, 0, JSON.stringify(delta));
    // A user function is judged by the probe sent along with its first execution; that read is
    // counted as a bypass once the verdict is in, like the ones after it.
    assert.ok(delta.bypass >= 3, `each read is counted as a bypass: ${JSON.stringify(delta)}`);
  });
}

test('a user STABLE function reading a table not named in the text is not cached', async () => {
  const c = await connect();
  const sql = `SELECT ${STABLE_FN}() AS total`;
  assert.equal(await rows(c, sql), [{ total: '30' }]);
  await (await connect()).query(`UPDATE ${PLAIN} SET v = v + 1 WHERE id = 1`);
  assert.equal(await rows(c, sql), [{ total: '31' }]);
});

test('temp tables are never cached, and never answered with a regular table\'s entry', async () => {
  const withTemp = await connect();
  await withTemp.query(`CREATE TEMP TABLE ${PLAIN} (id int, v int)`);
  await withTemp.query(`INSERT INTO ${PLAIN} VALUES (1, -1)`);
  const sql = `SELECT v FROM ${PLAIN} WHERE id = 1`;
  // Fill the cache from the regular table on another connection (same user, same search_path text).
  const regular = await connect();
  const cached = await readCached(regular, sql, 'regular table');
  assert.not.equal(cached, [{ v: '-1' }]);
  const { result, delta } = await measure(proxy.adminPort, async () => [
    await rows(withTemp, sql), await rows(withTemp, sql), await rows(withTemp, sql, [])]);
  assert.equal(result, [[{ v: '-1' }], [{ v: '-1' }], [{ v: '-1' }]], 'the temp table shadows the regular one');
  assert.is(delta.hits, 0, JSON.stringify(delta));
  await withTemp.query(`UPDATE pg_temp.${PLAIN} SET v = -2`);
  for (let round = 0; round < 2; round++) {
    assert.equal(await rows(withTemp, sql), [{ v: '-2' }]);
    assert.equal(await rows(regular, sql), cached);
  }
});

test('two sessions with same-named temp tables never see each other\'s rows', async () => {
  const temp = `${PREFIX}_scratch`;
  const sql = `SELECT v FROM ${temp}`;
  const sessions: Session[] = [];
  for (const v of ['1', '2', '3']) {
    const c = await connect();
    await c.query(`CREATE TEMP TABLE ${temp} (v int)`);
    await c.query(`INSERT INTO ${temp} VALUES (${v})`);
    sessions.push({ label: `temp table holding ${v}`, client: c, expected: [{ v }] });
  }
  const { delta } = await measure(proxy.adminPort, async () => {
    for (let round = 1; round <= 3; round++) {
      for (const s of sessions) {
        assert.equal(await rows(s.client, sql), s.expected, `${s.label}, simple, round ${round}`);
        assert.equal(await rows(s.client, `${sql} WHERE $1`, [true]), s.expected, `${s.label}, extended, round ${round}`);
      }
    }
  });
  assert.is(delta.hits, 0, JSON.stringify(delta));
});

/** psql (libpq) on `port` with client_encoding LATIN1, reading `script`'s bytes: its output lines. */
async function psqlLatin1(port: number, script: Buffer): Promise<string[]> {
  const run = await psqlScript(port, `user=${DIRECT_PG.user} dbname=${DIRECT_PG.database}`, script, { PGCLIENTENCODING: 'LATIN1' });
  assert.is(run.code, 0, run.stderr);
  return run.stdout.trim().split('\n');
}

test('client_encoding LATIN1: statements that differ only in bytes that are not UTF-8 never share an entry', async () => {
  // 0xF6 and 0xE9 ('ö' and 'é' in LATIN1) each decode as UTF-8 to U+FFFD: read as text, the third
  // statement was the first's, and sidecache answered 1 from its entry.
  const same = Buffer.from(`SELECT count(*) FROM ${PLAIN} WHERE 'x\xf6' = 'x\xf6';\n`, 'latin1');
  const other = Buffer.from(`SELECT count(*) FROM ${PLAIN} WHERE 'x\xe9' = 'x\xf6';\n`, 'latin1');
  const script = Buffer.concat([same, same, other, other]);
  assert.equal(await psqlLatin1(DIRECT_PG.port, script), ['2', '2', '0', '0'], 'what PostgreSQL answers');
  assert.equal(await psqlLatin1(proxy.pgPort, script), ['2', '2', '0', '0']);
});

test('a failed query is not cached: once the data is fixed (directly, not through the proxy) it succeeds', async () => {
  const c = await connect();
  const table = `${PREFIX}_fail`;
  await direct(`CREATE TABLE ${table} (v int)`);
  try {
    await direct(`INSERT INTO ${table} VALUES (1)`);
    const sql = `SELECT 10 / (v - 1) AS q FROM ${table}`;
    for (let i = 0; i < 2; i++) assert.match((await rejectionOf(c.query(sql))).message, /division by zero/);
    assert.match((await rejectionOf(c.query(`${sql} WHERE $1`, [true]))).message, /division by zero/);
    await direct(`UPDATE ${table} SET v = 3`);
    assert.equal(await rows(c, sql), [{ q: '5' }]);
    assert.equal(await rows(c, `${sql} WHERE $1`, [true]), [{ q: '5' }]);
  } finally {
    await direct(`DROP TABLE ${table}`);
  }
});

test.run();
