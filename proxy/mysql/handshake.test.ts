import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { Capability, HIDDEN_CAPABILITIES } from './codes.js';
import { decodeClientLogin, decodeServerHandshake, offeredCapabilities, rewriteHandshakeResponse, rewriteServerHandshake, sslRequestPacket } from './handshake.js';
import { MalformedPacketError } from './packets.js';

const SERVER_CAPS = (0xf7fe | (0x81bf << 16) | Capability.Ssl | Capability.Compress) >>> 0; // MariaDB 10.11-like, CLIENT_MYSQL clear
const MARIADB_EXT = 0x1f;

/** A protocol-10 handshake payload as MariaDB sends it. */
function serverHandshake(caps = SERVER_CAPS, ext = MARIADB_EXT): Buffer {
  const b = Buffer.alloc(200);
  let p = 0;
  b[p++] = 10;
  p += b.write('10.11.19-MariaDB\0', p);
  b.writeUInt32LE(4242, p); p += 4;
  p += b.write('abcdefgh', p);
  b[p++] = 0;
  b.writeUInt16LE(caps & 0xffff, p); p += 2;
  b[p++] = 45;
  b.writeUInt16LE(0x0002, p); p += 2;
  b.writeUInt16LE(caps >>> 16, p); p += 2;
  b[p++] = 21;
  p += 6;
  b.writeUInt32LE(ext, p); p += 4;
  p += b.write('ijklmnopqrst\0', p);
  p += b.write('mysql_native_password\0', p);
  return b.subarray(0, p);
}

function clientResponse(caps: number, opts: { ext?: number; db?: string; plugin?: string; auth?: Buffer } = {}): Buffer {
  const fixed = Buffer.alloc(32);
  fixed.writeUInt32LE(caps >>> 0, 0);
  fixed.writeUInt32LE(1 << 24, 4);
  fixed[8] = 224;
  fixed.writeUInt32LE(opts.ext ?? 0, 28);
  const auth = opts.auth ?? Buffer.alloc(20, 1);
  return Buffer.concat([
    fixed, Buffer.from('alice\0'),
    caps & Capability.PluginAuthLenencClientData ? Buffer.from([auth.length]) : Buffer.from([auth.length]), auth,
    opts.db !== undefined ? Buffer.from(opts.db + '\0') : Buffer.alloc(0),
    opts.plugin !== undefined ? Buffer.from(opts.plugin + '\0') : Buffer.alloc(0),
  ]);
}

test('the server handshake decodes: version, connection id, both scramble parts, capabilities, plugin', () => {
  const payload = serverHandshake();
  const hs = decodeServerHandshake(payload, 0, payload.length);
  assert.is(hs.serverVersion, '10.11.19-MariaDB');
  assert.is(hs.connectionId, 4242);
  assert.is(hs.scramble.toString(), 'abcdefghijklmnopqrst');
  assert.is(hs.capabilities, SERVER_CAPS);
  assert.is(hs.mariaDbCapabilities, MARIADB_EXT);
  assert.is(hs.charset, 45);
  assert.is(hs.status, 2);
  assert.is(hs.authPlugin, 'mysql_native_password');
});

test('the rewrite clears only TLS, zstd, optional metadata and the MariaDB framing extensions; every other byte is kept', () => {
  const payload = serverHandshake();
  const hs = decodeServerHandshake(payload, 0, payload.length);
  const out = rewriteServerHandshake(payload, hs, false);
  const again = decodeServerHandshake(out, 0, out.length);
  assert.is(again.capabilities, (SERVER_CAPS & ~HIDDEN_CAPABILITIES) >>> 0);
  assert.is(again.capabilities & Capability.Ssl, 0);
  assert.is(again.capabilities & Capability.Compress, Capability.Compress, 'zlib compression is offered: the proxy speaks it with the client');
  assert.is(again.mariaDbCapabilities, MARIADB_EXT & ~0x12);
  assert.equal(offeredCapabilities(hs), { capabilities: again.capabilities, mariaDbCapabilities: again.mariaDbCapabilities });
  let differing = 0;
  for (let i = 0; i < out.length; i++) if (out[i] !== payload[i]) differing++;
  assert.ok(differing > 0 && differing <= 4, `${differing} bytes changed`);
  assert.is(again.scramble.toString(), hs.scramble.toString());
  assert.is(again.connectionId, 4242);
});

test('with a certificate the proxy offers CLIENT_SSL itself, and the capabilities a session keys on stay those without it', () => {
  const payload = serverHandshake((SERVER_CAPS & ~Capability.Ssl) >>> 0);
  const hs = decodeServerHandshake(payload, 0, payload.length);
  const out = rewriteServerHandshake(payload, hs, true);
  const again = decodeServerHandshake(out, 0, out.length);
  assert.is(again.capabilities & Capability.Ssl, Capability.Ssl, 'offered although the server has no TLS');
  assert.is((again.capabilities & ~Capability.Ssl) >>> 0, (SERVER_CAPS & ~HIDDEN_CAPABILITIES) >>> 0);
  assert.is(offeredCapabilities(hs).capabilities & Capability.Ssl, 0, 'TLS is not part of a cache key');
});

