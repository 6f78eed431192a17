import { encode } from '@msgpack/msgpack'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { AuthorityClient } from '@nodeledger/client'
import { ProtocolError } from '@nodeledger/protocol'
import { RECORD_FIELDS, emptyRecord, encodeRecord } from '@nodeledger/registry'
import type { NodeData } from '@nodeledger/registry'
// Relative: the client package's test stand-in (real libp2p hosts speaking the API with our codecs).
import { FakeCluster } from '../../client/test/fake-cluster.ts'
import { IndependentClient, IndependentClientError, decodeRecord } from '../src/chaos/independent-client.ts'
import { peerIdFromSeed } from '../src/fixtures.ts'

const BIG = 2 ** 32 + 1
const T0 = 1_760_000_000_000

let cluster: FakeCluster
/** Only for its libp2p node, as in the workload (the independent client brings no libp2p of its own). */
let host: AuthorityClient
let client: IndependentClient

beforeEach(async () => {
  cluster = await FakeCluster.start(3)
  host = new AuthorityClient({ bootstrap: cluster.addresses })
  await host.start()
  client = new IndependentClient({
    libp2p: host.libp2p,
    bootstrap: cluster.addresses,
    requestTimeoutMs: 500,
    random: () => 0,
  })
})

afterEach(async () => {
  await client.stop()
  await host.stop()
  await cluster.stop()
})

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(IndependentClientError)
    return (error as IndependentClientError).code
  }
  throw new Error('expected an IndependentClientError')
}

function record(peerId: string, seq: number, version: string, changedIndex: number): NodeData {
  return {
    ...emptyRecord(peerId),
    firstJoinedMs: T0,
    lastJoinedMs: T0,
    lastUpdatedMs: T0 + 5,
    version,
    originSeq: seq,
    changedIndex,
  }
}

