import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseSysbenchOutput, stoppedOnDeadlock, SysbenchError } from './mysql-sysbench.js';

const report = (ignored = 0, reconnects = 0): string => `sysbench 1.0.20 (using system LuaJIT 2.1.0-beta3)

Threads started!

SQL statistics:
    queries performed:
        read:                            181856
        write:                           0
        other:                           0
        total:                           181856
    transactions:                        9090   (3030.00 per sec.)
    queries:                             181856 (60531.67 per sec.)
    ignored errors:                      ${ignored}      (0.00 per sec.)
    reconnects:                          ${reconnects}      (0.00 per sec.)

General statistics:
    total time:                          3.0025s
    total number of events:              9090

Latency (ms):
         min:                                    0.02
         avg:                                    0.13
         max:                                   18.49
         95th percentile:                        0.26
         sum:                                23871.30
`;

test('reads transactions, queries, their rates and latency from a sysbench 1.0 report', () => {
  const s = parseSysbenchOutput(report());
  assert.equal(s, {
    transactions: 9090, tps: 3030, queries: 181856, qps: 60531.67,
    ignoredErrors: 0, reconnects: 0, latencyAvgMs: 0.13, latencyP95Ms: 0.26,
  });
});

test('a run that ignored errors or reconnected is an error, not a measurement', () => {
  assert.throws(() => parseSysbenchOutput(report(29)), (e: unknown) => e instanceof SysbenchError && /ignored 29 errors/.test(e.message));
  assert.throws(() => parseSysbenchOutput(report(0, 3)), (e: unknown) => e instanceof SysbenchError && /reconnected 3/.test(e.message));
});

test('a FATAL line (a thread stopped on an SQL error) fails the run even when a summary follows', () => {
  const output = `FATAL: mysql_stmt_execute() returned error 1213 (Deadlock found when trying to get lock)\n${report()}`;
  assert.throws(() => parseSysbenchOutput(output), (e: unknown) => e instanceof SysbenchError && /Deadlock/.test(e.message));
});

test('output without a summary is an error carrying the output', () => {
  assert.throws(() => parseSysbenchOutput('sysbench 1.0.20\nCan not connect to MySQL server'),
    (e: unknown) => e instanceof SysbenchError && /Can not connect/.test(e.message));
});

test('a run stopped by a deadlock is told apart from other SQL errors', () => {
  const deadlock = "FATAL: mysql_stmt_execute() returned error 1213 (Deadlock found when trying to get lock; try restarting transaction) for query 'DELETE FROM sbtest1 WHERE id=?'";
  const other = "FATAL: mysql_stmt_execute() returned error 1062 (Duplicate entry '5' for key 'PRIMARY') for query 'INSERT INTO sbtest1 ...'";
  assert.ok(stoppedOnDeadlock(new SysbenchError('sysbench oltp_read_write exited with code 1', deadlock)));
  assert.not.ok(stoppedOnDeadlock(new SysbenchError('sysbench oltp_read_write exited with code 1', other)));
  assert.not.ok(stoppedOnDeadlock(new Error(deadlock)));
});

test.run();
