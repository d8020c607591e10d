// The PostgreSQL wire protocol through the proxy, message by message: each scenario runs once directly
// against PostgreSQL and once through the proxy on a raw connection, and the two complete message
// sequences (types, fields and bytes) must be identical. The direct run is also checked against the
// expected message types, so a scenario cannot pass by being empty.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  RawClient, serialize, describeAll, codes, errorOf, frontendMessage, sslRequest, gssEncRequest, rawFrames,
  runScenario, type Received, type Scenario,
} from './support/pg-raw.js';
import { DIRECT_PG, direct, uniqueName, waitForBackendGone } from './support/pg-direct.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const TABLE = uniqueName('sc_e2e_proto');
let proxy: RunningProxy;

const LOGIN = { application_name: 'sc_e2e_proto' };

/** Runs `scenario` directly and through the proxy; asserts equal flows and returns the direct one. */
async function sameFlow(scenario: Scenario, expectedCodes: string): Promise<Received[]> {
  const viaServer = await runScenario(DIRECT_PG.port, scenario, LOGIN);
  assert.is(codes(viaServer), expectedCodes, 'the direct run itself');
  const viaProxy = await runScenario(proxy.pgPort, scenario, LOGIN);
  assert.equal(describeAll(viaProxy), describeAll(viaServer));
  assert.equal(rawFrames(viaProxy), rawFrames(viaServer));
  return viaServer;
}

