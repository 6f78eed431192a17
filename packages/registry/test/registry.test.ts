import { describe, expect, it } from 'vitest'
import { Registry, RegistryAssertionError, uptimeMs } from '../src/index.ts'
import type { ApplyResult, Command } from '../src/index.ts'
import {
  Log,
  REPLICA_A,
  REPLICA_B,
  REPLICA_C,
  REPLICAS,
  deltaCommand,
  fullFields,
  observation,
  peerId,
} from './helpers.ts'

const T0 = 1_700_000_000_000
const WORKER = peerId(1)
const OTHER = peerId(2)

/** A registry and its log, driven like a leader would: `at(time).run(command)`. */
function scenario(replicaPeerIds: readonly string[] = REPLICAS) {
  const registry = new Registry({ replicaPeerIds })
  const log = new Log()
  return {
    registry,
    log,
    run(command: Command, timestampMs: number): ApplyResult {
      return registry.apply(log.append(command, timestampMs))
    },
  }
}

describe('deltas: self-reported fields, highest origin sequence wins', () => {
  it('creates the record from the first delta and applies only the fields it carries', () => {
    const { registry, run } = scenario()
    expect(run(deltaCommand(WORKER, 1, fullFields(1)), T0)).toMatchObject({ status: 'applied', peerIds: [WORKER] })
    expect(run(deltaCommand(WORKER, 2, { version: '2.0.0' }), T0 + 5)).toMatchObject({ status: 'applied' })
    const record = registry.get(WORKER)!
    expect(record).toMatchObject({
      ...fullFields(1),
      version: '2.0.0',
      originSeq: 2,
      lastUpdatedMs: T0 + 5,
      changedIndex: 2,
    })
    expect(record.isActive).toBe(false)
  })

  it('drops a replay (equal sequence) and a stale delta (lower sequence), and counts them', () => {
    const { registry, run } = scenario()
    run(deltaCommand(WORKER, 5, { version: 'five' }), T0)
    const before = registry.get(WORKER)
    expect(run(deltaCommand(WORKER, 5, { version: 'five again' }), T0 + 1)).toMatchObject({
      status: 'stale',
      code: 'STALE',
      reason: 'REPLAYED',
    })
    expect(run(deltaCommand(WORKER, 3, { version: 'three' }), T0 + 2)).toMatchObject({
      status: 'stale',
      reason: 'STALE_SEQUENCE',
    })
    expect(registry.get(WORKER)).toBe(before)
    expect(registry.stats()).toMatchObject({
      deltasReplayed: 1,
      deltasStale: 1,
      entriesStale: 2,
      entriesApplied: 1,
      appliedIndex: 3,
    })
  })

  it('accepts a delta only from its origin or from a replica relaying it', () => {
    const { registry, run } = scenario()
    expect(run(deltaCommand(WORKER, 1, { version: 'x' }, OTHER), T0)).toMatchObject({
      status: 'rejected',
      code: 'UNAUTHORIZED',
    })
    expect(registry.get(WORKER)).toBeUndefined()
    expect(run(deltaCommand(WORKER, 1, { version: 'x' }, REPLICA_B), T0)).toMatchObject({ status: 'applied' })
    expect(registry.stats()).toMatchObject({ entriesRejected: 1, entriesApplied: 1, appliedIndex: 2 })
  })

  it('rejects undecodable entries with a code and still counts their index as applied', () => {
    const registry = new Registry()
    expect(registry.apply({ index: 7, data: Uint8Array.from([0xc1]) })).toMatchObject({
      status: 'rejected',
      code: 'INVALID',
    })
    expect(registry.appliedIndex).toBe(7)
  })

  it('treats an index that does not increase as a bug in the host', () => {
    const { registry, log, run } = scenario()
    run(deltaCommand(WORKER, 1, {}), T0)
    expect(() => registry.apply(log.entries[0]!)).toThrow(RegistryAssertionError)
  })
})