test('a MySQL handshake (CLIENT_MYSQL set) has no MariaDB capabilities to rewrite', () => {
  const payload = serverHandshake((SERVER_CAPS | 1) >>> 0, 0x55);
  const hs = decodeServerHandshake(payload, 0, payload.length);
  assert.is(hs.mariaDbCapabilities, 0);
  const out = rewriteServerHandshake(payload, hs, false);
  assert.is(out.readUInt32LE(hs.offsets.capsLow + 2 + 1 + 2 + 2 + 1 + 6), 0x55, 'the reserved bytes are untouched');
});

test('HandshakeResponse41 decodes user, auth data, database, plugin; SSLRequest and pre-4.1 are told apart', () => {
  const caps = Capability.Protocol41 | Capability.SecureConnection | Capability.PluginAuth | Capability.ConnectWithDb | Capability.LongPassword;
  const payload = clientResponse(caps, { db: 'shop', plugin: 'mysql_native_password' });
  const login = decodeClientLogin(payload, 0, payload.length);
  assert.is(login.kind, 'response');
  if (login.kind !== 'response') return;
  assert.is(login.response.user, 'alice');
  assert.is(login.response.authResponse.length, 20);
  assert.is(login.response.database, 'shop');
  assert.is(login.response.authPlugin, 'mysql_native_password');
  assert.is(login.response.charset, 224);
  assert.is(login.response.mariaDbCapabilities, 0, 'CLIENT_MYSQL set: no extended capabilities');

  const ssl = Buffer.alloc(32);
  ssl.writeUInt32LE(Capability.Protocol41 | Capability.Ssl, 0);
  assert.is(decodeClientLogin(ssl, 0, 32).kind, 'ssl-request');
  const old = Buffer.alloc(10);
  old.writeUInt32LE(Capability.LongPassword, 0);
  assert.is(decodeClientLogin(old, 0, 10).kind, 'pre-41');
});

test('the response rewrite clears hidden capabilities and compression (the upstream leg stays plain), and nothing else', () => {
  const caps = Capability.Protocol41 | Capability.SecureConnection | Capability.Compress | Capability.MultiStatements;
  const payload = clientResponse(caps, { ext: 0x1f });
  const out = rewriteHandshakeResponse(payload, false);
  assert.is(out.readUInt32LE(0), (Capability.Protocol41 | Capability.SecureConnection | Capability.MultiStatements) >>> 0);
  assert.is(out.readUInt32LE(28), 0x1f & ~0x12);
  assert.ok(out.subarray(32).equals(payload.subarray(32)));
});

test('CLIENT_SSL upstream follows the proxy\'s own leg, not the client\'s; the SSLRequest is the response\'s first 32 bytes', () => {
  const caps = Capability.Protocol41 | Capability.SecureConnection | Capability.Ssl;
  const payload = clientResponse(caps, { ext: 0x1f });
  assert.is(rewriteHandshakeResponse(payload, false).readUInt32LE(0) & Capability.Ssl, 0, 'the client\'s TLS ended at the proxy');
  const tls = rewriteHandshakeResponse(clientResponse(Capability.Protocol41 | Capability.SecureConnection, {}), true);
  assert.is(tls.readUInt32LE(0) & Capability.Ssl, Capability.Ssl);
  const request = sslRequestPacket(tls, 1);
  assert.is(request.readUIntLE(0, 3), 32);
  assert.is(request[3], 1);
  assert.ok(request.subarray(4).equals(tls.subarray(0, 32)));
  const decoded = decodeClientLogin(request, 4, request.length);
  assert.is(decoded.kind, 'ssl-request');
});

test('truncated login packets are malformed at every length', () => {
  const caps = Capability.Protocol41 | Capability.SecureConnection | Capability.PluginAuth | Capability.ConnectWithDb;
  const payload = clientResponse(caps, { db: 'shop', plugin: 'x' });
  for (let n = 0; n < 38; n++) {
    try {
      decodeClientLogin(payload, 0, n);
      assert.unreachable(`length ${n}`);
    } catch (err) {
      if (err instanceof Error && err.name === 'Assertion') throw err;
      assert.instance(err, MalformedPacketError);
    }
  }
  const hs = serverHandshake();
  for (let n = 0; n < 20; n++) assert.throws(() => decodeServerHandshake(hs, 0, n), (e: unknown) => e instanceof MalformedPacketError);
});

test('property: decoders never throw anything but MalformedPacketError on random bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
      const b = Buffer.from(bytes);
      for (const decode of [decodeClientLogin, decodeServerHandshake]) {
        try {
          decode(b, 0, b.length);
        } catch (err) {
          if (!(err instanceof MalformedPacketError)) return false;
        }
      }
      return true;
    }),
  );
});

test.run();
