/**
 * Histories of register operations as clients observe them (Jepsen's shape: one `invoke` event when a
 * client starts an operation, one `ok` / `fail` / `info` event when it learns the outcome), and their
 * pairing into operations with a call time and a return time.
 */

export type OpType = 'invoke' | 'ok' | 'fail' | 'info'

export interface HistoryEvent {
  readonly process: number // client id; one outstanding op per process
  readonly type: OpType
  readonly f: 'read' | 'write'
  readonly key: string
  /** write: the value written (on invoke and completion). read: undefined on invoke, the value read on ok. */
  readonly value?: RegisterValue | null
  readonly timeMs: number // monotonic ms
}

/** A register holds a (seq, value) pair; null = never written. */
export interface RegisterValue {
  readonly seq: number
  readonly value: string
}

/**
 * One operation after pairing. `outcome` says what the client learned: `ok` took effect, `fail`
 * definitely did not, `info` may take effect at any time after its call, or never; so an `info`
 * operation's `returnMs` is +Infinity, whatever time the client gave up at.
 */
export interface Operation {
  /** Position of the operation's invoke among the history's invokes, from 0: names it in explanations. */
  readonly index: number
  readonly process: number
  readonly f: 'read' | 'write'
  readonly key: string
  /** write: the value written. read: the value read when `ok` (null = never written), else undefined. */
  readonly value: RegisterValue | null | undefined
  readonly outcome: 'ok' | 'fail' | 'info'
  readonly callMs: number
  readonly returnMs: number
}

/** MALFORMED_HISTORY: the history breaks a rule of its shape (see `pairHistory`); the message says which event. */
export type LinearizabilityErrorCode = 'MALFORMED_HISTORY'

export class LinearizabilityError extends Error {
  static override readonly name = 'LinearizabilityError'
  readonly code: LinearizabilityErrorCode

  constructor(code: LinearizabilityErrorCode, message: string) {
    super(message)
    this.name = 'LinearizabilityError'
    this.code = code
  }
}

function malformed(index: number, event: HistoryEvent, why: string): LinearizabilityError {
  return new LinearizabilityError(
    'MALFORMED_HISTORY',
    `event ${index} (process ${event.process} ${event.type} ${event.f} ${JSON.stringify(event.key)} at ${event.timeMs}ms): ${why}`,
  )
}

function isRegisterValue(value: unknown): value is RegisterValue {
  if (typeof value !== 'object' || value === null) return false
  const candidate = value as { seq?: unknown; value?: unknown }
  return typeof candidate.seq === 'number' && Number.isFinite(candidate.seq) && typeof candidate.value === 'string'
}

export function sameValue(a: RegisterValue | null, b: RegisterValue | null): boolean {
  if (a === null || b === null) return a === b
  return a.seq === b.seq && a.value === b.value
}

export function formatValue(value: RegisterValue | null | undefined): string {
  if (value === undefined) return '?'
  if (value === null) return 'null'
  return `${value.seq}:${JSON.stringify(value.value)}`
}

/**
 * Pairs each invoke with its process's next completion. Rules, each broken one a MALFORMED_HISTORY:
 * a process has at most one operation outstanding; a completion needs an outstanding invoke of the
 * same `f` and `key`; a write carries its value on invoke, and a completion that repeats it repeats
 * it exactly; an `ok` read carries the value read (null for never written); times are finite and do
 * not go backwards within a process. Events of one process must appear in the order they happened;
 * events of different processes may interleave in any order, since only `timeMs` orders them.
 * An invoke still outstanding at the end of the history is `info`: its outcome is unknown.
 */
export function pairHistory(events: readonly HistoryEvent[]): Operation[] {
  interface Pending {
    readonly event: HistoryEvent
    readonly index: number
  }
  const pendingByProcess = new Map<number, Pending>()
  const lastTimeByProcess = new Map<number, number>()
  const operations: (Operation | undefined)[] = []

  for (let i = 0; i < events.length; i++) {
    const event = events[i]!
    if (!Number.isFinite(event.timeMs)) throw malformed(i, event, 'timeMs is not a finite number')
    if (event.f !== 'read' && event.f !== 'write') throw malformed(i, event, `unknown f ${JSON.stringify(event.f)}`)
    if (typeof event.key !== 'string') throw malformed(i, event, 'key is not a string')
    const lastTime = lastTimeByProcess.get(event.process)
    if (lastTime !== undefined && event.timeMs < lastTime) {
      throw malformed(i, event, `time goes backwards for this process (previous event at ${lastTime}ms)`)
    }
    lastTimeByProcess.set(event.process, event.timeMs)

    if (event.type === 'invoke') {
      const pending = pendingByProcess.get(event.process)
      if (pending !== undefined) {
        throw malformed(
          i,
          event,
          `the process already has an operation outstanding (the invoke at event ${pending.index})`,
        )
      }
      if (event.f === 'write' && !isRegisterValue(event.value))
        throw malformed(i, event, 'a write must carry the (seq, value) it writes')
      pendingByProcess.set(event.process, { event, index: operations.length })
      operations.push(undefined)
      continue
    }
    if (event.type !== 'ok' && event.type !== 'fail' && event.type !== 'info') {
      throw malformed(i, event, `unknown type ${JSON.stringify(event.type)}`)
    }
    const pending = pendingByProcess.get(event.process)
    if (pending === undefined) throw malformed(i, event, 'a completion without an outstanding invoke on this process')
    const invoke = pending.event
    if (invoke.f !== event.f || invoke.key !== event.key) {
      throw malformed(
        i,
        event,
        `the completion does not match the outstanding invoke (${invoke.f} ${JSON.stringify(invoke.key)})`,
      )
    }
    let value: RegisterValue | null | undefined
    if (event.f === 'write') {
      value = invoke.value
      if (event.value !== undefined && !(isRegisterValue(event.value) && sameValue(event.value, invoke.value!))) {
        throw malformed(
          i,
          event,
          `the completion's value ${formatValue(event.value)} is not the one invoked (${formatValue(invoke.value)})`,
        )
      }
    } else if (event.type === 'ok') {
      if (event.value !== null && !isRegisterValue(event.value))
        throw malformed(i, event, 'an ok read must carry the value read (null for never written)')
      value = event.value
    }
    pendingByProcess.delete(event.process)
    operations[pending.index] = {
      index: pending.index,
      process: event.process,
      f: event.f,
      key: event.key,
      value,
      outcome: event.type,
      callMs: invoke.timeMs,
      returnMs: event.type === 'info' ? Number.POSITIVE_INFINITY : event.timeMs,
    }
  }

  for (const pending of pendingByProcess.values()) {
    const invoke = pending.event
    operations[pending.index] = {
      index: pending.index,
      process: invoke.process,
      f: invoke.f,
      key: invoke.key,
      value: invoke.f === 'write' ? invoke.value : undefined,
      outcome: 'info',
      callMs: invoke.timeMs,
      returnMs: Number.POSITIVE_INFINITY,
    }
  }
  return operations.map((operation, index) => {
    if (operation === undefined) throw new Error(`linearizability: operation ${index} was never paired`)
    return operation
  })
}

