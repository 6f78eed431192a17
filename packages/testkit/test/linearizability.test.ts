import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  HistoryRecorder,
  LinearizabilityError,
  checkHistory,
  pairHistory,
  registerModel,
  seqRegisterModel,
} from '../src/index.ts'
import type { HistoryEvent, Model, RegisterState, RegisterValue } from '../src/index.ts'

/**
 * The linearizability checker (Lowe, "Testing for linearizability", 2017): hand-written histories a
 * person can check on paper, then properties over histories generated from a sequential run of the
 * model, widened into overlap without moving any op off its linearization point.
 */

const v = (seq: number, value: string): RegisterValue => ({ seq, value })

/** Builds a history from whole operations: each line is one client op with its call and return times. */
class Scenario {
  private readonly timed: { event: HistoryEvent; order: number }[] = []

  /** `returnMs` undefined: the client never heard back (no completion event at all). */
  write(
    process: number,
    key: string,
    value: RegisterValue,
    callMs: number,
    returnMs: number | undefined,
    outcome: 'ok' | 'fail' | 'info' = 'ok',
  ): this {
    this.push({ process, type: 'invoke', f: 'write', key, value, timeMs: callMs })
    if (returnMs !== undefined) this.push({ process, type: outcome, f: 'write', key, value, timeMs: returnMs })
    return this
  }

  read(
    process: number,
    key: string,
    result: RegisterValue | null | undefined,
    callMs: number,
    returnMs: number | undefined,
    outcome: 'ok' | 'fail' | 'info' = 'ok',
  ): this {
    this.push({ process, type: 'invoke', f: 'read', key, timeMs: callMs })
    if (returnMs !== undefined) {
      this.push(
        outcome === 'ok'
          ? { process, type: 'ok', f: 'read', key, value: result, timeMs: returnMs }
          : { process, type: outcome, f: 'read', key, timeMs: returnMs },
      )
    }
    return this
  }

  private push(event: HistoryEvent): void {
    this.timed.push({ event, order: this.timed.length })
  }

  /** Events in time order, as a recorder would have logged them. */
  get events(): HistoryEvent[] {
    return [...this.timed]
      .sort((a, b) => a.event.timeMs - b.event.timeMs || a.order - b.order)
      .map((entry) => entry.event)
  }
}

function malformedCode(run: () => unknown): string | undefined {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(LinearizabilityError)
    return (error as LinearizabilityError).code
  }
  return undefined
}

describe('linearizable histories (hand-written)', () => {
  it('a sequential history of writes and reads', () => {
    const history = new Scenario()
      .read(1, 'k', null, 0, 1)
      .write(1, 'k', v(1, 'a'), 2, 3)
      .read(2, 'k', v(1, 'a'), 4, 5)
      .write(2, 'k', v(2, 'b'), 6, 7)
      .read(1, 'k', v(2, 'b'), 8, 9)
    const verdict = checkHistory(history.events)
    expect(verdict).toEqual({ valid: true, keys: 1, operations: 5, failures: [], unknownKeys: [] })
    expect(checkHistory(history.events, { model: registerModel }).valid).toBe(true)
  })

  it('a read overlapping a write may see the old value or the new one', () => {
    for (const seen of [v(1, 'a'), v(2, 'b')]) {
      const history = new Scenario()
        .write(1, 'k', v(1, 'a'), 0, 1)
        .write(1, 'k', v(2, 'b'), 10, 20)
        .read(2, 'k', seen, 12, 18)
        .read(3, 'k', v(2, 'b'), 21, 22)
      expect(checkHistory(history.events).valid).toBe(true)
    }
  })

  it('concurrent writes, with reads that agree on one order of them', () => {
    // Three writes overlap; the reads fix the order b, c, a (seqRegister: seqs must grow, so the
    // writes' seqs follow that order too; the plain register does not care).
    const history = new Scenario()
      .write(1, 'k', v(3, 'a'), 0, 30)
      .write(2, 'k', v(1, 'b'), 0, 30)
      .write(3, 'k', v(2, 'c'), 0, 30)
      .read(4, 'k', v(1, 'b'), 5, 10)
      .read(4, 'k', v(2, 'c'), 11, 15)
      .read(5, 'k', v(3, 'a'), 31, 32)
    expect(checkHistory(history.events).valid).toBe(true)
    expect(checkHistory(history.events, { model: registerModel }).valid).toBe(true)
  })

  it('seqRegister: an acknowledged write whose seq did not grow is illegal, a failed one is not', () => {
    const rejectedButAcknowledged = new Scenario().write(1, 'k', v(5, 'a'), 0, 1).write(1, 'k', v(4, 'b'), 2, 3)
    expect(checkHistory(rejectedButAcknowledged.events).valid).toBe(false)
    expect(checkHistory(rejectedButAcknowledged.events, { model: registerModel }).valid).toBe(true)
    const rejectedAndFailed = new Scenario()
      .write(1, 'k', v(5, 'a'), 0, 1)
      .write(1, 'k', v(4, 'b'), 2, 3, 'fail')
      .read(2, 'k', v(5, 'a'), 4, 5)
    expect(checkHistory(rejectedAndFailed.events).valid).toBe(true)
  })

  it('failed and unanswered reads constrain nothing', () => {
    const history = new Scenario()
      .write(1, 'k', v(1, 'a'), 0, 1)
      .read(2, 'k', undefined, 2, 3, 'fail')
      .read(3, 'k', undefined, 2, 3, 'info')
      .read(4, 'k', undefined, 2, undefined)
    expect(checkHistory(history.events).valid).toBe(true)
  })
})

