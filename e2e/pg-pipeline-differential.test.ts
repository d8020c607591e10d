// test-timeout: 300
// Differential test of the extended protocol: seeded random pipelines of Parse, Bind, Describe,
// Execute (with and without a row limit), Close, Flush, Sync and simple Queries (reads that may be
// answered from the cache, writes, errors, transaction control, named and unnamed statements and
// portals, text and binary results), each sent in one write, run once through sidecache to fill
// its cache, then straight at PostgreSQL and through sidecache again: every backend message must
// be the same, byte for byte (ParameterStatus and notices aside). The reads read a table no write
// changes the rows of (its only write sets a value to itself, which invalidates), so the cached
// answers and PostgreSQL's must agree.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { prng } from '../cache/admission-sim.js';
import { RawClient, describeAll, rawFrames, serialize, type Received } from './support/pg-raw.js';
import { DIRECT_PG, direct, uniqueName } from './support/pg-direct.js';
import { measure } from './support/metrics.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

// Another search: SIDECACHE_DIFF_SEED=N SIDECACHE_DIFF_PIPELINES=M make test FILTER=pg-pipeline-differential
const PIPELINES = Number(process.env.SIDECACHE_DIFF_PIPELINES ?? 100);
/**
 * Seeds 2 and 10 found a ParseComplete out of place and a replayed Parse the server skipped (the
 * focused tests below), seed 39 a named portal bound twice in a group answered from the cache.
 * Known difference, left alone: seed 40's pipeline 156 parses a name the client holds (the cache
 * answered it) inside a failed transaction block; PostgreSQL answers 42P05, sidecache's replayed
 * Parse of it 25P02 (a client bug met inside a client's failed block).
 */
const SEEDS = process.env.SIDECACHE_DIFF_SEED !== undefined ? [Number(process.env.SIDECACHE_DIFF_SEED)] : [20261208, 2, 3, 10, 39];
const READS = uniqueName('sc_diff_r');
const WRITES = uniqueName('sc_diff_w');
/**
 * Ends every pipeline: its reply marks the end of what the pipeline's own messages produced. The
 * ROLLBACK first lets the marker run in a block the pipeline left open or failed.
 */
const MARKER = 'ROLLBACK; SELECT \'end of pipeline\'';

let proxy: RunningProxy;

/** Statement texts with their number of parameters. */
const TEXTS: ReadonlyArray<[string, number]> = [
  [`SELECT v FROM ${READS} WHERE id = $1`, 1],
  [`SELECT id, v FROM ${READS} ORDER BY id`, 0],
  [`SELECT count(*) FROM ${READS} WHERE v > $1`, 1],
  [`SELECT v FROM ${READS} WHERE id = 2`, 0],
  [`SELECT v FROM ${READS} WHERE id = $1`, 1],
  [`SELECT id, v FROM ${READS} ORDER BY id`, 0],
  [`SELECT v FROM ${READS} WHERE id = $1 FOR UPDATE`, 1],
  [`UPDATE ${WRITES} SET v = v + 1 WHERE id = $1`, 1],
  [`UPDATE ${READS} SET v = v WHERE id = $1`, 1],
  ['SELECT 1/0', 0],
  ['BEGIN', 0], ['BEGIN READ ONLY', 0], ['COMMIT', 0], ['ROLLBACK', 0],
  ['SET TRANSACTION ISOLATION LEVEL REPEATABLE READ', 0],
];

interface Pipeline {
  messages: Buffer[];
  /** What it sends, for a failure's message. */
  steps: string[];
}

