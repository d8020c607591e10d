// Certificates for TLS tests, made with openssl in a temp dir: a CA, a good server certificate for
// localhost and 127.0.0.1, one that expired, one for another host, and a second CA that signed none
// of them (a client given it must refuse every certificate here). Files are world-readable: the
// private PostgreSQL and MariaDB servers run as their own OS users.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CertPair {
  cert: string;
  key: string;
}

export interface TestCerts {
  dir: string;
  /** The CA that signed `good`, `expired`, `wrongHost` and `renewed`. */
  ca: string;
  /** A CA that signed nothing here. */
  otherCa: string;
  /** CN=localhost, SAN DNS:localhost, IP:127.0.0.1. */
  good: CertPair;
  /** Same names as `good`, a new key: what a renewal puts in place. */
  renewed: CertPair;
  /** Valid names, validity ended in 2020. */
  expired: CertPair;
  /** SAN DNS:wrong.example only. */
  wrongHost: CertPair;
  remove(): Promise<void>;
}

export async function makeCerts(): Promise<TestCerts> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sidecache-certs-'));
  await chmod(dir, 0o755);
  const openssl = (args: string[]): Promise<unknown> => run('openssl', args, { cwd: dir, timeout: 30_000 });
  const ca = async (name: string): Promise<void> => {
    await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '3',
      '-subj', `/CN=sidecache test ${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  };
  await ca('ca');
  await ca('other-ca');
  // `openssl ca` is the one that takes explicit start and end dates (an expired certificate).
  await writeFile(path.join(dir, 'index.txt'), '');
  await writeFile(path.join(dir, 'serial'), '1000\n');
  await writeFile(path.join(dir, 'ca.cnf'), [
    '[ca]', 'default_ca = test', '[test]', `dir = ${dir}`, 'database = $dir/index.txt', 'serial = $dir/serial',
    'new_certs_dir = $dir', 'default_md = sha256', 'policy = any', 'copy_extensions = none', 'unique_subject = no',
    '[any]', 'commonName = supplied', '',
  ].join('\n'));
  const leaf = async (name: string, san: string, dates: string[]): Promise<CertPair> => {
    await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name === 'wrong-host' ? 'wrong.example' : 'localhost'}`]);
    await writeFile(path.join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    await openssl(['ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.crt', '-keyfile', 'ca.key', '-in', `${name}.csr`, '-out', `${name}.crt`,
      '-extfile', `${name}.ext`, '-notext', ...dates]);
    return { cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`) };
  };
  const valid = ['-days', '2'];
  const certs: TestCerts = {
    dir,
    ca: path.join(dir, 'ca.crt'),
    otherCa: path.join(dir, 'other-ca.crt'),
    good: await leaf('good', 'DNS:localhost,IP:127.0.0.1', valid),
    renewed: await leaf('renewed', 'DNS:localhost,IP:127.0.0.1', valid),
    expired: await leaf('expired', 'DNS:localhost,IP:127.0.0.1', ['-startdate', '20200101000000Z', '-enddate', '20200102000000Z']),
    wrongHost: await leaf('wrong-host', 'DNS:wrong.example', valid),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
  // PostgreSQL refuses a key file that others can read when it owns it; the servers get copies (serverCopy).
  for (const f of await readdir(dir)) await chmod(path.join(dir, f), 0o644);
  return certs;
}
