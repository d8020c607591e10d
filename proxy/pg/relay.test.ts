// The PostgreSQL relay driven through its RelayIo with scripted server bytes, no sockets: what
// goes upstream, what reaches the client, and when the cache is invalidated.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { serialize } from 'pg-protocol';
import { createMetrics } from '../../telemetry/metrics.js';
import { createLogger } from '../../telemetry/log.js';
import { loadConfig } from '../../config/settings.js';
import { PROBED_SETTINGS, relationKey } from '../../invalidation/pg-probe.js';
import { parseRules } from '../../config/rules.js';
import { BackendScanner } from './backend-scanner.js';
import { Backend } from './codes.js';
import { PgCache } from './pg-cache.js';
import { PgRelay, type RelayIo } from './relay.js';
import { typedMessage } from './test-messages.js';

const config = loadConfig(['--cache-ttl', '0'], {}).config;
const log = createLogger('error');
const SELECT = 'SELECT * FROM items';

// ---------------------------------------------------------------- server messages

function int16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

const rowDescription = (columns: string[]) => typedMessage('T', Buffer.concat([
  int16(columns.length),
  ...columns.map((c) => Buffer.concat([Buffer.from(c + '\0'), int32(0), int16(0), int32(25), int16(-1), int32(-1), int16(0)])),
]));
const dataRow = (values: (string | null)[]) => typedMessage('D', Buffer.concat([
  int16(values.length),
  ...values.map((v) => (v === null ? int32(-1) : Buffer.concat([int32(Buffer.byteLength(v)), Buffer.from(v)]))),
]));
const commandComplete = (tag: string) => typedMessage('C', tag + '\0');
const ready = (status: 'I' | 'T' | 'E') => typedMessage('Z', status);
const parseComplete = () => typedMessage('1');
const bindComplete = () => typedMessage('2');

/** A one-row result of a simple Query or an extended batch. */
const result = (value: string, status: 'I' | 'T' = 'I') => [rowDescription(['v']), dataRow([value]), commandComplete('SELECT 1'), ready(status)];
/** The identity check's reply: the server, then the session's context as the probe reads it (probeReply). */
const identityReply = (isolation = 'read committed') => [
  rowDescription(['system_identifier', 'to_char', 'database', 'current_user', 'session_user', 'settings']),
  dataRow(['7', '2026-01-01 00:00:00.000000', 'db', 'app', 'app', probedSettings(isolation)]), commandComplete('SELECT 1'), ready('I'),
];
/** The probe's settings column: search_path public, `isolation` as default_transaction_isolation, the rest empty. */
const probedSettings = (isolation: string) =>
  PROBED_SETTINGS.map((s) => (s === 'search_path' ? 'public' : s === 'default_transaction_isolation' ? isolation : '')).join('\u001f');
const probeReply = (isolation = 'read committed') => {
  const relations = [{
    name: relationKey({ schema: null, name: 'items' }),
    closure: [{ name: 'items', kind: 'r', persistence: 'p', schema: 'public', definition: null, policies: [] }],
    calls: 'true true',
  }];
  const columns = ['database', 'current_user', 'session_user', 'settings', 'relations', 'functions', 'temp', 'fan_out'];
  return [rowDescription(columns), dataRow(['db', 'app', 'app', probedSettings(isolation), JSON.stringify(relations), '[]', 'false', '[]']), commandComplete('SELECT 1'), ready('I')];
};

// ---------------------------------------------------------------- the harness

class Harness implements RelayIo {
  readonly label = { remote: 'test', user: 'app', database: 'db' };
  /** What went upstream, one buffer per write. */
  upstream: Buffer[] = [];
  /** What reached the client, one buffer per piece. */
  client: Buffer[] = [];
  onClient: ((bytes: Buffer) => void) | null = null;
  readonly relay: PgRelay;
  private readonly scanner = new BackendScanner();

  constructor(readonly cache: PgCache) {
    this.relay = new PgRelay(this, cache, 'db', 'user\u0000app', log);
    this.server(typedMessage('S', 'standard_conforming_strings\0on\0'), ready('I'));
    this.take();
  }

  toUpstream(bytes: Buffer): void {
    this.upstream.push(Buffer.from(bytes));
  }

  toClient(bytes: Buffer, more?: Buffer): void {
    for (const b of more === undefined ? [bytes] : [bytes, more]) {
      this.onClient?.(b);
      this.client.push(Buffer.from(b));
    }
  }

  loginRefused(message: string): void {
    throw new Error(`login refused: ${message}`);
  }

  /** The client sends `messages` in one chunk. */
  send(...messages: Buffer[]): void {
    const chunk = Buffer.concat(messages);
    let pos = 0;
    for (const m of messages) {
      this.relay.clientMessage(m[0]!, chunk, pos, pos + m.length);
      pos += m.length;
    }
    this.relay.endOfClientChunk();
  }

  /** The server sends `messages` in one chunk. */
  server(...messages: Buffer[]): void {
    this.relay.upstreamChunk(Buffer.concat(messages), this.scanner);
  }

  /** Takes what went each way since the last call: [upstream, client]. */
  take(): [Buffer, Buffer] {
    const taken: [Buffer, Buffer] = [Buffer.concat(this.upstream), Buffer.concat(this.client)];
    this.upstream = [];
    this.client = [];
    return taken;
  }
}

const query = (text: string) => serialize.query(text);

/** The message codes in `bytes`, as letters. */
function codes(bytes: Buffer): string {
  let out = '';
  for (let pos = 0; pos < bytes.length; pos += 1 + bytes.readInt32BE(pos + 1)) out += String.fromCharCode(bytes[pos]!);
  return out;
}

