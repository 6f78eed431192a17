import type { Delta, StaleReason } from './commands.ts'
import { assert } from './errors.ts'
import { emptyRecord, SELF_REPORTED_FIELDS } from './model.ts'
import type { LastLeftReason, NodeData } from './model.ts'
import { recordInvariantBroken } from './validate.ts'

/**
 * The merge rules: pure functions from (record, command, time, index) to a new record or the
 * reason nothing changed. They never mutate a record (readers may hold it) and never read a clock:
 * `nowMs` is the leader's stamp, clamped by the registry so that it never runs backwards.
 *
 * Presence: a node is active while at least one replica sees it connected. Each replica's joins and
 * leaves only add or remove that replica in `observers`; the uptime interval opens when the first
 * observer arrives and closes when the last one goes. That one rule settles the cases the seed
 * network miscounted:
 *   double join            the same replica again: DUPLICATE_JOIN, nothing changes
 *   join from a second replica   observers grows, the open interval is untouched (no double count)
 *   leave without join     LEAVE_WITHOUT_JOIN, nothing changes (the seed subtracted a stale join)
 *   out-of-order stamps    a newer leader's clock may lag: time is clamped, so no interval is negative
 *   presence lost unseen   (replica reset, expiry, replica removed) the interval closes at the last
 *                          evidence of life, lastUpdatedMs, never at "now": uptime is never invented
 */

export type MergeOutcome = { readonly record: NodeData } | { readonly stale: StaleReason }

/** Self-reported fields: the origin's highest sequence wins; equal is a replay, lower is stale. */
export function mergeDelta(existing: NodeData | undefined, delta: Delta, nowMs: number, index: number): MergeOutcome {
  if (existing !== undefined && delta.seq <= existing.originSeq) {
    return { stale: delta.seq === existing.originSeq ? 'REPLAYED' : 'STALE_SEQUENCE' }
  }
  const base = existing ?? emptyRecord(delta.originPeerId)
  const next: Record<string, unknown> = { ...base }
  // Copy named fields only: whatever else a caller's object carries can never reach a record.
  for (const field of SELF_REPORTED_FIELDS) {
    const value = delta.fields[field]
    if (value !== undefined) next[field] = field === 'multiaddrs' ? [...(value as readonly string[])] : value
  }
  next.originSeq = delta.seq
  next.lastUpdatedMs = nowMs
  next.changedIndex = index
  return { record: checked(next as unknown as NodeData) }
}

/** A replica saw the peer connect. Creates the record if the peer is new. */
export function observeJoined(
  existing: NodeData | undefined,
  peerId: string,
  replicaPeerId: string,
  nowMs: number,
  index: number,
): MergeOutcome {
  const base = existing ?? emptyRecord(peerId)
  if (base.observers.includes(replicaPeerId)) return { stale: 'DUPLICATE_JOIN' }
  const opens = base.observers.length === 0
  return {
    record: checked({
      ...base,
      observers: [...base.observers, replicaPeerId].sort(),
      isActive: true,
      firstJoinedMs: base.firstJoinedMs === 0 ? nowMs : base.firstJoinedMs,
      lastJoinedMs: opens ? nowMs : base.lastJoinedMs,
      lastUpdatedMs: nowMs,
      changedIndex: index,
    }),
  }
}

/**
 * A replica saw the peer disconnect. The interval closes now if no other replica sees it, and then
 * `reason` becomes the record's lastLeftReason.
 */
export function observeLeft(
  existing: NodeData | undefined,
  replicaPeerId: string,
  nowMs: number,
  index: number,
  reason: LastLeftReason,
): MergeOutcome {
  if (existing === undefined || !existing.observers.includes(replicaPeerId)) return { stale: 'LEAVE_WITHOUT_JOIN' }
  return {
    record: withoutObservers(existing, (observer) => observer === replicaPeerId, nowMs, nowMs, index, reason),
  }
}

/**
 * The leader's lease on a node (the `liveness` command). Active opens a presence held by the leader
 * that proposed it, unless the node is already active (a new leader inherits the presence its
 * predecessor opened: nothing to log). Inactive closes every presence at this entry's stamp, so
 * uptime counts exactly the interval between the two log entries that opened and closed it, and
 * records `leftReason` with lastLeftMs. Active leaves lastLeftMs and lastLeftReason as they were:
 * both say when and why the node last went away, which is still true (and, for a node that flaps,
 * what an operator wants to see).
 */
export function setLiveness(
  existing: NodeData | undefined,
  peerId: string,
  replicaPeerId: string,
  active: boolean,
  nowMs: number,
  index: number,
  leftReason: LastLeftReason,
): MergeOutcome {
  if (active) {
    if (existing?.isActive) return { stale: 'DUPLICATE_JOIN' }
    return observeJoined(existing, peerId, replicaPeerId, nowMs, index)
  }
  if (existing === undefined || !existing.isActive) return { stale: 'LEAVE_WITHOUT_JOIN' }
  return { record: withoutObservers(existing, () => true, nowMs, nowMs, index, leftReason) }
}

/**
 * Ends the presences that `drop` selects, for the commands that learn of a loss without seeing it
 * (replica reset, expiry, a replica removed). Returns undefined when the record is unchanged.
 */
export function endPresences(
  existing: NodeData,
  drop: (replicaPeerId: string) => boolean,
  nowMs: number,
  index: number,
  reason: LastLeftReason,
): NodeData | undefined {
  if (!existing.observers.some(drop)) return undefined
  return withoutObservers(existing, drop, existing.lastUpdatedMs, nowMs, index, reason)
}

/** Drops observers; when none is left the interval closes at `closeAtMs`, for `reason`. */
function withoutObservers(
  existing: NodeData,
  drop: (replicaPeerId: string) => boolean,
  closeAtMs: number,
  nowMs: number,
  index: number,
  reason: LastLeftReason,
): NodeData {
  const observers = existing.observers.filter((observer) => !drop(observer))
  assert(observers.length < existing.observers.length, 'withoutObservers drops at least one observer')
  if (observers.length > 0) {
    return checked({ ...existing, observers, lastUpdatedMs: nowMs, changedIndex: index })
  }
  assert(
    closeAtMs >= existing.lastJoinedMs,
    () => `interval closes at ${closeAtMs}, before it opened at ${existing.lastJoinedMs}`,
  )
  return checked({
    ...existing,
    observers,
    isActive: false,
    lastLeftMs: closeAtMs,
    lastLeftReason: reason,
    uptimeAccumulatedMs: existing.uptimeAccumulatedMs + (closeAtMs - existing.lastJoinedMs),
    lastUpdatedMs: nowMs,
    changedIndex: index,
  })
}

/** Every record the state machine stores passes through here: a broken invariant is a bug. */
function checked(record: NodeData): NodeData {
  const broken = recordInvariantBroken(record)
  assert(broken === undefined, () => `record ${record.peerId}: ${broken}`)
  return record
}
