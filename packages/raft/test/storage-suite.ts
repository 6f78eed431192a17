/**
 * The Raft log storage contract as a compliance suite (STYLE §10, abstract-level's `suite()`): every
 * Storage implementation — MemoryStorage now, the LevelDB store later — runs these same tests.
 *
 * @example
 * ```ts
 * storageSuite('MemoryStorage', () => new MemoryStorage())
 * ```
 */
import { describe, expect, it } from 'vitest'
import { RaftAssertionError, RaftError, entrySizeBytes } from '../src/index.ts'
import type { ConfState, Entry, HardState, RaftErrorCode, Snapshot, Storage } from '../src/index.ts'

/** The write side every store offers besides the read-only Storage interface the core uses. */
export interface WritableStorage extends Storage {
  setHardState(hardState: HardState): void
  append(entries: readonly Entry[]): void
  applySnapshot(snapshot: Snapshot): void
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot
  compact(compactIndex: number): void
}

const UNLIMITED = Number.POSITIVE_INFINITY
const CONF: ConfState = { voters: [1, 2, 3], learners: [] }

function entry(index: number, term: number, data = `${index}@${term}`): Entry {
  return { index, term, type: 'normal', data: new TextEncoder().encode(data) }
}

/** Entries `from`..`to` inclusive, all of `term`. */
function entries(from: number, to: number, term: number): Entry[] {
  const result: Entry[] = []
  for (let index = from; index <= to; index++) result.push(entry(index, term))
  return result
}

function codeOf(action: () => unknown): RaftErrorCode | 'none' {
  try {
    action()
  } catch (error) {
    if (error instanceof RaftError) return error.code
    throw error
  }
  return 'none'
}

