// A tiny MySQL 8-style server that speaks ONLY the caching_sha2_password login (MariaDB 10.11 has
// no server side for it) and then answers COM_PING, so the relay of that exchange can be tested:
//   fast path: token in the HandshakeResponse, AuthMoreData 0x03, OK;
//   full auth: AuthMoreData 0x04, the client asks for the public key (0x02), gets it (AuthMoreData
//   with the PEM), sends the password RSA-encrypted, OK;
//   auth switch: the handshake offers mysql_native_password, the server switches the client to
//   caching_sha2_password (0xFE), then full auth.
// It checks the password for real (token and RSA), so a relay that damaged a byte would fail.
import crypto from 'node:crypto';
import net from 'node:net';

export type Sha2Mode = 'fast' | 'full' | 'switch';

export interface FakeSha2Server {
  port: number;
  /** One entry per login: what the server concluded. */
  readonly logins: { mode: Sha2Mode; user: string; accepted: boolean; sequence: number[] }[];
  close(): Promise<void>;
}

// incl. DEPRECATE_EOF; no CLIENT_SSL: this server speaks no TLS (sidecache would ask for it: ssl-mode PREFERRED).
const CAPS = 0x1 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x10000 | 0x20000 | 0x80000 | 0x200000 | 0x1000000;

function sha256(b: Buffer): Buffer {
  return crypto.createHash('sha256').update(b).digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  return Buffer.from(a.map((v, i) => v ^ b[i % b.length]!));
}

function frame(payload: Buffer, seq: number): Buffer {
  const h = Buffer.alloc(4);
  h.writeUIntLE(payload.length, 0, 3);
  h[3] = seq;
  return Buffer.concat([h, payload]);
}

const OK = Buffer.from([0, 0, 0, 2, 0, 0, 0]);

export async function startFakeSha2Server(mode: Sha2Mode, password: string): Promise<FakeSha2Server> {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const logins: FakeSha2Server['logins'] = [];
  let nextId = 100;

  const server = net.createServer((socket) => {
    const scramble = Buffer.from(crypto.randomBytes(20).map((b) => (b === 0 ? 1 : b)));
    const login = { mode, user: '', accepted: false, sequence: [] as number[] };
    logins.push(login);
    let buffered = Buffer.alloc(0);
    let step = 0;
    const send = (payload: Buffer, seq: number): void => void socket.write(frame(payload, seq));
    const refuse = (seq: number): void => {
      send(Buffer.concat([Buffer.from([0xff, 0x15, 0x04]), Buffer.from('#28000Access denied (fake)')]), seq);
      socket.end();
    };
    const checkRsa = (encrypted: Buffer, seq: number): void => {
      const plain = crypto.privateDecrypt({ key: privateKey, oaepHash: 'sha1', padding: crypto.constants.RSA_PKCS1_OAEP_PADDING }, encrypted);
      login.accepted = xor(plain, scramble).equals(Buffer.from(password + '\0'));
      if (login.accepted) send(OK, seq);
      else refuse(seq);
    };
    const onPacket = (seq: number, payload: Buffer): void => {
      login.sequence.push(seq);
      if (step === 0) {
        // HandshakeResponse41: caps(4) max(4) charset(1) filler(23) user\0 lenenc-auth ...
        const userEnd = payload.indexOf(0, 32);
        login.user = payload.toString('utf8', 32, userEnd);
        const authLength = payload[userEnd + 1]!;
        const token = payload.subarray(userEnd + 2, userEnd + 2 + authLength);
        if (mode === 'switch') {
          send(Buffer.concat([Buffer.from([0xfe]), Buffer.from('caching_sha2_password\0'), scramble, Buffer.from([0])]), seq + 1);
          step = 1;
          return;
        }
        const stage1 = sha256(Buffer.from(password));
        const expected = xor(stage1, sha256(Buffer.concat([sha256(stage1), scramble])));
        if (mode === 'fast') {
          if (!token.equals(expected)) return refuse(seq + 1);
          send(Buffer.from([0x01, 0x03]), seq + 1);
          login.accepted = true;
          send(OK, seq + 2);
          step = 9;
          return;
        }
        send(Buffer.from([0x01, 0x04]), seq + 1);
        step = 2;
        return;
      }
      if (step === 1) {
        // The switched client's scramble token: go on with full authentication.
        send(Buffer.from([0x01, 0x04]), seq + 1);
        step = 2;
        return;
      }
      if (step === 2) {
        if (payload.length !== 1 || payload[0] !== 0x02) return refuse(seq + 1);
        send(Buffer.concat([Buffer.from([0x01]), Buffer.from(pem)]), seq + 1);
        step = 3;
        return;
      }
      if (step === 3) {
        checkRsa(payload, seq + 1);
        step = 9;
        return;
      }
      // Command phase: COM_PING and COM_QUIT.
      if (payload[0] === 0x01) socket.end();
      else if (payload[0] === 0x0e) send(OK, 1);
      else send(Buffer.concat([Buffer.from([0xff, 0x17, 0x04]), Buffer.from('#HY000only COM_PING here')]), 1);
    };
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 4) {
        const length = buffered.readUIntLE(0, 3);
        if (buffered.length < 4 + length) break;
        const payload = buffered.subarray(4, 4 + length);
        const seq = buffered[3]!;
        buffered = buffered.subarray(4 + length);
        onPacket(seq, payload);
      }
    });
    socket.on('error', () => undefined);
    const plugin = mode === 'switch' ? 'mysql_native_password' : 'caching_sha2_password';
    const hs = Buffer.concat([
      Buffer.from([10]), Buffer.from('8.0.36-fake\0'), Buffer.from(Uint32Array.of(nextId++).buffer),
      scramble.subarray(0, 8), Buffer.from([0]),
      Buffer.from([CAPS & 0xff, (CAPS >> 8) & 0xff, 255, 2, 0, (CAPS >> 16) & 0xff, (CAPS >> 24) & 0xff, 21]),
      Buffer.alloc(10), scramble.subarray(8), Buffer.from([0]), Buffer.from(plugin + '\0'),
    ]);
    send(hs, 0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    logins,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
