import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Registry, encodeCommand } from '@nodeledger/registry'
import type { ApplyResult, Command } from '@nodeledger/registry'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { pino } from 'pino'
import { LeaseKeeper } from '../src/liveness/lease-keeper.ts'
import { LeaseCells } from '../src/metrics/cells.ts'
import type { Replica } from '../src/replica/replica.ts'

/** Fresh Ed25519 peer ids (authority does not depend on testkit, which depends on authority). */
const PEER_IDS = await Promise.all(
  Array.from({ length: 6 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()),
)
const peerIdFromSeed = (index: number): string => PEER_IDS[index % PEER_IDS.length]!
const LEADER = peerIdFromSeed(1)
const OTHER_REPLICA = peerIdFromSeed(2)
const NODE = peerIdFromSeed(0)
const SECOND = peerIdFromSeed(3)
const TTL_MS = 1_000
const GRACE_MS = 200

/**
 * The leader's leases against a stand-in replica: a real Registry, a log that commits at once, and
 * a libp2p that only emits connection events. Time is vitest's fake clock, so the TTL sweep runs
 * exactly when the test says.
 */
class FakeReplica extends EventTarget {
  readonly registry = new Registry({ replicaPeerIds: [LEADER, OTHER_REPLICA] })
  readonly member = { peerId: LEADER }
  readonly entries: Command[] = []
  leading = true
  term = 1
  connected = new Set<string>()
  index = 0
  readonly libp2p = Object.assign(this, {
    getConnections: (peer: { toString(): string }) => (this.connected.has(peer.toString()) ? [{}] : []),
  })

  isLeader(): boolean {
    return this.leading
  }
  leaderMember(): undefined {
    return undefined
  }
  get applied(): number {
    return this.index
  }
  async propose(command: Command): Promise<{ index: number; result: ApplyResult }> {
    this.entries.push(command)
    this.index++
    const result = this.registry.apply({ index: this.index, data: encodeCommand({ timestampMs: Date.now(), command }) })
    return { index: this.index, result }
  }
  join(peerId: string): void {
    void this.propose({
      kind: 'delta',
      submitterPeerId: peerId,
      delta: { originPeerId: peerId, seq: 1, fields: { version: '1' } },
    })
  }
  connect(peerId: string, connected: boolean): void {
    if (connected) this.connected.add(peerId)
    else this.connected.delete(peerId)
    this.dispatchEvent(
      new CustomEvent(connected ? 'peer:connect' : 'peer:disconnect', { detail: peerIdFromString(peerId) }),
    )
  }
  livenessEntries(): Array<{ peerId: string; active: boolean; reason: string }> {
    return this.entries.flatMap((command) =>
      command.kind === 'liveness' ? [{ peerId: command.peerId, active: command.active, reason: command.reason }] : [],
    )
  }
}

let replica: FakeReplica
let keeper: LeaseKeeper
let cells: LeaseCells
const signal = (): AbortSignal => new AbortController().signal

beforeEach(() => {
  vi.useFakeTimers({ now: 1_700_000_000_000 })
  replica = new FakeReplica()
  cells = new LeaseCells()
  keeper = new LeaseKeeper({
    metrics: cells,
    replica: replica as unknown as Replica,
    logger: pino({ level: 'silent' }),
    liveness: { ttlMs: TTL_MS, disconnectGraceMs: GRACE_MS },
    exemptPeerIds: new Set([LEADER, OTHER_REPLICA]),
  })
  keeper.start()
  replica.join(NODE)
  replica.join(SECOND)
})

afterEach(() => {
  keeper.stop()
  vi.useRealTimers()
})

describe('LeaseKeeper: etcd-style leases, logged only on transitions', () => {
  it('a first heartbeat makes the node active; further heartbeats within the TTL write nothing', async () => {
    expect(await keeper.heartbeat(NODE, signal())).toMatchObject({ active: true })
    for (let i = 0; i < 20; i++) {
      await vi.advanceTimersByTimeAsync(TTL_MS / 4)
      await keeper.heartbeat(NODE, signal())
    }
    expect(replica.livenessEntries()).toEqual([{ peerId: NODE, active: true, reason: 'heartbeat' }])
    expect(replica.registry.get(NODE)!.isActive).toBe(true)
  })

  it('silence past the TTL writes one inactive entry; the next heartbeat one active entry', async () => {
    await keeper.heartbeat(NODE, signal())
    await vi.advanceTimersByTimeAsync(TTL_MS - 300)
    expect(replica.registry.get(NODE)!.isActive).toBe(true)
    await vi.advanceTimersByTimeAsync(600)
    expect(replica.registry.get(NODE)!.isActive).toBe(false)
    const expired = replica.registry.get(NODE)!
    expect(expired.uptimeAccumulatedMs).toBe(expired.lastLeftMs - expired.lastJoinedMs)
    await vi.advanceTimersByTimeAsync(5 * TTL_MS)
    await keeper.heartbeat(NODE, signal())
    expect(replica.livenessEntries().map((entry) => `${entry.active}:${entry.reason}`)).toEqual([
      'true:heartbeat',
      'false:ttl',
      'true:heartbeat',
    ])
  })

  it('a stalled leader credits every lease with the stall: the heartbeats it could not read expire nobody', async () => {
    await keeper.heartbeat(NODE, signal())
    await vi.advanceTimersByTimeAsync(TTL_MS - 300)
    // The process is stopped for 2 s (starved, paused): no timer runs, the clock moves on.
    vi.setSystemTime(Date.now() + 2 * TTL_MS)
    // The first sweep after it sees the gap; silence is now far past the TTL, yet nothing expires.
    await vi.advanceTimersByTimeAsync(260)
    expect(replica.entries.filter((command) => command.kind === 'liveness')).toHaveLength(1)
    expect(replica.registry.get(NODE)?.isActive).toBe(true)
    expect(cells.stallsCredited).toBe(1)
    // The queued heartbeat is read after the stall and keeps the lease.
    await keeper.heartbeat(NODE, signal())
    await vi.advanceTimersByTimeAsync(TTL_MS - 300)
    expect(replica.registry.get(NODE)?.isActive).toBe(true)
    // Real silence still expires it, once, one TTL after its last heartbeat.
    await vi.advanceTimersByTimeAsync(600)
    expect(replica.registry.get(NODE)?.isActive).toBe(false)
    expect(replica.entries.filter((command) => command.kind === 'liveness')).toHaveLength(2)
  })

  it('a new term starts every active node with a fresh lease: a failover expires nobody', async () => {
    await keeper.heartbeat(NODE, signal())
    await vi.advanceTimersByTimeAsync(TTL_MS - 100)
    // Leadership lost and regained in a new term, just before the old lease would have run out.
    replica.leading = false
    await vi.advanceTimersByTimeAsync(300)
    replica.leading = true
    replica.term = 2
    await vi.advanceTimersByTimeAsync(TTL_MS - 300)
    expect(replica.registry.get(NODE)!.isActive).toBe(true)
    await vi.advanceTimersByTimeAsync(600)
    expect(replica.registry.get(NODE)!.isActive).toBe(false)
  })

  it('a follower keeps no leases and answers NOT_LEADER', async () => {
    replica.leading = false
    await expect(keeper.heartbeat(NODE, signal())).rejects.toMatchObject({ code: 'NOT_LEADER' })
    expect(keeper.leases).toBe(0)
  })

  it('a heartbeat from a node with no record is NOT_FOUND and writes nothing', async () => {
    await expect(keeper.heartbeat(peerIdFromSeed(4), signal())).rejects.toMatchObject({ code: 'NOT_FOUND' })
    expect(replica.livenessEntries()).toEqual([])
  })

  it('connect activates a known inactive node; a disconnect that lasts the grace deactivates it; a quick reconnect does not', async () => {
    replica.connect(NODE, true)
    await vi.advanceTimersByTimeAsync(10)
    expect(replica.registry.get(NODE)!.isActive).toBe(true)
    replica.connect(NODE, false)
    await vi.advanceTimersByTimeAsync(GRACE_MS / 2)
    replica.connect(NODE, true)
    await vi.advanceTimersByTimeAsync(GRACE_MS * 2)
    expect(replica.registry.get(NODE)!.isActive).toBe(true)
    replica.connect(NODE, false)
    await vi.advanceTimersByTimeAsync(GRACE_MS + 50)
    expect(replica.registry.get(NODE)!.isActive).toBe(false)
    expect(replica.livenessEntries().map((entry) => entry.reason)).toEqual(['connected', 'disconnected'])
  })

  it('connections of replicas and of unknown peers create nothing', async () => {
    replica.connect(OTHER_REPLICA, true)
    replica.connect(peerIdFromSeed(5), true)
    await vi.advanceTimersByTimeAsync(10)
    expect(replica.livenessEntries()).toEqual([])
    expect(replica.registry.get(peerIdFromSeed(5))).toBeUndefined()
  })

  it('a leave writes inactive at once; concurrent heartbeat and leave serialize per node', async () => {
    await keeper.heartbeat(NODE, signal())
    const [left, again] = await Promise.all([keeper.leave(NODE, signal()), keeper.leave(NODE, signal())])
    expect(left.active).toBe(false)
    expect(again.active).toBe(false)
    expect(replica.livenessEntries().map((entry) => `${entry.active}:${entry.reason}`)).toEqual([
      'true:heartbeat',
      'false:left',
    ])
  })
})
