import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeStartupPacket, isTerminateBeforeStartup } from './startup.js';

function packet(code: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const m = Buffer.alloc(8 + body.length);
  m.writeInt32BE(m.length, 0);
  m.writeInt32BE(code, 4);
  body.copy(m, 8);
  return m;
}

test('SSLRequest, GSSENCRequest and CancelRequest are recognised', () => {
  assert.equal(decodeStartupPacket(packet(80877103)), { kind: 'ssl' });
  assert.equal(decodeStartupPacket(packet(80877104)), { kind: 'gssenc' });
  const cancel = decodeStartupPacket(packet(80877102, Buffer.from([0, 0, 1, 0, 9, 9, 9, 9])));
  assert.is(cancel.kind, 'cancel');
  if (cancel.kind === 'cancel') {
    assert.is(cancel.pid, 256);
    assert.ok(cancel.secret.equals(Buffer.from([9, 9, 9, 9])));
  }
});

test('a 3.0 StartupMessage yields its parameters', () => {
  const r = decodeStartupPacket(packet(196608, Buffer.from('user\0alice\0database\0shop\0options\0-c x=1\0\0')));
  assert.is(r.kind, 'startup');
  if (r.kind === 'startup') {
    assert.is(r.minor, 0);
    assert.equal([...r.params], [['user', 'alice'], ['database', 'shop'], ['options', '-c x=1']]);
  }
});

test('protocol 3.2 is accepted (the server negotiates the minor version)', () => {
  assert.is(decodeStartupPacket(packet((3 << 16) | 2, Buffer.from('user\0a\0\0'))).kind, 'startup');
});

test('other protocol majors and broken layouts are invalid', () => {
  const v2 = decodeStartupPacket(packet(2 << 16, Buffer.from('user\0a\0\0')));
  assert.is(v2.kind, 'invalid');
  assert.match(v2.kind === 'invalid' ? v2.reason : '', /unsupported frontend protocol 2\.0/);
  assert.is(decodeStartupPacket(packet(4 << 16)).kind, 'invalid');
  assert.is(decodeStartupPacket(packet(196608, Buffer.from('user\0a'))).kind, 'invalid');
  assert.is(decodeStartupPacket(packet(196608, Buffer.from('user\0a\0\0junk'))).kind, 'invalid');
  assert.is(decodeStartupPacket(packet(80877103, Buffer.from('x'))).kind, 'invalid');
});

test('a Terminate sent before the StartupMessage is recognised by the length its first bytes read as', () => {
  const lengthOf = (bytes: Buffer): number => bytes.readInt32BE(0);
  assert.ok(isTerminateBeforeStartup(lengthOf(Buffer.from([0x58, 0, 0, 0, 4]))));
  assert.not.ok(isTerminateBeforeStartup(lengthOf(Buffer.from('GET / HTTP/1.1'))));
  assert.not.ok(isTerminateBeforeStartup(lengthOf(Buffer.from([0x51, 0, 0, 0, 13]))), 'a Query');
  assert.not.ok(isTerminateBeforeStartup(lengthOf(packet(196608, Buffer.from('user\0a\0\0')))));
});

test.run();
