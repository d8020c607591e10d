// test-timeout: 300
// Differential test of the MySQL protocol, as e2e/pg-pipeline-differential.test.ts is of
// PostgreSQL's: seeded random runs of COM_QUERY (reads the cache may answer, writes, errors,
// transaction control, autocommit, user variables, multi-statements), COM_STMT_PREPARE,
// COM_STMT_EXECUTE and COM_STMT_RESET, the commands up to each Prepare sent in one write (the next
// ones need its statement id), run once through sidecache to fill its cache, then straight at
// MariaDB and through sidecache again: every reply packet must be the same, byte for byte, but a
// Prepare's statement id (the server numbers statements across all sessions). The reads read a
// table no write changes the rows of.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { prng } from '../cache/admission-sim.js';
import { command, isErr, packet, RawMySql, type Packet } from './support/mysql-raw.js';
import { DIRECT_MYSQL, directMySql, uniqueName } from './support/mysql-direct.js';
import { scrape, sumOf } from './support/metrics.js';
import { DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

const RUNS = 150;
const SEEDS = process.env.SIDECACHE_DIFF_SEED !== undefined ? [Number(process.env.SIDECACHE_DIFF_SEED)] : [20261208, 2];
const DB = uniqueName('sc_mdiff');
const COM_QUERY = 0x03;
const COM_STMT_PREPARE = 0x16;
const COM_STMT_EXECUTE = 0x17;
const COM_STMT_RESET = 0x1a;
/** SERVER_MORE_RESULTS_EXISTS: another result of the same statement follows. */
const MORE_RESULTS = 0x08;
/** A statement id no server hands out: the Execute or Reset of a statement never prepared. */
const NO_STATEMENT = 0x7fffff00;

const QUERIES = [
  'SELECT v FROM r WHERE id = 1', 'SELECT v FROM r WHERE id = 2', 'SELECT v FROM r WHERE id = 7', 'SELECT id, v FROM r ORDER BY id',
  'SELECT COUNT(*) FROM r', 'SELECT v FROM r WHERE id = 3 FOR UPDATE', 'UPDATE w SET v = v + 1 WHERE id = 2', 'UPDATE r SET v = v WHERE id = 1',
  'SELECT * FROM no_such_table', 'BEGIN', 'COMMIT', 'ROLLBACK', 'START TRANSACTION READ ONLY', 'SET autocommit = 0', 'SET autocommit = 1',
  'SELECT v FROM r WHERE id = 1; SELECT 2', 'SET @x = 5', 'SELECT @x', 'SELECT v FROM r WHERE id = 4; UPDATE w SET v = 0 WHERE id = 1',
  'INSERT INTO r VALUES (1, 1)', 'DO 1',
];
/** Statements prepared, each with one INT parameter. */
const PREPARED = [
  'SELECT v FROM r WHERE id = ?', 'SELECT id, v FROM r WHERE id <= ? ORDER BY id', 'UPDATE w SET v = v + ? WHERE id = 1',
  'SELECT v FROM r WHERE id = ? FOR UPDATE',
];

type Step =
  | { kind: 'query'; text: string }
  | { kind: 'prepare'; text: string }
  /** `statement`: the n-th statement this run prepared (from 1), maybe one it never did. */
  | { kind: 'execute'; statement: number; value: number }
  | { kind: 'reset'; statement: number };

let proxy: RunningProxy;

function steps(random: () => number): Step[] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const out: Step[] = [];
  let prepared = 0;
  const count = 1 + Math.floor(random() * 7);
  for (let i = 0; i < count; i++) {
    const r = random();
    if (r < 0.35) {
      out.push({ kind: 'query', text: pick(QUERIES) });
    } else if (r < 0.55 || prepared === 0) {
      out.push({ kind: 'prepare', text: pick(PREPARED) });
      prepared++;
    } else if (r < 0.9) {
      out.push({ kind: 'execute', statement: 1 + Math.floor(random() * (prepared + 1)), value: 1 + Math.floor(random() * 6) });
    } else {
      out.push({ kind: 'reset', statement: 1 + Math.floor(random() * prepared) });
    }
  }
  return out;
}

/** COM_STMT_EXECUTE of `id` with one INT parameter. */
function execute(id: number, value: number): Buffer {
  const body = Buffer.alloc(18);
  body[0] = COM_STMT_EXECUTE;
  body.writeUInt32LE(id, 1);
  body[5] = 0; // no cursor
  body.writeUInt32LE(1, 6); // iteration count
  body[10] = 0; // NULL bitmap
  body[11] = 1; // types follow
  body.writeUInt16LE(0x03, 12); // MYSQL_TYPE_LONG
  body.writeInt32LE(value, 14);
  return packet(body, 0);
}

function statementIdCommand(code: number, id: number): Buffer {
  const arg = Buffer.alloc(4);
  arg.writeUInt32LE(id);
  return command(code, arg);
}

/** Length of a length-encoded integer starting with byte `first`. */
function lenencLength(first: number): number {
  return first < 0xfb ? 1 : first === 0xfc ? 3 : first === 0xfd ? 4 : 9;
}

