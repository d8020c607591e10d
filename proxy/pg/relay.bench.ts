// Micro benchmark of the relay's own work per pgbench transaction, no sockets:
// `node dist/proxy/pg/relay.bench.js [tpcb|select|both] [transactions] [on|off|both]`. Not a test (machine-
// dependent); prints µs of CPU per transaction for the relay with the cache on and off (what
// sidecache adds to relaying: issue 17 item 6). Eight sessions take turns, as pgbench -c 8 does;
// a scripted server answers each statement as PostgreSQL would (pgbench's scale-10 tables).
import { createMetrics } from '../../telemetry/metrics.js';
import { createLogger } from '../../telemetry/log.js';
import { loadConfig } from '../../config/settings.js';
import { PROBED_SETTINGS, relationKey } from '../../invalidation/pg-probe.js';
import { BackendScanner } from './backend-scanner.js';
import { PgCache } from './pg-cache.js';
import { PgRelay, type RelayIo } from './relay.js';
import { typedMessage } from './test-messages.js';

const which = process.argv[2] ?? 'both';
const transactions = Number(process.argv[3] ?? 100_000);
const modes = process.argv[4] ?? 'both';
const SESSIONS = 8;
const log = createLogger('error');

const int16 = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const int32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const rowDescription = (columns: string[]): Buffer => typedMessage('T', Buffer.concat([
  int16(columns.length),
  ...columns.map((c) => Buffer.concat([Buffer.from(c + '\0'), int32(0), int16(0), int32(25), int16(-1), int32(-1), int16(0)])),
]));
const dataRow = (values: string[]): Buffer => typedMessage('D', Buffer.concat([int16(values.length), ...values.map((v) => Buffer.concat([int32(Buffer.byteLength(v)), Buffer.from(v)]))]));
const complete = (tag: string): Buffer => typedMessage('C', tag + '\0');
const ready = (status: string): Buffer => typedMessage('Z', status);
const settings = PROBED_SETTINGS.map((s) => (s === 'search_path' ? '"$user", public' : s === 'default_transaction_isolation' ? 'read committed' : '')).join('\u001f');
const TABLES = ['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history'];

/** The server's replies by statement kind, built once: the harness's own work stays small. */
const replies = new Map<string, Buffer>();

/** The server's reply to one simple Query of the proxy or of pgbench. */
function reply(text: string): Buffer {
  const kind = text.startsWith('SELECT abalance') ? `S${inBlock}` : text.startsWith('UPDATE') || text.startsWith('INSERT') ? text.slice(0, 6) + String(inBlock) : null;
  if (kind === null) return build(text);
  let r = replies.get(kind);
  if (r === undefined) replies.set(kind, (r = build(text)));
  return r;
}

function build(text: string): Buffer {
  if (text.includes('system_identifier')) {
    return Buffer.concat([rowDescription(['system_identifier', 'to_char', 'database', 'current_user', 'session_user', 'settings']),
      dataRow(['7', '2026-01-01 00:00:00.000000', 'bench', 'postgres', 'postgres', settings]), complete('SELECT 1'), ready('I')]);
  }
  if (text.includes('fan_out') || text.includes('pg_catalog')) {
    const relations = TABLES.filter((t) => text.includes(t)).map((t) => ({
      name: relationKey({ schema: null, name: t }),
      closure: [{ name: t, kind: 'r', persistence: 'p', schema: 'public', definition: null, policies: [] }],
      calls: 'true true',
    }));
    return Buffer.concat([rowDescription(['database', 'current_user', 'session_user', 'settings', 'relations', 'functions', 'temp', 'fan_out']),
      dataRow(['bench', 'postgres', 'postgres', settings, JSON.stringify(relations), '[]', 'false', '[]']), complete('SELECT 1'), ready('I')]);
  }
  const status = inBlock ? 'T' : 'I';
  if (text.startsWith('BEGIN')) { inBlock = true; return Buffer.concat([complete('BEGIN'), ready('T')]); }
  if (text.startsWith('END')) { inBlock = false; return Buffer.concat([complete('COMMIT'), ready('I')]); }
  if (text.startsWith('UPDATE')) return Buffer.concat([complete('UPDATE 1'), ready(status)]);
  if (text.startsWith('INSERT')) return Buffer.concat([complete('INSERT 0 1'), ready(status)]);
  return Buffer.concat([rowDescription(['abalance']), dataRow(['-4711']), complete('SELECT 1'), ready(status)]);
}
let inBlock = false;