describe('IndependentClient against the API (fake replicas, our codecs on the server side)', () => {
  it('finds the leader through status, then submits and reads there on one session', async () => {
    cluster.leaderId = 2
    const key = peerIdFromSeed(1)
    expect(await client.submit({ originPeerId: key, seq: BIG, fields: { version: 'w1' } })).toEqual({
      index: 1,
      duplicate: false,
    })
    expect(await client.submit({ originPeerId: key, seq: BIG, fields: { version: 'w1' } })).toEqual({
      index: 1,
      duplicate: true,
    })
    expect(client.leader).toBe(cluster.replica(2).multiaddr)
    expect(cluster.count('status')).toEqual([1, 0, 0])
    expect(cluster.count('submit')).toEqual([0, 2, 0])
    // The delta reached the server as sent: seq 2^32 + 1 read back exactly by our codec.
    expect(cluster.replica(2).requests[0]).toEqual({
      op: 'submit',
      delta: { originPeerId: key, seq: BIG, fields: { version: 'w1' } },
    })
    await Promise.all(Array.from({ length: 20 }, () => client.get(key)))
    expect(cluster.replica(2).streams).toBe(1) // every request on the one session
  })

  it('reads records: linearizable and lease at the leader, stale anywhere; a record newer than the read is INVALID', async () => {
    const key = peerIdFromSeed(2)
    cluster.leaderId = 1
    const stored = record(key, BIG, 'v7', BIG + 3)
    for (const replica of cluster.replicas) {
      replica.behaviour = (request, self) =>
        request.op === 'get'
          ? { kind: 'result', result: { record: stored, index: BIG + 3 } }
          : cluster.standard(request, self)
    }
    for (const consistency of ['linearizable', 'lease', 'stale'] as const) {
      expect(await client.get(key, { consistency })).toEqual({
        record: { peerId: key, version: 'v7', originSeq: BIG, changedIndex: BIG + 3, lastLeftReason: '' },
        index: BIG + 3,
      })
    }
    expect(
      cluster
        .replica(1)
        .requests.filter((r) => r.op === 'get')
        .map((r) => r.op === 'get' && r.consistency),
    ).toEqual(['linearizable', 'lease', 'stale'])
    const absent = peerIdFromSeed(3)
    cluster.replica(1).behaviour = cluster.standard
    expect(await client.get(absent)).toEqual({ record: null, index: 0 })
    cluster.replica(1).behaviour = () => ({ kind: 'result', result: { record: stored, index: BIG } })
    expect(await codeOf(client.get(key))).toBe('INVALID')
  })

  it('follows a NOT_LEADER hint at once, without waiting', async () => {
    cluster.leaderId = 1
    const key = peerIdFromSeed(4)
    await client.submit({ originPeerId: key, seq: 1, fields: { version: 'a' } })
    cluster.leaderId = 3 // replica 1 now answers NOT_LEADER with a hint to 3
    await client.submit({ originPeerId: key, seq: 2, fields: { version: 'b' } })
    expect(cluster.count('submit')).toEqual([2, 0, 1])
    expect(client.leader).toBe(cluster.replica(3).multiaddr)
  })

  it('retries TIMEOUT and UNAVAILABLE on the next replica with the same delta; a final code is thrown at once', async () => {
    cluster.leaderId = 1
    const key = peerIdFromSeed(5)
    let refusals = 0
    cluster.replica(1).behaviour = (request, self) => {
      if (request.op === 'submit' && refusals++ === 0)
        return { kind: 'error', error: new ProtocolError('UNAVAILABLE', 'queues full') }
      if (request.op === 'submit' && refusals === 2) return { kind: 'hang' }
      return cluster.standard(request, self)
    }
    expect(await client.submit({ originPeerId: key, seq: 9, fields: { version: 'x' } })).toEqual({
      index: 1,
      duplicate: false,
    })
    // UNAVAILABLE, then the deadline (TIMEOUT), then rediscovery (status) and the same delta again.
    const submits = cluster.replicas.flatMap((replica) => replica.requests.filter((r) => r.op === 'submit'))
    expect(submits).toHaveLength(3)
    for (const submit of submits) expect(submit).toEqual(submits[0])
    cluster.replica(1).behaviour = (request, self) =>
      request.op === 'submit'
        ? { kind: 'error', error: new ProtocolError('STALE', 'overtaken') }
        : cluster.standard(request, self)
    const before = cluster.count('submit')[0]!
    expect(await codeOf(client.submit({ originPeerId: key, seq: 3, fields: { version: 'y' } }))).toBe('STALE')
    expect(cluster.count('submit')[0]).toBe(before + 1)
  })

  it('a caller that gives up (signal) keeps the cached leader; a request deadline passing forgets it', async () => {
    // The chaos workload's sticky readers rest on this: a silent (paused) leader is asked again.
    cluster.leaderId = 2
    const key = peerIdFromSeed(7)
    await client.get(key, { consistency: 'lease' })
    expect(client.leader).toBe(cluster.replica(2).multiaddr)
    cluster.replica(2).behaviour = (request, self) =>
      request.op === 'get' ? { kind: 'hang' } : cluster.standard(request, self)
    for (let i = 0; i < 3; i++)
      expect(await codeOf(client.get(key, { consistency: 'lease', signal: AbortSignal.timeout(100) }))).toBe('TIMEOUT')
    expect(client.leader).toBe(cluster.replica(2).multiaddr)
    expect(cluster.count('get')).toEqual([0, 4, 0])
    expect(cluster.count('status')).toEqual([1, 0, 0])
    // Its own deadline (500 ms here) is the replica's silence: the client moves on and rediscovers.
    const patient = client.get(key, { consistency: 'lease', signal: AbortSignal.timeout(5_000) })
    await new Promise((resolve) => setTimeout(resolve, 700))
    cluster.replica(2).behaviour = (request, self) => cluster.standard(request, self)
    await patient
    expect(cluster.count('status')[0]! + cluster.count('status')[2]!).toBeGreaterThan(1)
  })

  it('gives up after attemptsMax with the last retryable error; a dropped session fails its requests UNAVAILABLE', async () => {
    cluster.leaderId = 0 // nobody leads: status names no leader
    expect(await codeOf(client.submit({ originPeerId: peerIdFromSeed(6), seq: 1, fields: { version: 'z' } }))).toBe(
      'UNAVAILABLE',
    )
    cluster.leaderId = 1
    cluster.replica(1).behaviour = (request, self) =>
      request.op === 'get' ? { kind: 'drop' } : cluster.standard(request, self)
    const few = new IndependentClient({
      libp2p: host.libp2p,
      bootstrap: cluster.addresses,
      attemptsMax: 2,
      random: () => 0,
    })
    try {
      expect(await codeOf(few.get(peerIdFromSeed(6)))).toBe('UNAVAILABLE')
    } finally {
      await few.stop()
    }
  })
})

describe('the record decoder, written from PROTOCOL.md "Records"', () => {
  const left: NodeData = {
    ...record(peerIdFromSeed(1), 4, 'v1', 9),
    lastLeftMs: T0 + 5,
    lastLeftReason: 'ttl',
  }
  const fields = RECORD_FIELDS.map((field) => left[field])

  it('reads version 2 (26 fields, lastLeftReason last), as the replicas write it', () => {
    const expected = { peerId: left.peerId, version: 'v1', originSeq: 4, changedIndex: 9, lastLeftReason: 'ttl' }
    expect(decodeRecord(encodeRecord(left))).toEqual(expected)
    expect(decodeRecord(encode([2, fields]))).toEqual(expected)
  })

  it('reads version 1 (25 fields) with lastLeftReason empty, and nothing else', () => {
    expect(decodeRecord(encode([1, fields.slice(0, 25)]))).toMatchObject({ originSeq: 4, lastLeftReason: '' })
    for (const bad of [
      [1, fields],
      [2, fields.slice(0, 25)],
      [3, fields],
      [2, [...fields.slice(0, 25), 'heartbeat']],
    ]) {
      expect(() => decodeRecord(encode(bad))).toThrow(IndependentClientError)
    }
  })
})
