import { describe, expect, it } from 'vitest'
import { crc32 } from 'node:zlib'
import {
  RECORD_FIELDS,
  RECORD_FIELDS_V1,
  Registry,
  SNAPSHOT_COUNTERS,
  decodeCommand,
  decodeSnapshot,
  encodeCommand,
  packWire,
  recordsDigest,
  uptimeMs,
} from '../src/index.ts'
import type { Command, LivenessReason } from '../src/index.ts'
import { Log, REPLICA_A, REPLICA_B, REPLICA_C, REPLICAS, deltaCommand, peerId } from './helpers.ts'

const T0 = 1_700_000_000_000
const WORKER = peerId(1)
const STRANGER = peerId(2)

function liveness(active: boolean, reason: LivenessReason, replicaPeerId = REPLICA_A, target = WORKER): Command {
  return { kind: 'liveness', replicaPeerId, peerId: target, active, reason }
}

function scenario() {
  const registry = new Registry({ replicaPeerIds: REPLICAS })
  const log = new Log()
  return { registry, run: (command: Command, timestampMs: number) => registry.apply(log.append(command, timestampMs)) }
}

describe('liveness: the leader lease (etcd-style), logged only on transitions', () => {
  it('round-trips through the codec, every reason', () => {
    for (const reason of ['heartbeat', 'connected', 'ttl', 'left', 'disconnected'] as const) {
      const envelope = { timestampMs: T0, command: liveness(reason !== 'ttl', reason) }
      expect(decodeCommand(encodeCommand(envelope))).toEqual(envelope)
    }
  })

  it('opens an interval on active and closes it at the stamp of the inactive entry: uptime is exactly the interval', () => {
    const { registry, run } = scenario()
    run(deltaCommand(WORKER, 1, { version: '1' }), T0)
    expect(run(liveness(true, 'heartbeat'), T0 + 1_000)).toMatchObject({ status: 'applied', peerIds: [WORKER] })
    expect(registry.get(WORKER)).toMatchObject({
      isActive: true,
      firstJoinedMs: T0 + 1_000,
      lastJoinedMs: T0 + 1_000,
      observers: [REPLICA_A],
    })
    expect(uptimeMs(registry.get(WORKER)!, T0 + 4_000)).toBe(3_000)
    expect(run(liveness(false, 'ttl'), T0 + 11_000)).toMatchObject({ status: 'applied' })
    expect(registry.get(WORKER)).toMatchObject({
      isActive: false,
      lastLeftMs: T0 + 11_000,
      uptimeAccumulatedMs: 10_000,
      observers: [],
    })
    // Active again on the next heartbeat: a second interval, firstJoined unchanged.
    run(liveness(true, 'heartbeat', REPLICA_B), T0 + 20_000)
    run(liveness(false, 'left', REPLICA_B), T0 + 25_000)
    expect(registry.get(WORKER)).toMatchObject({
      isActive: false,
      firstJoinedMs: T0 + 1_000,
      lastJoinedMs: T0 + 20_000,
      uptimeAccumulatedMs: 15_000,
    })
  })

  it('a new leader inherits the presence its predecessor opened; its inactive closes every presence', () => {
    const { registry, run } = scenario()
    run(deltaCommand(WORKER, 1, { version: '1' }), T0)
    run(liveness(true, 'heartbeat', REPLICA_A), T0 + 100)
    // Replica B now leads; the node is already active: nothing changes, nothing is double counted.
    expect(run(liveness(true, 'connected', REPLICA_B), T0 + 200)).toMatchObject({
      status: 'stale',
      reason: 'DUPLICATE_JOIN',
    })
    expect(run(liveness(false, 'disconnected', REPLICA_B), T0 + 1_100)).toMatchObject({ status: 'applied' })
    expect(registry.get(WORKER)).toMatchObject({ isActive: false, observers: [], uptimeAccumulatedMs: 1_000 })
    expect(run(liveness(false, 'ttl', REPLICA_B), T0 + 1_200)).toMatchObject({
      status: 'stale',
      reason: 'LEAVE_WITHOUT_JOIN',
    })
  })

  it('refuses a lease from a non-replica and on a node with no record', () => {
    const { registry, run } = scenario()
    run(deltaCommand(WORKER, 1, { version: '1' }), T0)
    expect(run(liveness(true, 'heartbeat', STRANGER), T0 + 1)).toMatchObject({
      status: 'rejected',
      code: 'UNAUTHORIZED',
    })
    expect(run(liveness(true, 'connected', REPLICA_A, STRANGER), T0 + 2)).toMatchObject({
      status: 'rejected',
      code: 'INVALID',
    })
    expect(registry.get(STRANGER)).toBeUndefined()
    expect(registry.get(WORKER)!.isActive).toBe(false)
  })

  it('clamps a lagging new leader clock: an interval is never negative', () => {
    const { registry, run } = scenario()
    run(deltaCommand(WORKER, 1, { version: '1' }), T0)
    run(liveness(true, 'heartbeat', REPLICA_A), T0 + 5_000)
    run(liveness(false, 'ttl', REPLICA_B), T0 + 1_000)
    expect(registry.get(WORKER)).toMatchObject({ isActive: false, uptimeAccumulatedMs: 0, lastLeftMs: T0 + 5_000 })
  })
})

