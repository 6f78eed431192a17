import { afterEach, describe, expect, it } from 'vitest'
import { WorkerCache } from '../../src/index.ts'
import { codeOf, makeTempDir, peerId, record, removeDir } from './helpers.ts'

const A = peerId(1)
const B = peerId(2)
const C = peerId(3)

describe('WorkerCache', () => {
  const dirs: string[] = []
  const open: WorkerCache[] = []
  async function freshDir(): Promise<string> {
    const dir = await makeTempDir('unit')
    dirs.push(dir)
    return dir
  }
  async function openCache(dir: string): Promise<WorkerCache> {
    const cache = await WorkerCache.open(dir)
    open.push(cache)
    return cache
  }
  async function reopen(cache: WorkerCache, dir: string): Promise<WorkerCache> {
    await cache.close()
    return openCache(dir)
  }
  afterEach(async () => {
    for (const cache of open.splice(0)) await cache.close()
    for (const dir of dirs.splice(0)) await removeDir(dir)
  })

  it('starts empty in a new dir, and stays empty across a reopen', async () => {
    const dir = await freshDir()
    let cache = await openCache(dir)
    expect([cache.size, cache.appliedIndex, cache.ownSeq, cache.all()]).toEqual([0, 0, 0, []])
    cache = await reopen(cache, dir)
    expect([cache.size, cache.appliedIndex, cache.ownSeq, cache.all()]).toEqual([0, 0, 0, []])
  })

  it('round-trips confirmed and provisional records, the applied index and the own seq across a reopen', async () => {
    const dir = await freshDir()
    let cache = await openCache(dir)
    await cache.applyConfirmed([record(A, 1, 3), record(B, 4, 5)], 6)
    await cache.putProvisional(record(C, 2, 0))
    await cache.putProvisional(record(A, 2, 3))
    expect(await cache.reserveSeq()).toBe(1)
    expect(await cache.reserveSeq()).toBe(2)

    cache = await reopen(cache, dir)
    expect(cache.appliedIndex).toBe(6)
    expect(cache.ownSeq).toBe(2)
    expect(cache.size).toBe(3)
    expect(cache.get(A)).toEqual(record(A, 2, 3))
    expect(cache.get(B)).toEqual(record(B, 4, 5))
    expect(cache.get(C)).toEqual(record(C, 2, 0))
    expect([cache.isProvisional(A), cache.isProvisional(B), cache.isProvisional(C)]).toEqual([true, false, true])
    expect(new Set(cache.all().map((r) => r.peerId))).toEqual(new Set([A, B, C]))
    expect(await cache.reserveSeq()).toBe(3)
  })

  describe('provisional vs confirmed', () => {
    it('gossip never overwrites a confirmed record with a lower or equal originSeq', async () => {
      const cache = await openCache(await freshDir())
      await cache.applyConfirmed([record(A, 5, 10)], 10)
      expect(await cache.putProvisional(record(A, 4, 0))).toBe(false)
      expect(await cache.putProvisional(record(A, 5, 0))).toBe(false)
      expect(cache.get(A)).toEqual(record(A, 5, 10))
      expect(cache.isProvisional(A)).toBe(false)
    })

    it('gossip with a higher originSeq shows at once, marked provisional; only a newer gossip replaces it', async () => {
      const cache = await openCache(await freshDir())
      await cache.applyConfirmed([record(A, 5, 10)], 10)
      expect(await cache.putProvisional(record(A, 7, 10))).toBe(true)
      expect(cache.get(A)).toEqual(record(A, 7, 10))
      expect(cache.isProvisional(A)).toBe(true)
      expect(await cache.putProvisional(record(A, 6, 10))).toBe(false)
      expect(await cache.putProvisional(record(A, 7, 10))).toBe(false)
      expect(await cache.putProvisional(record(A, 8, 10))).toBe(true)
      expect(cache.get(A)?.originSeq).toBe(8)
    })

    it('the log replaces a provisional record once it delivers that originSeq or a later one', async () => {
      const dir = await freshDir()
      let cache = await openCache(dir)
      await cache.putProvisional(record(A, 3, 0))
      // The log is behind the gossip: the provisional record still answers.
      await cache.applyConfirmed([record(A, 2, 4)], 4)
      expect(cache.get(A)).toEqual(record(A, 3, 0))
      expect(cache.isProvisional(A)).toBe(true)
      cache = await reopen(cache, dir)
      expect(cache.get(A)).toEqual(record(A, 3, 0))
      // The log delivers it: confirmed, with the log's fields.
      await cache.applyConfirmed([record(A, 3, 7)], 7)
      expect(cache.get(A)).toEqual(record(A, 3, 7))
      expect(cache.isProvisional(A)).toBe(false)
      cache = await reopen(cache, dir)
      expect(cache.get(A)).toEqual(record(A, 3, 7))
      expect(cache.isProvisional(A)).toBe(false)
    })

    it('a provisional record for a peer the log has not delivered counts in size and all()', async () => {
      const cache = await openCache(await freshDir())
      await cache.applyConfirmed([record(A, 1, 1)], 1)
      await cache.putProvisional(record(B, 1, 0))
      expect(cache.size).toBe(2)
      expect(cache.all()).toEqual([record(A, 1, 1), record(B, 1, 0)])
    })
  })

  describe('applyConfirmed', () => {
    it('applies records in log order: the later of two for one peer wins, a redelivered older one is skipped', async () => {
      const cache = await openCache(await freshDir())
      await cache.applyConfirmed([record(A, 1, 2), record(A, 2, 3)], 3)
      expect(cache.get(A)).toEqual(record(A, 2, 3))
      await cache.applyConfirmed([record(A, 1, 2)], 4)
      expect(cache.get(A)).toEqual(record(A, 2, 3))
      expect(cache.appliedIndex).toBe(4)
    })

    it('an applied index that decreases, or a record beyond it, is a bug: assertion, nothing written', async () => {
      const dir = await freshDir()
      let cache = await openCache(dir)
      await cache.applyConfirmed([record(A, 1, 5)], 5)
      expect(await codeOf(() => cache.applyConfirmed([record(B, 1, 4)], 4))).toBe('ASSERTION')
      expect(await codeOf(() => cache.applyConfirmed([record(B, 1, 9)], 8))).toBe('ASSERTION')
      cache = await reopen(cache, dir)
      expect([cache.appliedIndex, cache.get(B)]).toEqual([5, undefined])
    })
  })

  describe('replaceAll', () => {
    it('replaces the confirmed set, keeps provisional records newer than the snapshot, drops the rest', async () => {
      const dir = await freshDir()
      let cache = await openCache(dir)
      await cache.applyConfirmed([record(A, 1, 1), record(B, 1, 2)], 2)
      await cache.putProvisional(record(B, 2, 2))
      await cache.putProvisional(record(C, 9, 0))
      await cache.replaceAll([record(B, 3, 50), record(C, 4, 60)], 100)
      const before = cache
      cache = await reopen(cache, dir)
      for (const current of [before, cache]) {
        expect(current.appliedIndex).toBe(100)
        expect(current.get(A)).toBeUndefined()
        expect(current.get(B)).toEqual(record(B, 3, 50))
        expect(current.isProvisional(B)).toBe(false)
        expect(current.get(C)).toEqual(record(C, 9, 0))
        expect(current.isProvisional(C)).toBe(true)
        expect(current.size).toBe(2)
      }
    })

    it('refuses a snapshot older than what the cache applied, and one holding a peer twice', async () => {
      const cache = await openCache(await freshDir())
      await cache.applyConfirmed([], 10)
      expect(await codeOf(() => cache.replaceAll([], 9))).toBe('ASSERTION')
      expect(await codeOf(() => cache.replaceAll([record(A, 1, 1), record(A, 2, 2)], 10))).toBe('ASSERTION')
      expect(cache.appliedIndex).toBe(10)
    })
  })

  describe('own seq', () => {
    it('concurrent reserveSeq calls get distinct increasing values, and none is reused after a reopen', async () => {
      const dir = await freshDir()
      let cache = await openCache(dir)
      const seqs = await Promise.all(Array.from({ length: 25 }, () => cache.reserveSeq()))
      expect(seqs).toEqual(Array.from({ length: 25 }, (_, i) => i + 1))
      cache = await reopen(cache, dir)
      expect(cache.ownSeq).toBe(25)
      expect(await cache.reserveSeq()).toBe(26)
    })

    it('setOwnSeqAtLeast raises the seq (after a wiped dir) and never lowers it', async () => {
      const dir = await freshDir()
      let cache = await openCache(dir)
      await cache.setOwnSeqAtLeast(40)
      await cache.setOwnSeqAtLeast(12)
      expect(cache.ownSeq).toBe(40)
      cache = await reopen(cache, dir)
      expect(cache.ownSeq).toBe(40)
      expect(await cache.reserveSeq()).toBe(41)
    })

    it('writes queued together run in call order', async () => {
      const cache = await openCache(await freshDir())
      const [, first, , second] = await Promise.all([
        cache.setOwnSeqAtLeast(10),
        cache.reserveSeq(),
        cache.setOwnSeqAtLeast(20),
        cache.reserveSeq(),
      ])
      expect([first, second]).toEqual([11, 21])
    })
  })

  it('refuses writes after close with CLOSED; close twice is fine', async () => {
    const cache = await WorkerCache.open(await freshDir())
    await cache.close()
    await cache.close()
    expect(await codeOf(() => cache.reserveSeq())).toBe('CLOSED')
    expect(await codeOf(() => cache.putProvisional(record(A, 1, 0)))).toBe('CLOSED')
  })

  it('refuses a dir another open cache holds with LOCKED', async () => {
    const dir = await freshDir()
    await openCache(dir)
    expect(await codeOf(() => WorkerCache.open(dir))).toBe('LOCKED')
  })
})
