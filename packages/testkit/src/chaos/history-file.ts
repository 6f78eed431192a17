import { closeSync, openSync, readFileSync, writeSync } from 'node:fs'
import type { HistoryEvent, RegisterValue } from '../linearizability/index.ts'

/**
 * A history as JSON lines (one HistoryEvent per line), written as clients run. Events are buffered
 * and flushed every HISTORY_FLUSH_EVENTS or on `flush()`, so a workload killed mid-run still leaves
 * almost all of its history behind.
 */
export const HISTORY_FLUSH_EVENTS = 256

export class HistoryWriter {
  readonly #fd: number
  readonly #pending = new Map<number, HistoryEvent>()
  #buffer: string[] = []
  #nextProcess = 0
  readonly now: () => number

  constructor(path: string, now: () => number = () => performance.now()) {
    this.#fd = openSync(path, 'w')
    this.now = now
  }

  newProcess(): number {
    return this.#nextProcess++
  }

  invoke(process: number, f: 'read' | 'write', key: string, value?: RegisterValue): HistoryEvent {
    if (this.#pending.has(process)) throw new Error(`history: process ${process} already has an operation outstanding`)
    const event: HistoryEvent =
      f === 'write'
        ? { process, type: 'invoke', f, key, value: value!, timeMs: this.now() }
        : { process, type: 'invoke', f, key, timeMs: this.now() }
    this.#pending.set(process, event)
    this.#push(event)
    return event
  }

  /** Completes the process's outstanding operation. A write's completion repeats its value; an ok read carries what it read. */
  complete(process: number, type: 'ok' | 'fail' | 'info', readValue?: RegisterValue | null): HistoryEvent {
    const invoked = this.#pending.get(process)
    if (invoked === undefined) throw new Error(`history: process ${process} has no operation outstanding`)
    this.#pending.delete(process)
    const timeMs = this.now()
    const event: HistoryEvent =
      invoked.f === 'write'
        ? { process, type, f: 'write', key: invoked.key, value: invoked.value!, timeMs }
        : type === 'ok'
          ? { process, type, f: 'read', key: invoked.key, value: readValue ?? null, timeMs }
          : { process, type, f: 'read', key: invoked.key, timeMs }
    this.#push(event)
    return event
  }

  flush(): void {
    if (this.#buffer.length === 0) return
    writeSync(this.#fd, this.#buffer.join(''))
    this.#buffer = []
  }

  close(): void {
    this.flush()
    closeSync(this.#fd)
  }

  #push(event: HistoryEvent): void {
    this.#buffer.push(`${JSON.stringify(event)}\n`)
    if (this.#buffer.length >= HISTORY_FLUSH_EVENTS) this.flush()
  }
}

/** Reads a history file; a last line cut short by a kill is dropped. */
export function readHistory(path: string): HistoryEvent[] {
  const events: HistoryEvent[] = []
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue
    try {
      events.push(JSON.parse(line) as HistoryEvent)
    } catch {
      // Only the final line can be partial; anything else is a bug the checker will name.
    }
  }
  return events
}
