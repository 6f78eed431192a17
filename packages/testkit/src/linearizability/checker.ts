import type { HistoryEvent, Operation } from './history.ts'
import { formatValue, pairHistory } from './history.ts'
import type { Model } from './models.ts'
import { seqRegisterModel } from './models.ts'

/**
 * Linearizability by search: Wing & Gong's algorithm with Lowe's just-in-time linearization and
 * memoisation (G. Lowe, "Testing for linearizability", 2017; the same search as Porcupine). Keys are
 * independent registers, so the history of each key is checked on its own (P-compositionality,
 * Herlihy & Wing §3.3): a history is linearizable iff every key's sub-history is.
 */

/**
 * Model steps tried per key before giving up with 'unknown'. A million steps is a few hundred
 * milliseconds of search; a key that needs more is a history too concurrent to judge quickly, and a
 * bounded answer beats a test that hangs.
 */
export const SEARCH_STATES_MAX_DEFAULT = 1_000_000

/** Ops listed in a failure's explanation: enough to see the overlap, short enough to read. */
const EXPLANATION_OPERATIONS_MAX = 10
const EXPLANATION_LINEARIZED_MAX = 3

export interface Verdict {
  readonly valid: boolean | 'unknown' // 'unknown' when the search budget ran out
  readonly keys: number
  readonly operations: number
  /** Per key that failed: the key, and a short human-readable explanation: the ops around the point where no linearization could be extended (at most ~10 ops, with times). */
  readonly failures: readonly { key: string; explanation: string }[]
  readonly unknownKeys: readonly string[]
}

export interface CheckOptions {
  /** The sequential specification; `seqRegisterModel` unless given. */
  readonly model?: Model
  /** Model steps per key before that key is 'unknown'; SEARCH_STATES_MAX_DEFAULT unless given. */
  readonly searchStatesMax?: number
}

/**
 * Judges a history of reads and writes on keyed registers. Failed operations are dropped (they did
 * not happen), and so are reads without a result (`info` reads constrain nothing); an `info` write
 * may be placed anywhere after its call, or left out. Throws LinearizabilityError MALFORMED_HISTORY
 * when the history is not well formed (see `pairHistory`).
 */
export function checkHistory(
  events: readonly HistoryEvent[],
  options?: { model?: Model; searchStatesMax?: number },
): Verdict {
  const model = options?.model ?? seqRegisterModel
  const searchStatesMax = options?.searchStatesMax ?? SEARCH_STATES_MAX_DEFAULT
  if (!(searchStatesMax >= 1)) throw new RangeError(`searchStatesMax must be at least 1, got ${searchStatesMax}`)

  const operations = pairHistory(events)
  const operationsByKey = new Map<string, Operation[]>()
  for (const op of operations) {
    let list = operationsByKey.get(op.key)
    if (list === undefined) {
      list = []
      operationsByKey.set(op.key, list)
    }
    if (op.outcome === 'fail') continue
    if (op.f === 'read' && op.outcome !== 'ok') continue
    list.push(op)
  }

  const failures: { key: string; explanation: string }[] = []
  const unknownKeys: string[] = []
  for (const [key, keyOperations] of operationsByKey) {
    const result = checkOperations(keyOperations, model, searchStatesMax)
    if (result.kind === 'invalid')
      failures.push({ key, explanation: `key ${JSON.stringify(key)}: ${result.explanation}` })
    else if (result.kind === 'unknown') unknownKeys.push(key)
  }
  return {
    valid: failures.length > 0 ? false : unknownKeys.length > 0 ? 'unknown' : true,
    keys: operationsByKey.size,
    operations: operations.length,
    failures,
    unknownKeys,
  }
}

export type KeyResult =
  | { readonly kind: 'valid'; readonly searchStates: number }
  | { readonly kind: 'invalid'; readonly searchStates: number; readonly explanation: string }
  | { readonly kind: 'unknown'; readonly searchStates: number }

/** One node of Lowe's list: an operation's call, or its return, in time order. */
interface ListEntry {
  readonly op: number
  readonly isCall: boolean
  readonly timeMs: number
  /** Call entry: its return entry. Return entry: itself. */
  match: ListEntry | null
  prev: ListEntry | null
  next: ListEntry | null
}

/** A linearized call, and the model state before it: what backtracking restores. */
interface StackFrame {
  readonly entry: ListEntry
  readonly stateBefore: unknown
}

/** A 32-bit mix (murmur3's finalizer): the Zobrist code of each operation in the linearized set. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b)
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35)
  return (x ^ (x >>> 16)) >>> 0
}

function hashString(text: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}

/**
 * The configurations (linearized set, model state) already explored: reaching one again cannot end
 * differently, so the search skips it (Lowe §4). Bitsets live side by side in one growing word arena;
 * a map from a 32-bit hash to arena slots resolves collisions by comparing the full set and state key.
 */