function pipeline(random: () => number): Pipeline {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const messages: Buffer[] = [];
  const steps: string[] = [];
  const count = 1 + Math.floor(random() * 6);
  for (let i = 0; i < count; i++) {
    const r = random();
    if (r < 0.15) {
      const [text] = pick(TEXTS);
      messages.push(serialize.query(text));
      steps.push(`Query(${text})`);
    } else if (r < 0.25) {
      messages.push(serialize.sync());
      steps.push('Sync');
    } else if (r < 0.3) {
      messages.push(serialize.flush());
      steps.push('Flush');
    } else if (r < 0.35) {
      const type = pick(['S', 'P'] as const);
      const name = pick(['', 'a', 'b']);
      messages.push(serialize.close({ type, name }));
      steps.push(`Close${type}(${name})`);
    } else {
      const [text, params] = pick(TEXTS);
      const statement = pick(['', '', 'a', 'b']);
      const portal = pick(['', '', 'p']);
      if (random() < 0.8) {
        messages.push(serialize.parse({ name: statement, text, types: [] }));
        steps.push(`Parse(${statement}: ${text})`);
      }
      const values = params === 1 ? [String(1 + Math.floor(random() * 6))] : [];
      const binary = random() < 0.2;
      messages.push(serialize.bind({ portal, statement, values, binary }));
      steps.push(`Bind(${portal} <- ${statement} [${values.join()}]${binary ? ' binary' : ''})`);
      if (random() < 0.4) {
        const type = pick(['S', 'P'] as const);
        messages.push(serialize.describe({ type, name: type === 'S' ? statement : portal }));
        steps.push(`Describe${type}`);
      }
      const rows = random() < 0.15 ? 1 : 0;
      messages.push(serialize.execute({ portal, rows }));
      steps.push(`Execute(${portal}, ${rows})`);
      if (rows === 1 && random() < 0.5) {
        messages.push(serialize.execute({ portal, rows: 0 }));
        steps.push(`Execute(${portal}, 0)`);
      }
      // As pgJDBC and node-postgres send them: a statement, then Sync.
      if (random() < 0.5) {
        messages.push(serialize.sync());
        steps.push('Sync');
      }
    }
  }
  messages.push(serialize.sync(), serialize.query(MARKER));
  steps.push('Sync');
  return { messages, steps };
}

/** Every backend message the pipeline brought, up to and including the marker's ReadyForQuery. */
async function run(port: number, p: Pipeline): Promise<Received[]> {
  const c = await RawClient.login(port, { user: DIRECT_PG.user, database: DIRECT_PG.database });
  try {
    // A session's first cacheable read waits for sidecache's check of the server it reached: done
    // before the pipeline, as in a pooled connection.
    await c.query(`SELECT count(*) FROM ${READS}`);
    c.send(...p.messages);
    let marked = false;
    return await c.readUntil((m) => {
      if (m.code === 'D' && m.raw.includes('end of pipeline')) marked = true;
      return marked && m.code === 'Z';
    }, 10_000);
  } finally {
    c.destroy();
  }
}

test.before(async () => {
  await direct(`CREATE TABLE ${READS} (id int PRIMARY KEY, v int NOT NULL)`);
  await direct(`INSERT INTO ${READS} SELECT g, g * 10 FROM generate_series(1, 5) g`);
  await direct(`CREATE TABLE ${WRITES} (id int PRIMARY KEY, v int NOT NULL)`);
  await direct(`INSERT INTO ${WRITES} SELECT g, 0 FROM generate_series(1, 6) g`);
  proxy = await startProxy();
});

test.after(async () => {
  await proxy?.stop();
  await direct(`DROP TABLE IF EXISTS ${READS}, ${WRITES}`);
});

for (const seed of SEEDS) {
  test(`seed ${seed}, ${PIPELINES} random pipelines: through sidecache (cache filled) exactly as straight at PostgreSQL`, async () => {
    // Seeded (mulberry32): a failing pipeline is rebuilt from its seed and number.
    const random = prng(seed);
    const { delta } = await measure(proxy.adminPort, async () => {
      for (let i = 0; i < PIPELINES; i++) await compare(`seed ${seed} pipeline ${i}`, pipeline(random));
    });
    console.log(`seed ${seed}, ${PIPELINES} pipelines: ${JSON.stringify({ hits: delta.hits, misses: delta.misses, bypass: delta.bypassByReason })}`);
    // Not a vacuous comparison: sidecache answered some of those reads itself.
    assert.ok(delta.hits > 0, JSON.stringify(delta));
  });
}

