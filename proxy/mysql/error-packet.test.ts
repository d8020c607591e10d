// ERR packets: the proxy's own read back by the decoder that reads the server's (server-packets.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { errPacket, MySqlErrorCode, MySqlProxyError } from './error-packet.js';
import { decodeErr } from './server-packets.js';

test('an ERR packet is read: code, SQL state and message', () => {
  const packet = errPacket(new MySqlProxyError(MySqlErrorCode.OutOfMemory, 'out of memory'), 1);
  assert.equal(decodeErr(packet, 4, packet.length), { code: 1037, sqlState: 'HY001', message: 'out of memory' });
});

test('without a SQL state (before CLIENT_PROTOCOL_41), cut long, or too short', () => {
  const payload = Buffer.from([0xff, 0xb1, 0x07, ...Buffer.from('Query execution was interrupted')]);
  assert.equal(decodeErr(payload, 0, payload.length), { code: 1969, sqlState: '', message: 'Query execution was interrupted' });
  assert.is(decodeErr(payload, 0, payload.length, 5).message, 'Query');
  assert.is(decodeErr(payload, 0, 2).code, 0);
});

test.run();
