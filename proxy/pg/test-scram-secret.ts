// For tests: what a server stores for a password (pg_authid.rolpassword's parts) and the
// ClientKey a client proves. sidecache itself never sees a password; tests start from one.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import type { ScramSecret } from '../../config/pg-auth-file.js';

export function scramSecretFor(password: string, salt: Buffer = randomBytes(16), iterations = 4096): { secret: ScramSecret; clientKey: Buffer } {
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return { secret: { iterations, salt, storedKey: createHash('sha256').update(clientKey).digest(), serverKey }, clientKey };
}
