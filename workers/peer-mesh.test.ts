import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger } from '../telemetry/log.js';
import type { Invalidation } from '../proxy/result-cache.js';
import type { StreamUp } from './messages.js';
import { PeerMesh, type PeerHandler } from './peer-mesh.js';

const log = createLogger('silent');
const INV: Invalidation = { scope: 'tags', tags: ['t:db.public.kv'], tables: ['kv'], catalog: null };
const FENCES: StreamUp[] = [{ protocol: 'postgres', target: 'app', up: true }];

interface Peer {
  mesh: PeerMesh;
  applied: Invalidation[];
  mirrored: StreamUp[][];
  lost: number[];
  path: string;
}

let dir: string;
const meshes: PeerMesh[] = [];

test.before.each(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'peer-mesh-'));
});

test.after.each(() => {
  for (const m of meshes.splice(0)) m.close();
  rmSync(dir, { recursive: true, force: true });
});

async function peer(slot: number, fences: StreamUp[] | null = null): Promise<Peer> {
  const p: Peer = { mesh: null!, applied: [], mirrored: [], lost: [], path: path.join(dir, `${slot}.sock`) };
  const handler: PeerHandler = {
    apply: (_protocol, invalidation) => p.applied.push(invalidation),
    mirror: (f) => p.mirrored.push(f),
    currentFences: () => fences,
    peerLost: (s) => p.lost.push(s),
  };
  p.mesh = new PeerMesh(slot, handler, log);
  meshes.push(p.mesh);
  await p.mesh.listen(p.path);
  return p;
}

function gate(): { hold(): void; release(): void; held: number; released: number } {
  const g = { held: 0, released: 0, hold: () => { g.held++; }, release: () => { g.released++; } };
  return g;
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), what);
}

test('alone, a publish holds nothing', async () => {
  const a = await peer(1);
  const g = gate();
  a.mesh.publish('postgres', INV, null, g);
  assert.is(g.held, 0);
});

test('a joining worker is welcomed with the follower\'s fences; invalidations go both ways and release the gate once applied', async () => {
  const follower = await peer(1, FENCES);
  const other = await peer(2);
  await other.mesh.join([{ slot: 1, pid: process.pid, path: follower.path }]);
  assert.equal(other.mirrored, [FENCES], 'the welcome carries the follower\'s stream states');
  assert.is(follower.mesh.size, 1);
  assert.is(other.mesh.size, 1);
  const g = gate();
  follower.mesh.publish('postgres', INV, FENCES, g);
  assert.is(g.held, 1);
  assert.is(g.released, 0, 'held until the other applied it');
  await until('released', () => g.released === 1);
  assert.equal(other.applied, [INV]);
  assert.equal(other.mirrored, [FENCES, FENCES], 'fences sent with an invalidation are mirrored');
  const back = gate();
  other.mesh.publish('mysql', INV, null, back);
  await until('released the other way', () => back.released === 1);
  assert.equal(follower.applied, [INV]);
});

test('a worker that goes away settles what waited for it, and its slot is reported lost', async () => {
  const a = await peer(1);
  const b = await peer(2);
  await b.mesh.join([{ slot: 1, pid: process.pid, path: a.path }]);
  // b's answers never come: its end of the link is closed under a pending invalidation.
  const g = gate();
  a.mesh.publish('postgres', INV, null, g);
  b.mesh.close();
  await until('released once b is gone', () => g.released === 1);
  assert.equal(a.lost, [2]);
  assert.is(a.mesh.size, 0);
});

test('a peer that is gone before the join completes does not hold the join', async () => {
  const b = await peer(2);
  await b.mesh.join([{ slot: 1, pid: process.pid, path: path.join(dir, 'nobody.sock') }]);
  assert.is(b.mesh.size, 0);
});

test.run();
