import { RaftError, assert } from './errors.ts'
import { limitEntriesSize } from './entry.ts'
import type { Storage } from './storage.ts'
import type { Entry, Snapshot } from './types.ts'

/**
 * Entries the core has accepted but the host has not yet persisted, and a snapshot received from a
 * leader that is waiting to be persisted. `offset` is the index of entries[0].
 */
class UnstableLog {
  snapshot: Snapshot | undefined
  entries: Entry[] = []
  offset: number

  constructor(offset: number) {
    this.offset = offset
  }

  maybeFirstIndex(): number | undefined {
    return this.snapshot === undefined ? undefined : this.snapshot.metadata.index + 1
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1
    if (this.snapshot !== undefined) return this.snapshot.metadata.index
    return undefined
  }

  maybeTerm(index: number): number | undefined {
    if (index < this.offset) {
      if (this.snapshot !== undefined && this.snapshot.metadata.index === index) return this.snapshot.metadata.term
      return undefined
    }
    const last = this.maybeLastIndex()
    if (last === undefined || index > last) return undefined
    return this.entries[index - this.offset]!.term
  }

  stableTo(index: number, term: number): void {
    const ownTerm = this.maybeTerm(index)
    if (ownTerm === undefined || ownTerm !== term || index < this.offset) return
    this.entries = this.entries.slice(index + 1 - this.offset)
    this.offset = index + 1
  }

  stableSnapshotTo(index: number): void {
    if (this.snapshot !== undefined && this.snapshot.metadata.index === index) this.snapshot = undefined
  }

  restore(snapshot: Snapshot): void {
    this.offset = snapshot.metadata.index + 1
    this.entries = []
    this.snapshot = snapshot
  }

  truncateAndAppend(entries: readonly Entry[]): void {
    const after = entries[0]!.index
    if (after === this.offset + this.entries.length) {
      this.entries.push(...entries)
    } else if (after <= this.offset) {
      // Replaces everything unstable, and (once persisted) the stored suffix from `after` on.
      this.offset = after
      this.entries = [...entries]
    } else {
      this.entries = [...this.entries.slice(0, after - this.offset), ...entries]
    }
  }

  slice(low: number, high: number): Entry[] {
    assert(
      low >= this.offset && high <= this.offset + this.entries.length,
      `unstable slice [${low},${high}) out of [${this.offset},${this.offset + this.entries.length})`,
    )
    return this.entries.slice(low - this.offset, high - this.offset)
  }
}

/** The log as the core sees it: stable entries in Storage, newer ones unstable, plus commit and applied. */
export class RaftLog {
  readonly storage: Storage
  readonly unstable: UnstableLog
  committed: number
  applied: number
  /** Told of every batch of entries written into the log (the core tracks membership changes with it). */
  onAppend: ((entries: readonly Entry[]) => void) | undefined

  constructor(storage: Storage, applied: number) {
    this.storage = storage
    const first = storage.firstIndex()
    const last = storage.lastIndex()
    this.unstable = new UnstableLog(last + 1)
    const { hardState } = storage.initialState()
    this.committed = Math.max(hardState.commit, first - 1)
    assert(this.committed <= last, `stored commit ${hardState.commit} beyond stored last index ${last}`)
    this.applied = Math.max(applied, first - 1)
    assert(this.applied <= this.committed, `applied ${applied} beyond commit ${this.committed}`)
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex()
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex()
  }

  /** The last index in storage (persisted): the entries after it are still in flight to disk. */
  stableIndex(): number {
    // A snapshot waiting to be persisted replaces the log: nothing at or after it is on disk yet.
    if (this.unstable.snapshot !== undefined)
      return Math.min(this.storage.lastIndex(), this.unstable.snapshot.metadata.index - 1)
    return this.unstable.offset - 1
  }

  lastTerm(): number {
    const term = this.term(this.lastIndex())
    assert(term !== undefined, 'the last entry always has a term')
    return term
  }

  /** Term of `index`, or undefined when it is compacted away or beyond the last index. */
  term(index: number): number | undefined {
    const dummyIndex = this.firstIndex() - 1
    if (index < dummyIndex || index > this.lastIndex()) return undefined
    const unstableTerm = this.unstable.maybeTerm(index)
    if (unstableTerm !== undefined) return unstableTerm
    try {
      return this.storage.term(index)
    } catch (error) {
      if (error instanceof RaftError && (error.code === 'COMPACTED' || error.code === 'UNAVAILABLE')) return undefined
      throw error
    }
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term
  }

