import { pino } from 'pino'
import type { Logger } from 'pino'

/**
 * JSON lines by default (one event per line, full peer ids), or pino-pretty for a person at a
 * terminal (`--pretty`), where long ids are shortened for reading.
 */
export function createLogger(options: { level: string; pretty: boolean; name: string }): Logger {
  if (!options.pretty) return pino({ name: options.name, level: options.level })
  return pino({
    name: options.name,
    level: options.level,
    transport: {
      target: 'pino-pretty',
      options: { colorize: process.stdout.isTTY, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' },
    },
  })
}