describe('non-linearizable histories (hand-written)', () => {
  it('a stale read after a write completed', () => {
    const history = new Scenario()
      .write(1, 'k', v(1, 'a'), 0, 1)
      .write(1, 'k', v(2, 'b'), 2, 3)
      .read(2, 'k', v(1, 'a'), 4, 5)
    const verdict = checkHistory(history.events)
    expect(verdict.valid).toBe(false)
    expect(verdict.failures).toHaveLength(1)
    expect(verdict.failures[0]!.key).toBe('k')
    expect(verdict.failures[0]!.explanation).toContain('#2 p2 read -> 1:"a" ok [4.000, 5.000]ms')
    expect(checkHistory(history.events, { model: registerModel }).valid).toBe(false)
  })

  it('a read sees the new value, then a later read sees the older one', () => {
    const history = new Scenario()
      .write(1, 'k', v(1, 'a'), 0, 1)
      .write(1, 'k', v(2, 'b'), 10, 30)
      .read(2, 'k', v(2, 'b'), 12, 14)
      .read(3, 'k', v(1, 'a'), 16, 18)
    expect(checkHistory(history.events).valid).toBe(false)
    expect(checkHistory(history.events, { model: registerModel }).valid).toBe(false)
  })

  it('a read of a value nobody wrote', () => {
    const history = new Scenario().write(1, 'k', v(1, 'a'), 0, 10).read(2, 'k', v(1, 'z'), 2, 12)
    expect(checkHistory(history.events).valid).toBe(false)
    const never = new Scenario().read(2, 'k', v(1, 'a'), 0, 1)
    expect(checkHistory(never.events).valid).toBe(false)
  })

  it('a failed write whose value is read', () => {
    const history = new Scenario().write(1, 'k', v(1, 'a'), 0, 10, 'fail').read(2, 'k', v(1, 'a'), 11, 12)
    expect(checkHistory(history.events).valid).toBe(false)
  })

  it('the explanation names the stuck op and stays short', () => {
    const history = new Scenario()
    for (let i = 0; i < 30; i++) history.write(i % 3, 'k', v(i + 1, `v${i}`), i * 10, i * 10 + 5)
    history.read(3, 'k', v(3, 'v2'), 400, 405)
    const verdict = checkHistory(history.events)
    expect(verdict.valid).toBe(false)
    const explanation = verdict.failures[0]!.explanation
    expect(explanation).toContain('read -> 3:"v2"')
    expect(explanation).toContain('longest linearized 30 of 31 ops')
    expect(explanation.match(/#\d+ p\d+/g)!.length).toBeLessThanOrEqual(10)
  })
})

describe('operations with an unknown outcome (info)', () => {
  it('an info write whose value is read later is valid', () => {
    const history = new Scenario()
      .write(1, 'k', v(1, 'a'), 0, 1)
      .write(1, 'k', v(2, 'b'), 2, 3, 'info')
      .read(2, 'k', v(1, 'a'), 10, 11)
      .read(2, 'k', v(2, 'b'), 50, 51)
    expect(checkHistory(history.events).valid).toBe(true)
  })

  it('an info write never observed is valid, with or without a completion event', () => {
    for (const returnMs of [3, undefined]) {
      const history = new Scenario()
        .write(1, 'k', v(1, 'a'), 0, 1)
        .write(2, 'k', v(2, 'b'), 2, returnMs, 'info')
        .read(3, 'k', v(1, 'a'), 10, 11)
        .read(3, 'k', v(1, 'a'), 50, 51)
      expect(checkHistory(history.events).valid).toBe(true)
    }
  })

  it('an info write observed, then the old value observed after it, is invalid', () => {
    const history = new Scenario()
      .write(1, 'k', v(1, 'a'), 0, 1)
      .write(1, 'k', v(2, 'b'), 2, 3, 'info')
      .read(2, 'k', v(2, 'b'), 10, 11)
      .read(2, 'k', v(1, 'a'), 20, 21)
    expect(checkHistory(history.events).valid).toBe(false)
    expect(checkHistory(history.events, { model: registerModel }).valid).toBe(false)
  })

  it('a process may go on after an info, and its next op still orders after its call', () => {
    const history = new Scenario()
      .write(1, 'k', v(1, 'a'), 0, 5, 'info')
      .write(1, 'k', v(2, 'b'), 6, 7)
      .read(2, 'k', v(2, 'b'), 8, 9)
    expect(checkHistory(history.events).valid).toBe(true)
  })
})

describe('keys are checked independently', () => {
  it('each key judged on its own, failures reported per key', () => {
    const history = new Scenario()
      .write(1, 'a', v(1, 'x'), 0, 1)
      .write(2, 'b', v(1, 'x'), 0, 1)
      .read(3, 'a', v(1, 'x'), 2, 3)
      .read(3, 'b', null, 4, 5) // stale on b only
      .read(4, 'c', null, 0, 1)
    const verdict = checkHistory(history.events)
    expect(verdict.valid).toBe(false)
    expect(verdict.keys).toBe(3)
    expect(verdict.operations).toBe(5)
    expect(verdict.failures.map((failure) => failure.key)).toEqual(['b'])
  })

  it('a value written on one key is not visible on another', () => {
    const history = new Scenario().write(1, 'a', v(1, 'x'), 0, 1).read(2, 'b', v(1, 'x'), 2, 3)
    expect(checkHistory(history.events).failures.map((failure) => failure.key)).toEqual(['b'])
  })
})

describe('malformed histories', () => {
  it('two invokes outstanding on one process', () => {
    const events: HistoryEvent[] = [
      { process: 1, type: 'invoke', f: 'write', key: 'k', value: v(1, 'a'), timeMs: 0 },
      { process: 1, type: 'invoke', f: 'read', key: 'k', timeMs: 1 },
    ]
    expect(malformedCode(() => checkHistory(events))).toBe('MALFORMED_HISTORY')
  })

  it('a completion without an invoke', () => {
    const events: HistoryEvent[] = [{ process: 1, type: 'ok', f: 'read', key: 'k', value: null, timeMs: 0 }]
    expect(malformedCode(() => checkHistory(events))).toBe('MALFORMED_HISTORY')
  })

  it('a completion that does not match its invoke, a write without a value, time going backwards', () => {
    const cases: HistoryEvent[][] = [
      [
        { process: 1, type: 'invoke', f: 'write', key: 'k', value: v(1, 'a'), timeMs: 0 },
        { process: 1, type: 'ok', f: 'write', key: 'other', value: v(1, 'a'), timeMs: 1 },
      ],
      [
        { process: 1, type: 'invoke', f: 'write', key: 'k', value: v(1, 'a'), timeMs: 0 },
        { process: 1, type: 'ok', f: 'write', key: 'k', value: v(2, 'a'), timeMs: 1 },
      ],
      [{ process: 1, type: 'invoke', f: 'write', key: 'k', timeMs: 0 }],
      [
        { process: 1, type: 'invoke', f: 'read', key: 'k', timeMs: 5 },
        { process: 1, type: 'ok', f: 'read', key: 'k', value: null, timeMs: 4 },
      ],
      [
        { process: 1, type: 'invoke', f: 'read', key: 'k', timeMs: 0 },
        { process: 1, type: 'ok', f: 'read', key: 'k', timeMs: 1 },
      ],
    ]
    for (const events of cases) expect(malformedCode(() => pairHistory(events))).toBe('MALFORMED_HISTORY')
  })

  it('a bad budget is a RangeError', () => {
    expect(() => checkHistory([], { searchStatesMax: 0 })).toThrow(RangeError)
  })
})

describe('HistoryRecorder', () => {
  it('hands out processes, stamps times, and pairs into what checkHistory accepts', () => {
    let now = 100
    const recorder = new HistoryRecorder({ now: () => now++ })
    const p = recorder.newProcess()
    const q = recorder.newProcess()
    expect(p).not.toBe(q)
    recorder.invoke(p, 'write', 'k', v(1, 'a'))
    recorder.invoke(q, 'read', 'k')
    recorder.ok(p)
    recorder.ok(q, null)
    recorder.invoke(q, 'write', 'k', v(2, 'b'))
    recorder.info(q)
    recorder.invoke(q, 'read', 'k')
    recorder.fail(q)
    expect(recorder.events.map((event) => event.timeMs)).toEqual([100, 101, 102, 103, 104, 105, 106, 107])
    expect(recorder.events[2]).toEqual({ process: p, type: 'ok', f: 'write', key: 'k', value: v(1, 'a'), timeMs: 102 })
    const operations = pairHistory(recorder.events)
    expect(operations.map((op) => [op.f, op.outcome, op.callMs, op.returnMs])).toEqual([
      ['write', 'ok', 100, 102],
      ['read', 'ok', 101, 103],
      ['write', 'info', 104, Number.POSITIVE_INFINITY],
      ['read', 'fail', 106, 107],
    ])
    expect(checkHistory(recorder.events).valid).toBe(true)
  })

  it('uses a monotonic clock by default and refuses malformed calls at once', () => {
    const recorder = new HistoryRecorder()
    const p = recorder.newProcess()
    recorder.invoke(p, 'read', 'k')
    expect(malformedCode(() => recorder.invoke(p, 'read', 'k'))).toBe('MALFORMED_HISTORY')
    recorder.ok(p, null)
    expect(malformedCode(() => recorder.ok(p, null))).toBe('MALFORMED_HISTORY')
    const [invoke, ok] = recorder.events
    expect(ok!.timeMs).toBeGreaterThanOrEqual(invoke!.timeMs)
  })
})

describe('search budget', () => {
  /** Twenty overlapping writes and a read of a value none wrote: refuting it means trying every subset. */
  function hardHistory(): HistoryEvent[] {
    const history = new Scenario()
    for (let i = 0; i < 20; i++) history.write(i, 'hard', v(i + 1, `w${i}`), 0, 100)
    history.read(99, 'hard', v(7, 'nobody'), 200, 201)
    history.write(100, 'easy', v(1, 'x'), 0, 1).read(101, 'easy', v(1, 'x'), 2, 3)
    return history.events
  }

  it('a key that needs more steps than the budget is unknown, not a hang', () => {
    for (const model of [seqRegisterModel, registerModel] as Model<RegisterState>[]) {
      const verdict = checkHistory(hardHistory(), { model, searchStatesMax: 1000 })
      expect(verdict.valid).toBe('unknown')
      expect(verdict.unknownKeys).toEqual(['hard'])
      expect(verdict.failures).toEqual([])
    }
  })

  it('a failure on one key outweighs unknown on another', () => {
    const events = [...hardHistory(), ...new Scenario().read(500, 'bad', v(1, 'ghost'), 0, 1).events]
    const verdict = checkHistory(events, { searchStatesMax: 1000 })
    expect(verdict.valid).toBe(false)
    expect(verdict.unknownKeys).toEqual(['hard'])
    expect(verdict.failures.map((failure) => failure.key)).toEqual(['bad'])
  })
})

// ---------------------------------------------------------------------------------------------
// Generated histories: a sequential run of the model decides every result at its linearization
// point; each op's call is then moved earlier and its return later, within its own process's gaps,
// so the true order stays one valid linearization.

interface PlannedStep {
  readonly key: number
  readonly process: number
  readonly kind: 'read' | 'write' | 'phantom' // phantom: an info write that never took effect
  readonly seq: number
  readonly outcomeRoll: number
  readonly widenCall: number
  readonly widenReturn: number
}

interface GeneratedOp {
  readonly process: number
  readonly key: string
  readonly f: 'read' | 'write'
  value: RegisterValue | null | undefined
  readonly outcome: 'ok' | 'fail' | 'info'
  callMs: number
  returnMs: number
}

const stepArbitrary = (keys: number, processes: number): fc.Arbitrary<PlannedStep> =>
  fc.record({
    key: fc.integer({ min: 0, max: keys - 1 }),
    process: fc.integer({ min: 0, max: processes - 1 }),
    kind: fc.constantFrom<PlannedStep['kind']>('read', 'read', 'write', 'write', 'phantom'),
    seq: fc.integer({ min: 1, max: 12 }),
    outcomeRoll: fc.integer({ min: 0, max: 9 }),
    widenCall: fc.double({ min: 0, max: 0.999, noNaN: true }),
    widenReturn: fc.double({ min: 0, max: 0.999, noNaN: true }),
  })

/** Runs the plan sequentially (op i takes effect at time 10·(i+1)) and widens each op's window. */
function generate(plan: readonly PlannedStep[], modelName: 'seq' | 'plain'): GeneratedOp[] {
  const state = new Map<string, RegisterValue | null>()
  const ops: GeneratedOp[] = []
  const points: number[] = []
  plan.forEach((step, i) => {
    const key = `key${step.key}`
    const current = state.get(key) ?? null
    const lp = 10 * (i + 1)
    points.push(lp)
    if (step.kind === 'read') {
      const outcome = step.outcomeRoll === 0 ? 'fail' : step.outcomeRoll === 1 ? 'info' : 'ok'
      ops.push({
        process: step.process,
        key,
        f: 'read',
        value: outcome === 'ok' ? current : undefined,
        outcome,
        callMs: lp,
        returnMs: lp,
      })
      return
    }
    const value = v(modelName === 'seq' ? step.seq : i, `v${i}`)
    if (step.kind === 'phantom') {
      ops.push({ process: step.process, key, f: 'write', value, outcome: 'info', callMs: lp, returnMs: lp })
      return
    }
    const accepted = modelName === 'plain' || current === null || value.seq > current.seq
    if (accepted) state.set(key, value)
    const outcome = step.outcomeRoll < 2 ? 'info' : accepted ? 'ok' : 'fail'
    ops.push({ process: step.process, key, f: 'write', value, outcome, callMs: lp, returnMs: lp })
  })
  // Widen within each process: the call moves back into the gap after the process's previous
  // return, the return forward into the gap before its next linearization point.
  const lastReturnByProcess = new Map<number, number>()
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!
    const step = plan[i]!
    const lp = points[i]!
    const previousReturn = lastReturnByProcess.get(op.process) ?? 0
    let nextPoint = lp + 50
    for (let j = i + 1; j < ops.length; j++) {
      if (ops[j]!.process === op.process) {
        nextPoint = points[j]!
        break
      }
    }
    op.callMs = lp - step.widenCall * (lp - previousReturn)
    op.returnMs = lp + step.widenReturn * (nextPoint - lp)
    lastReturnByProcess.set(op.process, op.returnMs)
  }
  return ops
}

function toEvents(ops: readonly GeneratedOp[]): HistoryEvent[] {
  const timed: { event: HistoryEvent; order: number }[] = []
  for (const op of ops) {
    timed.push({
      event:
        op.f === 'write'
          ? { process: op.process, type: 'invoke', f: 'write', key: op.key, value: op.value, timeMs: op.callMs }
          : { process: op.process, type: 'invoke', f: 'read', key: op.key, timeMs: op.callMs },
      order: timed.length,
    })
    timed.push({
      event:
        op.f === 'write' || op.outcome !== 'ok'
          ? {
              process: op.process,
              type: op.outcome,
              f: op.f,
              key: op.key,
              value: op.f === 'write' ? op.value : undefined,
              timeMs: op.returnMs,
            }
          : { process: op.process, type: 'ok', f: 'read', key: op.key, value: op.value, timeMs: op.returnMs },
      order: timed.length,
    })
  }
  return timed.sort((a, b) => a.event.timeMs - b.event.timeMs || a.order - b.order).map((entry) => entry.event)
}

/**
 * Values that read `read` cannot have returned in ANY linearization, by rules that hold for both
 * models (times as the checker sees them: an info op returns at +Infinity; equal times overlap):
 * a value never written; a failed write's value; a write that began after the read returned; a
 * write followed, before the read began, by an acknowledged write that began after it returned
 * (which overwrote it, and under seqRegister raised the seq past it for good); null once an
 * acknowledged write returned before the read began.
 */
function impossibleResults(ops: readonly GeneratedOp[], read: GeneratedOp): (RegisterValue | null)[] {
  const end = (op: GeneratedOp): number => (op.outcome === 'info' ? Number.POSITIVE_INFINITY : op.returnMs)
  const writes = ops.filter((op) => op.f === 'write' && op.key === read.key)
  const results: (RegisterValue | null)[] = [v(1_000_000, 'never-written')]
  for (const write of writes) {
    const overwritten = writes.some(
      (later) => later !== write && later.outcome === 'ok' && end(write) < later.callMs && end(later) < read.callMs,
    )
    if (write.outcome === 'fail' || write.callMs > read.returnMs || overwritten) results.push(write.value!)
  }
  if (writes.some((write) => write.outcome === 'ok' && end(write) < read.callMs)) results.push(null)
  return results
}

const planArbitrary = fc.array(stepArbitrary(3, 4), { minLength: 1, maxLength: 60 })

describe('generated histories (properties)', () => {
  for (const modelName of ['seq', 'plain'] as const) {
    const model = modelName === 'seq' ? seqRegisterModel : registerModel

    it(`${modelName}: a widened sequential run is always linearizable`, () => {
      fc.assert(
        fc.property(planArbitrary, (plan) => {
          const verdict = checkHistory(toEvents(generate(plan, modelName)), { model })
          expect(verdict.failures).toEqual([])
          expect(verdict.valid).toBe(true)
        }),
        { numRuns: 300 },
      )
    })

    it(`${modelName}: one read changed to a value impossible in its window is not linearizable`, () => {
      const withRead = planArbitrary.filter((plan) =>
        plan.some((step) => step.kind === 'read' && step.outcomeRoll >= 2),
      )
      fc.assert(
        fc.property(withRead, fc.nat(), fc.nat(), (plan, readPick, valuePick) => {
          const ops = generate(plan, modelName)
          const reads = ops.filter((op) => op.f === 'read' && op.outcome === 'ok')
          const read = reads[readPick % reads.length]!
          const candidates = impossibleResults(ops, read)
          const mutated = candidates[valuePick % candidates.length]!
          read.value = mutated
          const verdict = checkHistory(toEvents(ops), { model })
          expect(verdict.valid).toBe(false)
          expect(verdict.failures.map((failure) => failure.key)).toEqual([read.key])
        }),
        { numRuns: 300 },
      )
    })
  }
})

describe('performance sanity', () => {
  it('5 keys, 5 processes, 2000 ops, heavily overlapping', () => {
    let seed = 12345
    const random = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return seed / 2 ** 32
    }
    const kinds: PlannedStep['kind'][] = ['read', 'read', 'write', 'write', 'phantom']
    const plan: PlannedStep[] = Array.from({ length: 2000 }, () => ({
      key: Math.floor(random() * 5),
      process: Math.floor(random() * 5),
      kind: kinds[Math.floor(random() * kinds.length)]!,
      seq: 1 + Math.floor(random() * 2000),
      outcomeRoll: Math.floor(random() * 10),
      widenCall: random() * 0.999,
      widenReturn: random() * 0.999,
    }))
    const events = toEvents(generate(plan, 'seq'))
    const started = performance.now()
    const verdict = checkHistory(events)
    const elapsedMs = performance.now() - started
    console.log(
      `linearizability: ${verdict.operations} ops on ${verdict.keys} keys checked in ${elapsedMs.toFixed(1)} ms`,
    )
    expect(verdict.operations).toBe(2000)
    expect(verdict.valid).toBe(true)
  }, 60_000)
})