  /** Raft §5.4.1: is a candidate's log (lastIndex, lastTerm) at least as up-to-date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ownLastTerm = this.lastTerm()
    return lastTerm > ownLastTerm || (lastTerm === ownLastTerm && lastIndex >= this.lastIndex())
  }

  /**
   * Follower side of AppendEntries (Raft §5.3): if our log has (prevIndex, prevTerm), append the new
   * entries, truncating a conflicting suffix, and advance commit. Returns the last index now known to
   * match the leader, or undefined on a mismatch.
   */
  maybeAppend(
    prevIndex: number,
    prevTerm: number,
    leaderCommit: number,
    entries: readonly Entry[],
  ): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined
    const lastNewIndex = prevIndex + entries.length
    const conflictIndex = this.findConflict(entries)
    if (conflictIndex !== 0) {
      assert(
        conflictIndex > this.committed,
        () => `entry ${conflictIndex} conflicts with committed entry (commit ${this.committed})`,
      )
      this.append(entries.slice(conflictIndex - (prevIndex + 1)))
    }
    this.commitTo(Math.min(leaderCommit, lastNewIndex))
    return lastNewIndex
  }

  /** The first entry whose term differs from ours, or that we lack; 0 if we hold them all. */
  private findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index
    }
    return 0
  }

  /**
   * The largest index <= `index` whose term is <= `term` (fast log backtracking, as in etcd: one
   * round trip skips a whole term of conflicting entries instead of one entry).
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (let candidate = index; candidate > 0; candidate--) {
      const ownTerm = this.term(candidate)
      if (ownTerm === undefined) return { index: candidate, term: 0 }
      if (ownTerm <= term) return { index: candidate, term: ownTerm }
    }
    return { index: 0, term: 0 }
  }

  append(entries: readonly Entry[]): number {
    if (entries.length === 0) return this.lastIndex()
    const after = entries[0]!.index - 1
    assert(after >= this.committed, () => `append after ${after} would overwrite committed ${this.committed}`)
    this.unstable.truncateAndAppend(entries)
    this.onAppend?.(entries)
    return this.lastIndex()
  }

  /** Entries in [low, high) within `bytesMax` (at least one), from storage then the unstable tail. */
  slice(low: number, high: number, bytesMax: number): Entry[] {
    if (low >= high) return []
    const first = this.firstIndex()
    if (low < first) throw new RaftError('COMPACTED', `entries from ${low} were compacted (first is ${first})`)
    assert(high <= this.lastIndex() + 1, `slice [${low},${high}) beyond last index ${this.lastIndex()}`)
    let result: Entry[] = []
    const unstableOffset = this.unstable.offset
    if (low < unstableOffset) {
      result = this.storage.entries(low, Math.min(high, unstableOffset), bytesMax)
      if (result.length < Math.min(high, unstableOffset) - low) return result
    }
    if (high > unstableOffset) {
      result = result.concat(this.unstable.slice(Math.max(low, unstableOffset), high))
    }
    return limitEntriesSize(result, bytesMax)
  }

  unstableEntries(): Entry[] {
    return this.unstable.entries.slice()
  }

  hasNextCommittedEntries(): boolean {
    return this.committed > Math.max(this.applied, this.firstIndex() - 1)
  }

  nextCommittedEntries(bytesMax: number): Entry[] {
    const low = Math.max(this.applied + 1, this.firstIndex())
    if (this.committed + 1 <= low) return []
    return this.slice(low, this.committed + 1, bytesMax)
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot()
  }

  commitTo(index: number): void {
    if (index <= this.committed) return
    assert(index <= this.lastIndex(), () => `commit ${index} beyond last index ${this.lastIndex()}`)
    this.committed = index
  }

  appliedTo(index: number): void {
    if (index === 0) return
    assert(
      index <= this.committed && index >= this.applied,
      () => `applied ${index} outside [${this.applied}, ${this.committed}]`,
    )
    this.applied = index
  }

  stableTo(index: number, term: number): void {
    this.unstable.stableTo(index, term)
  }

  stableSnapshotTo(index: number): void {
    this.unstable.stableSnapshotTo(index)
  }

  /** Replace the log with a snapshot from the leader. */
  restore(snapshot: Snapshot): void {
    this.committed = snapshot.metadata.index
    this.unstable.restore(snapshot)
  }
}