describe('lastLeftReason: why and since when a node is inactive, in the record', () => {
  for (const reason of ['ttl', 'left', 'disconnected'] as const) {
    it(`an inactive liveness entry for ${reason} records the reason with lastLeftMs, on every replica`, () => {
      const { registry, run } = scenario()
      run(deltaCommand(WORKER, 1, { version: '1' }), T0)
      expect(registry.get(WORKER)).toMatchObject({ lastLeftMs: 0, lastLeftReason: '' })
      run(liveness(true, 'heartbeat'), T0 + 1_000)
      expect(registry.get(WORKER)).toMatchObject({ lastLeftMs: 0, lastLeftReason: '' })
      run(liveness(false, reason), T0 + 4_000)
      expect(registry.get(WORKER)).toMatchObject({ isActive: false, lastLeftMs: T0 + 4_000, lastLeftReason: reason })
      // A follower applying the same bytes holds the same record and snapshot.
      const follower = new Registry({ replicaPeerIds: REPLICAS })
      const replay = new Log()
      follower.apply(replay.append(deltaCommand(WORKER, 1, { version: '1' }), T0))
      follower.apply(replay.append(liveness(true, 'heartbeat'), T0 + 1_000))
      follower.apply(replay.append(liveness(false, reason), T0 + 4_000))
      expect(follower.snapshot()).toEqual(registry.snapshot())
      const restored = new Registry()
      restored.restore(registry.snapshot())
      expect(restored.get(WORKER)).toEqual(registry.get(WORKER))
    })
  }

  it('a rejoin keeps lastLeftMs and lastLeftReason as history; the next leave replaces both', () => {
    const { registry, run } = scenario()
    run(deltaCommand(WORKER, 1, { version: '1' }), T0)
    run(liveness(true, 'heartbeat'), T0 + 1_000)
    run(liveness(false, 'ttl'), T0 + 11_000)
    run(liveness(true, 'connected'), T0 + 12_000)
    expect(registry.get(WORKER)).toMatchObject({ isActive: true, lastLeftMs: T0 + 11_000, lastLeftReason: 'ttl' })
    run(liveness(false, 'left'), T0 + 15_000)
    expect(registry.get(WORKER)).toMatchObject({ isActive: false, lastLeftMs: T0 + 15_000, lastLeftReason: 'left' })
  })

  it('the commands that end presences unseen record ttl (expire), disconnected (reset, observation) or nothing (replica set)', () => {
    const { registry, run } = scenario()
    const [a, b, c, d] = [peerId(11), peerId(12), peerId(13), peerId(14)]
    for (const node of [a, b, c, d]) {
      run(deltaCommand(node, 1, { version: '1' }), T0)
      run({ kind: 'observation', replicaPeerId: REPLICA_A, peerId: node, event: 'joined' }, T0 + 10)
    }
    run({ kind: 'observation', replicaPeerId: REPLICA_B, peerId: b, event: 'joined' }, T0 + 20)
    run({ kind: 'observation', replicaPeerId: REPLICA_C, peerId: c, event: 'joined' }, T0 + 20)
    run({ kind: 'observation', replicaPeerId: REPLICA_A, peerId: a, event: 'left' }, T0 + 30)
    expect(registry.get(a)).toMatchObject({ isActive: false, lastLeftMs: T0 + 30, lastLeftReason: 'disconnected' })
    run({ kind: 'replica-reset', replicaPeerId: REPLICA_A }, T0 + 40)
    expect(registry.get(d)).toMatchObject({ isActive: false, lastLeftReason: 'disconnected' })
    run({ kind: 'replica-reset', replicaPeerId: REPLICA_B }, T0 + 50)
    expect(registry.get(b)).toMatchObject({ isActive: false, lastLeftReason: 'disconnected' })
    run({ kind: 'replicas', replicaPeerIds: [REPLICA_A, REPLICA_B].sort() }, T0 + 60)
    // c was held by REPLICA_C alone, which left the replica set: that is no verdict on c.
    expect(registry.get(c)).toMatchObject({ isActive: false, lastLeftMs: T0 + 40, lastLeftReason: '' })
    run({ kind: 'observation', replicaPeerId: REPLICA_A, peerId: a, event: 'joined' }, T0 + 70)
    run({ kind: 'expire', ttlMs: 1_000 }, T0 + 5_000)
    expect(registry.get(a)).toMatchObject({ isActive: false, lastLeftMs: T0 + 70, lastLeftReason: 'ttl' })
  })

  it('a version 1 entry records no reason: it applies as a version 1 build applied it', () => {
    // A replica that upgraded from a snapshot taken before these entries replays them with this
    // build; another applied them before upgrading and restored its own snapshot (version 1, reasons
    // read as ''). Both must hold the same record.
    const registry = new Registry({ replicaPeerIds: REPLICAS })
    registry.apply({ index: 1, data: encodeCommand({ timestampMs: T0, command: deltaCommand(WORKER, 1, {}) }) })
    registry.apply({ index: 2, data: packWire([1, T0 + 1_000, 6, REPLICA_A, WORKER, true, 1]) })
    registry.apply({ index: 3, data: packWire([1, T0 + 4_000, 6, REPLICA_A, WORKER, false, 3]) })
    expect(registry.get(WORKER)).toMatchObject({ isActive: false, lastLeftMs: T0 + 4_000, lastLeftReason: '' })
    registry.apply({ index: 4, data: packWire([1, T0 + 5_000, 6, REPLICA_A, WORKER, true, 2]) })
    registry.apply({ index: 5, data: packWire([1, T0 + 6_000, 4, 500]) })
    expect(registry.get(WORKER)).toMatchObject({ isActive: false, lastLeftMs: T0 + 5_000, lastLeftReason: '' })
    // The first version 2 entry records its reason.
    registry.apply({ index: 6, data: packWire([2, T0 + 7_000, 6, REPLICA_A, WORKER, true, 1]) })
    registry.apply({ index: 7, data: packWire([2, T0 + 8_000, 6, REPLICA_A, WORKER, false, 5]) })
    expect(registry.get(WORKER)).toMatchObject({ lastLeftMs: T0 + 8_000, lastLeftReason: 'disconnected' })
  })

  it('replicas upgraded from version 1 snapshots taken at different indexes hold the same records', () => {
    // The version 1 log: a join, a lease opened, a ttl expiry, a new lease.
    const log = [
      encodeCommand({ timestampMs: T0, command: deltaCommand(WORKER, 1, {}) }),
      packWire([1, T0 + 1_000, 6, REPLICA_A, WORKER, true, 1]),
      packWire([1, T0 + 4_000, 6, REPLICA_A, WORKER, false, 3]),
      packWire([1, T0 + 9_000, 6, REPLICA_A, WORKER, true, 2]),
    ].map((data, i) => ({ index: i + 1, data }))
    /** A version 1 build's snapshot after `through` entries: records of 25 fields, "NLRS" version 1. */
    const version1SnapshotAfter = (through: number): Uint8Array => {
      const old = new Registry({ replicaPeerIds: REPLICAS })
      for (const entry of log.slice(0, through)) old.apply(entry)
      const state = decodeSnapshot(old.snapshot())
      const body = packWire([
        state.appliedIndex,
        state.clockMs,
        state.replicaPeerIds,
        SNAPSHOT_COUNTERS.map((name) => state.counters[name]),
        state.records.map((record) => RECORD_FIELDS.slice(0, RECORD_FIELDS_V1).map((field) => record[field])),
      ])
      const header = new Uint8Array(9)
      header.set([0x4e, 0x4c, 0x52, 0x53, 1])
      new DataView(header.buffer).setUint32(5, crc32(body), false)
      return Uint8Array.from([...header, ...body])
    }
    // Replica A snapshotted after entry 1 and replays 2..4 with this build; replica B snapshotted
    // after entry 3 (the expiry applied by the old build, its reason not kept) and replays 4.
    const a = new Registry()
    a.restore(version1SnapshotAfter(1))
    for (const entry of log.slice(1)) a.apply(entry)
    const b = new Registry()
    b.restore(version1SnapshotAfter(3))
    for (const entry of log.slice(3)) b.apply(entry)
    expect(a.get(WORKER)).toMatchObject({ isActive: true, lastLeftMs: T0 + 4_000, lastLeftReason: '' })
    expect(a.snapshot()).toEqual(b.snapshot())
    expect(recordsDigest(a.list())).toBe(recordsDigest(b.list()))
  })

  it('an inactive entry with a reason that opens a presence records no reason', () => {
    const { registry, run } = scenario()
    run(deltaCommand(WORKER, 1, {}), T0)
    run(liveness(true, 'heartbeat'), T0 + 1_000)
    expect(run(liveness(false, 'heartbeat'), T0 + 2_000)).toMatchObject({ status: 'applied' })
    expect(registry.get(WORKER)).toMatchObject({ isActive: false, lastLeftMs: T0 + 2_000, lastLeftReason: '' })
  })
})
