import { describe, expect, it } from 'vitest'
import { emptyRecord } from '@nodeledger/registry'
import type { NodeData } from '@nodeledger/registry'
import { peerIdFromSeed } from '@nodeledger/testkit/fixtures'
import { RecordFeed } from '../src/record-feed.ts'

/** The worker's mirror of its confirmed records: the registry's list and changesSince, fed record by record. */

const record = (seed: number, changedIndex: number, fields: Partial<NodeData> = {}): NodeData => ({
  ...emptyRecord(peerIdFromSeed(seed)),
  ...fields,
  changedIndex,
})

describe('RecordFeed', () => {
  it('changesSince: the records changed after an index, as they are now, in log order; paged without splitting an index', () => {
    const feed = new RecordFeed()
    feed.apply([record(1, 1), record(2, 2), record(3, 3)])
    feed.apply([record(1, 4, { version: 'b' })])
    feed.apply([record(4, 5), record(5, 5)]) // one entry changed two records
    expect(feed.changesSince(0, 100).records.map((r) => r.changedIndex)).toEqual([2, 3, 4, 5, 5])
    expect(feed.changesSince(3, 100).records.map((r) => r.peerId)).toEqual([
      peerIdFromSeed(1),
      peerIdFromSeed(4),
      peerIdFromSeed(5),
    ])
    const page = feed.changesSince(3, 2)
    expect(page.records.map((r) => r.changedIndex)).toEqual([4, 5, 5])
    expect(page.more).toBe(false)
    const first = feed.changesSince(0, 1)
    expect(first).toMatchObject({ throughIndex: 2, more: true })
    expect(feed.changesSince(5, 10)).toEqual({ records: [], throughIndex: 5, more: false })
  })

  it('skips a redelivered older record, and keeps the index sorted for one applied out of order', () => {
    const feed = new RecordFeed()
    feed.apply([record(1, 10)])
    feed.apply([record(1, 8)]) // older than held: a redelivery
    expect(feed.get(peerIdFromSeed(1))!.changedIndex).toBe(10)
    feed.apply([record(2, 6)]) // a late page: below the last change
    expect(feed.changesSince(0, 100).records.map((r) => r.changedIndex)).toEqual([6, 10])
    expect(feed.changesSince(7, 100).records.map((r) => r.changedIndex)).toEqual([10])
  })

  it('list answers as the registry does (peer id order, filters, cursor, limit)', () => {
    const feed = new RecordFeed()
    const registryOrder: NodeData[] = []
    for (let seed = 1; seed <= 40; seed++) {
      const r = record(seed, seed, { isActive: seed % 2 === 0, isStaked: seed % 3 === 0, isWebScraper: seed % 4 === 0 })
      registryOrder.push(r)
      feed.apply([r])
    }
    const sorted = [...registryOrder].sort((x, y) => (x.peerId < y.peerId ? -1 : 1))
    expect(feed.list()).toEqual(sorted)
    expect(feed.list({ limit: 5, afterPeerId: sorted[9]!.peerId })).toEqual(sorted.slice(10, 15))
    expect(feed.list({ active: true, staked: true })).toEqual(sorted.filter((r) => r.isActive && r.isStaked))
    expect(feed.list({ capability: 'web' })).toEqual(sorted.filter((r) => r.isWebScraper))
  })

  it('many changes of few records keep the change index bounded (rebuilt) and the answers right', () => {
    const feed = new RecordFeed()
    let index = 0
    for (let round = 0; round < 2_000; round++)
      for (let seed = 1; seed <= 3; seed++) feed.apply([record(seed, ++index)])
    expect(feed.changesSince(0, 100).records.map((r) => r.changedIndex)).toEqual([index - 2, index - 1, index])
    expect(feed.size).toBe(3)
  })

  it('replaceAll takes a new state; waitForChange wakes on a change after the index', async () => {
    const feed = new RecordFeed()
    feed.apply([record(1, 3)])
    const waiting = feed.waitForChange(3, AbortSignal.timeout(10_000))
    feed.replaceAll([record(2, 7), record(3, 5)])
    await waiting
    expect(feed.get(peerIdFromSeed(1))).toBeUndefined()
    expect(feed.changesSince(0, 10).records.map((r) => r.changedIndex)).toEqual([5, 7])
    await expect(feed.waitForChange(7, AbortSignal.abort(new Error('gone')))).rejects.toThrow('gone')
    await feed.waitForChange(6, AbortSignal.timeout(10_000))
  })
})
