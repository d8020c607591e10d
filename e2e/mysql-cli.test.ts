// The mariadb command-line client through the proxy, compared with the same client talking to
// MariaDB directly: `-e` statements, a script on stdin (with `use`, which the client sends as
// COM_INIT_DB, errors under --force, multiple result sets), --compress and logins that need an auth
// switch.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { DIRECT_MYSQL, directMySql, uniqueName } from './support/mysql-direct.js';
import { DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

let proxy: RunningProxy;
const db = uniqueName('sc_cli');

test.before(async () => {
  proxy = await startProxy({ pgUpstream: null, mysqlUpstream: DIRECT_MYSQL_URL });
  await directMySql(`CREATE DATABASE ${db}`);
});

test.after(async () => {
  await directMySql(`DROP DATABASE IF EXISTS ${db}`).catch(() => undefined);
  await proxy?.stop();
});

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the mariadb client against `port` over TCP (never the unix socket; MYSQL_HOST is ignored). */
function mariadb(port: number, args: string[], stdin = ''): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.MYSQL_HOST;
    delete env.MYSQL_PWD;
    const child = spawn('mariadb', ['--no-defaults', '--protocol=TCP', '-h', '127.0.0.1', '-P', String(port), ...args], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    // With -e the client may exit without reading its input; a closed pipe is not an error then.
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin);
  });
}

/** Runs the same client invocation directly and through the proxy; asserts equal output and exit code. */
async function sameBothWays(args: string[], stdin = ''): Promise<CliResult> {
  const direct = await mariadb(DIRECT_MYSQL.port, args, stdin);
  const proxied = await mariadb(proxy.mysqlPort, args, stdin);
  assert.is(proxied.stdout, direct.stdout);
  assert.is(proxied.stderr, direct.stderr);
  assert.is(proxied.code, direct.code);
  return proxied;
}

test('-e with several statements, in batch and table format', async () => {
  const sql = `SELECT 1 AS one, 'two' AS two, NULL AS nothing; SELECT table_name FROM information_schema.tables WHERE table_schema = 'mysql' ORDER BY 1 LIMIT 5; SELECT @@autocommit`;
  const batch = await sameBothWays(['-u', 'root', '-e', sql, 'test']);
  assert.match(batch.stdout, /one\ttwo\tnothing\n1\ttwo\tNULL/);
  await sameBothWays(['-u', 'root', '--table', '-e', sql, 'test']);
});

test('a script on stdin: DDL, writes, `use` (COM_INIT_DB), a procedure with two result sets, an error under --force', async () => {
  const script = `
use ${db}
CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20), price DECIMAL(8,2));
INSERT INTO items VALUES (1, 'apple', 0.5), (2, 'pear', NULL), (3, 'plum', 1.25);
SELECT * FROM items ORDER BY id;
SELECT DATABASE();
DELIMITER //
CREATE PROCEDURE two() BEGIN SELECT COUNT(*) AS n FROM items; SELECT MAX(price) AS top FROM items; END//
DELIMITER ;
CALL two();
SELECT * FROM no_such_table;
BEGIN;
UPDATE items SET price = price * 2 WHERE id = 1;
COMMIT;
SELECT id, price FROM items WHERE id = 1;
use mysql
SELECT DATABASE();
DROP TABLE ${db}.items;
DROP PROCEDURE ${db}.two;
`;
  const result = await sameBothWays(['-u', 'root', '--force', '--table'], script);
  assert.match(result.stdout, /apple/);
  assert.match(result.stderr, /no_such_table/);
  assert.match(result.stdout, /\| mysql +\|/);
});

test('--compress: the client speaks the compressed protocol to sidecache, with the same output', async () => {
  // `status` prints "Protocol: Compressed" only when the client's connection is compressed.
  const sql = `status; SELECT REPEAT('ab', 200) AS r, 1 AS one; SELECT table_name FROM information_schema.tables WHERE table_schema = 'mysql' ORDER BY 1 LIMIT 3`;
  const direct = await mariadb(DIRECT_MYSQL.port, ['-u', 'root', '--compress', '-e', sql, 'test']);
  const proxied = await mariadb(proxy.mysqlPort, ['-u', 'root', '--compress', '-e', sql, 'test']);
  assert.is(proxied.code, 0, proxied.stderr);
  assert.match(proxied.stdout, /Protocol:\s+Compressed/);
  // status names the connection and its counters, which differ; the results after it must not.
  const results = (out: string): string => out.slice(out.lastIndexOf('--------------'));
  assert.is(results(proxied.stdout), results(direct.stdout));
  assert.match(proxied.stdout, /(ab){200}\t1/);
});

test('logins: a wrong password gives the server\'s error; a native-password user logs in', async () => {
  const user = uniqueName('sc_cli_user');
  await directMySql(`CREATE USER '${user}'@'%' IDENTIFIED BY 'secret-${user}'`, `GRANT SELECT ON ${db}.* TO '${user}'@'%'`);
  try {
    const wrong = await sameBothWays(['-u', user, '-pnot-it', '-e', 'SELECT 1']);
    assert.match(wrong.stderr, /ERROR 1045 \(28000\)/);
    const ok = await sameBothWays(['-u', user, `-psecret-${user}`, '-e', 'SELECT CURRENT_USER()']);
    assert.match(ok.stdout, new RegExp(`${user}@%`));
  } finally {
    await directMySql(`DROP USER IF EXISTS '${user}'@'%'`);
  }
});

test('ed25519: the server switches the client to another auth plugin (AuthSwitchRequest) through the proxy', async () => {
  const active = await directMySql(`SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519'`) as unknown[];
  const installedHere = active.length === 0;
  if (installedHere) await directMySql(`INSTALL SONAME 'auth_ed25519'`);
  const user = uniqueName('sc_ed');
  await directMySql(`CREATE USER '${user}'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('edpw-${user}')`);
  try {
    const ok = await sameBothWays(['-u', user, `-pedpw-${user}`, '-e', 'SELECT CURRENT_USER() AS who']);
    assert.match(ok.stdout, new RegExp(`${user}@%`));
    const wrong = await sameBothWays(['-u', user, '-pnope', '-e', 'SELECT 1']);
    assert.match(wrong.stderr, /ERROR 1045/);
  } finally {
    await directMySql(`DROP USER IF EXISTS '${user}'@'%'`);
    if (installedHere) await directMySql(`UNINSTALL SONAME 'auth_ed25519'`).catch(() => undefined);
  }
});

test.run();
