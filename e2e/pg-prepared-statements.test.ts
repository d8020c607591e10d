// Prepared statements through the proxy are what the server made of them. A Parse the server refused
// (no such table, an aborted transaction, a name already taken) created nothing, so the client may
// Parse that name again, with the same text or a new one; a Parse the cache answered itself is
// replayed to the server when needed without changing what the client holds. Each scenario runs
// directly against PostgreSQL and through the proxy, with node-postgres or on a raw connection, and
// both runs must give the same answers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { DIRECT_PG, connectPg, direct, uniqueName } from './support/pg-direct.js';
import { codes, describeAll, errorOf, rawFrames, runScenario, serialize, type RawClient, type Received } from './support/pg-raw.js';
import { measure } from './support/metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

/** Created by the scenarios themselves, dropped before each run. */
const TABLE = uniqueName('sc_prep');
/** Never created. */
const MISSING = uniqueName('sc_prep_missing');
/** Holds rows for the raw scenarios. */
const ROWS = uniqueName('sc_prep_rows');
const READ = `SELECT count(*)::int AS n FROM ${TABLE} WHERE id > $1`;
let proxy: RunningProxy;

test.before(async () => {
  await direct(`CREATE TABLE ${ROWS} (id int PRIMARY KEY, name text NOT NULL);
    INSERT INTO ${ROWS} SELECT g, 'name ' || g FROM generate_series(1, 5) g`);
  proxy = await startProxy();
});

test.after(async () => {
  await proxy?.stop();
  await direct(`DROP TABLE IF EXISTS ${TABLE}; DROP TABLE IF EXISTS ${ROWS}`);
});

/** The rows of a query, or `error SQLSTATE`. */
async function outcome(query: Promise<pg.QueryResult>): Promise<unknown> {
  try {
    return (await query).rows;
  } catch (err) {
    return `error ${(err as { code?: string }).code}`;
  }
}

type Steps = (c: pg.Client) => Promise<unknown[]>;

/** Runs `steps` on a new node-postgres client of `port`, TABLE not existing yet. */
async function run(port: number, steps: Steps, config: pg.ClientConfig): Promise<unknown[]> {
  await direct(`DROP TABLE IF EXISTS ${TABLE}`);
  const c = await connectPg(port, config);
  try {
    return await steps(c);
  } finally {
    await c.end();
  }
}

async function sameOutcomes(steps: Steps, expected: unknown[], config: pg.ClientConfig = {}): Promise<void> {
  assert.equal(await run(DIRECT_PG.port, steps, config), expected, 'directly');
  assert.equal(await run(proxy.pgPort, steps, config), expected, 'through sidecache');
}

test('a named statement whose Parse failed (no such table) is prepared again once the table exists', async () => {
  const query = { name: 's1', text: READ, values: [0] };
  await sameOutcomes(async (c) => [
    await outcome(c.query(query)),
    await outcome(c.query(`CREATE TABLE ${TABLE} (id int)`)),
    await outcome(c.query(query)),
    await outcome(c.query(query)),
  ], ['error 42P01', [], [{ n: 0 }], [{ n: 0 }]]);
});

test('a named statement whose Parse failed in an aborted transaction is prepared after the ROLLBACK', async () => {
  const query = { name: 's1', text: READ, values: [0] };
  await sameOutcomes(async (c) => [
    await outcome(c.query(`CREATE TABLE ${TABLE} (id int)`)),
    await outcome(c.query('BEGIN')),
    await outcome(c.query('SELECT 1 / 0')),
    await outcome(c.query(query)),
    await outcome(c.query('ROLLBACK')),
    await outcome(c.query(query)),
  ], [[], [], 'error 22012', 'error 25P02', [], [{ n: 0 }]]);
});

test('pipeline mode: a refused Parse, then the same name with a new text', async () => {
  await sameOutcomes(async (c) => {
    // Sent together: the Parse fails while the CREATE TABLE behind it succeeds.
    const refused = outcome(c.query({ name: 's1', text: `SELECT count(*)::int AS n FROM ${MISSING}`, values: [] }));
    const created = outcome(c.query(`CREATE TABLE ${TABLE} (id int)`));
    const results = [await refused, await created];
    results.push(await outcome(c.query({ name: 's1', text: READ, values: [0] })));
    return results;
  }, ['error 42P01', [], [{ n: 0 }]], { pipeline: true });
});

/** Runs `scenario` directly and through the proxy; asserts equal message flows and returns the proxy's counters. */
async function sameFlow(scenario: (c: RawClient) => Promise<Received[]>, expectedCodes: string): Promise<{ flow: Received[]; hits: number }> {
  const viaServer = await runScenario(DIRECT_PG.port, scenario);
  assert.is(codes(viaServer), expectedCodes, 'the direct run itself');
  const { result: viaProxy, delta } = await measure(proxy.adminPort, () => runScenario(proxy.pgPort, scenario));
  assert.equal(describeAll(viaProxy), describeAll(viaServer));
  assert.equal(rawFrames(viaProxy), rawFrames(viaServer));
  return { flow: viaServer, hits: delta.hits };
}

/** Sends `messages` and a Sync; returns the reply up to ReadyForQuery. */
async function batch(c: RawClient, ...messages: Buffer[]): Promise<Received[]> {
  c.send(...messages, serialize.sync());
  return c.readUntilReadyForQuery();
}

test('a Parse the cache answered, then a second Parse of that name fails (42P05): the name keeps its first text', async () => {
  const text = `SELECT name FROM ${ROWS} WHERE id = $1`;
  const execute = (name: string, id: string): Buffer[] => [
    serialize.bind({ statement: name, values: [id] }), serialize.describe({ type: 'P' }), serialize.execute()];
  const { flow, hits } = await sameFlow(async (c) => [
    ...await batch(c, serialize.parse({ name: 'fills', text }), ...execute('fills', '2')),
    // The same execution under another name: through the proxy a hit, its ParseComplete made up.
    ...await batch(c, serialize.parse({ name: 'answered', text }), ...execute('answered', '2')),
    ...await batch(c, serialize.parse({ name: 'answered', text: 'SELECT 0 AS other' })),
    ...await batch(c, ...execute('answered', '3')),
  ], '12TDCZ' + '12TDCZ' + 'EZ' + '2TDCZ');
  assert.is(errorOf(flow.slice(12, 14)).code, '42P05');
  assert.is(hits, 1, 'the second execution was answered from the cache');
});

test('a Parse of the unnamed statement that fails leaves none: a Bind of it fails, after a hit too', async () => {
  const text = `SELECT name FROM ${ROWS} WHERE id = $1`;
  const execute = [serialize.bind({ values: ['4'] }), serialize.describe({ type: 'P' }), serialize.execute()];
  const { flow, hits } = await sameFlow(async (c) => [
    ...await batch(c, serialize.parse({ text }), ...execute),
    ...await batch(c, serialize.parse({ text }), ...execute),
    ...await batch(c, serialize.parse({ text: 'SELEC 1' })),
    ...await batch(c, ...execute),
  ], '12TDCZ' + '12TDCZ' + 'EZ' + 'EZ');
  assert.is(errorOf(flow.slice(12, 14)).code, '42601');
  assert.is(errorOf(flow.slice(14)).code, '26000');
  assert.is(hits, 1, 'the second execution was answered from the cache');
});

test.run();
