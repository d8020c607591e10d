import net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DirectWrite, directWritable, writeDirect } from './direct-write.js';

/** A connected pair on loopback: `writer` is ours, `reader` the peer (paused until asked). */
async function pair(): Promise<{ writer: net.Socket; reader: net.Socket; close: () => void }> {
  let reader!: net.Socket;
  const server = net.createServer((s) => {
    s.pause();
    reader = s;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const writer = net.connect({ host: '127.0.0.1', port, noDelay: true });
  await new Promise<void>((resolve) => writer.once('connect', resolve));
  while (reader === undefined) await new Promise((r) => setTimeout(r, 5));
  return { writer, reader, close: () => { writer.destroy(); reader.destroy(); server.close(); } };
}

function readAll(reader: net.Socket, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    reader.on('data', (d: Buffer) => {
      parts.push(d);
      got += d.length;
      if (got >= bytes) resolve(Buffer.concat(parts));
    });
    reader.on('error', reject);
    reader.resume();
    setTimeout(() => reject(new Error(`only ${got} of ${bytes} bytes within 10 s`)), 10_000).unref();
  });
}

test('a plain TCP socket is written directly, in order with the stream\'s own writes', async () => {
  const { writer, reader, close } = await pair();
  try {
    assert.ok(directWritable(writer));
    const done = () => assert.unreachable('nothing was queued');
    assert.is(writeDirect(writer, Buffer.from('a'), done), DirectWrite.Sent);
    writer.write(Buffer.from('b'));
    // The stream's write went out at once too: nothing held, so direct again.
    assert.is(writeDirect(writer, Buffer.from('c'), done), DirectWrite.Sent);
    writer.cork();
    assert.is(writeDirect(writer, Buffer.from('x'), done), DirectWrite.Stream, 'corked: the stream holds what follows');
    writer.write(Buffer.from('d'));
    writer.uncork();
    assert.is((await readAll(reader, 4)).toString(), 'abcd');
  } finally {
    close();
  }
});

test('what the kernel does not take is queued; later writes, the stream\'s included, follow it', async () => {
  const { writer, reader, close } = await pair();
  try {
    const chunk = Buffer.alloc(256 * 1024);
    let queued: Buffer | null = null;
    let written = 0;
    let completed = -1;
    // The peer does not read: the socket buffers fill, then a direct write is queued in libuv.
    for (let i = 0; i < 400 && queued === null; i++) {
      const bytes = Buffer.alloc(chunk.length, i % 251);
      const result = writeDirect(writer, bytes, (status) => (completed = status));
      assert.is.not(result, DirectWrite.Stream, 'nothing else holds bytes');
      written += bytes.length;
      if (result === DirectWrite.Queued) queued = bytes;
    }
    assert.ok(queued !== null, 'the kernel stopped taking bytes');
    assert.is(writeDirect(writer, Buffer.from('z'), () => assert.unreachable()), DirectWrite.Stream, 'libuv holds bytes: the stream writes');
    writer.write(Buffer.from('end'));
    const all = await readAll(reader, written + 3);
    assert.is(all.length, written + 3);
    for (let i = 0, at = 0; at < written; i++, at += chunk.length) {
      assert.is(all[at], i % 251, `chunk ${i} in its place`);
    }
    assert.is(all.subarray(written).toString(), 'end');
    assert.is(completed, 0, 'the queued write reported its completion');
  } finally {
    close();
  }
});

test.run();