/** The texts of the simple Queries in `bytes`. */
function queries(bytes: Buffer): string[] {
  const out: string[] = [];
  for (let pos = 0; pos < bytes.length; pos += 1 + bytes.readInt32BE(pos + 1)) {
    if (bytes[pos] === 0x51) out.push(bytes.toString('utf8', pos + 5, pos + bytes.readInt32BE(pos + 1)));
  }
  return out;
}

/** A session whose SELECT * FROM items is stored: identity check, probe and fill scripted. */
async function warmed(): Promise<Harness> {
  const h = new Harness(await PgCache.create(config, createMetrics()));
  h.send(query(SELECT));
  const [up] = h.take();
  assert.is(queries(up).length, 3, 'identity check, probe, the statement');
  h.server(...identityReply(), ...probeReply(), ...result('a'));
  return h;
}

test('a probe reply and the identity check\'s never reach the client; the fill is stored', async () => {
  const h = await warmed();
  const [, client] = h.take();
  assert.equal(client, Buffer.concat(result('a')));
  assert.equal([h.cache.stats.misses, h.cache.store.counters().entries], [1, 1]);
});

test('a hit sends nothing upstream', async () => {
  const h = await warmed();
  h.take();
  h.send(query(SELECT));
  const [up, client] = h.take();
  assert.equal([up.length, client, h.cache.stats.hits], [0, Buffer.concat(result('a')), 1]);
});

test('a request sent while another is outstanding is relayed with reason "pipelined"', async () => {
  const h = await warmed();
  h.take();
  h.send(query('UPDATE items SET v = 1'), query(SELECT));
  const [up, before] = h.take();
  assert.equal([queries(up), before.length], [['UPDATE items SET v = 1', SELECT], 0], 'the stored reply must not overtake the UPDATE\'s');
  h.server(commandComplete('UPDATE 1'), ready('I'), ...result('b'));
  assert.equal(h.take()[1], Buffer.concat([commandComplete('UPDATE 1'), ready('I'), ...result('b')]));
  assert.is(h.cache.stats.bypassReasons().get('pipelined')?.count, 1);
  assert.is(h.cache.stats.hits, 0);
});

/** Another read of items, stored and judged like SELECT: a fill that is not stored when the pipeline starts. */
const OTHER = 'SELECT v FROM items';

/** warmed(), plus OTHER's decision learned (filled once, then every entry dropped) and SELECT stored again. */
async function pipelineReady(): Promise<Harness> {
  const h = await warmed();
  h.send(query(OTHER));
  assert.equal(queries(h.take()[0]), [OTHER], 'judged without a probe: the relations are known');
  h.server(...result('x'));
  h.cache.store.invalidateAll();
  h.send(query(SELECT));
  h.server(...result('a'));
  h.take();
  return h;
}

test('pipelined: a hit behind an outstanding read is queued and written where that read\'s reply ends', async () => {
  const h = await pipelineReady();
  const hits = h.cache.stats.hits;
  h.send(query(OTHER), query(SELECT), query(OTHER));
  const [up, early] = h.take();
  assert.equal([queries(up), early.length], [[OTHER, OTHER], 0], 'the hit never reaches the server, nor overtakes the reply before it');
  // The first reply cut before its last byte: the cached reply waits for it.
  const first = Buffer.concat(result('x'));
  h.server(first.subarray(0, first.length - 1));
  assert.is(h.cache.stats.hits, hits, 'not written yet');
  h.server(first.subarray(first.length - 1), ...result('y'));
  assert.equal(h.take()[1], Buffer.concat([...result('x'), ...result('a'), ...result('y')]));
  assert.is(h.cache.stats.hits, hits + 1);
  assert.is(h.cache.stats.bypassReasons().get('pipelined')?.count, 1, 'only the miss behind: OTHER was not stored');
});

test('pipelined: an error in the read before does not stop the cached reply (its own Sync, its own transaction)', async () => {
  const h = await pipelineReady();
  h.send(query(OTHER), query(SELECT));
  h.take();
  const error = typedMessage('E', 'SERROR\0C57014\0Mcanceled\0\0');
  h.server(error, ready('I'));
  assert.equal(h.take()[1], Buffer.concat([error, ready('I'), ...result('a')]));
});

test('pipelined: behind more than 64 outstanding requests the read is relayed (a bounded look)', async () => {
  const h = await pipelineReady();
  h.send(...Array.from({ length: 65 }, () => query(OTHER)), query(SELECT));
  assert.is(queries(h.take()[0]).length, 66);
  h.send(query(SELECT));
  assert.is(queries(h.take()[0]).length, 1, 'a 67th request, too');
  h.server(...Array.from({ length: 67 }, () => result('x')).flat());
  assert.is(h.cache.stats.hits, 0);
});

test('pipelined: behind a transaction command the read is relayed', async () => {
  const h = await pipelineReady();
  h.send(query('BEGIN'), query(SELECT));
  assert.equal(queries(h.take()[0]), ['BEGIN', SELECT]);
  h.server(commandComplete('BEGIN'), ready('T'), ...result('b', 'T'));
  assert.equal(h.take()[1], Buffer.concat([commandComplete('BEGIN'), ready('T'), ...result('b', 'T')]));
  assert.is(h.cache.stats.bypassReasons().get('pipelined')?.count, 1);
});