export interface HistoryRecorderOptions {
  /** Monotonic milliseconds; `performance.now()` unless a test gives a clock of its own. */
  readonly now?: () => number
}

/**
 * Records a history as clients run: hands out process ids, stamps each event with a monotonic time,
 * and refuses (MALFORMED_HISTORY) what `pairHistory` would refuse later, at the call that did it.
 *
 * @example
 * ```ts
 * const recorder = new HistoryRecorder()
 * const p = recorder.newProcess()
 * recorder.invoke(p, 'write', 'node-a', { seq: 1, value: 'v1' })
 * recorder.ok(p)                        // a write's completion repeats the invoked value
 * recorder.invoke(p, 'read', 'node-a')
 * recorder.ok(p, { seq: 1, value: 'v1' })
 * checkHistory(recorder.events)
 * ```
 */
export class HistoryRecorder {
  private readonly now: () => number
  private readonly recorded: HistoryEvent[] = []
  private readonly pendingByProcess = new Map<number, HistoryEvent>()
  private nextProcess = 0

  constructor(options: HistoryRecorderOptions = {}) {
    this.now = options.now ?? (() => performance.now())
  }

  /** A fresh process id. A client that gives up on an operation may go on with the same id. */
  newProcess(): number {
    return this.nextProcess++
  }

  get events(): readonly HistoryEvent[] {
    return this.recorded
  }

  invoke(process: number, f: 'read' | 'write', key: string, value?: RegisterValue): HistoryEvent {
    const event: HistoryEvent =
      f === 'write'
        ? { process, type: 'invoke', f, key, value, timeMs: this.now() }
        : { process, type: 'invoke', f, key, timeMs: this.now() }
    const pending = this.pendingByProcess.get(process)
    if (pending !== undefined)
      throw malformed(this.recorded.length, event, 'the process already has an operation outstanding')
    if (f === 'write' && !isRegisterValue(value))
      throw malformed(this.recorded.length, event, 'a write must carry the (seq, value) it writes')
    this.pendingByProcess.set(process, event)
    this.recorded.push(event)
    return event
  }

  /** The operation took effect; a read gives the value it read (null = never written). */
  ok(process: number, value?: RegisterValue | null): HistoryEvent {
    return this.complete(process, 'ok', value)
  }

  /** The operation definitely did not take effect. */
  fail(process: number): HistoryEvent {
    return this.complete(process, 'fail', undefined)
  }

  /** The outcome is unknown (a timeout, a lost connection): it may take effect later, or never. */
  info(process: number): HistoryEvent {
    return this.complete(process, 'info', undefined)
  }

  private complete(
    process: number,
    type: 'ok' | 'fail' | 'info',
    value: RegisterValue | null | undefined,
  ): HistoryEvent {
    const pending = this.pendingByProcess.get(process)
    const timeMs = this.now()
    if (pending === undefined) {
      throw malformed(
        this.recorded.length,
        { process, type, f: 'read', key: '', timeMs },
        'a completion without an outstanding invoke on this process',
      )
    }
    const event: HistoryEvent =
      pending.f === 'write'
        ? { process, type, f: 'write', key: pending.key, value: pending.value, timeMs }
        : type === 'ok'
          ? { process, type, f: 'read', key: pending.key, value: value === undefined ? undefined : value, timeMs }
          : { process, type, f: 'read', key: pending.key, timeMs }
    if (pending.f === 'read' && type === 'ok' && value !== null && !isRegisterValue(value)) {
      throw malformed(this.recorded.length, event, 'an ok read must carry the value read (null for never written)')
    }
    if (pending.f === 'write' && value !== undefined && !(isRegisterValue(value) && sameValue(value, pending.value!))) {
      throw malformed(
        this.recorded.length,
        event,
        `the completion's value ${formatValue(value)} is not the one invoked (${formatValue(pending.value)})`,
      )
    }
    this.pendingByProcess.delete(process)
    this.recorded.push(event)
    return event
  }
}
