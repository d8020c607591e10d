// test-timeout: 120
// A new MySQL session adopts the context an earlier session with the same login was probed into,
// so a short-lived connection's first read can be a hit. When the login's defaults change under it
// (SET GLOBAL time_zone here; a new default role or init_connect alike), the session's own
// identity check reads its context too: a changed one is probed again instead of answering from
// entries computed under the old defaults. On a private MariaDB: SET GLOBAL would reach every
// other test's sessions on the shared server.
import { test } from 'uvu';
import { connectMySql } from './support/mysql-direct.js';
import { measureMySql } from './support/mysql-metrics.js';
import { startMariadb, type MariadbServer } from './support/mariadb-server.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';
import { loginDefaultsChange } from './support/login-defaults.js';

let server: MariadbServer;
let proxy: RunningProxy;
const SQL = 'SELECT CAST(FROM_UNIXTIME(ts) AS CHAR) AS t FROM t WHERE id = 1';

/** The read on a new connection to `port`, as a short-lived client makes it. */
async function readOnce(port: number): Promise<string> {
  const c = await connectMySql(port, { database: 'app' });
  try {
    const [rows] = await c.query(SQL);
    return (rows as { t: string }[])[0]!.t;
  } finally {
    await c.end();
  }
}

test.before(async () => {
  server = await startMariadb({ binlog: false });
  await server.query("SET GLOBAL time_zone = '+00:00'; CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, ts INT); INSERT INTO app.t VALUES (1, 0)");
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: server.url });
});

test.after(async () => {
  await proxy?.stop();
  await server?.stop();
});

test('a login\'s default time_zone changed by SET GLOBAL: new sessions get the new answer, then hits again', () => loginDefaultsChange({
  throughProxy: async () => {
    const { result, delta } = await measureMySql(proxy.adminPort, () => readOnce(proxy.mysqlPort));
    return { result, hits: delta.hits };
  },
  direct: () => readOnce(server.port),
  change: async () => {
    await server.query("SET GLOBAL time_zone = '+05:00'");
  },
  before: '1970-01-01 00:00:00',
  after: '1970-01-01 05:00:00',
}));

test.run();