test('pipelined extended batches: the hit\'s Parse is the client\'s unnamed statement from its place on', async () => {
  const h = await pipelineReady();
  const batch = (text: string) => [serialize.parse({ text }), serialize.bind(), serialize.describe({ type: 'P' }), serialize.execute(), serialize.sync()];
  const reply = (value: string) => [parseComplete(), bindComplete(), rowDescription(['v']), dataRow([value]), commandComplete('SELECT 1'), ready('I')];
  // SELECT filled through the extended protocol, so its batch can be answered.
  h.send(...batch(SELECT));
  h.server(...reply('a'));
  h.take();
  const hits = h.cache.stats.hits;
  // OTHER (a miss) parses the server's unnamed statement; the hit parses only the client's; the
  // last batch binds the client's (SELECT, binary results: not stored), so SELECT is parsed again first.
  h.send(...batch(OTHER), ...batch(SELECT), serialize.bind({ binary: true }), serialize.execute(), serialize.sync());
  const [up] = h.take();
  assert.is(codes(up), 'PBDES' + 'PBES', 'the hit\'s batch stays here; the Parse the server misses is replayed');
  assert.ok(up.includes(Buffer.from(SELECT)), 'the replayed Parse is SELECT');
  h.server(...reply('x'), parseComplete(), bindComplete(), dataRow(['b']), commandComplete('SELECT 1'), ready('I'));
  assert.is(codes(h.take()[1]), '12TDCZ' + '12TDCZ' + '2DCZ', 'the replayed Parse\'s ParseComplete is swallowed');
  assert.is(h.cache.stats.hits, hits + 1);
});

test('invalidation happens before the write\'s acknowledgement is handed to the client', async () => {
  const h = await warmed();
  h.take();
  const stored = () => h.cache.store.counters().entries;
  h.send(query('UPDATE items SET v = 2'));
  h.take();
  let entriesAtAck = -1;
  h.onClient = (bytes) => {
    if (bytes[0] === Backend.CommandComplete) entriesAtAck = stored();
  };
  // The acknowledgement alone, its ReadyForQuery in a later read.
  h.server(commandComplete('UPDATE 1'));
  assert.equal([entriesAtAck, stored()], [0, 0]);
  h.server(ready('I'));
  assert.is(h.cache.stats.writes, 1);
});

test('a session that found no context of its startup adopts one that a later session of the same startup was probed into', async () => {
  const cache = await PgCache.create(config, createMetrics());
  const early = new Harness(cache);
  early.send(query('UPDATE other SET v = 1'));
  assert.is(queries(early.take()[0]).length, 2, 'the identity check and the write: nothing to probe');
  early.server(...identityReply(), commandComplete('UPDATE 1'), ready('I'));
  const late = new Harness(cache);
  late.send(query(SELECT));
  late.server(...identityReply(), ...probeReply(), ...result('a'));
  // At this ReadyForQuery the early session finds the context the late one's probe remembered.
  early.send(query('UPDATE other SET v = 2'));
  early.server(commandComplete('UPDATE 1'), ready('I'));
  early.take();
  early.send(query(SELECT));
  const [up, client] = early.take();
  assert.equal([up.length, client], [0, Buffer.concat(result('a'))], 'answered from the cache, no probe');
});

test('a rollback invalidates nothing; a commit invalidates at its acknowledgement', async () => {
  for (const end of ['ROLLBACK', 'COMMIT']) {
    const h = await warmed();
    h.take();
    h.send(query('BEGIN'));
    h.server(commandComplete('BEGIN'), ready('T'));
    h.send(query('UPDATE items SET v = 3'));
    h.server(commandComplete('UPDATE 1'), ready('T'));
    assert.is(h.cache.store.counters().entries, 1, 'not before the block ends');
    h.send(query(end));
    let entriesAtAck = -1;
    h.onClient = (bytes) => {
      if (bytes[0] === Backend.CommandComplete) entriesAtAck = h.cache.store.counters().entries;
    };
    h.server(commandComplete(end));
    h.server(ready('I'));
    if (end === 'ROLLBACK') assert.equal([entriesAtAck, h.cache.store.counters().entries, h.cache.stats.invalidations], [1, 1, 0]);
    else assert.equal([entriesAtAck, h.cache.store.counters().entries], [0, 0]);
  }
});

test('a replayed Parse\'s ParseComplete is swallowed', async () => {
  const h = await warmed();
  h.take();
  const other = 'SELECT * FROM items WHERE id = $1';
  const batch = (text: string, value: string) => [serialize.parse({ text }), serialize.bind({ values: text === SELECT ? [] : [value] }), serialize.describe({ type: 'P' }), serialize.execute(), serialize.sync()];
  const reply = (value: string) => [parseComplete(), bindComplete(), rowDescription(['v']), dataRow([value]), commandComplete('SELECT 1'), ready('I')];
  // The unnamed statement is SELECT: filled (extended), so the next one is a hit.
  h.send(...batch(SELECT, ''));
  h.server(...reply('a'));
  // The server's unnamed statement becomes another one...
  h.send(...batch(other, '1'));
  h.server(...reply('b'));
  // ...and the client's is SELECT again, answered from the cache: the server never sees that Parse.
  h.take();
  h.send(...batch(SELECT, ''));
  const [upHit, clientHit] = h.take();
  assert.equal([upHit.length, codes(clientHit)], [0, '12TDCZ']);
  // A Bind of it that the cache cannot answer: the proxy replays the Parse first and swallows its reply.
  h.send(serialize.bind({ values: [], binary: true }), serialize.describe({ type: 'P' }), serialize.execute(), serialize.sync());
  const [up] = h.take();
  assert.is(codes(up), 'PBDES');
  h.server(...reply('c'));
  assert.is(codes(h.take()[1]), '2TDCZ');
});

// ---------------------------------------------------------------- Sync groups of several statements

/** One statement of an extended group: Parse (unless `parse` is false), Bind, Describe, Execute. */
const statement = (text: string, name = '', parse = true) => [
  ...(parse ? [serialize.parse({ name, text })] : []), serialize.bind({ statement: name }), serialize.describe({ type: 'P' }), serialize.execute()];
/** A statement's reply without ReadyForQuery. */
const statementReply = (value: string, parse = true) => [...(parse ? [parseComplete()] : []), bindComplete(), rowDescription(['v']), dataRow([value]), commandComplete('SELECT 1')];

