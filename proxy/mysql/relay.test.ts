// The MySQL relay driven through its MySqlRelayIo with scripted server bytes, no sockets: what goes
// upstream, what reaches the client, and when the cache is invalidated.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createMetrics } from '../../telemetry/metrics.js';
import { createLogger } from '../../telemetry/log.js';
import { loadConfig } from '../../config/settings.js';
import { Capability, Command, ServerStatus } from './codes.js';
import { MySqlCache } from './mysql-cache.js';
import { encodePacket } from './packets.js';
import { MySqlRelay, type MySqlRelayIo } from './relay.js';
import { ReplyTracker } from './replies.js';
import { MySqlSessionState } from './session-state.js';

const config = loadConfig(['--cache-ttl', '0'], {}).config;
const log = createLogger('error');
const SELECT = 'SELECT v FROM items';
const AUTOCOMMIT = ServerStatus.Autocommit;
const IN_TRANS = ServerStatus.InTrans | ServerStatus.Autocommit;

// ---------------------------------------------------------------- server packets (classic EOFs)

const lenencString = (v: string | null): Buffer => (v === null ? Buffer.from([0xfb]) : Buffer.concat([Buffer.from([Buffer.byteLength(v)]), Buffer.from(v)]));
const ok = (status: number): Buffer => Buffer.from([0, 0, 0, status & 0xff, status >> 8, 0, 0]);
const eof = (status: number): Buffer => Buffer.from([0xfe, 0, 0, status & 0xff, status >> 8]);
const def = (name: string): Buffer => Buffer.concat([Buffer.from('\x03def'), Buffer.from([name.length]), Buffer.from(name), Buffer.alloc(20)]);

/** Sequence-numbered packets from 1 (the reply to a command sent with id 0). */
function reply(...payloads: Buffer[]): Buffer {
  return Buffer.concat(payloads.map((p, i) => encodePacket(p, i + 1)));
}

/** A text result set of one row. */
function resultSet(columns: string[], row: (string | null)[], status = AUTOCOMMIT): Buffer {
  return reply(Buffer.from([columns.length]), ...columns.map(def), eof(status), Buffer.concat(row.map(lenencString)), eof(status));
}

const result = (value: string, status = AUTOCOMMIT) => resultSet(['v'], [value], status);
const okReply = (status: number) => reply(ok(status));
/** The session's context columns (database, users, role, settings), as the identity check and the probe end and begin. */
const CONTEXT_COLUMNS = ['db', 'cu', 'u', 'role', 'settings'];
const CONTEXT: (string | null)[] = ['db', 'app@%', 'app@localhost', null, 'utf8mb4'];
const identityReply = (context = CONTEXT) => resultSet(['id', 'host', 'port', 'now', 'uptime', ...CONTEXT_COLUMNS], ['1', '6C6F63616C', '3306', '1700000000', '100', ...context]);
/** The probe's row for SELECT v FROM items: context, settings, no fan-out, items a base table. */
const probeReply = () => resultSet([...CONTEXT_COLUMNS, 'fan_out', 't0'], [...CONTEXT, '0:', 'BASE TABLE']);

// ---------------------------------------------------------------- the harness

class Harness implements MySqlRelayIo {
  readonly label = { remote: 'test', user: 'app', database: 'db' };
  /** What went upstream, one buffer per write. */
  upstream: Buffer[] = [];
  client: Buffer[] = [];
  onClient: ((bytes: Buffer) => void) | null = null;
  readonly relay: MySqlRelay;

  constructor(readonly cache: MySqlCache) {
    const state = new MySqlSessionState();
    state.capabilities = (Capability.Protocol41 | Capability.Transactions | Capability.SecureConnection | Capability.MultiResults) >>> 0;
    state.serverVersion = '10.11.6-MariaDB';
    state.user = 'app';
    state.database = 'db';
    state.status = AUTOCOMMIT;
    this.relay = new MySqlRelay(this, cache, state, new ReplyTracker(state), log);
  }

  toUpstream(bytes: Buffer): void {
    this.upstream.push(Buffer.from(bytes));
  }

  toClient(bytes: Buffer): void {
    this.onClient?.(bytes);
    this.client.push(Buffer.from(bytes));
  }