class Session implements RelayIo {
  readonly label = { remote: 'bench', user: 'postgres', database: 'bench' };
  readonly relay: PgRelay;
  private readonly scanner = new BackendScanner();
  private sent: Buffer[] = [];
  clientBytes = 0;

  constructor(cache: PgCache | null) {
    this.relay = new PgRelay(this, cache, 'bench', 'user\u0000postgres\u0000database\u0000bench', log);
    this.relay.upstreamChunk(Buffer.concat([typedMessage('S', 'standard_conforming_strings\0on\0'), typedMessage('S', 'server_version\x0015.20\0'), ready('I')]), this.scanner);
  }

  toUpstream(bytes: Buffer): void {
    this.sent.push(bytes);
  }

  toClient(bytes: Buffer, more?: Buffer): void {
    this.clientBytes += bytes.length + (more?.length ?? 0);
  }

  loginRefused(message: string): void {
    throw new Error(message);
  }

  /** pgbench sends one statement (a chunk of its own) and waits for its reply. */
  statement(text: string): void {
    const q = Buffer.allocUnsafe(6 + text.length);
    q[0] = 0x51;
    q.writeInt32BE(5 + text.length, 1);
    q.write(text, 5, 'latin1');
    q[q.length - 1] = 0;
    this.relay.clientMessage(0x51, q, 0, q.length);
    this.relay.endOfClientChunk();
    // The server answers each Query the relay sent (its own first), a chunk each.
    while (this.sent.length > 0) {
      const chunk = this.sent.length === 1 ? this.sent[0]! : Buffer.concat(this.sent);
      this.sent = [];
      for (let pos = 0; pos < chunk.length; pos += 1 + chunk.readInt32BE(pos + 1)) {
        if (chunk[pos] === 0x51) this.relay.upstreamChunk(reply(chunk.toString('utf8', pos + 5, pos + chunk.readInt32BE(pos + 1) - 1)), this.scanner);
      }
    }
  }
}

const random = (n: number): number => 1 + Math.floor(Math.random() * n);

function tpcb(s: Session): void {
  const aid = random(1_000_000);
  const bid = random(10);
  const tid = random(100);
  const delta = random(10_000) - 5000;
  s.statement('BEGIN;');
  s.statement(`UPDATE pgbench_accounts SET abalance = abalance + ${delta} WHERE aid = ${aid};`);
  s.statement(`SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`);
  s.statement(`UPDATE pgbench_tellers SET tbalance = tbalance + ${delta} WHERE tid = ${tid};`);
  s.statement(`UPDATE pgbench_branches SET bbalance = bbalance + ${delta} WHERE bid = ${bid};`);
  s.statement(`INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${tid}, ${bid}, ${aid}, ${delta}, CURRENT_TIMESTAMP);`);
  s.statement('END;');
}

function select(s: Session): void {
  s.statement(`SELECT abalance FROM pgbench_accounts WHERE aid = ${random(1_000_000)};`);
}

async function measure(name: string, cacheOn: boolean, tx: (s: Session) => void): Promise<number> {
  const config = loadConfig(cacheOn ? [] : ['--cache-max-bytes', '0'], {}).config;
  const cache = cacheOn ? await PgCache.create(config, createMetrics()) : null;
  const sessions = Array.from({ length: SESSIONS }, () => new Session(cache));
  const run = (n: number): void => {
    for (let i = 0; i < n; i++) tx(sessions[i % SESSIONS]!);
  };
  run(Math.min(transactions, 20_000));
  const before = process.cpuUsage();
  run(transactions);
  const used = process.cpuUsage(before);
  const us = (used.user + used.system) / transactions;
  const stats = cache === null ? '' : `; hits ${cache.stats.hits}, misses ${cache.stats.misses}, writes ${cache.stats.writes}, bypasses ${cache.stats.bypasses}, stored ${cache.store.counters().entries}`;
  console.log(`${name.padEnd(28)} ${us.toFixed(2).padStart(8)} µs CPU/tx  (${transactions} tx${stats})`);
  return us;
}

for (const [name, tx] of [['tpcb', tpcb], ['select', select]] as const) {
  if (which !== 'both' && which !== name) continue;
  const on = modes !== 'off' ? await measure(`${name}, cache on`, true, tx) : 0;
  const off = modes !== 'on' ? await measure(`${name}, cache off`, false, tx) : 0;
  if (modes === 'both') console.log(`${name.padEnd(28)} ${(on - off).toFixed(2).padStart(8)} µs/tx added by the cache`);
}