export function storageSuite(name: string, factory: () => WritableStorage): void {
  describe(`Storage compliance: ${name}`, () => {
    it('starts empty: no entries, first index 1, last index 0, term(0) is 0, zero hard state', () => {
      const storage = factory()
      expect(storage.firstIndex()).toBe(1)
      expect(storage.lastIndex()).toBe(0)
      expect(storage.term(0)).toBe(0)
      expect(storage.initialState().hardState).toEqual({ term: 0, vote: 0, commit: 0 })
      expect(codeOf(() => storage.term(1))).toBe('UNAVAILABLE')
      expect(codeOf(() => storage.entries(1, 2, UNLIMITED))).toBe('UNAVAILABLE')
    })

    it('persists the hard state', () => {
      const storage = factory()
      storage.setHardState({ term: 3, vote: 2, commit: 0 })
      expect(storage.initialState().hardState).toEqual({ term: 3, vote: 2, commit: 0 })
    })

    it('serves appended entries, their terms, and first/last index', () => {
      const storage = factory()
      storage.append([...entries(1, 3, 1), ...entries(4, 5, 2)])
      expect(storage.firstIndex()).toBe(1)
      expect(storage.lastIndex()).toBe(5)
      expect([1, 2, 3, 4, 5].map((index) => storage.term(index))).toEqual([1, 1, 1, 2, 2])
      expect(storage.entries(2, 5, UNLIMITED)).toEqual([entry(2, 1), entry(3, 1), entry(4, 2)])
      expect(storage.entries(5, 6, UNLIMITED)).toEqual([entry(5, 2)])
    })

    it('asks beyond the last index are UNAVAILABLE', () => {
      const storage = factory()
      storage.append(entries(1, 5, 1))
      expect(codeOf(() => storage.entries(4, 7, UNLIMITED))).toBe('UNAVAILABLE')
      expect(codeOf(() => storage.term(6))).toBe('UNAVAILABLE')
    })

    it('entries() stops at bytesMax but always returns at least one entry', () => {
      const storage = factory()
      storage.append(entries(1, 5, 1))
      const one = storage.entries(1, 2, UNLIMITED)
      expect(storage.entries(1, 6, 0)).toEqual(one)
      const all = storage.entries(1, 6, UNLIMITED)
      expect(all).toHaveLength(5)
      const twoEntriesBytes = storage.entries(1, 3, UNLIMITED).reduce((sum, e) => sum + entrySizeBytes(e), 0)
      expect(storage.entries(1, 6, twoEntriesBytes)).toHaveLength(2)
    })

    // Raft §5.3: "If an existing entry conflicts with a new one (same index but different terms),
    // delete the existing entry and all that follow it."
    it('append truncates a conflicting suffix', () => {
      const storage = factory()
      storage.append(entries(1, 5, 1))
      storage.append([entry(3, 2), entry(4, 2)])
      expect(storage.lastIndex()).toBe(4)
      expect([1, 2, 3, 4].map((index) => storage.term(index))).toEqual([1, 1, 2, 2])
      expect(codeOf(() => storage.term(5))).toBe('UNAVAILABLE')
      expect(storage.entries(3, 5, UNLIMITED)).toEqual([entry(3, 2), entry(4, 2)])
    })

    it('append extends the log at its end and refuses to leave a gap', () => {
      const storage = factory()
      storage.append(entries(1, 2, 1))
      storage.append(entries(3, 4, 1))
      expect(storage.lastIndex()).toBe(4)
      expect(() => storage.append(entries(7, 8, 1))).toThrow(RaftAssertionError)
    })

    // Raft §7: the snapshot replaces the log up to its last included index.
    it('createSnapshot records index, term and membership and compacts the log before it', () => {
      const storage = factory()
      storage.append([...entries(1, 3, 1), ...entries(4, 6, 2)])
      const snapshot = storage.createSnapshot(4, CONF, new TextEncoder().encode('image'))
      expect(snapshot.metadata).toEqual({ index: 4, term: 2, confState: CONF })
      expect(storage.snapshot()).toEqual(snapshot)
      expect(storage.firstIndex()).toBe(5)
      expect(storage.lastIndex()).toBe(6)
      expect(storage.term(4)).toBe(2)
      expect(codeOf(() => storage.term(3))).toBe('COMPACTED')
      expect(codeOf(() => storage.entries(4, 6, UNLIMITED))).toBe('COMPACTED')
      expect(storage.entries(5, 7, UNLIMITED)).toEqual(entries(5, 6, 2))
      expect(storage.initialState().confState).toEqual(CONF)
    })

    it('createSnapshot refuses an index not newer than the stored snapshot, or beyond the log', () => {
      const storage = factory()
      storage.append(entries(1, 6, 1))
      storage.createSnapshot(4, CONF, new Uint8Array())
      expect(codeOf(() => storage.createSnapshot(4, CONF, new Uint8Array()))).toBe('SNAPSHOT_OUT_OF_DATE')
      expect(codeOf(() => storage.createSnapshot(3, CONF, new Uint8Array()))).toBe('SNAPSHOT_OUT_OF_DATE')
      expect(codeOf(() => storage.createSnapshot(7, CONF, new Uint8Array()))).toBe('UNAVAILABLE')
    })

    it('compact drops entries before the index and keeps its term', () => {
      const storage = factory()
      storage.append(entries(1, 6, 1))
      storage.compact(3)
      expect(storage.firstIndex()).toBe(4)
      expect(storage.term(3)).toBe(1)
      expect(codeOf(() => storage.entries(3, 4, UNLIMITED))).toBe('COMPACTED')
      expect(storage.entries(4, 7, UNLIMITED)).toEqual(entries(4, 6, 1))
    })

    it('append ignores entries a snapshot already covers', () => {
      const storage = factory()
      storage.append(entries(1, 6, 1))
      storage.createSnapshot(4, CONF, new Uint8Array())
      storage.append(entries(3, 7, 1))
      expect(storage.firstIndex()).toBe(5)
      expect(storage.lastIndex()).toBe(7)
      expect(storage.entries(5, 8, UNLIMITED)).toEqual(entries(5, 7, 1))
    })

    // Raft §7: a follower that installs a leader's snapshot discards its entire log.
    it('applySnapshot replaces the whole log and the membership', () => {
      const storage = factory()
      storage.append(entries(1, 5, 1))
      const learnerConf: ConfState = { voters: [1, 2, 3], learners: [4] }
      const snapshot: Snapshot = {
        metadata: { index: 10, term: 3, confState: learnerConf },
        data: new TextEncoder().encode('leader image'),
      }
      storage.applySnapshot(snapshot)
      expect(storage.snapshot()).toEqual(snapshot)
      expect(storage.firstIndex()).toBe(11)
      expect(storage.lastIndex()).toBe(10)
      expect(storage.term(10)).toBe(3)
      expect(codeOf(() => storage.term(5))).toBe('COMPACTED')
      expect(storage.initialState().confState).toEqual(learnerConf)
      storage.append([entry(11, 3)])
      expect(storage.entries(11, 12, UNLIMITED)).toEqual([entry(11, 3)])
    })

    it('applySnapshot refuses a snapshot older than the stored one', () => {
      const storage = factory()
      storage.applySnapshot({ metadata: { index: 10, term: 3, confState: CONF }, data: new Uint8Array() })
      expect(
        codeOf(() =>
          storage.applySnapshot({ metadata: { index: 8, term: 3, confState: CONF }, data: new Uint8Array() }),
        ),
      ).toBe('SNAPSHOT_OUT_OF_DATE')
      expect(storage.snapshot().metadata.index).toBe(10)
    })
  })
}