/** warmed() with the probe's isolation given, and SELECT and OTHER stored as extended batches. */
async function groupReady(isolation = 'read committed', cfg = config): Promise<Harness> {
  const h = new Harness(await PgCache.create(cfg, createMetrics()));
  h.send(...statement(SELECT), serialize.sync());
  h.server(...identityReply(), ...probeReply(isolation), ...statementReply('a'), ready('I'));
  h.send(...statement(OTHER), serialize.sync());
  h.server(...statementReply('x'), ready('I'));
  h.take();
  assert.is(h.cache.store.counters().entries, 2);
  return h;
}

test('a Sync group of several cached reads is answered wholly from the cache, in order, one ReadyForQuery', async () => {
  const h = await groupReady();
  const hits = h.cache.stats.hits;
  h.send(...statement(OTHER), ...statement(SELECT), ...statement('', '', false), serialize.sync());
  const [up, client] = h.take();
  assert.is(up.length, 0, 'the server never sees the group');
  // The third statement binds the unnamed statement the group's second Parse made: SELECT.
  assert.equal(client, Buffer.concat([...statementReply('x'), ...statementReply('a'), ...statementReply('a', false), ready('I')]));
  assert.is(h.cache.stats.hits, hits + 3);
  // The client holds SELECT as its unnamed statement, the server OTHER: a Bind the cache cannot answer gets SELECT replayed.
  h.send(serialize.bind({ binary: true }), serialize.execute(), serialize.sync());
  const [replayed] = h.take();
  assert.is(codes(replayed), 'PBES');
  assert.ok(replayed.includes(Buffer.from(SELECT + '\0')), 'the replayed Parse is SELECT');
});

test('a Sync group with a miss, a write or another shape is relayed whole', async () => {
  const h = await groupReady();
  const groups: Buffer[][] = [
    [...statement(SELECT), ...statement('SELECT id FROM items'), serialize.sync()],
    [...statement('UPDATE items SET v = 1'), ...statement(SELECT), serialize.sync()],
    [...statement(SELECT), serialize.parse({ name: 'x', text: OTHER }), ...statement(OTHER), serialize.sync()],
  ];
  for (const group of groups) {
    h.send(...group);
    const [up, client] = h.take();
    assert.equal([codes(up), client.length], [codes(Buffer.concat(group)), 0]);
  }
  assert.is(h.cache.stats.hits, 0);
});

test('a Sync group of cached reads behind an outstanding read waits for its reply, a hit per statement', async () => {
  const h = await groupReady();
  h.send(query('SELECT id FROM items'), ...statement(OTHER), ...statement(SELECT), serialize.sync());
  const [up, early] = h.take();
  assert.equal([queries(up), codes(up), early.length], [['SELECT id FROM items'], 'Q', 0]);
  h.server(...result('q'));
  assert.equal(h.take()[1], Buffer.concat([...result('q'), ...statementReply('x'), ...statementReply('a'), ready('I')]));
  assert.is(h.cache.stats.hits, 2);
});

test('a Sync group of cached reads after a setting changed: the probe goes alone, then the group is answered', async () => {
  const h = await groupReady();
  h.send(query("SET application_name = 'x'"));
  h.server(commandComplete('SET'), ready('I'));
  h.take();
  h.send(...statement(SELECT), ...statement(OTHER), serialize.sync());
  const [up, early] = h.take();
  assert.equal([codes(up), queries(up).length, early.length], ['Q', 1, 0], 'the probe alone');
  h.server(...probeReply());
  const [after, client] = h.take();
  assert.equal([after.length, client], [0, Buffer.concat([...statementReply('a'), ...statementReply('x'), ready('I')])]);
});

test('held past the chunk only when every held statement is a cacheable read: a COPY after a SELECT goes now', async () => {
  const h = await groupReady();
  h.send(...statement(SELECT), ...statement(OTHER));
  assert.is(h.take()[0].length, 0, 'two reads wait for their Sync');
  h.send(serialize.sync());
  h.take();
  const copy = [serialize.parse({ text: 'COPY items FROM STDIN' }), serialize.bind(), serialize.execute()];
  h.send(...statement(SELECT), ...copy);
  assert.is(codes(h.take()[0]), 'PBDEPBE', 'the client waits for CopyInResponse, with no Sync sent');
});

test('under repeatable read a Sync group\'s reads share one snapshot: relayed', async () => {
  const h = await groupReady('repeatable read');
  h.send(...statement(SELECT), ...statement(OTHER), serialize.sync());
  assert.is(codes(h.take()[0]), 'PBDEPBDES');
  h.send(...statement(SELECT), serialize.sync());
  assert.is(h.take()[0].length, 0, 'a lone read is answered');
});

test('a hit whose Parse names another statement than its Bind: the client holds the Parse\'s text under that name', async () => {
  const h = await groupReady();
  // The client's unnamed statement is SELECT (answered); it parses "a" as OTHER and binds the unnamed one.
  h.send(...statement(SELECT), serialize.sync());
  h.send(serialize.parse({ name: 'a', text: OTHER }), ...statement(SELECT, '', false), serialize.sync());
  const [up, client] = h.take();
  assert.equal([up.length, client], [0, Buffer.concat([...statementReply('a'), ready('I'), parseComplete(), ...statementReply('a', false), ready('I')])]);
  // "a" bound with binary results goes to the server, which is given OTHER under that name first.
  h.send(serialize.bind({ statement: 'a', binary: true }), serialize.execute(), serialize.sync());
  const [replayed] = h.take();
  assert.is(codes(replayed), 'PBES');
  assert.ok(replayed.includes(Buffer.from(`a\0${OTHER}\0`)), replayed.toString('latin1'));
});

