import type { Delta } from './commands.ts'
import { assert } from './errors.ts'
import { SELF_REPORTED_FIELDS } from './model.ts'
import type { SelfReported } from './model.ts'

/**
 * Helpers for the origin side: a node builds deltas from its own state. The registry drops any
 * delta whose sequence is not above the last applied one, so an origin must not let a later delta
 * overtake an unacknowledged earlier one: fold the pending deltas into one and resend that.
 */

/** The self-reported fields that differ between two versions of a node's own state. */
export function changedFields(before: Partial<SelfReported>, after: SelfReported): Partial<SelfReported> {
  const fields: Record<string, unknown> = {}
  for (const field of SELF_REPORTED_FIELDS) {
    const previous = before[field]
    const next = after[field]
    const same =
      field === 'multiaddrs'
        ? Array.isArray(previous) && sameStrings(previous as readonly string[], next as readonly string[])
        : previous === next
    if (!same) fields[field] = field === 'multiaddrs' ? [...(next as readonly string[])] : next
  }
  return fields as Partial<SelfReported>
}

/** One delta with the effect of `older` then `newer` from the same origin. */
export function foldDeltas(older: Delta, newer: Delta): Delta {
  assert(older.originPeerId === newer.originPeerId, 'foldDeltas: deltas of one origin')
  assert(older.seq < newer.seq, () => `foldDeltas: ${older.seq} before ${newer.seq}`)
  return { originPeerId: newer.originPeerId, seq: newer.seq, fields: { ...older.fields, ...newer.fields } }
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i])
}