test('a Parse of a statement the cache answered, behind another Parse in its group: each ParseComplete where PostgreSQL sends it', async () => {
  const read = `SELECT v FROM ${READS} WHERE id = $1`;
  const messages = [
    // Answered from the cache once filled: the server never sees statement b.
    serialize.parse({ name: 'b', text: read, types: [] }), serialize.bind({ statement: 'b', values: ['2'] }), serialize.execute({}), serialize.sync(),
    // sidecache parses b upstream first, so that the client's Parse of b fails (42P05) as it would
    // directly: the ParseComplete of a comes before a's BindComplete, none for the failed Parse.
    serialize.parse({ name: 'a', text: 'ROLLBACK', types: [] }), serialize.bind({ statement: 'a' }), serialize.execute({}),
    serialize.parse({ name: 'b', text: read, types: [] }), serialize.bind({ statement: 'b', values: ['3'] }), serialize.execute({}), serialize.sync(),
    serialize.query(MARKER),
  ];
  await compare('focused', { messages, steps: ['Parse(b) Bind Execute Sync Parse(a: ROLLBACK) Bind Execute Parse(b) Bind Execute Sync'] });
});

test('statements the cache answered, parsed upstream again in a group that fails before one of them: a later group binds it as directly', async () => {
  const read = `SELECT v FROM ${READS} WHERE id = $1`;
  const messages = [
    // Answered from the cache once filled: the server holds neither a nor b.
    serialize.parse({ name: 'a', text: read, types: [] }), serialize.bind({ statement: 'a', values: ['1'] }), serialize.execute({}),
    serialize.parse({ name: 'b', text: read, types: [] }), serialize.bind({ statement: 'b', values: ['2'] }), serialize.execute({}), serialize.sync(),
    // sidecache parses a and b upstream before their Binds; a's Bind fails (two values for one
    // parameter), so the server skips the rest, b's Parse with it.
    serialize.bind({ statement: 'a', values: ['1', '2'] }), serialize.execute({}), serialize.bind({ statement: 'b', values: ['3'] }), serialize.execute({}), serialize.sync(),
    // b is the client's all along: it runs (a row-limited Execute is never answered from the cache).
    serialize.bind({ statement: 'b', values: ['4'] }), serialize.execute({ rows: 1 }), serialize.sync(),
    // And parsing b again fails as it would directly.
    serialize.parse({ name: 'b', text: read, types: [] }), serialize.bind({ statement: 'b', values: ['5'] }), serialize.execute({}), serialize.sync(),
    serialize.query(MARKER),
  ];
  await compare('focused', { messages, steps: ['Parse(a) Bind Execute Parse(b) Bind Execute Sync Bind(a, 2 values) Execute Bind(b) Execute Sync Bind(b) Execute(1) Sync Parse(b) Bind Execute Sync'] });
});

/** A pipeline once through sidecache (filling), then straight and through it again: the same replies. */
async function compare(name: string, p: Pipeline): Promise<void> {
  await run(proxy.pgPort, p);
  const straight = await run(DIRECT_PG.port, p);
  const through = await run(proxy.pgPort, p);
  const comparable = (messages: Received[]): string[] => rawFrames(messages.filter((m) => m.code !== 'S' && m.code !== 'N'));
  assert.equal(comparable(through), comparable(straight), [
    `${name}: ${p.steps.join(' ')}`,
    `  PostgreSQL: ${describeAll(straight).join(' | ')}`,
    `  sidecache:  ${describeAll(through).join(' | ')}`,
  ].join('\n'));
}

test.run();
