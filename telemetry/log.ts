// The process logger, on stderr so stdout stays free for the banner: one JSON line per event
// (--log-format json, for collectors) or one readable line per event (pretty, for people).
import { pino, type Logger } from 'pino';
import { build as prettyStream } from 'pino-pretty';
import type { LogFormat, LogLevel } from '../config/settings.js';

export type { Logger };

/** Keys pino writes itself; the pretty line shows them in its own places. */
const OWN_KEYS = new Set(['time', 'level', 'msg']);

/**
 * Both formats write synchronously to fd 2: a line logged just before process.exit() is not lost,
 * and pino-pretty runs in this thread rather than in a transport worker.
 */
export function createLogger(level: LogLevel = 'info', format: LogFormat = 'json'): Logger {
  const options = { level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime };
  if (format === 'json') return pino(options, pino.destination({ fd: 2, sync: true }));
  return pino(options, prettyStream({
    sync: true,
    destination: 2,
    colorize: process.stderr.isTTY === true && process.env.NO_COLOR === undefined,
    translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
    hideObject: true,
    messageFormat: prettyMessage,
  }));
}

/** `message key=value ...`: the fields on the same line, in the order they were logged. */
export function prettyMessage(event: Record<string, unknown>, messageKey: string): string {
  let line = typeof event[messageKey] === 'string' ? (event[messageKey] as string) : '';
  for (const key of Object.keys(event)) {
    if (OWN_KEYS.has(key) || key === messageKey || event[key] === undefined) continue;
    line += ` ${key}=${prettyValue(event[key])}`;
  }
  return line;
}

/** Bare when it reads unambiguously, otherwise JSON (quoted strings, compact lists and objects). */
function prettyValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}
