import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { findPgpool, pgpoolConfig, startPgpool } from './pgpool.js';
import { canConnect } from './relay-process.js';

const UPSTREAM = { host: '127.0.0.1', port: 5432 };

test('the config has the query cache on in its own directory, one backend, nothing that fails over', () => {
  const conf = pgpoolConfig({ port: 15433, dir: '/tmp/x', upstream: UPSTREAM, clients: 50 });
  for (const line of [
    "backend_clustering_mode = 'raw'", "backend_hostname0 = '127.0.0.1'", 'backend_port0 = 5432', 'port = 15433',
    'memory_cache_enabled = on', "memqcache_method = 'shmem'", "memqcache_oiddir = '/tmp/x/oiddir'",
    "pid_file_name = '/tmp/x/pgpool.pid'", 'load_balance_mode = off', 'num_init_children = 58',
  ]) assert.ok(conf.split('\n').includes(line), line);
});

// pgpool-II is optional (`apt-get install -y pgpool2`); where it is not installed the bench skips it too.
const binary = findPgpool();
(binary ? test : test.skip)('a started pgpool answers a repeated SELECT from its query cache and is gone after stop', async () => {
  const pool = await startPgpool(binary!, UPSTREAM, 2);
  try {
    const client = new pg.Client({ host: '127.0.0.1', port: pool.port, user: 'postgres', database: 'postgres' });
    await client.connect();
    try {
      for (let i = 0; i < 3; i++) assert.equal((await client.query('SELECT 41 + 1 AS answer')).rows, [{ answer: 42 }]);
      const stats = (await client.query('SHOW pool_cache')).rows[0] as { num_cache_hits: string };
      assert.ok(Number(stats.num_cache_hits) >= 2, `cache hits ${stats.num_cache_hits}`);
    } finally {
      await client.end();
    }
    assert.ok((await pool.cpuSeconds())! > 0);
  } finally {
    await pool.stop();
  }
  assert.not.ok(await canConnect(pool.port));
  assert.is(await pool.cpuSeconds(), undefined);
});

test.run();
