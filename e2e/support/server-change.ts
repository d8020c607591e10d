// The server-change scenarios both protocols must pass (pg-cache-restart, mysql-cache-restart): a
// new session on the same server is answered from the cache after its identity check; a restart
// while no session was open, with a write made straight on the server, is seen by the next read;
// a second server at the same address is not taken for the first. Each test file supplies its
// private server and its client through a ServerChangeSide and registers the tests in its suite,
// in the order it wants among its own.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RunningProxy } from './sidecache.js';

/** A session through the proxy. */
export interface Reader {
  /** Reads `sql`: its rows and whether the cache answered. */
  read(sql: string): Promise<{ rows: unknown[]; hit: boolean }>;
}

/** A table `t (id, v)` holding (1, 10) and (2, 20) on the server, read through the proxy. */
export interface ServerChangeSide {
  /** 'pg' or 'mysql', as sidecache's log lines begin. */
  readonly logName: string;
  proxy(): RunningProxy;
  /** A new session through the proxy, ended by closeAll. */
  connect(): Promise<Reader>;
  /** Ends every session and waits until sidecache holds no upstream connection. */
  closeAll(): Promise<void>;
  /** A statement straight on the server, behind sidecache's back. */
  direct(sql: string): Promise<void>;
  restart(): Promise<void>;
  /** Stops the server and starts another at its address, its `t` holding (1, 99). */
  replace(): Promise<void>;
}

export function serverChangeTests(side: ServerChangeSide): { sameServer(): void; restart(): void; failover(): void } {
  return {
    sameServer: () => test('a new session on the same server is answered from the cache after its identity check', async () => {
      const sql = 'SELECT v FROM t WHERE id = 2';
      const a = await side.connect();
      await a.read(sql);
      assert.equal(await a.read(sql), { rows: [{ v: 20 }], hit: true });
      await side.closeAll();
      assert.equal(await (await side.connect()).read(sql), { rows: [{ v: 20 }], hit: true }, 'the first read of a new session');
      assert.not.match(side.proxy().output(), /upstream server changed/);
    }),

    restart: () => test('a restart while no session was open, with a write made straight on the server: the next read sees it', async () => {
      const sql = 'SELECT v FROM t WHERE id = 1';
      const a = await side.connect();
      await a.read(sql);
      assert.equal(await a.read(sql), { rows: [{ v: 10 }], hit: true }, 'the read is cached');
      await side.closeAll();
      await side.direct('UPDATE t SET v = 11 WHERE id = 1');
      await side.restart();
      const b = await side.connect();
      assert.equal(await b.read(sql), { rows: [{ v: 11 }], hit: false }, 'the restarted server answers');
      const logged = new RegExp(`${side.logName}: the upstream server changed \\(restart, failover or restore\\); cached results dropped`);
      assert.match(side.proxy().output(), logged);
      assert.equal(await b.read(sql), { rows: [{ v: 11 }], hit: true }, 'and the cache works again');
      assert.equal(await (await side.connect()).read(sql), { rows: [{ v: 11 }], hit: true }, 'for new sessions too');
    }),

    failover: () => test('a failover to another server at the same address: its data, not the first server\'s entries', async () => {
      const sql = 'SELECT v AS failover FROM t WHERE id = 1';
      const a = await side.connect();
      await a.read(sql);
      assert.equal(await a.read(sql), { rows: [{ failover: 11 }], hit: true });
      await side.closeAll();
      await side.replace();
      assert.equal(await (await side.connect()).read(sql), { rows: [{ failover: 99 }], hit: false });
    }),
  };
}