describe('observations: presence and uptime, timed by the leader', () => {
  it('opens an interval on the first join and closes it on the last leave', () => {
    const { registry, run } = scenario()
    run(observation(REPLICA_A, WORKER, 'joined'), T0)
    run(observation(REPLICA_B, WORKER, 'joined'), T0 + 1_000) // second replica: interval unchanged
    expect(registry.get(WORKER)).toMatchObject({
      isActive: true,
      firstJoinedMs: T0,
      lastJoinedMs: T0,
      observers: [REPLICA_A, REPLICA_B].sort(),
    })
    expect(uptimeMs(registry.get(WORKER)!, T0 + 4_000)).toBe(4_000)
    run(observation(REPLICA_A, WORKER, 'left'), T0 + 5_000)
    expect(registry.get(WORKER)!.isActive).toBe(true)
    run(observation(REPLICA_B, WORKER, 'left'), T0 + 10_000)
    expect(registry.get(WORKER)).toMatchObject({
      isActive: false,
      lastLeftMs: T0 + 10_000,
      uptimeAccumulatedMs: 10_000,
      observers: [],
    })
    expect(uptimeMs(registry.get(WORKER)!, T0 + 99_000)).toBe(10_000)
  })

  it('ignores a double join and a leave without a join (the seed network miscounted both)', () => {
    const { registry, run } = scenario()
    expect(run(observation(REPLICA_A, WORKER, 'left'), T0)).toMatchObject({
      status: 'stale',
      reason: 'LEAVE_WITHOUT_JOIN',
    })
    expect(registry.get(WORKER)).toBeUndefined()
    run(observation(REPLICA_A, WORKER, 'joined'), T0 + 1_000)
    expect(run(observation(REPLICA_A, WORKER, 'joined'), T0 + 2_000)).toMatchObject({
      status: 'stale',
      reason: 'DUPLICATE_JOIN',
    })
    expect(run(observation(REPLICA_B, WORKER, 'left'), T0 + 3_000)).toMatchObject({
      status: 'stale',
      reason: 'LEAVE_WITHOUT_JOIN',
    })
    run(observation(REPLICA_A, WORKER, 'left'), T0 + 4_000)
    expect(run(observation(REPLICA_A, WORKER, 'left'), T0 + 5_000)).toMatchObject({
      status: 'stale',
      reason: 'LEAVE_WITHOUT_JOIN',
    })
    expect(registry.get(WORKER)).toMatchObject({
      uptimeAccumulatedMs: 3_000,
      lastJoinedMs: T0 + 1_000,
      lastLeftMs: T0 + 4_000,
    })
    expect(registry.stats().observationsIgnored).toBe(4)
  })

  it('clamps a stamp that runs backwards (a new leader with a lagging clock)', () => {
    const { registry, run } = scenario()
    run(observation(REPLICA_A, WORKER, 'joined'), T0 + 10_000)
    run(observation(REPLICA_A, WORKER, 'left'), T0) // earlier than the join
    expect(registry.get(WORKER)).toMatchObject({ uptimeAccumulatedMs: 0, lastLeftMs: T0 + 10_000 })
    expect(registry.stats().clockMs).toBe(T0 + 10_000)
  })

  it('accepts observations only from replicas', () => {
    const { registry, run } = scenario()
    expect(run(observation(OTHER, WORKER, 'joined'), T0)).toMatchObject({ status: 'rejected', code: 'UNAUTHORIZED' })
    expect(registry.get(WORKER)).toBeUndefined()
  })

  it("ends a restarted replica's presences at the last evidence of life", () => {
    const { registry, run } = scenario()
    run(observation(REPLICA_A, WORKER, 'joined'), T0)
    run(deltaCommand(WORKER, 1, { version: 'alive' }), T0 + 3_000)
    run(observation(REPLICA_A, OTHER, 'joined'), T0)
    run(observation(REPLICA_B, OTHER, 'joined'), T0)
    const result = run({ kind: 'replica-reset', replicaPeerId: REPLICA_A }, T0 + 60_000)
    expect(result).toMatchObject({ status: 'applied', peerIds: [WORKER, OTHER].sort() })
    expect(registry.get(WORKER)).toMatchObject({
      isActive: false,
      lastLeftMs: T0 + 3_000,
      uptimeAccumulatedMs: 3_000,
      lastUpdatedMs: T0 + 60_000,
    })
    expect(registry.get(OTHER)).toMatchObject({ isActive: true, observers: [REPLICA_B] })
    expect(run({ kind: 'replica-reset', replicaPeerId: REPLICA_A }, T0 + 61_000)).toMatchObject({
      status: 'stale',
      reason: 'NO_CHANGE',
    })
  })

  it('expires nodes that showed no sign of life for the TTL', () => {
    const { registry, run } = scenario()
    run(observation(REPLICA_A, WORKER, 'joined'), T0)
    run(observation(REPLICA_A, OTHER, 'joined'), T0)
    run(deltaCommand(OTHER, 1, {}), T0 + 50_000) // heartbeat
    expect(run({ kind: 'expire', ttlMs: 30_000 }, T0 + 60_000)).toMatchObject({ status: 'applied', peerIds: [WORKER] })
    expect(registry.get(WORKER)).toMatchObject({ isActive: false, uptimeAccumulatedMs: 0, observers: [] })
    expect(registry.get(OTHER)!.isActive).toBe(true)
  })

  it('removes a replica: its observations end and it may no longer observe', () => {
    const { registry, run } = scenario()
    run(observation(REPLICA_C, WORKER, 'joined'), T0)
    const remaining = [REPLICA_A, REPLICA_B].sort()
    expect(run({ kind: 'replicas', replicaPeerIds: remaining }, T0 + 1_000)).toMatchObject({
      status: 'applied',
      peerIds: [WORKER],
    })
    expect(registry.replicaPeerIds).toEqual(remaining)
    expect(registry.get(WORKER)!.isActive).toBe(false)
    expect(run(observation(REPLICA_C, WORKER, 'joined'), T0 + 2_000)).toMatchObject({
      status: 'rejected',
      code: 'UNAUTHORIZED',
    })
    expect(run({ kind: 'replicas', replicaPeerIds: remaining }, T0 + 3_000)).toMatchObject({
      status: 'stale',
      reason: 'NO_CHANGE',
    })
  })
})

