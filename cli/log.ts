// The process logger: one JSON line per event on stderr, so stdout stays free for the banner.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level = process.env.SIDECACHE_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: 2, sync: true }));
}
