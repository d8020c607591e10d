import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from './errors.js';
import { parsePgAuthFile, parseScramSecret } from './pg-auth-file.js';

const KEY_A = Buffer.alloc(32, 1).toString('base64');
const KEY_B = Buffer.alloc(32, 2).toString('base64');
const SECRET = `SCRAM-SHA-256$4096:c2FsdHNhbHQ=$${KEY_A}:${KEY_B}`;

test('a SCRAM secret as pg_authid.rolpassword holds it', () => {
  const s = parseScramSecret(SECRET)!;
  assert.is(s.iterations, 4096);
  assert.is(s.salt.toString(), 'saltsalt');
  assert.ok(s.storedKey.equals(Buffer.alloc(32, 1)));
  assert.ok(s.serverKey.equals(Buffer.alloc(32, 2)));
  for (const bad of ['md5abc', `SCRAM-SHA-256$x:c2FsdA==$${KEY_A}:${KEY_B}`, `SCRAM-SHA-256$4096:c2FsdA==$${KEY_A}`, `SCRAM-SHA-256$4096:c2FsdA==$c2hvcnQ=:${KEY_B}`]) {
    assert.is(parseScramSecret(bad), null, bad);
  }
});

test('PgBouncer\'s userlist format: quoted fields, "" for a quote, comments, the rest of a line ignored', () => {
  const text = `; comment\n# another\n\n"alice" "${SECRET}"\n  "bob ""the"" builder" "${SECRET}" extra fields\r\n`;
  const secrets = parsePgAuthFile(text, 'userlist.txt');
  assert.equal([...secrets.keys()], ['alice', 'bob "the" builder']);
});

test('errors name the file, line and user, never the secret', () => {
  const cases: [string, RegExp][] = [
    ['"alice" "md5d41d8cd98f00b204e9800998ecf8427e"', /line 1: the entry for user "alice" is an md5 hash/],
    ['"alice" "plain password"', /line 1: the entry for user "alice" is not a SCRAM secret/],
    [`"alice" "${SECRET}"\n"alice" "${SECRET}"`, /line 2: user "alice" is listed twice/],
    ['alice secret', /line 1: expected "user" "secret"/],
    ['"alice" "unterminated', /line 1: expected "user" "secret"/],
  ];
  for (const [text, pattern] of cases) {
    try {
      parsePgAuthFile(text, 'f.txt');
      assert.unreachable(text);
    } catch (err) {
      assert.instance(err, ConfigError);
      assert.match((err as Error).message, pattern);
      assert.match((err as Error).message, /^--pg-auth-file: f\.txt line/);
      assert.not.match((err as Error).message, /plain password|d41d8cd9|SCRAM-SHA-256\$4096/);
    }
  }
});

test.run();