test.before(async () => {
  await direct(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, name text NOT NULL)`);
  await direct(`INSERT INTO ${TABLE} SELECT g, 'name ' || g FROM generate_series(1, 10) g`);
  proxy = await startProxy();
});

test.after(async () => {
  await proxy?.stop();
  await direct(`DROP TABLE IF EXISTS ${TABLE}`);
});

test('startup: AuthenticationOk, the same ParameterStatus set, BackendKeyData, ReadyForQuery', async () => {
  const startupOf = async (port: number): Promise<Received[]> => {
    const c = await RawClient.connect(port);
    try {
      return await c.startup(LOGIN);
    } finally {
      c.destroy();
    }
  };
  const viaServer = await startupOf(DIRECT_PG.port);
  const viaProxy = await startupOf(proxy.pgPort);
  assert.match(codes(viaServer), /^RS(S*|\{\d+\})KZ$/);
  assert.equal(describeAll(viaProxy), describeAll(viaServer));
  assert.equal(rawFrames(viaProxy), rawFrames(viaServer));
});

test('SSLRequest and GSSENCRequest are refused with a single N, then the startup proceeds', async () => {
  for (const request of [sslRequest(), gssEncRequest()]) {
    const c = await RawClient.connect(proxy.pgPort);
    try {
      c.send(request);
      assert.is((await c.readBytes(1)).toString('latin1'), 'N');
      const startup = await c.startup();
      assert.match(codes(startup), /^RS(S*|\{\d+\})KZ$/);
      assert.is(codes(await c.query('SELECT 1')), 'TDCZ');
    } finally {
      c.destroy();
    }
  }
});

test('several statements in one simple Query: every result, then one ReadyForQuery', async () => {
  const flow = await sameFlow((c) => c.query(
    `SELECT id, name FROM ${TABLE} WHERE id <= 2 ORDER BY id; SELECT 'x' AS b, 2 AS c;` +
    ' CREATE TEMP TABLE scratch (i int); INSERT INTO scratch VALUES (1), (2);' +
    ' UPDATE scratch SET i = i + 1; DELETE FROM scratch WHERE i = 3; SELECT count(*) FROM scratch'),
  'TDDCTDCCCCCTDCZ');
  assert.equal(flow.filter((m) => m.code === 'C').map((m) => (m.msg as unknown as { text: string }).text),
    ['SELECT 2', 'SELECT 1', 'CREATE TABLE', 'INSERT 0 2', 'UPDATE 2', 'DELETE 1', 'SELECT 1']);
});

test('empty query and a failing statement in a simple Query', async () => {
  await sameFlow(async (c) => [
    ...await c.query(''),
    // A syntax error anywhere rejects the whole string before anything runs.
    ...await c.query('SELECT 1; SELEC 2; SELECT 3'),
    // A run-time error ends the string after the rows already sent.
    ...await c.query('SELECT 1 AS a; SELECT 1 / (g - 2) FROM generate_series(1, 3) g; SELECT 3'),
    ...await c.query('SELECT 4'),
  ], 'IZ' + 'EZ' + 'TDCTDEZ' + 'TDCZ');
});

test('transaction status in ReadyForQuery: I, T, E and back to I', async () => {
  const flow = await sameFlow(async (c) => [
    ...await c.query('BEGIN'),
    ...await c.query(`SELECT name FROM ${TABLE} WHERE id = 1`),
    ...await c.query('SELECT no_such_column'),
    ...await c.query('SELECT 1'),
    ...await c.query('ROLLBACK'),
  ], 'CZ' + 'TDCZ' + 'EZ' + 'EZ' + 'CZ');
  assert.equal(flow.filter((m) => m.code === 'Z').map((m) => (m.msg as unknown as { status: string }).status),
    ['T', 'T', 'E', 'E', 'I']);
  assert.is(errorOf(flow.slice(7)).code, '25P02');
});

test('extended query pipeline: three statements, named and unnamed, then ONE Sync', async () => {
  await sameFlow(async (c) => {
    await c.query('CREATE TEMP TABLE scratch (i int)');
    c.send(
      serialize.parse({ name: 'stmt_a', text: `SELECT id, name FROM ${TABLE} WHERE id = $1` }),
      serialize.bind({ portal: 'portal_a', statement: 'stmt_a', values: ['2'] }),
      serialize.describe({ type: 'P', name: 'portal_a' }),
      serialize.execute({ portal: 'portal_a' }),
      serialize.parse({ text: 'SELECT $1::int * 2 AS doubled, $2::text AS label' }),
      serialize.bind({ values: ['21', 'x'] }),
      serialize.describe({ type: 'P' }),
      serialize.execute(),
      serialize.parse({ name: 'stmt_c', text: 'INSERT INTO scratch VALUES ($1)', types: [23] }),
      serialize.describe({ type: 'S', name: 'stmt_c' }),
      serialize.bind({ statement: 'stmt_c', values: ['7'] }),
      serialize.execute(),
      serialize.sync(),
    );
    const pipeline = await c.readUntilReadyForQuery();
    // The named statement outlives the Sync; a second use needs no Parse.
    c.send(serialize.bind({ portal: 'again', statement: 'stmt_a', values: ['3'] }),
      serialize.execute({ portal: 'again' }), serialize.sync());
    return [...pipeline, ...await c.readUntilReadyForQuery(), ...await c.query('SELECT count(*) FROM scratch WHERE i = 7')];
  }, '12TDC' + '12TDC' + '1tn2C' + 'Z' + '2DCZ' + 'TDCZ');
});

test('Describe of a statement: ParameterDescription then RowDescription; binary results', async () => {
  await sameFlow(async (c) => {
    c.send(
      serialize.parse({ name: 'typed', text: 'SELECT $1::int8 AS big, $2::float8 AS f, $3::bytea AS b, $4::bool AS t' }),
      serialize.describe({ type: 'S', name: 'typed' }),
      serialize.bind({ statement: 'typed', values: ['9007199254740993', '1.5', Buffer.from([0, 1, 255]), 't'], binary: true }),
      serialize.describe({ type: 'P' }),
      serialize.execute(),
      serialize.sync(),
    );
    return c.readUntilReadyForQuery();
  }, '1tT2TDCZ');
});

test('Close statement and Close portal, then using them fails', async () => {
  const flow = await sameFlow(async (c) => {
    c.send(
      serialize.parse({ name: 'sc', text: 'SELECT 1 AS one' }),
      serialize.bind({ portal: 'pc', statement: 'sc' }),
      serialize.close({ type: 'P', name: 'pc' }),
      serialize.close({ type: 'S', name: 'sc' }),
      serialize.sync(),
    );
    const closed = await c.readUntilReadyForQuery();
    c.send(serialize.bind({ statement: 'sc' }), serialize.sync());
    const unknownStatement = await c.readUntilReadyForQuery();
    c.send(serialize.execute({ portal: 'pc' }), serialize.sync());
    return [...closed, ...unknownStatement, ...await c.readUntilReadyForQuery()];
  }, '1233Z' + 'EZ' + 'EZ');
  assert.is(errorOf(flow.slice(5, 7)).code, '26000');
  assert.is(errorOf(flow.slice(7)).code, '34000');
});

test('Flush: results arrive before any Sync', async () => {
  await sameFlow(async (c) => {
    c.send(
      serialize.parse({ text: 'SELECT 42 AS answer' }),
      serialize.bind(),
      serialize.describe({ type: 'P' }),
      serialize.execute(),
      serialize.flush(),
    );
    const flushed = await c.expectMessages('12TDC', 2000);
    await c.expectSilence(200);
    c.send(serialize.sync());
    return [...flushed, ...await c.readUntilReadyForQuery()];
  }, '12TDCZ');
});

test('portal row limit: Execute maxRows=2 suspends, the next Execute returns the rest', async () => {
  const flow = await sameFlow(async (c) => {
    c.send(
      serialize.parse({ text: 'SELECT g FROM generate_series(1, 5) g' }),
      serialize.bind({ portal: 'limited' }),
      serialize.execute({ portal: 'limited', rows: 2 }),
      serialize.flush(),
    );
    const first = await c.expectMessages('12DDs');
    c.send(serialize.execute({ portal: 'limited', rows: 2 }), serialize.flush());
    const second = await c.expectMessages('DDs');
    c.send(serialize.execute({ portal: 'limited' }), serialize.sync());
    return [...first, ...second, ...await c.readUntilReadyForQuery()];
  }, '12DDs' + 'DDs' + 'DCZ');
  assert.equal(describeAll(flow.slice(-2)), ['C SELECT 1', 'Z I']);
});

test('an error mid-pipeline skips everything up to Sync, then ReadyForQuery I', async () => {
  const flow = await sameFlow(async (c) => {
    c.send(
      serialize.parse({ name: 'cast', text: 'SELECT $1::int AS v' }),
      serialize.bind({ statement: 'cast', values: ['1'] }),
      serialize.execute(),
      serialize.bind({ statement: 'cast', values: ['not a number'] }),
      serialize.execute(),
      serialize.parse({ text: 'SELECT 2' }),
      serialize.bind(),
      serialize.execute(),
      serialize.sync(),
    );
    const failed = await c.readUntilReadyForQuery();
    return [...failed, ...await c.query('SELECT 3 AS after')];
  }, '12DCEZ' + 'TDCZ');
  assert.is(errorOf(flow).code, '22P02');
  assert.is(describeAll(flow)[5], 'Z I');
});

test('a syntax error at Parse is reported and the pipeline resumes after Sync', async () => {
  const flow = await sameFlow(async (c) => {
    c.send(
      serialize.parse({ name: 'broken', text: 'SELEC 1' }),
      serialize.bind({ statement: 'broken' }),
      serialize.execute(),
      serialize.sync(),
      serialize.parse({ text: 'SELECT 1 AS ok' }),
      serialize.bind(),
      serialize.execute(),
      serialize.sync(),
    );
    return [...await c.readUntilReadyForQuery(), ...await c.readUntilReadyForQuery()];
  }, 'EZ' + '12DCZ');
  assert.is(errorOf(flow).code, '42601');
});

test('explicit transaction over the extended protocol reports T and E in ReadyForQuery', async () => {
  const flow = await sameFlow(async (c) => {
    const step = async (text: string): Promise<Received[]> => {
      c.send(serialize.parse({ text }), serialize.bind(), serialize.execute(), serialize.sync());
      return c.readUntilReadyForQuery();
    };
    // 1/0 is constant-folded when Bind plans the query, so the error comes at Bind.
    return [...await step('BEGIN'), ...await step('SELECT 1/0'), ...await step('SELECT 1'),
      ...await step('ROLLBACK')];
  }, '12CZ' + '1EZ' + 'EZ' + '12CZ');
  assert.equal(flow.filter((m) => m.code === 'Z').map((m) => (m.msg as unknown as { status: string }).status),
    ['T', 'E', 'E', 'I']);
});

test('SET application_name arrives as ParameterStatus, and ROLLBACK reports the old value again', async () => {
  const flow = await sameFlow(async (c) => [
    ...await c.query(`SET application_name = 'sc_e2e_renamed'`),
    ...await c.query('BEGIN'),
    ...await c.query(`SET application_name = 'sc_e2e_in_tx'`),
    ...await c.query('ROLLBACK'),
    ...await c.query('SHOW application_name'),
  ], 'CSZ' + 'CZ' + 'CSZ' + 'CSZ' + 'TDCZ');
  assert.equal(describeAll(flow.filter((m) => m.code === 'S')), [
    'S application_name=sc_e2e_renamed', 'S application_name=sc_e2e_in_tx', 'S application_name=sc_e2e_renamed',
  ]);
});

test('NoticeResponse from RAISE NOTICE and a warning arrive in order with the results', async () => {
  await sameFlow((c) => c.query(
    `DO $$ BEGIN RAISE NOTICE 'first notice %', 1; RAISE WARNING 'a warning'; END $$; SELECT 'after' AS x`),
  'NNCTDCZ');
});

test('large rows and many rows keep their framing', async () => {
  await sameFlow(async (c) => {
    const big = await c.query(`SELECT repeat('x', 3000000) AS big, repeat('é', 1000) AS accented`, 10_000);
    const many = await c.query('SELECT g, md5(g::text) FROM generate_series(1, 20000) g', 10_000);
    return [...big, ...many];
  }, 'TDCZ' + 'TD{20000}CZ');
});

test('FunctionCall (F) is relayed and answered with FunctionCallResponse (V)', async () => {
  // int4pl(40, 2) called by OID with text-format arguments: a rarely used message type the proxy
  // must pass through untouched.
  const oid = (await direct<{ oid: number }>(`SELECT 'int4pl'::regproc::oid::int AS oid`)).rows[0]!.oid;
  const body = Buffer.alloc(4 + 2 + 2 + 2 + (4 + 2) + (4 + 1) + 2);
  let o = body.writeInt32BE(oid, 0);
  o = body.writeInt16BE(1, o);      // one argument format code
  o = body.writeInt16BE(0, o);      // text
  o = body.writeInt16BE(2, o);      // two arguments
  o = body.writeInt32BE(2, o);
  o += body.write('40', o);
  o = body.writeInt32BE(1, o);
  o += body.write('2', o);
  body.writeInt16BE(0, o);          // text result
  const flow = await sameFlow(async (c) => {
    c.send(frontendMessage('F', body));
    return c.readUntilReadyForQuery();
  }, 'VZ');
  assert.is(flow[0]!.raw.subarray(9).toString(), '42');
});

test('an unknown message type reaches the server, which answers FATAL 08P01 and closes', async () => {
  const flow = await sameFlow(async (c) => {
    c.send(frontendMessage('y', Buffer.from('hello\0')));
    return c.readUntilClosed();
  }, 'E');
  assert.is(errorOf(flow).code, '08P01');
  assert.is(errorOf(flow).severity, 'FATAL');
});

test('Terminate closes the client connection and the upstream backend', async () => {
  const flow = await sameFlow((c) => c.terminate(), '');
  assert.is(flow.length, 0);
  const c = await RawClient.login(proxy.pgPort);
  const pid = c.backendKey!.processID;
  assert.equal(await c.terminate(2000), []);
  await waitForBackendGone(pid, 3000);
});

test.run();