class VisitedConfigurations {
  private readonly wordsPerSet: number
  private arena: Uint32Array
  private readonly stateKeys: string[] = []
  private readonly slotsByHash = new Map<number, number | number[]>()

  constructor(wordsPerSet: number) {
    this.wordsPerSet = wordsPerSet
    this.arena = new Uint32Array(Math.max(1024, wordsPerSet * 64))
  }

  /** Adds the configuration; false when it was already there. */
  add(bits: Uint32Array, bitsHash: number, stateKey: string): boolean {
    const hash = (bitsHash ^ Math.imul(hashString(stateKey), 0x9e3779b1)) >>> 0
    const slots = this.slotsByHash.get(hash)
    if (slots !== undefined) {
      if (typeof slots === 'number') {
        if (this.equals(slots, bits, stateKey)) return false
      } else {
        for (const slot of slots) if (this.equals(slot, bits, stateKey)) return false
      }
    }
    const slot = this.stateKeys.length
    const offset = slot * this.wordsPerSet
    if (offset + this.wordsPerSet > this.arena.length) {
      const grown = new Uint32Array(Math.max(this.arena.length * 2, offset + this.wordsPerSet))
      grown.set(this.arena)
      this.arena = grown
    }
    this.arena.set(bits, offset)
    this.stateKeys.push(stateKey)
    if (slots === undefined) this.slotsByHash.set(hash, slot)
    else if (typeof slots === 'number') this.slotsByHash.set(hash, [slots, slot])
    else slots.push(slot)
    return true
  }

  private equals(slot: number, bits: Uint32Array, stateKey: string): boolean {
    if (this.stateKeys[slot] !== stateKey) return false
    const offset = slot * this.wordsPerSet
    for (let i = 0; i < this.wordsPerSet; i++) if (this.arena[offset + i] !== bits[i]) return false
    return true
  }
}

function buildList(operations: readonly Operation[]): ListEntry {
  const entries: ListEntry[] = []
  for (let op = 0; op < operations.length; op++) {
    const operation = operations[op]!
    const returnEntry: ListEntry = {
      op,
      isCall: false,
      timeMs: operation.returnMs,
      match: null,
      prev: null,
      next: null,
    }
    returnEntry.match = returnEntry
    entries.push({ op, isCall: true, timeMs: operation.callMs, match: returnEntry, prev: null, next: null })
    entries.push(returnEntry)
  }
  // At equal times a call sorts before a return: ties count as overlapping, which never turns a
  // linearizable history into a failure (a clock too coarse to order two events orders nothing).
  entries.sort((a, b) =>
    a.timeMs !== b.timeMs ? a.timeMs - b.timeMs : a.isCall === b.isCall ? a.op - b.op : a.isCall ? -1 : 1,
  )
  const head: ListEntry = {
    op: -1,
    isCall: false,
    timeMs: Number.NEGATIVE_INFINITY,
    match: null,
    prev: null,
    next: null,
  }
  let last = head
  for (const entry of entries) {
    last.next = entry
    entry.prev = last
    last = entry
  }
  return head
}

/** Unlinks a call and its return (the op is linearized). */
function lift(call: ListEntry): void {
  const ret = call.match!
  call.prev!.next = call.next
  call.next!.prev = call.prev
  ret.prev!.next = ret.next
  if (ret.next !== null) ret.next.prev = ret.prev
}

/** Undoes `lift`, in reverse order, so each entry's neighbours are the ones it had. */
function unlift(call: ListEntry): void {
  const ret = call.match!
  ret.prev!.next = ret
  if (ret.next !== null) ret.next.prev = ret
  call.prev!.next = call
  call.next!.prev = call
}

function formatTime(timeMs: number): string {
  return Number.isFinite(timeMs) ? timeMs.toFixed(3) : '∞'
}

function formatOperation(op: Operation): string {
  const what = op.f === 'write' ? `write ${formatValue(op.value)}` : `read -> ${formatValue(op.value)}`
  return `#${op.index} p${op.process} ${what} ${op.outcome} [${formatTime(op.callMs)}, ${formatTime(op.returnMs)}]ms`
}

/**
 * The search over one key's operations (each one `ok`, or an `info` write). Walks the list of calls
 * and returns in time order: a call whose op the model accepts in the current state, into a
 * configuration not seen before, is linearized (lifted out of the list) and the walk restarts from
 * the front; reaching a return means that op was not linearized before it returned, so the last
 * choice is undone. `info` ops return at +Infinity, so they are always placeable later and the
 * search succeeds once every other op is linearized, with or without them.
 */
