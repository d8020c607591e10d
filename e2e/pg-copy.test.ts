// COPY through the proxy on raw connections: COPY FROM STDIN with data cut at arbitrary points,
// COPY TO STDOUT in text and binary, CopyFail, bad data, and COPY over the extended protocol. Each
// scenario runs directly and through the proxy; the message flows and the copied rows must be equal.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  serialize, codes, describeAll, errorOf, rawFrames, runScenario, type Received, type Scenario,
} from './support/pg-raw.js';
import { DIRECT_PG, direct, uniqueName } from './support/pg-direct.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

const TABLE = uniqueName('sc_e2e_copy');
let proxy: RunningProxy;

/** COPY text format: tab-separated, backslash escapes, \N for NULL. */
const ROWS = Array.from({ length: 1000 }, (_, i) => {
  const note = i % 10 === 0 ? '\\N' : `row ${i}\\ttab\\\\backslash ünïcødé 🐘 ${'x'.repeat(i % 50)}`;
  return `${i}\t${note}\t${(i * 1.25).toFixed(2)}\n`;
}).join('');

/** `bytes` in pieces of `size` (odd sizes cut rows and multi-byte characters apart). */
function chunks(bytes: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
}

async function tableRows(): Promise<unknown[]> {
  return (await direct(`SELECT id, note, amount::text FROM ${TABLE} ORDER BY id`)).rows;
}

/**
 * Runs `scenario` directly, then through the proxy, emptying the table before each run; asserts the
 * same message flow and the same table contents afterwards and returns the direct flow and rows.
 */
async function sameCopy(scenario: Scenario, expectedCodes: string): Promise<{ flow: Received[]; rows: unknown[] }> {
  await direct(`TRUNCATE ${TABLE}`);
  const viaServer = await runScenario(DIRECT_PG.port, scenario);
  const rowsViaServer = await tableRows();
  assert.is(codes(viaServer), expectedCodes, 'the direct run itself');
  await direct(`TRUNCATE ${TABLE}`);
  const viaProxy = await runScenario(proxy.pgPort, scenario);
  assert.equal(describeAll(viaProxy), describeAll(viaServer));
  assert.equal(rawFrames(viaProxy), rawFrames(viaServer));
  assert.equal(await tableRows(), rowsViaServer);
  return { flow: viaServer, rows: rowsViaServer };
}

test.before(async () => {
  await direct(`CREATE TABLE ${TABLE} (id int PRIMARY KEY, note text, amount numeric(10, 2))`);
  proxy = await startProxy();
});

test.after(async () => {
  await proxy?.stop();
  await direct(`DROP TABLE IF EXISTS ${TABLE}`);
});

test('COPY FROM STDIN: 1000 rows in 97-byte CopyData pieces', async () => {
  const { flow, rows } = await sameCopy(async (c) => {
    c.send(serialize.query(`COPY ${TABLE} (id, note, amount) FROM STDIN`));
    const start = await c.expectMessages('G');
    for (const piece of chunks(Buffer.from(ROWS), 97)) c.send(serialize.copyData(piece));
    c.send(serialize.copyDone());
    return [...start, ...await c.readUntilReadyForQuery()];
  }, 'GCZ');
  assert.is(describeAll(flow)[1], 'C COPY 1000');
  assert.is(rows.length, 1000);
  assert.equal(rows[3], { id: 3, note: 'row 3\ttab\\backslash ünïcødé 🐘 xxx', amount: '3.75' });
  assert.equal(rows[10], { id: 10, note: null, amount: '12.50' });
});

test('COPY TO STDOUT: text and binary, 30k rows', async () => {
  const source = `SELECT g AS id, 'v' || g AS v, g * 0.5 AS half FROM generate_series(1, 30000) g`;
  const { flow } = await sameCopy(async (c) => [
    ...await c.query(`COPY (${source}) TO STDOUT`, 10_000),
    ...await c.query(`COPY (${source}) TO STDOUT (FORMAT binary)`, 10_000),
  ], 'Hd{30000}cCZ' + 'Hd{30001}cCZ'); // binary: the file header rides with row 1, the trailer comes alone
  assert.is(describeAll(flow)[1], 'd "1\\tv1\\t0.5\\n"');
});

test('CopyFail aborts COPY FROM STDIN with 57014 and nothing is written', async () => {
  const { flow, rows } = await sameCopy(async (c) => {
    c.send(serialize.query(`COPY ${TABLE} FROM STDIN`));
    const start = await c.expectMessages('G');
    c.send(serialize.copyData(Buffer.from('1\tone\t1\n')), serialize.copyFail('client gave up'));
    return [...start, ...await c.readUntilReadyForQuery(), ...await c.query('SELECT 1')];
  }, 'GEZ' + 'TDCZ');
  assert.is(errorOf(flow).code, '57014');
  assert.match(errorOf(flow).message!, /client gave up/);
  assert.is(rows.length, 0);
});

test('bad data in COPY FROM STDIN: 22P02 with its line, the rest of the copy is dropped', async () => {
  const { flow, rows } = await sameCopy(async (c) => {
    c.send(serialize.query(`COPY ${TABLE} FROM STDIN`));
    const start = await c.expectMessages('G');
    c.send(serialize.copyData(Buffer.from('1\tone\t1\n2\ttwo\t2\nthree\tthree\t3\n4\tfour\t4\n')));
    const failed = await c.readUntilReadyForQuery();
    // The server drops CopyData and CopyDone that arrive after it left copy mode.
    c.send(serialize.copyData(Buffer.from('5\tfive\t5\n')), serialize.copyDone());
    return [...start, ...failed, ...await c.query(`SELECT count(*) FROM ${TABLE}`)];
  }, 'GEZ' + 'TDCZ');
  assert.is(errorOf(flow).code, '22P02');
  assert.match(errorOf(flow).where!, /line 3/);
  assert.is(rows.length, 0);
});

test('COPY over the extended protocol: Parse/Bind/Execute, copy data, Sync', async () => {
  const { flow, rows } = await sameCopy(async (c) => {
    c.send(serialize.parse({ text: `COPY ${TABLE} FROM STDIN (FORMAT csv)` }), serialize.bind(), serialize.execute());
    const start = await c.expectMessages('12G');
    c.send(serialize.copyData(Buffer.from('1,"csv, quoted",1.5\n2,,2\n')), serialize.copyDone(), serialize.sync());
    const copiedIn = await c.readUntilReadyForQuery();
    c.send(serialize.parse({ text: `COPY ${TABLE} TO STDOUT (FORMAT csv)` }), serialize.bind(), serialize.execute(),
      serialize.sync());
    return [...start, ...copiedIn, ...await c.readUntilReadyForQuery()];
  }, '12GCZ' + '12HddcCZ');
  assert.equal(describeAll(flow).slice(8, 10), ['d "1,\\"csv, quoted\\",1.50\\n"', 'd "2,,2.00\\n"']);
  assert.is(rows.length, 2);
});

test.run();
