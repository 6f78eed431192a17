import { RaftError, assert } from './errors.ts'
import type { ConfState, Entry, HardState, Snapshot } from './types.ts'
import { entrySizeBytes } from './entry.ts'

/**
 * The durable log as the core sees it. Every method is synchronous: the core asks for entries while
 * building messages and cannot await. A disk-backed store keeps the log it serves in memory (or a
 * bounded cache of it) and writes through; `MemoryStorage` below is the reference implementation and
 * the compliance suite in test/storage-suite.ts pins the contract for both.
 */
export interface Storage {
  /** The persisted hard state and the membership as of the newest snapshot. */
  initialState(): { hardState: HardState; confState: ConfState }
  /** Entries in [low, high), at most `bytesMax` bytes but always at least one when the range is non-empty. */
  entries(low: number, high: number, bytesMax: number): Entry[]
  /** Term of entry `index`; firstIndex()-1 answers with the snapshot's term. */
  term(index: number): number
  /** Index of the first entry still in the log (snapshot index + 1). */
  firstIndex(): number
  lastIndex(): number
  snapshot(): Snapshot
}

const EMPTY_CONF: ConfState = { voters: [], learners: [] }
/** Where a bootstrapped cluster's history begins (see MemoryStorage.bootstrap). */
export const BOOTSTRAP_INDEX = 1
export const BOOTSTRAP_TERM = 1

/** An in-memory Storage. In the simulator it stands for what survived on disk across a crash. */
export class MemoryStorage implements Storage {
  private hardState: HardState = { term: 0, vote: 0, commit: 0 }
  private snap: Snapshot = { metadata: { index: 0, term: 0, confState: EMPTY_CONF }, data: new Uint8Array() }
  /** log[0] is a dummy standing for the snapshot's last entry, so log[i].index === snapIndex + i. */
  private log: Entry[] = [{ index: 0, term: 0, type: 'noop', data: new Uint8Array() }]

  /**
   * A fresh store for a founding member of a new cluster. The initial membership is recorded as a
   * snapshot at index 1, term 1: every founder starts from the same point, and a replica added later
   * (whose store is empty) receives that snapshot, and so the membership, before any entry.
   */
  static bootstrap(confState: ConfState, data: Uint8Array = new Uint8Array()): MemoryStorage {
    const storage = new MemoryStorage()
    storage.applySnapshot({ metadata: { index: BOOTSTRAP_INDEX, term: BOOTSTRAP_TERM, confState }, data })
    storage.setHardState({ term: BOOTSTRAP_TERM, vote: 0, commit: BOOTSTRAP_INDEX })
    return storage
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: this.snap.metadata.confState }
  }

  setHardState(hardState: HardState): void {
    assert(hardState.term >= this.hardState.term, 'persisted term never decreases')
    this.hardState = hardState
  }

  entries(low: number, high: number, bytesMax: number): Entry[] {
    const offset = this.log[0]!.index
    if (low <= offset) throw new RaftError('COMPACTED', `entries from ${low} were compacted (first is ${offset + 1})`)
    if (high > this.lastIndex() + 1)
      throw new RaftError('UNAVAILABLE', `entries up to ${high - 1} are not in storage (last is ${this.lastIndex()})`)
    const result: Entry[] = []
    let bytes = 0
    for (let index = low; index < high; index++) {
      const entry = this.log[index - offset]!
      bytes += entrySizeBytes(entry)
      if (result.length > 0 && bytes > bytesMax) break
      result.push(entry)
    }
    return result
  }

  term(index: number): number {
    const offset = this.log[0]!.index
    if (index < offset) throw new RaftError('COMPACTED', `term of ${index} was compacted`)
    if (index - offset >= this.log.length) throw new RaftError('UNAVAILABLE', `term of ${index} is not in storage`)
    return this.log[index - offset]!.term
  }

  firstIndex(): number {
    return this.log[0]!.index + 1
  }

  lastIndex(): number {
    return this.log[0]!.index + this.log.length - 1
  }

  snapshot(): Snapshot {
    return this.snap
  }

  /** Persist a snapshot received from a leader; the whole log is replaced by it. */
  applySnapshot(snapshot: Snapshot): void {
    if (snapshot.metadata.index <= this.snap.metadata.index) {
      throw new RaftError(
        'SNAPSHOT_OUT_OF_DATE',
        `snapshot at ${snapshot.metadata.index} is older than the stored one at ${this.snap.metadata.index}`,
      )
    }
    this.snap = snapshot
    this.log = [{ index: snapshot.metadata.index, term: snapshot.metadata.term, type: 'noop', data: new Uint8Array() }]
  }

  /**
   * Record a snapshot the application took at `index` (which it has applied) and drop the log before
   * it. `confState` is the membership as of `index`.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    const offset = this.log[0]!.index
    if (index <= this.snap.metadata.index) {
      throw new RaftError(
        'SNAPSHOT_OUT_OF_DATE',
        `snapshot at ${index} is not newer than the stored one at ${this.snap.metadata.index}`,
      )
    }
    if (index > this.lastIndex())
      throw new RaftError('UNAVAILABLE', `cannot snapshot at ${index}: last index is ${this.lastIndex()}`)
    const term = this.log[index - offset]!.term
    this.snap = { metadata: { index, term, confState }, data }
    this.compact(index)
    return this.snap
  }

  /** Discard entries before `compactIndex`; the entry at compactIndex becomes the dummy. */
  compact(compactIndex: number): void {
    const offset = this.log[0]!.index
    if (compactIndex <= offset) return
    assert(compactIndex <= this.lastIndex(), `compact ${compactIndex} beyond last index ${this.lastIndex()}`)
    const dummy = this.log[compactIndex - offset]!
    this.log = [
      { index: dummy.index, term: dummy.term, type: 'noop', data: new Uint8Array() },
      ...this.log.slice(compactIndex - offset + 1),
    ]
  }

  /** Persist entries, truncating any conflicting suffix (a new leader overwrote it). */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return
    const first = this.firstIndex()
    const last = entries[0]!.index + entries.length - 1
    if (last < first) return
    // Entries already covered by the snapshot are dropped, never re-applied.
    const fresh = first > entries[0]!.index ? entries.slice(first - entries[0]!.index) : entries
    const offset = fresh[0]!.index - this.log[0]!.index
    assert(offset <= this.log.length, `append at ${fresh[0]!.index} leaves a gap after ${this.lastIndex()}`)
    // Truncate and extend in place: a replica appends on every Ready, so copying the log would cost
    // O(log length) per batch.
    this.log.length = offset
    for (const entry of fresh) this.log.push(entry)
  }
}
