// COM_BINLOG_DUMP on a mysql2 connection. mysql2 authenticates and frames packets (16 MiB
// continuations included); it has no usable binlog API of its own (its BinlogDump parses four
// event types and hides the bytes), so this is a command object of the shape mysql2's connection
// queue runs: `execute(packet, connection)` is called with null to start, then with each packet,
// and returns true when the command is over. The same connection internals (`addCommand`,
// `writePacket`, `_resetSequenceId`, the Packet fields) are what @vlasky/zongji relies on;
// e2e/mysql-cdc.test.ts runs this against the real server, so a mysql2 upgrade that changes them fails there.

/** COM_BINLOG_DUMP's fields. */
export interface DumpRequest {
  /** The replica id the server knows this reader by (unique among its replicas). */
  serverId: number;
  /** The binlog file and position to start at; MariaDB ignores them when @slave_connect_state is set. */
  file: string;
  position: number;
}

const COM_BINLOG_DUMP = 0x12;

/** The command packet, its 4-byte header left for mysql2 to fill. */
export function encodeBinlogDump(request: DumpRequest): Buffer {
  const name = Buffer.from(request.file, 'utf8');
  const b = Buffer.alloc(4 + 1 + 4 + 2 + 4 + name.length);
  b[4] = COM_BINLOG_DUMP;
  b.writeUInt32LE(request.position, 5);
  b.writeUInt16LE(0, 9); // flags: 0 = block and wait for new events (BINLOG_DUMP_NON_BLOCK would end at EOF)
  b.writeUInt32LE(request.serverId, 11);
  name.copy(b, 15);
  return b;
}

/** What mysql2 hands a command: one packet (header at `start`, payload from `start + 4` to `end`). */
interface IncomingPacket {
  buffer: Buffer;
  start: number;
  end: number;
}

/** The parts of mysql2's Connection a command uses. */
interface CommandConnection {
  _resetSequenceId(): void;
  writePacket(packet: { buffer: Buffer; length(): number; writeHeader(sequenceId: number): void }): void;
}

/**
 * Runs the dump and hands every packet's payload to `onPayload` synchronously (mysql2 reuses the
 * packet's buffer afterwards). `onPayload` returns false to end the command (an error or EOF packet).
 */
export class BinlogDumpCommand {
  private started = false;

  constructor(private readonly request: DumpRequest, private readonly onPayload: (payload: Buffer) => boolean) {}

  execute(packet: IncomingPacket | null | undefined, connection: CommandConnection): boolean {
    if (!this.started) {
      this.started = true;
      connection._resetSequenceId();
      const buffer = encodeBinlogDump(this.request);
      connection.writePacket({
        buffer,
        length: () => buffer.length,
        writeHeader: (sequenceId: number) => {
          buffer.writeUIntLE(buffer.length - 4, 0, 3);
          buffer[3] = sequenceId;
        },
      });
      return false;
    }
    if (packet === null || packet === undefined) return false;
    return !this.onPayload(packet.buffer.subarray(packet.start + 4, packet.end));
  }
}