export function checkOperations(operations: readonly Operation[], model: Model, searchStatesMax: number): KeyResult {
  const count = operations.length
  let remaining = 0
  for (const op of operations) if (op.outcome !== 'info') remaining++
  if (remaining === 0) return { kind: 'valid', searchStates: 0 }

  const head = buildList(operations)
  const wordsPerSet = Math.max(1, Math.ceil(count / 32))
  const bits = new Uint32Array(wordsPerSet)
  const codes = new Uint32Array(count)
  for (let op = 0; op < count; op++) codes[op] = mix32(op + 0x2545f491)
  let bitsHash = 0
  const visited = new VisitedConfigurations(wordsPerSet)
  const stack: StackFrame[] = []
  let state = model.init()
  let searchStates = 0

  // The deepest point reached: where the explanation looks when every path fails.
  let bestDepth = -1
  let bestStuckOp = -1
  let bestState: unknown = state
  let bestLastLinearized: number[] = []

  let entry = head.next
  for (;;) {
    if (entry === null) throw new Error('linearizability: walked off the list with ops left to linearize')
    if (entry.isCall) {
      const op = operations[entry.op]!
      if (searchStates >= searchStatesMax) return { kind: 'unknown', searchStates }
      searchStates++
      const next = model.step(state, op)
      if (next !== undefined) {
        const word = entry.op >>> 5
        const mask = 1 << (entry.op & 31)
        bits[word] = bits[word]! | mask
        const nextHash = (bitsHash ^ codes[entry.op]!) >>> 0
        if (visited.add(bits, nextHash, model.key(next))) {
          stack.push({ entry, stateBefore: state })
          state = next
          bitsHash = nextHash
          if (op.outcome !== 'info') remaining--
          if (remaining === 0) return { kind: 'valid', searchStates }
          lift(entry)
          entry = head.next
          continue
        }
        bits[word] = bits[word]! & ~mask
      }
      entry = entry.next
      continue
    }

    // A return: its op could not be linearized before it, given the choices on the stack.
    if (operations[entry.op]!.outcome === 'info')
      throw new Error('linearizability: reached an info return with ops left to linearize')
    if (stack.length > bestDepth) {
      bestDepth = stack.length
      bestStuckOp = entry.op
      bestState = state
      bestLastLinearized = stack.slice(-EXPLANATION_LINEARIZED_MAX).map((frame) => frame.entry.op)
    }
    const frame = stack.pop()
    if (frame === undefined) {
      return {
        kind: 'invalid',
        searchStates,
        explanation: explain(operations, model, bestDepth, bestStuckOp, bestState, bestLastLinearized),
      }
    }
    const undone = frame.entry.op
    state = frame.stateBefore
    bits[undone >>> 5] = bits[undone >>> 5]! & ~(1 << (undone & 31))
    bitsHash = (bitsHash ^ codes[undone]!) >>> 0
    if (operations[undone]!.outcome !== 'info') remaining++
    unlift(frame.entry)
    entry = frame.entry.next
  }
}

/**
 * The deepest partial linearization, the op it could not get past, the state it left, and the ops
 * nearest that op in time (by call time), so a person can see which overlap made it impossible.
 */
function explain(
  operations: readonly Operation[],
  model: Model,
  depth: number,
  stuckOp: number,
  state: unknown,
  lastLinearized: readonly number[],
): string {
  const stuck = operations[stuckOp]!
  const lines = [
    `no linearization gets past ${formatOperation(stuck)}; the longest linearized ${depth} of ${operations.length} ops, leaving state ${model.key(state)}`,
  ]
  if (lastLinearized.length > 0) {
    lines.push(`  last linearized: ${lastLinearized.map((op) => formatOperation(operations[op]!)).join('; ')}`)
  }
  const shown = new Set(lastLinearized)
  shown.add(stuckOp)
  const byCall = operations.map((_, op) => op).sort((a, b) => operations[a]!.callMs - operations[b]!.callMs || a - b)
  const at = byCall.indexOf(stuckOp)
  const around: number[] = []
  const budget = EXPLANATION_OPERATIONS_MAX - shown.size
  for (let distance = 1; around.length < budget && (at - distance >= 0 || at + distance < byCall.length); distance++) {
    for (const position of [at - distance, at + distance]) {
      const op = byCall[position]
      if (op !== undefined && !shown.has(op) && around.length < budget) around.push(op)
    }
  }
  around.sort((a, b) => operations[a]!.callMs - operations[b]!.callMs || a - b)
  if (around.length > 0)
    lines.push(`  ops around it: ${around.map((op) => formatOperation(operations[op]!)).join('; ')}`)
  return lines.join('\n')
}
