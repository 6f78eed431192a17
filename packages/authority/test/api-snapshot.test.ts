import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { peerIdFromString } from '@libp2p/peer-id'
import { streamPair } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { pino } from 'pino'
import {
  API_RESPONSE_FRAME_BYTES_MAX,
  ProtocolError,
  SnapshotAssembler,
  decodeSessionResponse,
  decodeSnapshotFrame,
  encodeRequest,
  frameStream,
  readFrame,
  writeFrame,
} from '@nodeledger/protocol'
import type { ProtocolErrorCode, SnapshotProgress } from '@nodeledger/protocol'
import { EntryType } from '@nodeledger/raft'
import { Registry, encodeCommand, recordsDigest } from '@nodeledger/registry'
import type { Command } from '@nodeledger/registry'
import { ApiServer } from '../src/api/api-server.ts'
import { ReplicaMetrics } from '../src/metrics/replica-metrics.ts'
import type { ClusterMember } from '../src/cluster-file.ts'
import { ReplicaRequestError } from '../src/replica-errors.ts'
import type { Replica } from '../src/replica/replica.ts'
import { ReplicaStateMachine, decodeStateSnapshot } from '../src/replica/state-machine.ts'
// Relative on purpose: testkit depends on authority, so a dependency back would be a cycle.
import { peerIdFromSeed } from '../../testkit/src/fixtures.ts'

const [SELF, OTHER, OPERATOR, STRANGER] = [1, 2, 3, 4].map((seed) => peerIdFromSeed(900 + seed)) as [
  string,
  string,
  string,
  string,
]
const member = (id: number, peerId: string, address: string): ClusterMember => ({
  id,
  peerId,
  multiaddr: `${address}/p2p/${peerId}`,
  dataDir: '/nowhere',
  keyFile: '/nowhere',
})
const SELF_MEMBER = member(1, SELF, '/ip4/127.0.0.11/tcp/4001')
// A form the cluster file accepts but the wire does not: the header carries the canonical one.
const OTHER_MEMBER = member(2, OTHER, '/ip6/0:0:0:0:0:0:0:1/tcp/4002')
const OTHER_CANONICAL = `/ip6/::1/tcp/4002/p2p/${OTHER}`

type Handler = (stream: Stream, connection: { remotePeer: ReturnType<typeof peerIdFromString> }) => Promise<void>

/**
 * The replica as the ApiServer's snapshot op sees it: a real state machine (registry and member
 * directory) fed real entries, a read barrier a test can hold or fail, and a libp2p that only
 * registers the handler.
 */
class FakeReplica extends EventTarget {
  readonly stateMachine = new ReplicaStateMachine(
    [SELF_MEMBER, OTHER_MEMBER].map((m) => ({ id: m.id, peerId: m.peerId, multiaddr: m.multiaddr, started: true })),
  )
  readonly id = 1
  /** Unbound: the server reports into its cells, nothing reads the replica's gauges. */
  readonly metrics = new ReplicaMetrics()
  readonly member = SELF_MEMBER
  readonly cluster = {
    clusterId: 'api-snapshot-test',
    operators: [{ peerId: OPERATOR, keyFile: '/nowhere' }],
    replicas: [SELF_MEMBER, OTHER_MEMBER],
    liveness: { ttlMs: 10_000, disconnectGraceMs: 2_000 },
  }
  leading = true
  applied = 1
  barriers = 0
  /** Set: the read barrier waits for it; a rejection fails the barrier. */
  barrier: Promise<void> | undefined
  handler: Handler | undefined
  readonly libp2p = Object.assign(this, {
    handle: async (_protocol: string, handler: Handler) => {
      this.handler = handler
    },
    unhandle: async () => {},
    getConnections: () => [],
  })

  get registry(): Registry {
    return this.stateMachine.registry
  }
  isLeader(): boolean {
    return this.leading
  }
  isMemberPeer(peerId: string): boolean {
    return peerId === SELF || peerId === OTHER
  }
  leaderMember(): ClusterMember | undefined {
    return this.leading ? SELF_MEMBER : OTHER_MEMBER
  }
  /** As the replica's: held by `barrier`, and TIMEOUT once the request's deadline passes. */
  async readBarrier(_consistency: string, signal: AbortSignal): Promise<number> {
    this.barriers++
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(new ReplicaRequestError('TIMEOUT', 'request deadline passed'))
      signal.addEventListener('abort', onAbort, { once: true })
      Promise.resolve(this.barrier).then(resolve, reject)
    })
    return this.applied
  }
  apply(command: Command): void {
    this.applied++
    const data = encodeCommand({ timestampMs: 1_760_000_000_000 + this.applied, command })
    this.stateMachine.apply({ index: this.applied, term: 3, type: EntryType.Normal, data })
  }
  snapshotAtApplied() {
    return {
      index: this.applied,
      term: 3,
      confState: { voters: [1, 2], learners: [] },
      data: this.stateMachine.snapshot(),
    }
  }
  registryDigest(): string {
    return this.stateMachine.registryDigest()
  }
}

let replica: FakeReplica
let server: ApiServer

beforeEach(async () => {
  replica = new FakeReplica()
  server = new ApiServer({
    replica: replica as unknown as Replica,
    logger: pino({ level: process.env.LOG_LEVEL ?? 'silent' }),
  })
  await server.start()
})

afterEach(async () => {
  await server.stop()
})

/** A node's join with 32 long multiaddrs: about 1.5 KiB per record, so a few thousand exceed a frame. */
function bigJoin(seed: number): Command {
  const peerId = peerIdFromSeed(seed)
  const multiaddrs = Array.from(
    { length: 32 },
    (_, i) => `/dns4/node-${seed}-${i}.example-of-a-rather-long-host-name.net/tcp/${4000 + i}/ws`,
  )
  return { kind: 'delta', submitterPeerId: peerId, delta: { originPeerId: peerId, seq: 1, fields: { multiaddrs } } }
}

