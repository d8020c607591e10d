// The users whose SCRAM secret sidecache knows (--pg-auth-file), in PgBouncer's auth_file format
// (userlist.txt): one `"user" "secret"` per line, `""` for a quote inside a field, the rest of a
// line ignored; blank lines and lines starting with `;` or `#` skipped. The secret is the
// server's own verifier, as in pg_authid.rolpassword: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`
// (base64). With it sidecache is the SCRAM server to the client and a SCRAM client to the
// upstream (proxy/pg/scram.ts). Other kinds of entry (md5 hashes, plain passwords) are refused:
// md5 cannot verify SCRAM, and a plain password on disk is what this file exists to avoid.
// Error messages name the file, line and user, never the secret.
import { readFileSync } from 'node:fs';
import { ConfigError } from './errors.js';

/** A SCRAM-SHA-256 verifier. */
export interface ScramSecret {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

/** User name -> secret; empty when no file is set. */
export type PgAuthSecrets = ReadonlyMap<string, ScramSecret>;

export const NO_SECRETS: PgAuthSecrets = new Map();

const SHA256_BYTES = 32;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** `SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk...:c2VydmVy...`, or null when `text` is not one. */
export function parseScramSecret(text: string): ScramSecret | null {
  const m = /^SCRAM-SHA-256\$(\d{1,9}):([^$]+)\$([^:]+):(.+)$/.exec(text);
  if (m === null || ![m[2], m[3], m[4]].every((b) => BASE64.test(b!))) return null;
  const iterations = Number(m[1]);
  const salt = Buffer.from(m[2]!, 'base64');
  const storedKey = Buffer.from(m[3]!, 'base64');
  const serverKey = Buffer.from(m[4]!, 'base64');
  if (iterations < 1 || salt.length === 0 || storedKey.length !== SHA256_BYTES || serverKey.length !== SHA256_BYTES) return null;
  return { iterations, salt, storedKey, serverKey };
}

/** The fields of one line, or null when it has fewer than two quoted fields. */
function quotedFields(line: string): string[] | null {
  const fields: string[] = [];
  let pos = 0;
  while (fields.length < 2) {
    while (line[pos] === ' ' || line[pos] === '\t') pos++;
    if (line[pos] !== '"') return null;
    let value = '';
    pos++;
    for (;;) {
      if (pos >= line.length) return null;
      if (line[pos] === '"') {
        if (line[pos + 1] !== '"') break;
        pos++;
      }
      value += line[pos++];
    }
    pos++;
    fields.push(value);
  }
  return fields;
}

/** Parses the file's text; `name` is how errors name it. Throws ConfigError. */
export function parsePgAuthFile(text: string, name: string): PgAuthSecrets {
  const secrets = new Map<string, ScramSecret>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith(';') || trimmed.startsWith('#')) continue;
    const where = `${name} line ${i + 1}`;
    const fields = quotedFields(line);
    if (fields === null) throw new ConfigError('--pg-auth-file', `${where}: expected "user" "secret" (both in double quotes)`);
    const [user, secret] = fields as [string, string];
    const parsed = parseScramSecret(secret);
    if (parsed === null) {
      const kind = secret.startsWith('md5') ? 'an md5 hash' : secret.startsWith('SCRAM-SHA-256$') ? 'a malformed SCRAM secret' : 'not a SCRAM secret';
      throw new ConfigError('--pg-auth-file', `${where}: the entry for user "${user}" is ${kind}; expected the user's SCRAM-SHA-256 secret as in pg_authid.rolpassword `
        + '(SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)');
    }
    if (secrets.has(user)) throw new ConfigError('--pg-auth-file', `${where}: user "${user}" is listed twice`);
    secrets.set(user, parsed);
  }
  return secrets;
}

/** Reads --pg-auth-file (at start and on every reload); NO_SECRETS when unset. Throws ConfigError. */
export function readPgAuthFile(path: string | null): PgAuthSecrets {
  if (path === null) return NO_SECRETS;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('--pg-auth-file', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parsePgAuthFile(text, path);
}