/** A third read of items, judged like SELECT (the relations are known), never stored by groupReady(). */
const THIRD = 'SELECT id FROM items';

test('a relayed Sync group of reads stores each statement\'s reply: the same group again is answered wholly, nothing upstream', async () => {
  const h = await groupReady();
  const misses = h.cache.stats.misses;
  const group = [...statement(THIRD), ...statement(SELECT), serialize.sync()];
  h.send(...group);
  assert.is(codes(h.take()[0]), 'PBDEPBDES', 'the group goes as it came (a miss in it)');
  const reply = [...statementReply('t'), ...statementReply('a2'), ready('I')];
  h.server(...reply);
  assert.equal(h.take()[1], Buffer.concat(reply), 'relayed as the server sent it');
  assert.equal([h.cache.stats.misses - misses, h.cache.store.counters().entries], [2, 3], 'a fill per statement: THIRD stored, SELECT stored again');
  const hits = h.cache.stats.hits;
  h.send(...group);
  const [up, client] = h.take();
  assert.equal([up.length, client], [0, Buffer.concat(reply)]);
  assert.is(h.cache.stats.hits, hits + 2);
  h.send(...statement(THIRD), serialize.sync());
  assert.equal(h.take(), [Buffer.alloc(0), Buffer.concat([...statementReply('t'), ready('I')])], 'a lone statement is answered from its group\'s fill');
});

test('a relayed Sync group with an error: the statements before it are stored, the one that failed and those it skipped are not', async () => {
  const h = await groupReady();
  h.cache.store.invalidateAll();
  h.send(...statement(SELECT), ...statement(OTHER), ...statement(THIRD), serialize.sync());
  h.take();
  const error = typedMessage('E', 'SERROR\0C57014\0Mcanceled\0\0');
  h.server(...statementReply('a'), parseComplete(), bindComplete(), rowDescription(['v']), error, ready('I'));
  assert.is(h.cache.store.counters().entries, 1);
  for (const [text, stored] of [[SELECT, true], [OTHER, false], [THIRD, false]] as const) {
    h.send(...statement(text), serialize.sync());
    assert.is(h.take()[0].length === 0, stored, text);
    if (!stored) h.server(...statementReply('z'), ready('I'));
  }
  // An error at a later statement's Bind (after the one before completed) is that statement's.
  h.cache.store.invalidateAll();
  h.send(...statement(SELECT), ...statement(OTHER), serialize.sync());
  h.take();
  h.server(...statementReply('a'), parseComplete(), error, ready('I'));
  assert.is(h.cache.store.counters().entries, 1);
});

test('a relayed Sync group: a write acknowledged while it is in flight refuses its fills; a notice poisons only its statement', async () => {
  const h = await groupReady();
  h.cache.store.invalidateAll();
  h.send(...statement(SELECT), ...statement(OTHER), serialize.sync());
  h.take();
  const writer = new Harness(h.cache);
  writer.send(query('UPDATE items SET v = 2'));
  writer.server(...identityReply(), commandComplete('UPDATE 1'), ready('I'));
  h.server(...statementReply('a'), ...statementReply('x'), ready('I'));
  assert.is(h.cache.store.counters().entries, 0, 'its results may predate the write');
  h.send(...statement(SELECT), ...statement(OTHER), serialize.sync());
  h.take();
  const notice = typedMessage('N', 'SNOTICE\0C00000\0Mhello\0\0');
  h.server(...statementReply('a'), parseComplete(), bindComplete(), notice, rowDescription(['v']), dataRow(['x']), commandComplete('SELECT 1'), ready('I'));
  assert.is(h.cache.store.counters().entries, 1, 'the first statement only');
  h.send(...statement(SELECT), serialize.sync());
  assert.is(h.take()[0].length, 0);
});

test('reads held before a Flush go at once and each is stored; a write after them in the same request refuses what it made stale', async () => {
  const h = await groupReady();
  h.cache.store.invalidateAll();
  h.send(...statement(SELECT), ...statement(OTHER), serialize.flush());
  assert.is(codes(h.take()[0]), 'PBDEPBDEH');
  h.server(...statementReply('a'), ...statementReply('x'));
  assert.equal(h.take()[1], Buffer.concat([...statementReply('a'), ...statementReply('x')]), 'the client waits for these before its Sync');
  h.send(serialize.sync());
  h.server(ready('I'));
  assert.equal(h.take().map(codes), ['S', 'Z']);
  assert.is(h.cache.store.counters().entries, 2);
  h.send(...statement(SELECT), ...statement(OTHER), serialize.sync());
  assert.is(h.take()[0].length, 0, 'answered from what the Flush request stored');
  h.cache.store.invalidateAll();
  h.send(...statement(SELECT), serialize.flush());
  h.server(...statementReply('a'));
  // A simple Query sharing the request: its CommandComplete is not the read's.
  h.send(query(OTHER));
  h.server(...result('x'));
  assert.is(h.cache.store.counters().entries, 1, 'one read before a Flush too');
  h.cache.store.invalidateAll();
  h.send(...statement(SELECT), serialize.flush());
  h.server(...statementReply('a'));
  h.send(...statement('UPDATE items SET v = 1'), serialize.sync());
  h.server(parseComplete(), bindComplete(), typedMessage('n'), commandComplete('UPDATE 1'), ready('I'));
  assert.is(h.cache.store.counters().entries, 0, 'the read ran before the write its request committed at the Sync');
});

/** What the proxy sends to begin the implicit transaction of reads it answered before a Flush. */
const IMPLICIT_READ = 'SELECT WHERE false';
const implicitReadReply = () => [parseComplete(), bindComplete(), commandComplete('SELECT 0')];

