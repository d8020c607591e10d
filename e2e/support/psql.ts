// Runs the real psql (libpq) with a conninfo string, for tests of what libpq itself negotiates
// (sslmode, channel_binding, client_encoding): its exit code and both outputs, never a throw for a
// failed login.
import { execFile, spawn } from 'node:child_process';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const ENV = { PATH: process.env.PATH, LANG: 'C.UTF-8', PGCONNECT_TIMEOUT: '10' };
const TIMEOUT_MS = 30_000;

/** The conninfo argument: a later keyword of `conninfo` wins over these. */
function target(port: number, conninfo: string): string {
  return `host=localhost port=${port} dbname=postgres ${conninfo}`;
}

/** `psql -X -At -c SQL... "host=localhost port=PORT dbname=postgres CONNINFO"`. */
export function psql(port: number, conninfo: string, sql: string[]): Promise<Run> {
  const args = ['-X', '-At', ...sql.flatMap((s) => ['-c', s]), target(port, conninfo)];
  return new Promise((resolve, reject) => {
    execFile('psql', args, { env: ENV, timeout: TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}

/**
 * psql as above reading `script`'s bytes on its standard input, as they are (a client_encoding
 * such as LATIN1 in `env`); its outputs read one character per byte.
 */
export function psqlScript(port: number, conninfo: string, script: Buffer, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('psql', ['-X', '-At', '-v', 'ON_ERROR_STOP=1', target(port, conninfo)], { env: { ...ENV, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('latin1')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('latin1')));
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(script);
  });
}
