/**
 * The process logger: pino to stderr (stdout may carry a live pcap stream), pretty-printed
 * when stderr is a terminal, one JSON object a line otherwise.
 */
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export function createLogger(level = 'info'): Logger {
  if (process.stderr.isTTY) {
    return pino({ level }, pretty({ destination: 2, colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname', sync: true }));
  }
  return pino({ level }, pino.destination({ fd: 2, sync: true }));
}