describe('queries', () => {
  function populated() {
    const s = scenario()
    for (let i = 1; i <= 6; i++) {
      s.run(deltaCommand(peerId(i), 1, { ...fullFields(i), isTwitterScraper: true, isStaked: i !== 6 }), T0 + i)
      if (i !== 5) s.run(observation(REPLICA_A, peerId(i), 'joined'), T0 + i)
    }
    return s
  }

  it('lists with filters, sorted by peer id, in pages', () => {
    const { registry } = populated()
    const all = registry.list()
    expect(all.map((r) => r.peerId)).toEqual([1, 2, 3, 4, 5, 6].map(peerId).sort())
    expect(registry.list({ active: false }).map((r) => r.peerId)).toEqual([peerId(5)])
    expect(registry.list({ staked: false }).map((r) => r.peerId)).toEqual([peerId(6)])
    expect(registry.list({ capability: 'web' }).every((r) => r.isWebScraper)).toBe(true)
    expect(
      registry
        .list({ updatedSinceMs: T0 + 5 })
        .map((r) => r.peerId)
        .sort(),
    ).toEqual([peerId(5), peerId(6)].sort())
    const first = registry.list({ limit: 4 })
    const second = registry.list({ limit: 4, afterPeerId: first[first.length - 1]!.peerId })
    expect([...first, ...second]).toEqual(all)
  })

  it('ranks eligible workers like the seed network: not-found, returned items, timeouts, peer id', () => {
    const s = scenario()
    const workers = [
      { id: peerId(11), fields: { notFound: 1, returnedItems: 900, timeouts: 0 } },
      { id: peerId(12), fields: { notFound: 0, returnedItems: 10, timeouts: 5 } },
      { id: peerId(13), fields: { notFound: 0, returnedItems: 500, returnedItemsLastMs: T0, timeouts: 9 } },
      { id: peerId(14), fields: { notFound: 0, returnedItems: 500, returnedItemsLastMs: T0 + 1, timeouts: 9 } },
      { id: peerId(15), fields: { notFound: 0, returnedItems: 10, timeouts: 2 } },
      { id: peerId(16), fields: { notFound: 0, returnedItems: 10000, timeouts: 0 }, inactive: true },
      { id: peerId(17), fields: { notFound: 0, returnedItems: 10000, timeouts: 0, isStaked: false } },
    ]
    for (const worker of workers) {
      s.run(deltaCommand(worker.id, 1, { isStaked: true, isTwitterScraper: true, ...worker.fields }), T0)
      if (!worker.inactive) s.run(observation(REPLICA_A, worker.id, 'joined'), T0)
    }
    expect(s.registry.eligible('twitter').map((r) => r.peerId)).toEqual([14, 13, 15, 12, 11].map(peerId))
    expect(s.registry.eligible('discord')).toEqual([])
  })

  it('pages the changes since an index in log order, never splitting one entry', () => {
    const { registry, run } = populated()
    const total = registry.appliedIndex
    expect(registry.changesSince(total)).toEqual({ records: [], throughIndex: total, more: false })
    const reset = run({ kind: 'replica-reset', replicaPeerId: REPLICA_A }, T0 + 100) // changes five records at once
    expect(reset).toMatchObject({ status: 'applied' })
    run(deltaCommand(peerId(5), 2, { version: 'late' }), T0 + 101)
    const page = registry.changesSince(total, 2)
    expect(page.records.map((r) => r.changedIndex)).toEqual([total + 1, total + 1, total + 1, total + 1, total + 1])
    expect(page).toMatchObject({ throughIndex: total + 1, more: true })
    const next = registry.changesSince(page.throughIndex, 2)
    expect(next.records.map((r) => r.peerId)).toEqual([peerId(5)])
    expect(next).toMatchObject({ throughIndex: total + 2, more: false })
  })
})

describe('snapshots', () => {
  it('restores the same state, queries and change order', () => {
    const { registry, run } = scenario()
    run(observation(REPLICA_A, WORKER, 'joined'), T0)
    run(deltaCommand(WORKER, 1, fullFields(1)), T0 + 1)
    run(deltaCommand(OTHER, 4, fullFields(2)), T0 + 2)
    run(deltaCommand(OTHER, 4, fullFields(2)), T0 + 3)
    const restored = new Registry()
    restored.restore(registry.snapshot())
    expect(restored.stats()).toEqual(registry.stats())
    expect(restored.list()).toEqual(registry.list())
    expect(restored.changesSince(0)).toEqual(registry.changesSince(0))
    expect(restored.replicaPeerIds).toEqual(REPLICAS)
    expect(Buffer.from(restored.snapshot()).equals(Buffer.from(registry.snapshot()))).toBe(true)
  })

  it('leaves the registry untouched when a snapshot is bad', () => {
    const { registry, run } = scenario()
    run(deltaCommand(WORKER, 1, fullFields(1)), T0)
    const bytes = registry.snapshot()
    bytes[bytes.length - 1]! ^= 1
    const target = scenario().registry
    expect(() => target.restore(bytes)).toThrow(expect.objectContaining({ code: 'CORRUPT' }))
    expect(target.size).toBe(0)
  })
})
