import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { BackendScanner } from './backend-scanner.js';
import { typedMessage as msg } from './test-messages.js';

const Z = 'Z'.charCodeAt(0);
const S = 'S'.charCodeAt(0);

function scan(chunks: Buffer[]): { seen: string[]; boundaryAfter: boolean[]; starts: string[] } {
  const scanner = new BackendScanner();
  const seen: string[] = [];
  const starts: string[] = [];
  const boundaryAfter: boolean[] = [];
  chunks.forEach((c, i) => {
    scanner.feed(c, {
      begin: (code, pos) => {
        starts.push(`${String.fromCharCode(code)}@${i}:${pos}`);
        return code === Z || code === S;
      },
      message: (code, buf, start, end) => seen.push(`${String.fromCharCode(code)}:${buf.toString('latin1', start, end)}`),
    });
    boundaryAfter.push(scanner.atBoundary);
  });
  return { seen, boundaryAfter, starts };
}

test('watched messages are reported with their bodies, others skipped', () => {
  const stream = Buffer.concat([msg('T', 'rowdesc'), msg('D', Buffer.alloc(1000, 1)), msg('S', 'TimeZone\0UTC\0'), msg('C', 'SELECT 1\0'), msg('Z', 'I')]);
  const { seen, boundaryAfter, starts } = scan([stream]);
  assert.equal(seen, ['S:TimeZone\0UTC\0', 'Z:I']);
  assert.equal(boundaryAfter, [true]);
  assert.equal(starts, ['T@0:0', 'D@0:12', 'S@0:1017', 'C@0:1035', 'Z@0:1049']);
});

test('a huge unwatched DataRow split across chunks is skipped and boundaries are tracked', () => {
  const big = msg('D', Buffer.alloc(100_000, 2));
  const stream = Buffer.concat([big, msg('Z', 'T')]);
  const { seen, boundaryAfter, starts } = scan([stream.subarray(0, 3), stream.subarray(3, 50_000), stream.subarray(50_000)]);
  assert.equal(seen, ['Z:T']);
  assert.equal(starts, ['D@0:0', `Z@2:${big.length - 50_000}`]);
  assert.equal(boundaryAfter, [false, false, true]);
});

test('property: any split reports the same watched messages', () => {
  const parts = [msg('S', 'a\0b\0'), msg('D', Buffer.alloc(77, 3)), msg('Z', 'E'), msg('N', 'notice'), msg('Z', 'I')];
  const stream = Buffer.concat(parts);
  const expected = scan([stream]).seen;
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 8 }), (rawCuts) => {
      const cuts = [...new Set(rawCuts)].sort((a, b) => a - b);
      const chunks: Buffer[] = [];
      let prev = 0;
      for (const c of [...cuts, stream.length]) {
        chunks.push(stream.subarray(prev, c));
        prev = c;
      }
      const { seen, boundaryAfter } = scan(chunks);
      return JSON.stringify(seen) === JSON.stringify(expected) && boundaryAfter[boundaryAfter.length - 1] === true;
    }),
  );
});

test.run();
