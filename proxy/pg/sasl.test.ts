import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AuthRewriter, gs2Flag, withoutChannelBinding } from './sasl.js';

function authSasl(...mechanisms: string[]): Buffer {
  const body = Buffer.concat([...mechanisms.map((m) => Buffer.from(m + '\0')), Buffer.alloc(1)]);
  const out = Buffer.alloc(9 + body.length);
  out[0] = 0x52;
  out.writeInt32BE(8 + body.length, 1);
  out.writeInt32BE(10, 5);
  body.copy(out, 9);
  return out;
}

function message(code: string, payload: string): Buffer {
  const body = Buffer.from(payload);
  const out = Buffer.alloc(5 + body.length);
  out[0] = code.charCodeAt(0);
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

test('AuthenticationSASL loses its -PLUS mechanisms and keeps a valid length', () => {
  const out = withoutChannelBinding(authSasl('SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'));
  assert.ok(out.equals(authSasl('SCRAM-SHA-256')));
  assert.ok(withoutChannelBinding(authSasl('SCRAM-SHA-256')).equals(authSasl('SCRAM-SHA-256')));
});

test('the rewriter gives the same bytes however the server\'s chunks are cut, and remembers that it hid -PLUS once', () => {
  const before = message('N', 'a notice');
  const stream = Buffer.concat([before, authSasl('SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'), message('R', '\0\0\0\x0bsaslcontinue')]);
  const expected = Buffer.concat([before, authSasl('SCRAM-SHA-256'), message('R', '\0\0\0\x0bsaslcontinue')]);
  for (let a = 0; a <= stream.length; a++) {
    for (const b of [a, Math.min(stream.length, a + 3), stream.length]) {
      const r = new AuthRewriter();
      const out = Buffer.concat([r.feed(stream.subarray(0, a)), r.feed(stream.subarray(a, b)), r.feed(stream.subarray(b))]);
      assert.ok(out.equals(expected), `cut at ${a}/${b}`);
      assert.ok(r.takeHidden());
      assert.not.ok(r.takeHidden(), 'once');
    }
  }
});

test('the rewriter holds an incomplete message as a copy: the caller\'s buffer is reused', () => {
  const whole = authSasl('SCRAM-SHA-256');
  const chunk = Buffer.from(whole.subarray(0, 7));
  const r = new AuthRewriter();
  assert.is(r.feed(chunk).length, 0);
  chunk.fill(0);
  assert.ok(r.feed(whole.subarray(7)).equals(whole));
  assert.not.ok(r.takeHidden(), 'nothing was hidden');
});

test('the GS2 flag of a SASLInitialResponse', () => {
  const initial = (gs2: string): Buffer => {
    const data = Buffer.from(`${gs2},,n=,r=abc`);
    const len = Buffer.alloc(4);
    len.writeInt32BE(data.length);
    const body = Buffer.concat([Buffer.from('SCRAM-SHA-256\0'), len, data]);
    const out = Buffer.alloc(5 + body.length);
    out[0] = 0x70;
    out.writeInt32BE(4 + body.length, 1);
    body.copy(out, 5);
    return out;
  };
  assert.is(gs2Flag(initial('y')), 'y');
  assert.is(gs2Flag(initial('n')), 'n');
  assert.is(gs2Flag(message('p', 'no-nul')), null);
});

test.run();
