import { describe, expect, it } from 'vitest'
import { Registry, decodeCommand, encodeCommand, uptimeMs } from '../src/index.ts'
import type { Command, LivenessReason } from '../src/index.ts'
import { Log, REPLICA_A, REPLICA_B, REPLICAS, deltaCommand, peerId } from './helpers.ts'

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
