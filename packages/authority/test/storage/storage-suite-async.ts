/**
 * The Raft log storage contract of packages/raft/test/storage-suite.ts, for stores whose writes are
 * asynchronous. That suite drives a synchronous write side (setHardState, append, applySnapshot,
 * createSnapshot, compact); a durable store cannot offer one, because a write is done only once its
 * fsync is. Here every write goes through `save()` (one Ready: snapshot, entries, hard state) or
 * `createSnapshot()`, and each case of the synchronous suite has its counterpart, in the same order
 * and with the same expectations. `compact` has none: a durable store compacts only by snapshotting,
 * which the createSnapshot cases cover. Two rules of a durable store are set up explicitly where the
 * synchronous suite leaves them implicit: a snapshot is taken at or below the persisted commit, and
 * a snapshot installed from a leader comes with a hard state committing up to it (as in a Ready).
 *
 * Run against MemoryStorage (through an adapter) it checks that this suite states the same contract.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { RaftAssertionError, entrySizeBytes } from '@nodeledger/raft'
import type { ConfState, Entry, HardState, Snapshot, Storage } from '@nodeledger/raft'
import { codeOf, entries, entry } from './helpers.ts'

export interface AsyncWritableStorage extends Storage {
  save(update: { hardState?: HardState; entries: readonly Entry[]; snapshot?: Snapshot }): Promise<void>
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Promise<Snapshot>
}

export interface AsyncStorageFixture<S extends AsyncWritableStorage> {
  create(): Promise<S>
  dispose?(storage: S): Promise<void>
}

const UNLIMITED = Number.POSITIVE_INFINITY
const CONF: ConfState = { voters: [1, 2, 3], learners: [] }

export function asyncStorageSuite<S extends AsyncWritableStorage>(name: string, fixture: AsyncStorageFixture<S>): void {
  describe(`Storage compliance (async writes): ${name}`, () => {
    const created: S[] = []
    const factory = async (): Promise<S> => {
      const storage = await fixture.create()
      created.push(storage)
      return storage
    }
    afterEach(async () => {
      for (const storage of created.splice(0)) await fixture.dispose?.(storage)
    })

    it('starts empty: no entries, first index 1, last index 0, term(0) is 0, zero hard state', async () => {
      const storage = await factory()
      expect(storage.firstIndex()).toBe(1)
      expect(storage.lastIndex()).toBe(0)
      expect(storage.term(0)).toBe(0)
      expect(storage.initialState().hardState).toEqual({ term: 0, vote: 0, commit: 0 })
      expect(await codeOf(() => storage.term(1))).toBe('UNAVAILABLE')
      expect(await codeOf(() => storage.entries(1, 2, UNLIMITED))).toBe('UNAVAILABLE')
    })

    it('persists the hard state', async () => {
      const storage = await factory()
      await storage.save({ hardState: { term: 3, vote: 2, commit: 0 }, entries: [] })
      expect(storage.initialState().hardState).toEqual({ term: 3, vote: 2, commit: 0 })
    })

    it('serves appended entries, their terms, and first/last index', async () => {
      const storage = await factory()
      await storage.save({ entries: [...entries(1, 3, 1), ...entries(4, 5, 2)] })
      expect(storage.firstIndex()).toBe(1)
      expect(storage.lastIndex()).toBe(5)
      expect([1, 2, 3, 4, 5].map((index) => storage.term(index))).toEqual([1, 1, 1, 2, 2])
      expect(storage.entries(2, 5, UNLIMITED)).toEqual([entry(2, 1), entry(3, 1), entry(4, 2)])
      expect(storage.entries(5, 6, UNLIMITED)).toEqual([entry(5, 2)])
    })

    it('asks beyond the last index are UNAVAILABLE', async () => {
      const storage = await factory()
      await storage.save({ entries: entries(1, 5, 1) })
      expect(await codeOf(() => storage.entries(4, 7, UNLIMITED))).toBe('UNAVAILABLE')
      expect(await codeOf(() => storage.term(6))).toBe('UNAVAILABLE')
    })

    it('entries() stops at bytesMax but always returns at least one entry', async () => {
      const storage = await factory()
      await storage.save({ entries: entries(1, 5, 1) })
      const one = storage.entries(1, 2, UNLIMITED)
      expect(storage.entries(1, 6, 0)).toEqual(one)
      expect(storage.entries(1, 6, UNLIMITED)).toHaveLength(5)
      const twoEntriesBytes = storage.entries(1, 3, UNLIMITED).reduce((sum, e) => sum + entrySizeBytes(e), 0)
      expect(storage.entries(1, 6, twoEntriesBytes)).toHaveLength(2)
    })

    // Raft §5.3: "If an existing entry conflicts with a new one (same index but different terms),
    // delete the existing entry and all that follow it."
    it('save truncates a conflicting suffix', async () => {
      const storage = await factory()
      await storage.save({ entries: entries(1, 5, 1) })
      await storage.save({ entries: [entry(3, 2), entry(4, 2)] })
      expect(storage.lastIndex()).toBe(4)
      expect([1, 2, 3, 4].map((index) => storage.term(index))).toEqual([1, 1, 2, 2])
      expect(await codeOf(() => storage.term(5))).toBe('UNAVAILABLE')
      expect(storage.entries(3, 5, UNLIMITED)).toEqual([entry(3, 2), entry(4, 2)])
    })

    it('save extends the log at its end and refuses to leave a gap, writing nothing', async () => {
      const storage = await factory()
      await storage.save({ entries: entries(1, 2, 1) })
      await storage.save({ entries: entries(3, 4, 1) })
      expect(storage.lastIndex()).toBe(4)
      await expect(storage.save({ entries: entries(7, 8, 1) })).rejects.toThrow(RaftAssertionError)
      expect(storage.lastIndex()).toBe(4)
    })

    // Raft §7: the snapshot replaces the log up to its last included index.
    it('createSnapshot records index, term and membership and compacts the log before it', async () => {
      const storage = await factory()
      await storage.save({
        hardState: { term: 2, vote: 1, commit: 6 },
        entries: [...entries(1, 3, 1), ...entries(4, 6, 2)],
      })
      const snapshot = await storage.createSnapshot(4, CONF, new TextEncoder().encode('image'))
      expect(snapshot.metadata).toEqual({ index: 4, term: 2, confState: CONF })
      expect(storage.snapshot()).toEqual(snapshot)
      expect(storage.firstIndex()).toBe(5)
      expect(storage.lastIndex()).toBe(6)
      expect(storage.term(4)).toBe(2)
      expect(await codeOf(() => storage.term(3))).toBe('COMPACTED')
      expect(await codeOf(() => storage.entries(4, 6, UNLIMITED))).toBe('COMPACTED')
      expect(storage.entries(5, 7, UNLIMITED)).toEqual(entries(5, 6, 2))
      expect(storage.initialState().confState).toEqual(CONF)
    })

    it('createSnapshot refuses an index not newer than the stored snapshot, or beyond the log', async () => {
      const storage = await factory()
      await storage.save({ hardState: { term: 1, vote: 1, commit: 6 }, entries: entries(1, 6, 1) })
      await storage.createSnapshot(4, CONF, new Uint8Array())
      expect(await codeOf(() => storage.createSnapshot(4, CONF, new Uint8Array()))).toBe('SNAPSHOT_OUT_OF_DATE')
      expect(await codeOf(() => storage.createSnapshot(3, CONF, new Uint8Array()))).toBe('SNAPSHOT_OUT_OF_DATE')
      expect(await codeOf(() => storage.createSnapshot(7, CONF, new Uint8Array()))).toBe('UNAVAILABLE')
    })

    it('save ignores entries a snapshot already covers', async () => {
      const storage = await factory()
      await storage.save({ hardState: { term: 1, vote: 1, commit: 6 }, entries: entries(1, 6, 1) })
      await storage.createSnapshot(4, CONF, new Uint8Array())
      await storage.save({ entries: entries(3, 7, 1) })
      expect(storage.firstIndex()).toBe(5)
      expect(storage.lastIndex()).toBe(7)
      expect(storage.entries(5, 8, UNLIMITED)).toEqual(entries(5, 7, 1))
    })

    // Raft §7: a follower that installs a leader's snapshot discards its entire log.
    it('a saved snapshot replaces the whole log and the membership', async () => {
      const storage = await factory()
      await storage.save({ entries: entries(1, 5, 1) })
      const learnerConf: ConfState = { voters: [1, 2, 3], learners: [4] }
      const snapshot: Snapshot = {
        metadata: { index: 10, term: 3, confState: learnerConf },
        data: new TextEncoder().encode('leader image'),
      }
      await storage.save({ snapshot, hardState: { term: 3, vote: 0, commit: 10 }, entries: [] })
      expect(storage.snapshot()).toEqual(snapshot)
      expect(storage.firstIndex()).toBe(11)
      expect(storage.lastIndex()).toBe(10)
      expect(storage.term(10)).toBe(3)
      expect(await codeOf(() => storage.term(5))).toBe('COMPACTED')
      expect(storage.initialState().confState).toEqual(learnerConf)
      await storage.save({ entries: [entry(11, 3)] })
      expect(storage.entries(11, 12, UNLIMITED)).toEqual([entry(11, 3)])
    })

    it('a saved snapshot older than the stored one is refused', async () => {
      const storage = await factory()
      await storage.save({
        snapshot: { metadata: { index: 10, term: 3, confState: CONF }, data: new Uint8Array() },
        hardState: { term: 3, vote: 0, commit: 10 },
        entries: [],
      })
      const older: Snapshot = { metadata: { index: 8, term: 3, confState: CONF }, data: new Uint8Array() }
      expect(await codeOf(() => storage.save({ snapshot: older, entries: [] }))).toBe('SNAPSHOT_OUT_OF_DATE')
      expect(storage.snapshot().metadata.index).toBe(10)
    })

    // Not in the synchronous suite, which writes the three parts separately: one Ready holding all of them.
    it('one save applies snapshot, then entries, then hard state', async () => {
      const storage = await factory()
      await storage.save({ entries: entries(1, 3, 1) })
      const snapshot: Snapshot = {
        metadata: { index: 10, term: 3, confState: CONF },
        data: new TextEncoder().encode('image'),
      }
      await storage.save({ snapshot, entries: entries(11, 12, 3), hardState: { term: 3, vote: 2, commit: 11 } })
      expect(storage.firstIndex()).toBe(11)
      expect(storage.lastIndex()).toBe(12)
      expect(storage.entries(11, 13, UNLIMITED)).toEqual(entries(11, 12, 3))
      expect(storage.initialState().hardState).toEqual({ term: 3, vote: 2, commit: 11 })
    })
  })
}