test('a Flush group of cached reads is answered from the cache, no ReadyForQuery; the lone Sync after it goes to the server', async () => {
  const h = await groupReady();
  const hits = h.cache.stats.hits;
  h.send(...statement(OTHER), ...statement(SELECT), serialize.flush());
  const [up, client] = h.take();
  assert.is(up.length, 0, 'the server sees neither the reads nor the Flush');
  assert.equal(client, Buffer.concat([...statementReply('x'), ...statementReply('a')]));
  assert.is(h.cache.stats.hits, hits + 2);
  // A second Flush group in the same implicit transaction, one statement: answered too.
  h.send(...statement(SELECT), serialize.flush());
  assert.equal(h.take(), [Buffer.alloc(0), Buffer.concat(statementReply('a'))]);
  h.send(serialize.sync());
  const [sync] = h.take();
  assert.is(codes(sync), 'S', 'nothing ran: the server answers a lone Sync with its idle status');
  h.server(ready('I'));
  assert.equal(h.take()[1], Buffer.concat([ready('I')]));
  // The client's unnamed statement is SELECT, the server's OTHER: a Bind that goes to the server gets SELECT replayed.
  h.send(serialize.bind({ binary: true }), serialize.execute(), serialize.sync());
  const [replayed] = h.take();
  assert.is(codes(replayed), 'PBES');
  assert.ok(replayed.includes(Buffer.from(SELECT + '\0')));
});

test('after a Flush group answered from the cache, what is relayed before the Sync runs behind a read of the proxy\'s own, its reply swallowed', async () => {
  const h = await groupReady();
  h.send(...statement(SELECT), serialize.flush());
  h.take();
  h.send(...statement('UPDATE items SET v = 1'), serialize.sync());
  const [up] = h.take();
  assert.is(codes(up), 'PBE' + 'PBDES', 'the implicit transaction is begun as the reads would have begun it');
  assert.ok(up.includes(Buffer.from(IMPLICIT_READ + '\0')), up.toString('latin1'));
  h.server(...implicitReadReply(), parseComplete(), bindComplete(), typedMessage('n'), commandComplete('UPDATE 1'), ready('I'));
  assert.equal(codes(h.take()[1]), '12nCZ', 'only the client\'s replies');
  assert.is(h.cache.store.counters().entries, 0, 'the write invalidated');
  // A simple Query after an answered Flush group: the read goes in front of it too.
  const g = await groupReady();
  g.send(...statement(SELECT), serialize.flush());
  g.take();
  g.send(query('SET TRANSACTION ISOLATION LEVEL SERIALIZABLE'));
  const [q] = g.take();
  assert.is(codes(q), 'PBEQ');
  const refused = typedMessage('E', 'SERROR\0C25001\0MSET TRANSACTION ISOLATION LEVEL must be called before any query\0\0');
  g.server(...implicitReadReply(), refused, ready('I'));
  assert.equal(codes(g.take()[1]), 'EZ', 'refused as the server refuses it after the reads');
});

test('after a Flush group answered from the cache, a Sync group or a Query answered from the cache ends its implicit transaction', async () => {
  const h = await groupReady();
  h.send(...statement(SELECT), serialize.flush());
  h.send(...statement(OTHER), serialize.sync());
  assert.equal(h.take(), [Buffer.alloc(0), Buffer.concat([...statementReply('a'), ...statementReply('x'), ready('I')])]);
  h.send(...statement(THIRD), serialize.sync());
  assert.is(codes(h.take()[0]), 'PBDES', 'a miss after the Sync is relayed as it came, no read in front');
});

test('a Flush group is relayed when a statement misses, binds a named portal, or under repeatable read', async () => {
  const h = await groupReady();
  h.send(...statement(SELECT), ...statement(THIRD), serialize.flush());
  assert.is(codes(h.take()[0]), 'PBDEPBDEH');
  h.server(...statementReply('a'), ...statementReply('t'));
  h.send(serialize.sync());
  h.server(ready('I'));
  h.take();
  h.send(serialize.parse({ text: SELECT }), serialize.bind({ portal: 'p' }), serialize.describe({ type: 'P', name: 'p' }), serialize.execute({ portal: 'p' }), serialize.flush());
  assert.is(codes(h.take()[0]), 'PBDEH', 'a named portal must exist on the server');
  h.server(...statementReply('a'));
  h.send(serialize.sync());
  h.server(ready('I'));
  const r = await groupReady('repeatable read');
  r.send(...statement(SELECT), serialize.flush());
  assert.is(codes(r.take()[0]), 'PBDEH', 'what follows in the transaction would share the snapshot');
});

test('a Flush group of cached reads behind an outstanding read is written where that read\'s reply ends', async () => {
  const h = await groupReady();
  h.send(query(THIRD), ...statement(SELECT), serialize.flush());
  const [up, early] = h.take();
  assert.equal([codes(up), early.length], ['Q', 0]);
  h.server(...result('q'));
  assert.equal(h.take()[1], Buffer.concat([...result('q'), ...statementReply('a')]));
  h.send(serialize.sync());
  assert.is(codes(h.take()[0]), 'S');
});

/** The config with reads of items answered inside read-only blocks (the opt-in rule). */
const readOnlyBlocks = { ...config, cacheRules: parseRules([{ match: { table: 'items' }, 'in-read-only-transactions': true }], 'test', () => 0, () => 0) };

/** groupReady() on `cfg`, then inside BEGIN READ ONLY. */
async function inReadOnlyBlock(isolation: string, cfg = readOnlyBlocks): Promise<Harness> {
  const h = await groupReady(isolation, cfg);
  h.send(query('BEGIN READ ONLY'));
  h.server(commandComplete('BEGIN'), ready('T'));
  h.take();
  return h;
}