/** The packets of one command's reply: an OK or ERR, or result sets (several while MORE_RESULTS is set). */
async function readReply(c: RawMySql): Promise<Packet[]> {
  const out: Packet[] = [];
  for (;;) {
    const first = await c.readPacket();
    out.push(first);
    if (isErr(first)) return out;
    let status: number;
    if (first.payload[0] === 0x00) {
      let at = 1;
      at += lenencLength(first.payload[at]!);
      at += lenencLength(first.payload[at]!);
      status = first.payload.readUInt16LE(at);
    } else {
      // Column definitions up to an EOF, rows up to an EOF or an ERR (no CLIENT_DEPRECATE_EOF).
      let eofs = 0;
      let last = first;
      while (eofs < 2) {
        last = await c.readPacket();
        out.push(last);
        if (isErr(last)) return out;
        if (last.payload[0] === 0xfe && last.payload.length < 9) eofs++;
      }
      status = last.payload.readUInt16LE(3);
    }
    if ((status & MORE_RESULTS) === 0) return out;
  }
}

/** A Prepare's reply: its OK, then the parameter and column definitions, each run ended by an EOF. */
async function readPrepared(c: RawMySql): Promise<Packet[]> {
  const ok = await c.readPacket();
  if (isErr(ok)) return [ok];
  const out = [ok];
  for (const n of [ok.payload.readUInt16LE(7), ok.payload.readUInt16LE(5)]) {
    for (let i = 0; n > 0 && i <= n; i++) out.push(await c.readPacket());
  }
  return out;
}

/** Every reply packet's payload in hex, a Prepare's statement id masked. */
async function run(port: number, run: readonly Step[]): Promise<string[]> {
  const c = await RawMySql.login(port, { user: DIRECT_MYSQL.user, database: DB });
  try {
    // A session's first cacheable read checks the server it reached: done before the run.
    c.send(command(COM_QUERY, 'SELECT COUNT(*) FROM r'));
    await readReply(c);
    const ids: number[] = [];
    const replies: string[] = [];
    let batch: Step[] = [];
    const idOf = (n: number): number => ids[n - 1] ?? NO_STATEMENT;
    const send = async (): Promise<void> => {
      c.send(Buffer.concat(batch.map((s) => s.kind === 'query' ? command(COM_QUERY, s.text)
        : s.kind === 'prepare' ? command(COM_STMT_PREPARE, s.text)
        : s.kind === 'execute' ? execute(idOf(s.statement), s.value) : statementIdCommand(COM_STMT_RESET, idOf(s.statement)))));
      for (const s of batch) {
        const packets = s.kind === 'prepare' ? await readPrepared(c) : await readReply(c);
        if (s.kind === 'prepare' && packets[0]!.payload[0] === 0x00) {
          ids.push(packets[0]!.payload.readUInt32LE(1));
          packets[0] = { ...packets[0]!, payload: Buffer.concat([packets[0]!.payload.subarray(0, 1), Buffer.alloc(4), packets[0]!.payload.subarray(5)]) };
        }
        replies.push(...packets.map((p) => p.payload.toString('hex')));
      }
      batch = [];
    };
    for (const s of run) {
      batch.push(s);
      if (s.kind === 'prepare') await send();
    }
    await send();
    return replies;
  } finally {
    c.socket.destroy();
  }
}

async function mysqlHits(): Promise<number> {
  return sumOf(await scrape(proxy.adminPort), 'sidecache_cache_hits_total', { protocol: 'mysql' });
}

test.before(async () => {
  await directMySql(
    `CREATE DATABASE ${DB}`,
    `CREATE TABLE ${DB}.r (id INT PRIMARY KEY, v INT) ENGINE=InnoDB`, `INSERT INTO ${DB}.r VALUES (1, 10), (2, 20), (3, 30), (4, 40), (5, 50)`,
    `CREATE TABLE ${DB}.w (id INT PRIMARY KEY, v INT) ENGINE=InnoDB`, `INSERT INTO ${DB}.w VALUES (1, 0), (2, 0)`,
  );
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: DIRECT_MYSQL_URL });
});

test.after(async () => {
  await proxy?.stop();
  await directMySql(`DROP DATABASE IF EXISTS ${DB}`);
});

for (const seed of SEEDS) {
  test(`seed ${seed}, ${RUNS} random runs: through sidecache (cache filled) exactly as straight at MariaDB`, async () => {
    // Seeded (mulberry32): a failing run is rebuilt from its seed and number.
    const random = prng(seed);
    const before = await mysqlHits();
    for (let i = 0; i < RUNS; i++) {
      const s = steps(random);
      await run(proxy.mysqlPort, s);
      const straight = await run(DIRECT_MYSQL.port, s);
      const through = await run(proxy.mysqlPort, s);
      assert.equal(through, straight, `seed ${seed} run ${i}: ${JSON.stringify(s)}`);
    }
    const hits = await mysqlHits() - before;
    console.log(`seed ${seed}, ${RUNS} runs: ${hits} hits`);
    // Not a vacuous comparison: sidecache answered some of those reads itself.
    assert.ok(hits > 0, `hits ${hits}`);
  });
}

test.run();
