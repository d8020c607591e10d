import { readFile } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeCerts, type TestCerts } from '../e2e/support/certs.js';
import { ReadBuffer, readTlsInto } from './read-buffer.js';

const WRITES = 100;
const WRITE_BYTES = 3000;
const TOTAL = WRITES * WRITE_BYTES;

let certs: TestCerts;
test.before(async () => {
  certs = await makeCerts();
});
test.after(async () => {
  await certs?.remove();
});

/**
 * A TLS client writes WRITES x WRITE_BYTES (write i filled with byte i); `attach` sets up the
 * server side's reads and calls `received` with the byte count so far; at TOTAL the server answers.
 */
async function throughTls(attach: (secure: tls.TLSSocket, received: (total: number) => void) => void): Promise<void> {
  const context = tls.createSecureContext({ cert: await readFile(certs.good.cert), key: await readFile(certs.good.key) });
  const ca = await readFile(certs.ca, 'utf8');
  const server = net.createServer((raw) => {
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
    attach(secure, (total) => {
      if (total === TOTAL) secure.end('done');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as net.AddressInfo;
    const reply = await new Promise<string>((resolve, reject) => {
      const client = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
        for (let i = 0; i < WRITES; i++) client.write(Buffer.alloc(WRITE_BYTES, i));
      });
      let text = '';
      client.on('data', (d: Buffer) => (text += d.toString()));
      client.on('end', () => resolve(text));
      client.on('error', reject);
      setTimeout(() => reject(new Error('no reply within 10 s')), 10_000).unref();
    });
    assert.is(reply, 'done');
  } finally {
    server.close();
  }
}

test('decrypted bytes arrive through the reused buffer, in order, and no data event is emitted', async () => {
  let bytes = 0;
  let dataEvents = 0;
  let inOrder = true;
  await throughTls((secure, received) => {
    const reads = new ReadBuffer((chunk) => {
      for (const b of chunk) {
        if (b !== Math.floor(bytes / WRITE_BYTES) % 256) inOrder = false;
        bytes++;
      }
      received(bytes);
    });
    assert.ok(readTlsInto(secure, reads), 'the TLS socket took the reused buffer');
    secure.on('data', () => dataEvents++);
  });
  assert.is(bytes, TOTAL);
  assert.ok(inOrder, 'bytes in the order written');
  assert.is(dataEvents, 0);
});

test('paused, the reads stop; resumed, they go on through the buffer', async () => {
  let bytes = 0;
  let whilePaused = 0;
  await throughTls((secure, received) => {
    let paused = false;
    const reads = new ReadBuffer((chunk) => {
      if (secure.isPaused()) whilePaused++;
      bytes += chunk.length;
      if (!paused && bytes >= TOTAL / 10) {
        paused = true;
        secure.pause();
        setTimeout(() => secure.resume(), 50);
      }
      received(bytes);
    });
    assert.ok(readTlsInto(secure, reads));
  });
  assert.is(bytes, TOTAL);
  // The chunk being decrypted when pause() was called may still be handed out, nothing after it.
  assert.ok(whilePaused <= 1, `${whilePaused} reads while paused`);
});

test.run();
