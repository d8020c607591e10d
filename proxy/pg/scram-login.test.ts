import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import type { ScramSecret } from '../../config/pg-auth-file.js';
import { AuthRequest } from './codes.js';
import { PgProxyError } from './error-response.js';
import { authentication, authenticationSasl } from './sasl.js';
import { SCRAM, SCRAM_PLUS, ScramClient, ScramServer } from './scram.js';
import { ScramLogin } from './scram-login.js';
import { scramSecretFor } from './test-scram-secret.js';


/** A client's 'p' message: SASLInitialResponse (with a mechanism) or SASLResponse. */
function password(data: string, mechanism?: string): Buffer {
  const body = mechanism === undefined ? Buffer.from(data) : Buffer.concat([Buffer.from(`${mechanism}\0`), int32(Buffer.byteLength(data)), Buffer.from(data)]);
  return Buffer.concat([Buffer.from('p'), int32(4 + body.length), body]);
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

function message(code: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(code), int32(4 + body.length), body]);
}

/** The payload of an Authentication message, as text after its request code. */
function authData(m: Buffer): { request: number; text: string } {
  return { request: m.readInt32BE(5), text: m.toString('utf8', 9) };
}

/** Runs the client half through `login` with a real SCRAM client holding the password's key. */
function clientLogin(login: ScramLogin, clientKey: Buffer, secret: ScramSecret, channel: Buffer | null): void {
  const mechanisms = authData(login.start()).text.split('\0').filter((m) => m !== '');
  const client = new ScramClient(secret, clientKey, 'clientnonce', channel);
  const first = client.first(mechanisms);
  const cont = login.clientMessage(0x70, password(first.message, first.mechanism), 0, password(first.message, first.mechanism).length);
  assert.is(cont.verified, false);
  assert.is(authData(cont.reply).request, AuthRequest.SASLContinue);
  const finalMsg = password(client.final(authData(cont.reply).text));
  const fin = login.clientMessage(0x70, finalMsg, 0, finalMsg.length);
  assert.is(fin.verified, true);
  assert.is(authData(fin.reply).request, AuthRequest.SASLFinal);
  client.verify(authData(fin.reply).text);
}

test('the whole login: the client verified, the upstream answered from the proven key, however its chunks are cut', () => {
  const { secret, clientKey } = scramSecretFor('pw');
  const clientCert = randomBytes(32);
  const serverCert = randomBytes(32);
  // The upstream's side, played by a real SCRAM server holding the same secret.
  const upstream = new ScramServer(secret, 'upstreamnonce', serverCert);
  const probe = new ScramLogin(secret, 'u', clientCert, () => 'sidecachenonce');
  clientLogin(probe, clientKey, secret, clientCert);
  const after = Buffer.concat([authentication(AuthRequest.Ok, Buffer.alloc(0)), message('S', Buffer.from('a\0b\0')), message('Z', Buffer.from('I'))]);
  // Step one: the server's mechanism list; the reply is SASLInitialResponse with -PLUS.
  const step1 = probe.upstreamChunk(authenticationSasl(upstream.mechanisms), serverCert);
  assert.is(step1.toRelay.length, 0);
  const initial = step1.toUpstream!;
  const nameEnd = initial.indexOf(0, 5);
  assert.is(initial.toString('utf8', 5, nameEnd), SCRAM_PLUS);
  const serverFirst = upstream.first(SCRAM_PLUS, initial.toString('utf8', nameEnd + 5));
  const step2 = probe.upstreamChunk(authentication(AuthRequest.SASLContinue, Buffer.from(serverFirst)), serverCert);
  const { serverFinal } = upstream.final(step2.toUpstream!.toString('utf8', 5));
  // Step three and what follows, cut at every byte: only the messages after the exchange pass.
  const tail = Buffer.concat([authentication(AuthRequest.SASLFinal, Buffer.from(serverFinal)), after]);
  for (let cut = 0; cut <= tail.length; cut++) {
    const login = new ScramLogin(secret, 'u', clientCert, () => 'sidecachenonce');
    clientLogin(login, clientKey, secret, clientCert);
    login.upstreamChunk(authenticationSasl(upstream.mechanisms), serverCert);
    login.upstreamChunk(authentication(AuthRequest.SASLContinue, Buffer.from(serverFirst)), serverCert);
    const a = login.upstreamChunk(Buffer.from(tail.subarray(0, cut)), serverCert);
    const b = login.upstreamChunk(tail.subarray(cut), serverCert);
    assert.is(a.toUpstream, null);
    assert.is(b.toUpstream, null);
    assert.ok(Buffer.concat([a.toRelay, b.toRelay]).equals(after), `cut at ${cut}`);
  }
});

test('trust passes; md5 and a wrong client proof are refused with the codes PostgreSQL uses', () => {
  const { secret, clientKey } = scramSecretFor('pw');
  const trust = new ScramLogin(secret, 'u', null, () => 'n1');
  clientLogin(trust, clientKey, secret, null);
  const ok = authentication(AuthRequest.Ok, Buffer.alloc(0));
  assert.ok(trust.upstreamChunk(ok, null).toRelay.equals(ok));
  const md5 = new ScramLogin(secret, 'u', null, () => 'n2');
  clientLogin(md5, clientKey, secret, null);
  try {
    md5.upstreamChunk(authentication(AuthRequest.MD5Password, Buffer.from('salt')), null);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, PgProxyError);
    assert.is((err as PgProxyError).sqlState, '28000');
    assert.match((err as Error).message, /asks for md5 password authentication for user "u"/);
  }
  const wrong = new ScramLogin(secret, 'u', null, () => 'n3');
  const other = scramSecretFor('other');
  const client = new ScramClient(secret, other.clientKey, 'cn', null);
  const first = password(client.first([SCRAM]).message, SCRAM);
  const cont = wrong.clientMessage(0x70, first, 0, first.length);
  const fin = password(client.final(authData(cont.reply).text));
  try {
    wrong.clientMessage(0x70, fin, 0, fin.length);
    assert.unreachable();
  } catch (err) {
    assert.is((err as PgProxyError).sqlState, '28P01');
    assert.is((err as Error).message, 'password authentication failed for user "u"');
  }
});

test.run();