  /** The client sends COM_QUERYs, one after the other without waiting. */
  query(...texts: string[]): void {
    for (const text of texts) {
      const packet = encodePacket(Buffer.concat([Buffer.from([Command.Query]), Buffer.from(text)]), 0);
      this.relay.clientPacket(packet, 0, packet.length, packet.length - 4);
    }
  }

  server(...chunks: Buffer[]): void {
    this.relay.upstreamChunk(Buffer.concat(chunks));
  }

  /** Takes what went each way since the last call: [COM_QUERY texts upstream, client bytes]. */
  take(): [string[], Buffer] {
    const texts = this.upstream.map((p) => p.toString('utf8', 5));
    const taken: [string[], Buffer] = [texts, Buffer.concat(this.client)];
    this.upstream = [];
    this.client = [];
    return taken;
  }

  get entries(): number {
    return this.cache.store.counters().entries;
  }
}

/** A session whose SELECT v FROM items is stored: identity check, probe and fill scripted. */
function warmed(cache = new MySqlCache(config, createMetrics())): Harness {
  const h = new Harness(cache);
  h.query(SELECT);
  const [up] = h.take();
  assert.is(up.length, 3, 'identity check, probe, the statement');
  assert.is(up[2], SELECT);
  h.server(identityReply(), probeReply(), result('a'));
  return h;
}

test('the identity check\'s and the probe\'s replies never reach the client; the fill is stored', () => {
  const h = warmed();
  const [, client] = h.take();
  assert.equal(client, result('a'));
  assert.equal([h.cache.stats.misses, h.entries], [1, 1]);
});

test('a hit sends nothing upstream', () => {
  const h = warmed();
  h.take();
  h.query(SELECT);
  const [up, client] = h.take();
  assert.equal([up, client, h.cache.stats.hits], [[], result('a'), 1]);
});

test('a read sent while another command is outstanding is relayed with reason "pipelined"', () => {
  const h = warmed();
  h.take();
  h.query('UPDATE items SET v = 1', SELECT);
  const [up, before] = h.take();
  assert.equal([up, before.length], [['UPDATE items SET v = 1', SELECT], 0], 'the stored reply must not overtake the UPDATE\'s OK');
  h.server(okReply(AUTOCOMMIT), result('b'));
  assert.equal(h.take()[1], Buffer.concat([okReply(AUTOCOMMIT), result('b')]));
  assert.is(h.cache.stats.bypassReasons().get('pipelined')?.count, 1);
  assert.equal([h.cache.stats.hits, h.cache.stats.writes], [0, 1]);
});

/** Another read of items, judged like SELECT: a fill that is not stored when the pipeline starts. */
const OTHER = 'SELECT v FROM items WHERE v > 0';

/** warmed(), plus OTHER's decision learned (filled once, then every entry dropped) and SELECT stored again. */
function pipelineReady(): Harness {
  const h = warmed();
  h.query(OTHER);
  assert.equal(h.take()[0], [OTHER], 'judged without a probe: the relations are known');
  h.server(result('x'));
  h.cache.store.invalidateAll();
  h.query(SELECT);
  h.server(result('a'));
  h.take();
  return h;
}

test('commands sent without waiting: a hit behind an outstanding read is queued and written where its reply ends', () => {
  const h = pipelineReady();
  const hits = h.cache.stats.hits;
  h.query(OTHER, SELECT, OTHER);
  const [up, early] = h.take();
  assert.equal([up, early.length], [[OTHER, OTHER], 0], 'the hit never reaches the server, nor overtakes the reply before it');
  const first = result('x');
  h.server(first.subarray(0, first.length - 1));
  assert.is(h.cache.stats.hits, hits, 'not written yet');
  h.server(first.subarray(first.length - 1), result('y'));
  assert.equal(h.take()[1], Buffer.concat([result('x'), result('a'), result('y')]));
  assert.is(h.cache.stats.hits, hits + 1);
  assert.is(h.cache.stats.bypassReasons().get('pipelined')?.count, 1, 'only the miss behind: OTHER was not stored');
});

test('commands sent without waiting: behind BEGIN the read is relayed', () => {
  const h = pipelineReady();
  h.query('BEGIN', SELECT);
  assert.equal(h.take()[0], ['BEGIN', SELECT]);
  h.server(okReply(IN_TRANS), result('b', IN_TRANS));
  assert.equal(h.take()[1], Buffer.concat([okReply(IN_TRANS), result('b', IN_TRANS)]));
  assert.is(h.cache.stats.bypassReasons().get('pipelined')?.count, 1);
});

