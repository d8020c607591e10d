// Micro-benchmark of MySQL statement classification: `node dist/invalidation/mysql-classifier.bench.js`.
// Prints µs per shape computation, per full analysis (tokenize + walk) and per cached lookup, the
// last both with the very same string object (hash already computed) and with a fresh copy of the
// text per call, as a proxy gets when it decodes each packet (hashing the text is part of a hit).
import { analyzeMysql } from './mysql-analysis.js';
import { MysqlClassifier } from './mysql-classifier.js';
import { mysqlStatementShape } from './mysql-shape.js';

const STATEMENTS: Record<string, string> = {
  'sysbench point': 'SELECT c FROM sbtest1 WHERE id=4217',
  'sysbench range': 'SELECT DISTINCT c FROM sbtest3 WHERE id BETWEEN 5001 AND 5100 ORDER BY c',
  'sysbench update': "UPDATE sbtest2 SET c='3423-2342-1231-5634' WHERE id=998",
  'ORM join': 'SELECT `users`.`id`, `users`.`email`, `orders`.`total` FROM `users` INNER JOIN `orders` ON '
    + '`orders`.`user_id` = `users`.`id` WHERE `users`.`id` = ? AND `orders`.`status` IN (?, ?) '
    + 'ORDER BY `orders`.`created_at` DESC LIMIT 20',
  'CTE + subqueries': 'WITH recent AS (SELECT * FROM events WHERE ts > ?), top AS (SELECT user_id, count(*) AS n '
    + 'FROM recent GROUP BY user_id ORDER BY n DESC LIMIT 10) SELECT u.name, t.n, (SELECT max(ts) FROM recent r '
    + 'WHERE r.user_id = u.id) FROM top t JOIN users u ON u.id = t.user_id WHERE NOT EXISTS (SELECT 1 FROM bans b '
    + 'WHERE b.user_id = u.id)',
};

const ROUNDS = 3;

/**
 * Average µs of `iterations` calls of run after `warmup` calls; the best of ROUNDS rounds, since
 * this 2-core machine is shared and a round can be disturbed.
 */
function microseconds(iterations: number, run: () => void, warmup = Math.min(iterations, 1000)): number {
  for (let i = 0; i < warmup; i++) run();
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) run();
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1000 / iterations);
  }
  return best;
}

const classifier = new MysqlClassifier();
const COPIES = 1024;
console.log('statement'.padEnd(18), 'shape µs'.padStart(9), 'analyze µs'.padStart(11),
  'hit µs'.padStart(8), 'hit, fresh string µs'.padStart(21));
for (const [label, text] of Object.entries(STATEMENTS)) {
  const shape = microseconds(100_000, () => mysqlStatementShape(text));
  const analyze = microseconds(10_000, () => analyzeMysql(text));
  classifier.classify(text);
  const hit = microseconds(1_000_000, () => classifier.classify(text));
  // one copy per call, warm-up included: V8 keeps a string's hash once computed
  const copies = Array.from({ length: (ROUNDS + 1) * COPIES }, () => Buffer.from(text).toString('utf8'));
  let next = 0;
  const freshHit = microseconds(COPIES, () => classifier.classify(copies[next++]!), COPIES);
  console.log(label.padEnd(18), shape.toFixed(2).padStart(9), analyze.toFixed(1).padStart(11),
    hit.toFixed(3).padStart(8), freshHit.toFixed(3).padStart(21));
}
console.log(classifier.stats());