test('inside a read-only block a Sync group of reads the rule opts in is answered as its statements alone would be, ReadyForQuery T', async () => {
  for (const isolation of ['read committed', 'repeatable read']) {
    const h = await inReadOnlyBlock(isolation);
    const hits = h.cache.stats.hits;
    h.send(...statement(OTHER), ...statement(SELECT), serialize.sync());
    const [up, client] = h.take();
    assert.equal([up.length, client], [0, Buffer.concat([...statementReply('x'), ...statementReply('a'), ready('T')])], isolation);
    assert.is(h.cache.stats.hits, hits + 2);
    // A lone statement there is answered too, whatever the isolation: the group follows the same rule.
    h.send(...statement(SELECT), serialize.sync());
    assert.is(h.take()[0].length, 0, isolation);
    // A miss in the group: relayed whole, and the block stays known read-only (plain reads ran).
    h.send(...statement(SELECT), ...statement(THIRD), serialize.sync());
    assert.is(codes(h.take()[0]), 'PBDEPBDES');
    h.server(...statementReply('a'), ...statementReply('t'), ready('T'));
    h.take();
    h.send(...statement(SELECT), ...statement(OTHER), serialize.sync());
    assert.is(h.take()[0].length, 0, isolation);
    // A statement that is not a plain read ends that for the rest of the block.
    h.send(query('SHOW search_path'));
    h.server(rowDescription(['search_path']), dataRow(['public']), commandComplete('SHOW'), ready('T'));
    h.take();
    h.send(...statement(SELECT), ...statement(OTHER), serialize.sync());
    assert.is(codes(h.take()[0]), 'PBDEPBDES', isolation);
  }
});

test('inside a read-only block without the rule, or a read-write block, a Sync group of cached reads is relayed', async () => {
  const h = await inReadOnlyBlock('read committed', config);
  h.send(...statement(OTHER), ...statement(SELECT), serialize.sync());
  assert.is(codes(h.take()[0]), 'PBDEPBDES');
  const w = await groupReady('read committed', readOnlyBlocks);
  w.send(query('BEGIN'));
  w.server(commandComplete('BEGIN'), ready('T'));
  w.take();
  w.send(...statement(OTHER), ...statement(SELECT), serialize.sync());
  assert.is(codes(w.take()[0]), 'PBDEPBDES');
});

// ---------------------------------------------------------------- request coalescing

/** A session on `cache` whose server is verified and context known: its first SELECT is a hit after the identity check. */
function verifiedSession(cache: PgCache): Harness {
  const h = new Harness(cache);
  h.send(query(SELECT));
  h.server(...identityReply());
  const [, client] = h.take();
  assert.equal(client, Buffer.concat(result('a')), 'answered from the cache once verified');
  return h;
}

/** Lets the wait's end (a microtask after the fill) run. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Three sessions on one cache, the entry of SELECT dropped by a write of `writer`. */
async function stampede(others = 0) {
  const filler = await warmed();
  filler.take();
  const waiter = verifiedSession(filler.cache);
  const more = Array.from({ length: others }, () => verifiedSession(filler.cache));
  const writer = verifiedSession(filler.cache);
  writer.send(query('UPDATE items SET v = 2'));
  writer.server(commandComplete('UPDATE 1'), ready('I'));
  writer.take();
  assert.is(filler.cache.store.counters().entries, 0);
  return { filler, waiter, writer, more };
}

test('coalescing: an identical miss waits for the fill in flight and is answered from it, nothing sent upstream', async () => {
  const { filler, waiter } = await stampede();
  filler.send(query(SELECT));
  assert.equal(queries(filler.take()[0]), [SELECT]);
  waiter.send(query(SELECT));
  assert.equal(waiter.take(), [Buffer.alloc(0), Buffer.alloc(0)], 'it waits: nothing upstream, nothing to the client yet');
  filler.server(...result('b'));
  await turn();
  const [up, client] = waiter.take();
  assert.equal([up.length, client], [0, Buffer.concat(result('b'))]);
  assert.equal([filler.cache.stats.coalesced, filler.cache.stats.misses], [1, 2]);
});

test('coalescing: the extended protocol waits too', async () => {
  const { filler, waiter } = await stampede();
  const text = 'SELECT * FROM items WHERE id = $1';
  const batch = [serialize.parse({ text }), serialize.bind({ values: ['1'] }), serialize.describe({ type: 'P' }), serialize.execute(), serialize.sync()];
  const reply = [parseComplete(), bindComplete(), rowDescription(['v']), dataRow(['c']), commandComplete('SELECT 1'), ready('I')];
  filler.send(...batch);
  // A new text: the probe goes first (its decision is not known yet); then the batch is filled.
  filler.server(...probeReply(), ...reply);
  filler.send(query('UPDATE items SET v = 3'));
  filler.server(commandComplete('UPDATE 1'), ready('I'));
  filler.take();
  filler.send(...batch);
  assert.is(codes(filler.take()[0]), 'PBDES', 'a fill');
  waiter.send(...batch);
  assert.is(waiter.take()[0].length, 0, 'it waits');
  filler.server(parseComplete(), bindComplete(), rowDescription(['v']), dataRow(['d']), commandComplete('SELECT 1'), ready('I'));
  await turn();
  const [up, client] = waiter.take();
  assert.equal([up.length, codes(client)], [0, '12TDCZ']);
  assert.is(filler.cache.stats.coalesced, 1);
});

