// Cache rules from the config file: parsing, errors naming the rule and key, first match wins.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NO_RULE } from './rules.js';
import { ConfigError, loadConfig } from './settings.js';

const dir = mkdtempSync(path.join(tmpdir(), 'sidecache-rules-'));
let n = 0;
function load(yaml: string) {
  const p = path.join(dir, `r${n++}.yaml`);
  writeFileSync(p, yaml);
  return { rules: loadConfig(['--config', p], {}).config.cacheRules, path: p };
}

function error(yaml: string): string {
  try {
    load(yaml);
  } catch (err) {
    assert.instance(err, ConfigError);
    return (err as Error).message.replace(/ in \/.*?\.yaml/, ' in FILE');
  }
  return assert.unreachable('accepted') as never;
}

const RULES = `
rules:
  - match: {table: orders}
    ttl: 5s
  - match: {regex: '^select .* from audit'}
    cache: never
  - match: {fingerprint: 0123456789abcdef}
    max-entry-bytes: 1MiB
  - match: {table: orders, regex: 'LIMIT'}
    cache: never
`;

test('rules match by table, regex (case-insensitive) and fingerprint; the first match decides', () => {
  const { rules } = load(RULES);
  assert.is(rules.size, 4);
  const subject = (shape: string, tables: string[], fingerprint = 'f') => rules.match({ fingerprint, shape, tables });
  assert.equal(subject('SELECT * FROM orders LIMIT $1', ['orders']), { label: 'rules[0]', never: false, ttlMs: 5000, maxEntryBytes: undefined, inReadOnlyTransactions: false });
  assert.is(subject('SELECT * FROM audit_log', ['audit_log']).label, 'rules[1]');
  assert.ok(subject('SELECT a,\nb FROM audit', ['audit']).never, 'dot matches newlines too');
  assert.equal(subject('SELECT 1', [], '0123456789abcdef'), { label: 'rules[2]', never: false, ttlMs: undefined, maxEntryBytes: 1 << 20, inReadOnlyTransactions: false });
  assert.is(subject('SELECT * FROM users', ['users']), NO_RULE);
  assert.is(subject('SELECT * FROM orders_archive', ['orders_archive']), NO_RULE, 'a table is matched by its whole name');
});

test('no rules section means no rules; the rules show as written in /api/config', () => {
  assert.is(load('cache-ttl: 5s\n').rules.size, 0);
  assert.is(loadConfig([], {}).config.cacheRules.size, 0);
  assert.equal(JSON.parse(JSON.stringify(load(RULES).rules))[0], { match: { table: 'orders' }, ttlMs: 5000 });
});

test('invalid rules name the rule and key', () => {
  assert.is(error('rules: {table: x}\n'), 'rules in FILE: expected a list of rules, e.g. "- match: {table: orders}" with "ttl: 5s" below it');
  assert.match(error('rules:\n  - ttl: 5s\n'), /^rules\[0\]\.match in FILE: expected a mapping/);
  assert.match(error('rules:\n  - match: {table: a}\n    ttl: 5s\n  - match: {table: b}\n    ttl: soon\n'), /^rules\[1\]\.ttl in FILE: expected a duration/);
  assert.match(error('rules:\n  - match: {table: a}\n    cache: always\n'), /^rules\[0\]\.cache in FILE: expected "never"/);
  assert.match(error('rules:\n  - match: {regex: "(unclosed"}\n    cache: never\n'), /^rules\[0\]\.match\.regex in FILE: not a valid regular expression/);
  assert.match(error('rules:\n  - match: {column: a}\n    cache: never\n'), /^rules\[0\]\.match\.column in FILE: unknown key/);
  assert.match(error('rules:\n  - match: {table: public.orders}\n    cache: never\n'), /^rules\[0\]\.match\.table in FILE: give the bare table name \("orders"\)/);
  assert.match(error('rules:\n  - match: {table: a}\n'), /^rules\[0\] in FILE: has no action/);
  assert.match(error('rules:\n  - match: {table: a}\n    max-entry-bytes: huge\n'), /^rules\[0\]\.max-entry-bytes in FILE: expected a size/);
  assert.match(error('rules:\n  - match: {table: a}\n    tll: 5s\n'), /^rules\[0\]\.tll in FILE: unknown key/);
});

test('in-read-only-transactions: true is an action of its own or beside ttl; false is no action', () => {
  const { rules } = load(`
rules:
  - match: {table: products}
    in-read-only-transactions: true
  - match: {table: prices}
    ttl: 5s
    in-read-only-transactions: true
  - match: {table: audit}
    ttl: 1s
    in-read-only-transactions: false
`);
  const subject = (table: string) => rules.match({ fingerprint: 'f', shape: `SELECT * FROM ${table}`, tables: [table] });
  assert.equal(subject('products'), { label: 'rules[0]', never: false, ttlMs: undefined, maxEntryBytes: undefined, inReadOnlyTransactions: true });
  assert.equal(subject('prices'), { label: 'rules[1]', never: false, ttlMs: 5000, maxEntryBytes: undefined, inReadOnlyTransactions: true });
  assert.is(subject('audit').inReadOnlyTransactions, false);
  assert.is(subject('users').inReadOnlyTransactions, false, 'no rule: never inside transactions');
  assert.equal(JSON.parse(JSON.stringify(rules))[0], { match: { table: 'products' }, inReadOnlyTransactions: true }, 'shown in /api/config');
});

test('invalid in-read-only-transactions values name the rule and key', () => {
  assert.match(error('rules:\n  - match: {table: a}\n    in-read-only-transactions: yes please\n'),
    /^rules\[0\]\.in-read-only-transactions in FILE: expected true or false, got "yes please"/);
  assert.match(error('rules:\n  - match: {table: a}\n    in-read-only-transactions: 1\n'), /^rules\[0\]\.in-read-only-transactions in FILE: expected true or false/);
  assert.match(error('rules:\n  - match: {table: a}\n    cache: never\n    in-read-only-transactions: true\n'),
    /^rules\[0\]\.in-read-only-transactions in FILE: cannot be combined with cache: never/);
  assert.match(error('rules:\n  - match: {table: a}\n    in-read-only-transactions: false\n'), /^rules\[0\] in FILE: has no action/);
  assert.match(error('rules:\n  - match: {table: a}\n    in-readonly-transactions: true\n'), /^rules\[0\]\.in-readonly-transactions in FILE: unknown key/);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