test('a write\'s invalidation happens before its OK is handed to the client', () => {
  const h = warmed();
  h.take();
  h.query('UPDATE items SET v = 2');
  h.take();
  let entriesAtOk = -1;
  h.onClient = () => {
    entriesAtOk = h.entries;
  };
  h.server(okReply(AUTOCOMMIT));
  assert.equal([entriesAtOk, h.entries, h.cache.stats.writes], [0, 0, 1]);
});

test('a ROLLBACK invalidates nothing; a COMMIT invalidates again at its OK', () => {
  for (const end of ['ROLLBACK', 'COMMIT']) {
    const cache = new MySqlCache(config, createMetrics());
    const a = warmed(cache);
    a.take();
    a.query('BEGIN');
    a.server(okReply(IN_TRANS));
    a.query('UPDATE items SET v = 3');
    a.server(okReply(IN_TRANS));
    assert.is(a.entries, 0, 'a write invalidates at once, even inside a transaction');
    // Another session fills the entry again while the transaction is open (from the snapshot before it).
    const b = new Harness(cache);
    b.query(SELECT);
    assert.equal(b.take()[0].length, 2, 'identity check, the statement: the context is adopted from the first session');
    b.server(identityReply(), result('a'));
    assert.is(a.entries, 1);
    a.take();
    let entriesAtOk = -1;
    a.onClient = () => {
      entriesAtOk = a.entries;
    };
    a.query(end);
    a.server(okReply(AUTOCOMMIT));
    assert.is(entriesAtOk, end === 'COMMIT' ? 0 : 1, end);
  }
});

// ---------------------------------------------------------------- request coalescing

/** A session on `cache` whose server is verified: its first SELECT is a hit after the identity check. */
function verifiedSession(cache: MySqlCache): Harness {
  const h = new Harness(cache);
  h.query(SELECT);
  assert.is(h.take()[0].length, 1, 'the identity check alone');
  h.server(identityReply());
  assert.equal(h.take()[1], result('a'));
  return h;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Three sessions on one cache, the entry of SELECT dropped by a write of `writer`. */
function stampede() {
  const filler = warmed();
  filler.take();
  const waiter = verifiedSession(filler.cache);
  const writer = verifiedSession(filler.cache);
  writer.query('UPDATE items SET v = 2');
  writer.server(okReply(AUTOCOMMIT));
  writer.take();
  assert.is(filler.entries, 0);
  return { filler, waiter, writer };
}

test('coalescing: an identical miss waits for the fill in flight and is answered from it, nothing sent upstream', async () => {
  const { filler, waiter } = stampede();
  filler.query(SELECT);
  assert.equal(filler.take()[0], [SELECT]);
  waiter.query(SELECT);
  assert.equal(waiter.take(), [[], Buffer.alloc(0)], 'it waits');
  filler.server(result('b'));
  await turn();
  assert.equal(waiter.take(), [[], result('b')]);
  assert.equal([filler.cache.stats.coalesced, filler.cache.stats.hits], [1, 3]);
});

test('coalescing: a waiter that joined after a write acked while the fill was in flight goes to the database', async () => {
  const { filler, waiter, writer } = stampede();
  filler.query(SELECT);
  writer.query('UPDATE items SET v = 3');
  writer.server(okReply(AUTOCOMMIT));
  waiter.query(SELECT);
  assert.equal(waiter.take()[0], [], 'it joined the fill in flight');
  filler.server(result('old'));
  await turn();
  assert.equal(waiter.take()[0], [SELECT], 'the fill was refused');
  waiter.server(result('new'));
  assert.equal(waiter.take()[1], result('new'));
  assert.is(waiter.cache.stats.coalesceRelays().get('not-stored'), 1);
});

test('coalescing: a failed fill sends its waiters to the database', async () => {
  const { filler, waiter } = stampede();
  filler.query(SELECT);
  waiter.query(SELECT);
  filler.server(reply(Buffer.concat([Buffer.from([0xff, 0x7a, 0x04]), Buffer.from('#HY000boom')])));
  await turn();
  assert.equal(waiter.take()[0], [SELECT]);
});

test.run();
