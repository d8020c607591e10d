import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SCRAM, SCRAM_PLUS, ScramClient, ScramError, ScramServer, endPointHash } from './scram.js';
import { scramSecretFor } from './test-scram-secret.js';

// RFC 7677 section 3: user "user", password "pencil".
const VECTOR = {
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};


const pencil = scramSecretFor('pencil', Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'), 4096);

function throwsScram(fn: () => unknown, kind: ScramError['kind'], pattern: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, ScramError);
    assert.is((err as ScramError).kind, kind);
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable('expected a ScramError');
}

test('the server half reproduces RFC 7677\'s exchange and recovers the ClientKey', () => {
  const server = new ScramServer(pencil.secret, VECTOR.serverNonce, null);
  assert.equal(server.mechanisms, [SCRAM]);
  assert.is(server.first(SCRAM, VECTOR.clientFirst), VECTOR.serverFirst);
  const { serverFinal, clientKey } = server.final(VECTOR.clientFinal);
  assert.is(serverFinal, VECTOR.serverFinal);
  assert.ok(clientKey.equals(pencil.clientKey));
});

test('the client half reproduces RFC 7677\'s exchange from the ClientKey alone', () => {
  const client = new ScramClient(pencil.secret, pencil.clientKey, VECTOR.clientNonce, null, 'user');
  assert.equal(client.first([SCRAM]), { mechanism: SCRAM, message: VECTOR.clientFirst });
  assert.is(client.final(VECTOR.serverFirst), VECTOR.clientFinal);
  client.verify(VECTOR.serverFinal);
  throwsScram(() => client.verify('v=' + Buffer.alloc(32).toString('base64')), 'refused', /signature is wrong/);
});

test('a wrong password is a wrong proof; a changed nonce or a foreign binding is a protocol error', () => {
  const other = scramSecretFor('not pencil', pencil.secret.salt, 4096);
  const liar = new ScramClient(pencil.secret, other.clientKey, VECTOR.clientNonce, null, 'user');
  const server = new ScramServer(pencil.secret, VECTOR.serverNonce, null);
  server.first(SCRAM, liar.first([SCRAM]).message);
  throwsScram(() => server.final(liar.final(VECTOR.serverFirst)), 'password', /wrong SCRAM proof/);
  const s2 = new ScramServer(pencil.secret, VECTOR.serverNonce, null);
  s2.first(SCRAM, VECTOR.clientFirst);
  throwsScram(() => s2.final(VECTOR.clientFinal.replace('r=rOpr', 'r=xOpr')), 'protocol', /nonce mismatch/);
  const s3 = new ScramServer(pencil.secret, VECTOR.serverNonce, null);
  s3.first(SCRAM, VECTOR.clientFirst);
  throwsScram(() => s3.final(VECTOR.clientFinal.replace('c=biws', 'c=eSws')), 'protocol', /channel binding check failed/);
});

test('channel binding: both halves agree on -PLUS over TLS, and the binding data is checked', () => {
  const { secret, clientKey } = scramSecretFor('secret', randomBytes(16), 4096);
  const cert = randomBytes(32);
  const server = new ScramServer(secret, 'servernonce', cert);
  assert.equal(server.mechanisms, [SCRAM_PLUS, SCRAM]);
  const client = new ScramClient(secret, clientKey, 'clientnonce', cert);
  const first = client.first(server.mechanisms);
  assert.is(first.mechanism, SCRAM_PLUS);
  assert.match(first.message, /^p=tls-server-end-point,,n=,r=clientnonce$/);
  const final = server.final(client.final(server.first(first.mechanism, first.message)));
  client.verify(final.serverFinal);
  assert.ok(final.clientKey.equals(clientKey));
  // The client bound itself to another certificate (a man in the middle's).
  const s2 = new ScramServer(secret, 'servernonce', cert);
  const c2 = new ScramClient(secret, clientKey, 'clientnonce', randomBytes(32));
  const f2 = c2.first(s2.mechanisms);
  throwsScram(() => s2.final(c2.final(s2.first(f2.mechanism, f2.message))), 'protocol', /channel binding check failed/);
});

test('the GS2 flag: "y" is a downgrade where -PLUS was offered, fine where it was not; -PLUS needs "p"', () => {
  const { secret } = scramSecretFor('secret', randomBytes(16), 4096);
  throwsScram(() => new ScramServer(secret, 'sn', randomBytes(32)).first(SCRAM, 'y,,n=,r=abc'), 'protocol', /negotiation error/);
  assert.match(new ScramServer(secret, 'sn', null).first(SCRAM, 'y,,n=,r=abc'), /^r=abcsn,/);
  assert.match(new ScramServer(secret, 'sn', randomBytes(32)).first(SCRAM, 'n,,n=,r=abc'), /^r=abcsn,/);
  throwsScram(() => new ScramServer(secret, 'sn', randomBytes(32)).first(SCRAM_PLUS, 'n,,n=,r=abc'), 'protocol', /sent no channel binding/);
  throwsScram(() => new ScramServer(secret, 'sn', null).first(SCRAM_PLUS, 'p=tls-server-end-point,,n=,r=abc'), 'protocol', /invalid SASL authentication mechanism/);
  throwsScram(() => new ScramServer(secret, 'sn', randomBytes(32)).first(SCRAM_PLUS, 'p=tls-unique,,n=,r=abc'), 'protocol', /unsupported SCRAM channel-binding type/);
  throwsScram(() => new ScramServer(secret, 'sn', null).first(SCRAM, 'n,a=admin,n=,r=abc'), 'refused', /authzid/);
  throwsScram(() => new ScramServer(secret, 'sn', null).first(SCRAM, 'n,,r=abc'), 'protocol', /expected n= and r=/);
});

test('the client half: "y" on a TLS leg without -PLUS, "n" in cleartext; a changed salt means a changed password', () => {
  const { secret, clientKey } = scramSecretFor('secret', randomBytes(16), 4096);
  assert.match(new ScramClient(secret, clientKey, 'cn', randomBytes(32)).first([SCRAM]).message, /^y,,/);
  assert.match(new ScramClient(secret, clientKey, 'cn', null).first([SCRAM_PLUS, SCRAM]).message, /^n,,/);
  throwsScram(() => new ScramClient(secret, clientKey, 'cn', null).first(['OAUTHBEARER']), 'refused', /offers no SCRAM-SHA-256/);
  const c = new ScramClient(secret, clientKey, 'cn', null);
  c.first([SCRAM]);
  throwsScram(() => c.final(`r=cnXX,s=${randomBytes(16).toString('base64')},i=4096`), 'refused', /password was changed/);
  throwsScram(() => c.final(`r=zz,s=${secret.salt.toString('base64')},i=4096`), 'protocol', /does not extend/);
});

test('tls-server-end-point hashes the DER certificate with SHA-256 for SHA-256 and SHA-1 signatures, SHA-384 for SHA-384', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sidecache-scram-'));
  try {
    const cert = (md: string): Buffer => {
      const file = path.join(dir, `${md}.pem`);
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dir, `${md}.key`),
        '-out', file, '-days', '1', '-subj', '/CN=t', `-${md}`], { stdio: 'ignore' });
      const pem = readFileSync(file, 'utf8');
      return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64');
    };
    for (const [md, hash] of [['sha256', 'sha256'], ['sha1', 'sha256'], ['sha384', 'sha384']] as const) {
      const der = cert(md);
      assert.ok(endPointHash(der).equals(createHash(hash).update(der).digest()), md);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