test('coalescing: a Sync group whose statements are being filled by another session waits for those fills, then is answered whole', async () => {
  const h = await groupReady();
  h.cache.store.invalidateAll();
  const filler = new Harness(h.cache);
  const group = [...statement(SELECT), ...statement(OTHER), serialize.sync()];
  filler.send(...group);
  assert.ok(codes(filler.take()[0]).endsWith('PBDEPBDES'), 'the filler\'s group goes, each statement a fill');
  h.send(...group);
  assert.equal(h.take(), [Buffer.alloc(0), Buffer.alloc(0)], 'the group waits');
  filler.server(...identityReply(), ...statementReply('a'), ...statementReply('x'), ready('I'));
  await turn();
  await turn();
  const [up, client] = h.take();
  assert.equal([up.length, client], [0, Buffer.concat([...statementReply('a'), ...statementReply('x'), ready('I')])]);
  assert.is(h.cache.stats.coalesced, 1);
  // A write acknowledged while the fills are in flight: they are refused, and the waiting group goes to the server.
  h.cache.store.invalidateAll();
  filler.send(...group);
  filler.take();
  h.send(...group);
  assert.is(h.take()[0].length, 0);
  const writer = new Harness(h.cache);
  writer.send(query('UPDATE items SET v = 2'));
  writer.server(...identityReply(), commandComplete('UPDATE 1'), ready('I'));
  filler.server(...statementReply('a'), ...statementReply('x'), ready('I'));
  await turn();
  await turn();
  assert.is(codes(h.take()[0]), 'PBDEPBDES');
});

test('coalescing: a waiter that joined after a write acked while the fill was in flight is not answered from it', async () => {
  const { filler, waiter, writer } = await stampede();
  filler.send(query(SELECT));
  filler.take();
  // The fill was sent before the write; the write is acknowledged; then the waiter asks.
  writer.send(query('UPDATE items SET v = 3'));
  writer.server(commandComplete('UPDATE 1'), ready('I'));
  waiter.send(query(SELECT));
  assert.is(waiter.take()[0].length, 0, 'it joined the fill in flight');
  filler.server(...result('old'));
  assert.equal(filler.take()[1], Buffer.concat(result('old')), 'the filler\'s own read began before the write');
  await turn();
  assert.equal(queries(waiter.take()[0]), [SELECT], 'the fill was refused: the waiter goes to the database');
  waiter.server(...result('new'));
  assert.equal(waiter.take()[1], Buffer.concat(result('new')));
  assert.equal([waiter.cache.stats.coalesced, waiter.cache.stats.coalesceRelays().get('not-stored')], [0, 1]);
});

test('coalescing: a different context never waits for another\'s fill', async () => {
  const { filler } = await stampede();
  const other = new Harness(filler.cache);
  filler.send(query(SELECT));
  other.send(query('SET search_path = other'));
  other.server(...identityReply(), commandComplete('SET'), typedMessage('S', 'search_path\0other\0'), ready('I'));
  other.take();
  other.send(query(SELECT));
  assert.ok(queries(other.take()[0]).includes(SELECT), 'another search_path: its own miss, not a wait');
});

test('coalescing: the client sending more while it waits sends the waiting request on first, in order', async () => {
  const { filler, waiter } = await stampede();
  filler.send(query(SELECT));
  waiter.send(query(SELECT));
  waiter.send(query('SELECT 2'));
  assert.equal(queries(waiter.take()[0]), [SELECT, 'SELECT 2']);
  assert.is(waiter.cache.stats.coalesceRelays().get('interrupted'), 1);
  filler.server(...result('b'));
  await turn();
  assert.is(waiter.take()[1].length, 0, 'nothing more from the ended wait');
});

test('coalescing off (--coalesce-wait 0): identical misses each go upstream', async () => {
  const cache = await PgCache.create(loadConfig(['--cache-ttl', '0', '--coalesce-wait', '0'], {}).config, createMetrics());
  const filler = new Harness(cache);
  filler.send(query(SELECT));
  filler.server(...identityReply(), ...probeReply(), ...result('a'));
  const waiter = verifiedSession(cache);
  filler.send(query('UPDATE items SET v = 2'));
  filler.server(commandComplete('UPDATE 1'), ready('I'));
  filler.send(query(SELECT));
  waiter.send(query(SELECT));
  assert.equal(queries(waiter.take()[0]), [SELECT]);
});

test('coalescing: a key whose fill was too large to store is not waited for again', async () => {
  const { filler, waiter } = await stampede();
  filler.cache.maxEntryBytes = 200;
  const big = 'x'.repeat(300);
  filler.send(query(SELECT));
  waiter.send(query(SELECT));
  filler.server(...result(big));
  await turn();
  assert.equal(queries(waiter.take()[0]), [SELECT], 'the fill was not stored: the waiter goes to the database');
  waiter.server(...result(big));
  filler.take();
  filler.send(query(SELECT));
  waiter.send(query(SELECT));
  assert.equal(queries(waiter.take()[0]), [SELECT], 'no wait for a fill that cannot be stored');
  assert.equal(Object.fromEntries(waiter.cache.stats.coalesceRelays()), { 'not-stored': 1 });
});

test('coalescing: after a fill refused by a write, the waiters wait once more, for the first of them taken up', async () => {
  const { filler, waiter, writer, more: [second] } = await stampede(1);
  filler.send(query(SELECT));
  writer.send(query('UPDATE items SET v = 3'));
  writer.server(commandComplete('UPDATE 1'), ready('I'));
  waiter.send(query(SELECT));
  second!.send(query(SELECT));
  filler.server(...result('old'));
  await turn();
  assert.equal(queries(waiter.take()[0]), [SELECT], 'the first waiter taken up goes to the database');
  assert.is(second!.take()[0].length, 0, 'the other waits for it');
  waiter.server(...result('new'));
  await turn();
  assert.equal(second!.take(), [Buffer.alloc(0), Buffer.concat(result('new'))]);
  assert.equal([filler.cache.stats.coalesced, filler.cache.stats.coalesceRelays().get('not-stored')], [1, 1]);
});

test.run();
