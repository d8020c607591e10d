import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BenchDatabase } from './bench-database.js';
import { runPgbench } from './pgbench.js';
import { WORKLOADS, writeWorkloadFiles } from './workloads.js';

test('every workload runs under pgbench on a freshly initialised database', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'sidecache-workloads-'));
  const db = await BenchDatabase.create({ host: '127.0.0.1', port: 5432, user: 'postgres' }, `sidecache_workloads_${process.pid}`, 1);
  try {
    const files = await writeWorkloadFiles(dir);
    for (const workload of WORKLOADS) {
      const run = await runPgbench({ target: db.target, args: [...workload.args(files), '-n', '-c', '2', '-t', '20'], timeoutMs: 30_000 });
      assert.is(run.transactions, 40, workload.key);
    }
  } finally {
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
