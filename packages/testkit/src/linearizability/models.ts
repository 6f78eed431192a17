import type { Operation, RegisterValue } from './history.ts'
import { formatValue, sameValue } from './history.ts'

/**
 * A sequential specification: the states an object passes through when operations happen one at a
 * time. The checker only ever hands `step` the operations it may linearize: `ok` operations and
 * `info` writes (with the value they would write); never failed ones or reads without a result.
 */
export interface Model<State = unknown> {
  init(): State
  /** The state after `op`, or undefined when `op` cannot happen (with its observed result) in `state`. */
  step(state: State, op: Operation): State | undefined
  /** Equal for equal states, different otherwise: the memo of visited configurations hashes it. */
  key(state: State): string
}

export type RegisterState = RegisterValue | null

function registerKey(state: RegisterState): string {
  return formatValue(state)
}

/** A plain read/write register: a write always takes effect, a read returns the last value written. */
export const registerModel: Model<RegisterState> = {
  init: () => null,
  step(state, op) {
    if (op.f === 'write') return op.value ?? undefined
    if (op.value === undefined) return undefined
    return sameValue(state, op.value) ? state : undefined
  },
  key: registerKey,
}

/**
 * The registry's rule (the highest origin sequence wins): a write of sequence s takes effect only
 * when s is greater than the current sequence, else the system rejects it; so an acknowledged write
 * whose s is not greater cannot be placed at that point. A read returns the current (seq, value), or
 * null before the first write. This is the default model of `checkHistory`.
 */
export const seqRegisterModel: Model<RegisterState> = {
  init: () => null,
  step(state, op) {
    if (op.f === 'write') {
      if (op.value === undefined || op.value === null) return undefined
      if (state !== null && op.value.seq <= state.seq) return undefined
      return op.value
    }
    if (op.value === undefined) return undefined
    return sameValue(state, op.value) ? state : undefined
  },
  key: registerKey,
}
