// Runs the real psql (libpq) with a conninfo string, for tests of what libpq itself negotiates
// (sslmode, channel_binding): its exit code and both outputs, never a throw for a failed login.
import { execFile } from 'node:child_process';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `psql -X -At -c SQL... "host=localhost port=PORT dbname=postgres CONNINFO"`. */
export function psql(port: number, conninfo: string, sql: string[]): Promise<Run> {
  const env = { PATH: process.env.PATH, LANG: 'C.UTF-8', PGCONNECT_TIMEOUT: '10' };
  const args = ['-X', '-At', ...sql.flatMap((s) => ['-c', s]), `host=localhost port=${port} dbname=postgres ${conninfo}`];
  return new Promise((resolve, reject) => {
    execFile('psql', args, { env, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}