/** One snapshot request on a stream of its own, as `peer`; the assembled answer or its error's code. */
async function snapshot(peer: string): Promise<SnapshotProgress & { done: true }> {
  const [outbound, inbound] = await streamPair()
  const serving = replica.handler!(inbound, { remotePeer: peerIdFromString(peer) })
  const lp = frameStream(outbound, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX })
  await writeFrame(lp, encodeRequest({ op: 'snapshot' }))
  const assembler = new SnapshotAssembler()
  try {
    for (;;) {
      const progress = assembler.push(
        decodeSnapshotFrame(await readFrame(lp, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX })),
      )
      if (progress.done) return progress
    }
  } finally {
    await serving
  }
}

async function codeOf(promise: Promise<unknown>): Promise<ProtocolErrorCode> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError)
    return (error as ProtocolError).code
  }
  throw new Error('expected a ProtocolError')
}

describe('snapshot op', () => {
  it('sends a snapshot larger than a response frame in chunks, with the header read at the same index', async () => {
    for (let seed = 1; seed <= 3_500; seed++) replica.apply(bigJoin(seed))
    const expected = replica.snapshotAtApplied()
    expect(expected.data.byteLength).toBeGreaterThan(API_RESPONSE_FRAME_BYTES_MAX)
    const { header, data } = await snapshot(OPERATOR)
    expect(replica.barriers).toBe(1)
    expect(Buffer.from(data).equals(Buffer.from(expected.data))).toBe(true)
    expect(header).toEqual({
      clusterId: 'api-snapshot-test',
      leader: 1,
      index: expected.index,
      term: 3,
      members: [
        { id: 1, peerId: SELF, multiaddr: SELF_MEMBER.multiaddr, voter: true, started: true },
        { id: 2, peerId: OTHER, multiaddr: OTHER_CANONICAL, voter: true, started: true },
      ],
      records: 3_500,
      registryDigest: replica.registryDigest(),
      totalBytes: expected.data.byteLength,
    })
    // The data is the state machine's snapshot: its registry holds what the header says.
    const registry = new Registry()
    registry.restore(decodeStateSnapshot(data, []).registry)
    expect(registry.size).toBe(header.records)
    expect(recordsDigest(registry.list({ limit: Number.MAX_SAFE_INTEGER }))).toBe(header.registryDigest)
  })

  it('is for operators only, on the leader; a failed barrier is its error', async () => {
    replica.apply(bigJoin(1))
    expect(await codeOf(snapshot(STRANGER))).toBe('UNAUTHORIZED')
    // A replica may take snapshots of its own state, but only operators may ask for one over the API.
    expect(await codeOf(snapshot(SELF))).toBe('UNAUTHORIZED')
    replica.leading = false
    try {
      await snapshot(OPERATOR)
      throw new Error('expected NOT_LEADER')
    } catch (error) {
      expect((error as ProtocolError).code).toBe('NOT_LEADER')
      expect((error as ProtocolError).leader?.multiaddrs).toEqual([OTHER_CANONICAL])
    }
    replica.leading = true
    replica.barrier = Promise.reject(new ReplicaRequestError('TIMEOUT', 'the read was not confirmed in time'))
    replica.barrier.catch(() => {})
    expect(await codeOf(snapshot(OPERATOR))).toBe('TIMEOUT')
    expect(replica.barriers).toBe(1)
  })

  it('at most two transfers at once: a third is UNAVAILABLE, and a later one is served', async () => {
    replica.apply(bigJoin(1))
    let release: () => void = () => {}
    replica.barrier = new Promise<void>((resolve) => (release = resolve))
    const first = snapshot(OPERATOR)
    const second = snapshot(OPERATOR)
    // Both wait at the barrier, each holding a transfer slot.
    while (replica.barriers < 2) await new Promise((resolve) => setTimeout(resolve, 5))
    expect(await codeOf(snapshot(OPERATOR))).toBe('UNAVAILABLE')
    release()
    expect((await first).header.records).toBe(1)
    expect((await second).header.records).toBe(1)
    replica.barrier = undefined
    expect((await snapshot(OPERATOR)).header.records).toBe(1)
  })

  it('a barrier still unconfirmed at the server deadline is answered TIMEOUT, not a reset stream', async () => {
    await server.stop()
    server = new ApiServer({
      replica: replica as unknown as Replica,
      logger: pino({ level: 'silent' }),
      requestTimeoutMs: 200,
    })
    await server.start()
    replica.apply(bigJoin(1))
    replica.barrier = new Promise<void>(() => {})
    expect(await codeOf(snapshot(OPERATOR))).toBe('TIMEOUT')
  })

  it('is refused in a session, which goes on', async () => {
    const [outbound, inbound] = await streamPair()
    const serving = replica.handler!(inbound, { remotePeer: peerIdFromString(OPERATOR) })
    const lp = frameStream(outbound, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX })
    await writeFrame(lp, encodeRequest({ op: 'snapshot' }, 7))
    await writeFrame(lp, encodeRequest({ op: 'get', peerId: STRANGER, consistency: 'stale' }, 8))
    const answers = new Map<number, string>()
    for (let i = 0; i < 2; i++) {
      const frame = await readFrame(lp, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX })
      const { id, response } = decodeSessionResponse(frame, () => 'get')
      answers.set(id!, response!.ok ? 'ok' : response!.error.code)
    }
    expect(Object.fromEntries(answers)).toEqual({ 7: 'INVALID', 8: 'ok' })
    await outbound.close()
    await serving
  })
})
