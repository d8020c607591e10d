// psql through the proxy prints exactly what it prints against PostgreSQL: the same stdout, stderr,
// exit code and \copy files. psql uses libpq's default sslmode=prefer, so every run also starts with
// an SSLRequest that the proxy must refuse with 'N'.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DIRECT_PG, direct, uniqueName } from './support/pg-direct.js';
import { startProxy, type RunningProxy } from './support/sidecache.js';

let proxy: RunningProxy;
let workDir: string;
const dropAfter: string[] = [];

interface PsqlRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs psql (no psqlrc, libpq settings only from here) against `port` in directory `cwd`. */
function psql(port: number, args: string[], cwd: string, sslmode = 'prefer'): Promise<PsqlRun> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH, LANG: 'C.UTF-8', PGHOST: DIRECT_PG.host, PGPORT: String(port), PGUSER: DIRECT_PG.user,
    PGDATABASE: DIRECT_PG.database, PGSSLMODE: sslmode, PGAPPNAME: 'sc_e2e_psql', PGCONNECT_TIMEOUT: '5',
    PGTZ: 'UTC', PAGER: '', PSQL_PAGER: '',
  };
  return new Promise((resolve, reject) => {
    execFile('psql', ['-X', ...args], { cwd, env, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(err);
        return;
      }
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}

/** A fresh directory for one psql run, so \copy files of the two runs can be compared. */
async function runDir(name: string): Promise<string> {
  const dir = path.join(workDir, name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir);
  return dir;
}

test.before(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'sc-e2e-psql-'));
  proxy = await startProxy();
});

test.after(async () => {
  await proxy?.stop();
  for (const table of dropAfter) await direct(`DROP TABLE IF EXISTS ${table}`);
  await rm(workDir, { recursive: true, force: true });
});

test('psql -c with several commands, a notice and an error: identical output', async () => {
  const table = uniqueName('sc_e2e_psql_c');
  dropAfter.push(table);
  await direct(`CREATE TABLE ${table} (id int PRIMARY KEY, name text NOT NULL DEFAULT 'n', at date)`);
  const args = [
    '-c', `SELECT 1 AS one, 'two' AS two, NULL::text AS nothing, 'ünïcødé' AS accented`,
    '-c', `INSERT INTO ${table} (id, at) VALUES (1, '2024-02-29'), (2, NULL)`,
    '-c', `SELECT * FROM ${table} ORDER BY id`,
    '-c', `\\d ${table}`,
    '-c', `DO $$ BEGIN RAISE NOTICE 'hello from %', 'plpgsql'; END $$`,
    '-c', 'SELECT 1/0',
    '-c', `SELECT count(*) FROM ${table}`,
    '-c', `DELETE FROM ${table}`,
  ];
  const viaServer = await psql(DIRECT_PG.port, args, workDir);
  assert.match(viaServer.stdout, /INSERT 0 2/);
  assert.match(viaServer.stderr, /NOTICE: {2}hello from plpgsql/);
  assert.match(viaServer.stderr, /ERROR: {2}division by zero/);
  await direct(`DELETE FROM ${table}`);
  assert.equal(await psql(proxy.pgPort, args, workDir), viaServer);
});

test('a script with \\set ON_ERROR_STOP 1 and \\copy to and from files: identical output and files', async () => {
  const a = uniqueName('sc_e2e_psql_a');
  const b = uniqueName('sc_e2e_psql_b');
  dropAfter.push(a, b);
  const script = [
    '\\set ON_ERROR_STOP 1',
    `\\pset null '<null>'`,
    `CREATE TABLE ${a} (id int PRIMARY KEY, name text, amount numeric(8,2));`,
    `INSERT INTO ${a} SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'name ' || g || E'\\t✓' END, g * 1.5`,
    '  FROM generate_series(1, 500) g;',
    `\\copy ${a} TO 'out.tsv'`,
    `\\copy ${a} (id, name, amount) TO 'out.csv' WITH (FORMAT csv, HEADER)`,
    `CREATE TABLE ${b} (LIKE ${a} INCLUDING ALL);`,
    `\\copy ${b} FROM 'out.csv' WITH (FORMAT csv, HEADER)`,
    `\\copy ${b} FROM 'extra.tsv'`,
    `SELECT count(*), sum(amount), count(name) FROM ${b};`,
    `SELECT * FROM ${b} WHERE id <= 3 OR id > 500 ORDER BY id;`,
    '\\echo before the error',
    'SELECT * FROM sc_e2e_psql_no_such_table;',
    '\\echo never printed',
    `DROP TABLE ${b};`,
  ].join('\n') + '\n';

  const run = async (port: number, name: string): Promise<{ run: PsqlRun; files: string[] }> => {
    const dir = await runDir(name);
    await writeFile(path.join(dir, 'script.sql'), script);
    await writeFile(path.join(dir, 'extra.tsv'), '501\tfrom a file\t1.25\n502\t\\N\t2.50\n');
    const result = await psql(port, ['-f', 'script.sql'], dir);
    const files = await Promise.all(['out.tsv', 'out.csv'].map((f) => readFile(path.join(dir, f), 'utf8')));
    await direct(`DROP TABLE IF EXISTS ${a}, ${b}`);
    return { run: result, files };
  };
  const viaServer = await run(DIRECT_PG.port, 'direct');
  assert.is(viaServer.run.code, 3, 'ON_ERROR_STOP makes psql exit with 3');
  assert.match(viaServer.run.stdout, /before the error/);
  assert.not.match(viaServer.run.stdout, /never printed/);
  assert.match(viaServer.run.stdout, /COPY 2/);
  assert.match(viaServer.run.stdout, / 502 \| <null> /);
  assert.is(viaServer.files[0]!.split('\n').length, 501);
  assert.equal(await run(proxy.pgPort, 'proxy'), viaServer);
});

test('sslmode=require fails the same way as against the server (no TLS on either)', async () => {
  const args = ['-c', 'SELECT 1'];
  const viaServer = await psql(DIRECT_PG.port, args, workDir, 'require');
  assert.is(viaServer.code, 2);
  assert.match(viaServer.stderr, /server does not support SSL/);
  const viaProxy = await psql(proxy.pgPort, args, workDir, 'require');
  assert.is(viaProxy.code, viaServer.code);
  // The message names the port psql dialled, the one thing that must differ.
  assert.is(viaProxy.stderr.replace(`port ${proxy.pgPort}`, 'port PORT'),
    viaServer.stderr.replace(`port ${DIRECT_PG.port}`, 'port PORT'));
});

test.run();
