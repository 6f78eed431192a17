import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { streamPair } from '@libp2p/utils'
import type { Stream } from '@libp2p/interface'
import { pino } from 'pino'
import { Writable } from 'node:stream'
import { parsePromText } from '@nodeledger/metrics'
import {
  API_RESPONSE_FRAME_BYTES_MAX,
  decodeResponse,
  decodeWatchFrame,
  encodeRequest,
  frameStream,
  readFrame,
  writeFrame,
} from '@nodeledger/protocol'
import type { ApiRequestInit, ApiResponse, ResultByOp, UnaryOp } from '@nodeledger/protocol'
import { Registry, encodeCommand } from '@nodeledger/registry'
import type { ApplyResult, Command } from '@nodeledger/registry'
import { ApiServer } from '../src/api/api-server.ts'
import type { ClusterMember } from '../src/cluster-file.ts'
import { ReplicaMetrics } from '../src/metrics/replica-metrics.ts'
import { ReplicaRequestError } from '../src/replica-errors.ts'
import type { Replica } from '../src/replica/replica.ts'

/** Fresh Ed25519 peer ids (authority does not depend on testkit, which depends on authority). */
const [SELF, OTHER, NODE, CLIENT] = await Promise.all(
  Array.from({ length: 4 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()),
)
const member = (id: number, peerId: string, address: string): ClusterMember => ({
  id,
  peerId,
  multiaddr: `${address}/p2p/${peerId}`,
  dataDir: '/nowhere',
  keyFile: '/nowhere',
})
const SELF_MEMBER = member(1, SELF!, '/ip4/127.0.0.11/tcp/4001')
// Written in a form the cluster file accepts but the wire does not: the wire carries the canonical form.
const OTHER_MEMBER = member(2, OTHER!, '/ip6/0:0:0:0:0:0:0:1/tcp/4002')
const OTHER_CANONICAL = `/ip6/::1/tcp/4002/p2p/${OTHER}`

type Handler = (stream: Stream, connection: { remotePeer: ReturnType<typeof peerIdFromString> }) => Promise<void>

/**
 * The replica as the ApiServer sees it: a real Registry, a log that applies at once, a read
 * barrier that confirms the index applied when it was asked, and a libp2p that only registers the
 * API handler (the test hands it in-memory streams).
 */
class FakeReplica extends EventTarget {
  readonly registry = new Registry({ replicaPeerIds: [SELF!, OTHER!] })
  readonly member = SELF_MEMBER
  readonly cluster = {
    clusterId: 'api-server-test',
    operators: [],
    replicas: [SELF_MEMBER, OTHER_MEMBER],
    liveness: { ttlMs: 10_000, disconnectGraceMs: 2_000 },
  }
  readonly term = 1
  /** Unbound: the server reports into its cells, nothing reads the replica's gauges. */
  readonly metrics = new ReplicaMetrics()
  appliedIndex = 0
  handler: Handler | undefined
  /** Runs after the barrier has fixed its index, before the caller goes on: entries still being applied. */
  afterBarrier: (() => void) | undefined
  /** What propose does instead of committing, when set. */
  proposeFails: Error | undefined
  readonly libp2p = Object.assign(this, {
    handle: async (_protocol: string, handler: Handler) => {
      this.handler = handler
    },
    unhandle: async () => {},
    getConnections: () => [],
  })

  /** This replica leads (the default); as a follower it names OTHER as its leader. */
  leading = true
  /** As a follower: whether it heard its leader within an election timeout. */
  heardLeader = true
  /** Log entries held beyond the applied ones (a follower behind its log). */
  unappliedEntries = 0
  readonly #appliedWaiters: Array<{ index: number; resolve: () => void }> = []
  /** Every index a caller waited for (one not applied yet when asked). */
  readonly appliedWaits: number[] = []
  isLeader(): boolean {
    return this.leading
  }
  leaderHeardRecently(): boolean {
    return this.leading || this.heardLeader
  }
  isMemberPeer(peerId: string): boolean {
    return peerId === SELF || peerId === OTHER
  }
  members(): Array<ClusterMember & { voter: boolean; started: boolean }> {
    return [SELF_MEMBER, OTHER_MEMBER].map((member) => ({ ...member, voter: true, started: true }))
  }
  leaderMember(): ClusterMember | undefined {
    if (this.leading) return SELF_MEMBER
    return this.heardLeader ? OTHER_MEMBER : undefined
  }
  get applied(): number {
    return this.appliedIndex
  }
  apply(command: Command): { index: number; result: ApplyResult } {
    this.appliedIndex++
    if (this.unappliedEntries > 0) this.unappliedEntries--
    const data = encodeCommand({ timestampMs: 1_760_000_000_000 + this.appliedIndex, command })
    const result = this.registry.apply({ index: this.appliedIndex, data })
    for (const waiter of this.#appliedWaiters.splice(0)) {
      if (waiter.index <= this.appliedIndex) waiter.resolve()
      else this.#appliedWaiters.push(waiter)
    }
    return { index: this.appliedIndex, result }
  }
  async propose(command: Command): Promise<{ index: number; result: ApplyResult }> {
    if (this.proposeFails !== undefined) throw this.proposeFails
    return this.apply(command)
  }
  async readBarrier(): Promise<number> {
    const index = this.appliedIndex
    const after = this.afterBarrier
    if (after !== undefined) queueMicrotask(after)
    return index
  }
  /** As the real one: resolves once `index` is applied, rejects when `signal` aborts first. */
  async waitApplied(index: number, signal: AbortSignal): Promise<void> {
    if (this.appliedIndex >= index) return
    this.appliedWaits.push(index)
    signal.throwIfAborted()
    await new Promise<void>((resolve, reject) => {
      const waiter = { index, resolve }
      this.#appliedWaiters.push(waiter)
      signal.addEventListener(
        'abort',
        () => {
          this.#appliedWaiters.splice(this.#appliedWaiters.indexOf(waiter), 1)
          reject(signal.reason)
        },
        { once: true },
      )
    })
  }
  status(): unknown {
    return {
      id: 1,
      peerId: SELF,
      role: this.leading ? 'leader' : 'follower',
      term: 1,
      leader: SELF_MEMBER,
      commit: this.appliedIndex,
      applied: this.appliedIndex,
      firstIndex: 1,
      lastIndex: this.appliedIndex + this.unappliedEntries,
      snapshotIndex: 0,
      voters: [1, 2],
      learners: [],
      registryRecords: this.registry.size,
    }
  }
  registryDigest(): string {
    return '0'.repeat(64)
  }
}

function join(seq: number, version: string): Command {
  return { kind: 'delta', submitterPeerId: NODE!, delta: { originPeerId: NODE!, seq, fields: { version } } }
}

let replica: FakeReplica
let server: ApiServer

beforeEach(async () => {
  replica = new FakeReplica()
  server = new ApiServer({ replica: replica as unknown as Replica, logger: pino({ level: 'silent' }) })
  await server.start()
})

afterEach(async () => {
  await server.stop()
})

/** One request on a one-request stream, answered by the server under test. */
async function ask<O extends UnaryOp>(op: O, request: ApiRequestInit): Promise<ApiResponse<ResultByOp[O]>> {
  const [outbound, inbound] = await streamPair()
  const serving = replica.handler!(inbound, { remotePeer: peerIdFromString(CLIENT!) })
  const lp = frameStream(outbound, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX })
  await writeFrame(lp, encodeRequest(request))
  const frame = await readFrame(lp, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX })
  await serving
  return decodeResponse(op, frame)
}

describe('ApiServer reads', () => {
  it('get answers the applied index the registry was read at, not the read barrier index', async () => {
    replica.apply(join(1, 'v1'))
    let seq = 1
    for (const consistency of ['linearizable', 'lease', 'stale'] as const) {
      // While the read is confirmed, the next entry (which changes the record) is applied.
      seq++
      const next = join(seq, `v${seq}`)
      replica.afterBarrier = () => replica.apply(next)
      const response = await ask('get', { op: 'get', peerId: NODE!, consistency })
      if (!response.ok) throw response.error
      const { record, index } = response.result
      expect(record?.version).toBe(`v${seq}`)
      expect(record!.changedIndex, consistency).toBeLessThanOrEqual(index)
      expect(index).toBe(replica.applied)
    }
  })

  it('list answers the applied index its page was read at', async () => {
    replica.apply(join(1, 'v1'))
    replica.afterBarrier = () => replica.apply(join(2, 'v2'))
    const response = await ask('list', { op: 'list', filter: {} })
    if (!response.ok) throw response.error
    expect(response.result.records.map((record) => record.version)).toEqual(['v2'])
    for (const record of response.result.records) expect(record.changedIndex).toBeLessThanOrEqual(response.result.index)
  })
})

describe('ApiServer feeds (since, watch) on a follower (issue 13)', () => {
  function asFollower(): void {
    replica.leading = false
    replica.heardLeader = true
  }

  it('a follower that heard its leader serves since at its applied state', async () => {
    replica.apply(join(1, 'v1'))
    replica.apply(join(2, 'v2'))
    asFollower()
    const response = await ask('since', { op: 'since', index: 0, limit: 10 })
    if (!response.ok) throw response.error
    expect(response.result.throughIndex).toBe(2)
    expect(response.result.records.map((record) => record.version)).toEqual(['v2'])
  })

  it('a follower that has not heard its leader lately answers NOT_LEADER, for since and for watch', async () => {
    replica.apply(join(1, 'v1'))
    asFollower()
    replica.heardLeader = false
    const since = await ask('since', { op: 'since', index: 0, limit: 10 })
    expect(since.ok ? 'OK' : since.error.code).toBe('NOT_LEADER')
    const watch = await watchFrames(0, 1)
    expect(watch).toEqual(['NOT_LEADER'])
  })

  it('a follower behind the index waits until it applies it, then serves from there (never below it)', async () => {
    replica.apply(join(1, 'v1'))
    asFollower()
    replica.unappliedEntries = 1
    setTimeout(() => replica.apply(join(2, 'v2')), 50)
    const response = await ask('since', { op: 'since', index: 2, limit: 10 })
    if (!response.ok) throw response.error
    expect(response.result.throughIndex).toBe(2)
    expect(replica.appliedWaits).toEqual([2])
  })

  it('a follower whose log ends before the index sends the caller to the leader at once, not NOT_FOUND', async () => {
    replica.apply(join(1, 'v1'))
    asFollower()
    const response = await ask('since', { op: 'since', index: 5, limit: 10 })
    if (response.ok) throw new Error('expected NOT_LEADER')
    expect(response.error.code).toBe('NOT_LEADER')
    expect(response.error.leader?.peerId).toBe(OTHER)
    // At once: it did not wait to apply an index it does not hold.
    expect(replica.appliedWaits).toEqual([])
    // The leader, whose log is the cluster's, says NOT_FOUND.
    replica.leading = true
    const fromLeader = await ask('since', { op: 'since', index: 5, limit: 10 })
    expect(fromLeader.ok ? 'OK' : fromLeader.error.code).toBe('NOT_FOUND')
  })

  it("a follower's watch streams its applies, and ends NOT_LEADER once its leader falls silent", async () => {
    replica.apply(join(1, 'v1'))
    asFollower()
    const frames = watchFrames(0, 3)
    await new Promise((resolve) => setTimeout(resolve, 20))
    replica.apply(join(2, 'v2'))
    await new Promise((resolve) => setTimeout(resolve, 100))
    replica.heardLeader = false
    replica.apply(join(3, 'v3')) // wakes the watch, which re-checks before it serves
    expect(await frames).toEqual(['1:v1', '2:v2', 'NOT_LEADER'])
  })
})

/** A watch from `fromIndex`: its first `count` frames, as "throughIndex:versions" or the error code. */
async function watchFrames(fromIndex: number, count: number): Promise<string[]> {
  const [outbound, inbound] = await streamPair()
  const serving = replica.handler!(inbound, { remotePeer: peerIdFromString(CLIENT!) })
  const lp = frameStream(outbound, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX })
  await writeFrame(lp, encodeRequest({ op: 'watch', fromIndex }))
  const seen: string[] = []
  try {
    while (seen.length < count) {
      const frame = decodeWatchFrame(await readFrame(lp, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX }))
      if (!frame.ok) {
        seen.push(frame.error.code)
        break
      }
      seen.push(`${frame.event.throughIndex}:${frame.event.records.map((record) => record.version).join(',')}`)
    }
  } finally {
    outbound.abort(new Error('test done'))
    await serving.catch(() => {})
  }
  return seen
}

describe('ApiServer errors', () => {
  it('a dropped proposal is UNAVAILABLE without a leader hint, which the client decodes and may retry', async () => {
    // The replica names the leader on more codes than NOT_LEADER (a proposal dropped in a handover).
    replica.proposeFails = new ReplicaRequestError('UNAVAILABLE', 'proposal dropped', SELF_MEMBER)
    const response = await ask('submit', { op: 'submit', delta: { originPeerId: CLIENT!, seq: 1, fields: {} } })
    expect(response.ok).toBe(false)
    if (response.ok) return
    expect(response.error.code).toBe('UNAVAILABLE')
    expect(response.error.leader).toBeUndefined()
  })

  it('NOT_LEADER keeps its hint, with the multiaddr in canonical form', async () => {
    replica.proposeFails = new ReplicaRequestError('NOT_LEADER', 'replica 2 leads', OTHER_MEMBER)
    const response = await ask('submit', { op: 'submit', delta: { originPeerId: CLIENT!, seq: 1, fields: {} } })
    if (response.ok) throw new Error('expected NOT_LEADER')
    expect(response.error.code).toBe('NOT_LEADER')
    expect(response.error.leader).toEqual({
      id: 2,
      peerId: OTHER,
      multiaddrs: [OTHER_CANONICAL],
    })
  })

  it('status lists members with canonical multiaddrs', async () => {
    const response = await ask('status', { op: 'status' })
    if (!response.ok) throw response.error
    expect(response.result.members.map((m) => m.multiaddr)).toEqual([SELF_MEMBER.multiaddr, OTHER_CANONICAL])
  })
})

describe('ApiServer metrics', () => {
  it('counts every request by op and code, and times it; a bad frame is op "unknown"', async () => {
    await ask('status', { op: 'status' })
    await ask('status', { op: 'status' })
    // CLIENT may not write another origin's record.
    await ask('submit', { op: 'submit', delta: { originPeerId: NODE!, seq: 1, fields: {} } })
    replica.proposeFails = new ReplicaRequestError('UNAVAILABLE', 'proposal dropped')
    await ask('submit', { op: 'submit', delta: { originPeerId: CLIENT!, seq: 1, fields: {} } })
    const [outbound, inbound] = await streamPair()
    const serving = replica.handler!(inbound, { remotePeer: peerIdFromString(CLIENT!) })
    const lp = frameStream(outbound, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX })
    await writeFrame(lp, new Uint8Array([0xc1])) // the reserved MessagePack byte: INVALID
    await readFrame(lp, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX })
    await serving

    const text = parsePromText(await replica.metrics.registry.metrics())
    expect(text.value('nodeledger_api_requests_total', { op: 'status', code: 'OK' })).toBe(2)
    expect(text.value('nodeledger_api_requests_total', { op: 'submit', code: 'UNAUTHORIZED' })).toBe(1)
    expect(text.value('nodeledger_api_requests_total', { op: 'submit', code: 'UNAVAILABLE' })).toBe(1)
    expect(text.value('nodeledger_api_requests_total', { op: 'submit', code: 'OK' })).toBe(0)
    expect(text.value('nodeledger_api_requests_total', { op: 'unknown', code: 'INVALID' })).toBe(1)
    // Codes that never happened have no series: the label set stays what was seen.
    expect(text.value('nodeledger_api_requests_total', { op: 'get', code: 'TIMEOUT' })).toBeUndefined()
    expect(text.value('nodeledger_api_request_duration_seconds_count', { op: 'status' })).toBe(2)
    expect(text.value('nodeledger_api_request_duration_seconds_count', { op: 'submit' })).toBe(2)
    expect(text.value('nodeledger_api_request_duration_seconds_count', { op: 'unknown' })).toBe(1)
    expect(text.value('nodeledger_api_request_duration_seconds_sum', { op: 'status' })).toBeGreaterThan(0)
  })
})

describe('a client that resets its stream is ordinary: debug, never error', () => {
  /** A server whose log lines the test reads (JSON, one per line, every level from debug). */
  async function serverWithLog(): Promise<{ server: ApiServer; lines: () => Array<{ level: number; msg: string }> }> {
    const captured: string[] = []
    const sink = new Writable({
      write(chunk, _encoding, done) {
        captured.push(
          ...String(chunk)
            .split('\n')
            .filter((line) => line !== ''),
        )
        done()
      },
    })
    await server.stop()
    const logged = new ApiServer({ replica: replica as unknown as Replica, logger: pino({ level: 'debug' }, sink) })
    await logged.start()
    server = logged
    return { server: logged, lines: () => captured.map((line) => JSON.parse(line) as { level: number; msg: string }) }
  }

  async function opened(): Promise<{ outbound: Stream; serving: Promise<void> }> {
    const [outbound, inbound] = await streamPair()
    return { outbound, serving: replica.handler!(inbound, { remotePeer: peerIdFromString(CLIENT!) }) }
  }

  it('reset before a request, halfway through one, during a watch and during a session', async () => {
    const { lines } = await serverWithLog()
    // 1. Opened and reset before sending anything.
    let client = await opened()
    client.outbound.abort(new Error('client gone'))
    await client.serving
    // 2. Half a frame (a length of 32, one byte of it), then reset.
    client = await opened()
    client.outbound.send(new Uint8Array([0x20, 0x81]))
    client.outbound.abort(new Error('client gone'))
    await client.serving
    // 3. A watch, reset while the server waits for the next entry.
    client = await opened()
    await writeFrame(
      frameStream(client.outbound, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX }),
      encodeRequest({ op: 'watch', fromIndex: 0 }),
    )
    while (replica.metrics.api.watchersOpen === 0) await new Promise((resolve) => setImmediate(resolve))
    client.outbound.abort(new Error('client gone'))
    await client.serving
    // 4. A session with a request answered, then reset.
    client = await opened()
    const lp = frameStream(client.outbound, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX })
    await writeFrame(lp, encodeRequest({ op: 'status' }, 1))
    await readFrame(lp, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX })
    client.outbound.abort(new Error('client gone'))
    await client.serving

    const logged = lines()
    expect(logged.filter((line) => line.level >= 40)).toEqual([])
    expect(logged.filter((line) => line.msg === 'client left before a whole request arrived')).toHaveLength(2)
    const text = parsePromText(await replica.metrics.registry.metrics())
    expect(text.value('nodeledger_api_client_resets_total')).toBe(2)
    expect(text.value('nodeledger_api_requests_total', { op: 'watch', code: 'OK' })).toBe(1)
    expect(text.value('nodeledger_api_watchers')).toBe(0)
    expect(text.value('nodeledger_api_sessions_total')).toBe(1)
    expect(text.value('nodeledger_api_sessions_open')).toBe(0)
  })

  it('an error the server did not expect still logs at error level (the filter is for resets only)', async () => {
    const { lines } = await serverWithLog()
    replica.proposeFails = new TypeError('a bug')
    const response = await ask('submit', { op: 'submit', delta: { originPeerId: CLIENT!, seq: 1, fields: {} } })
    expect(response.ok).toBe(false)
    expect(lines().filter((line) => line.level >= 50)).toMatchObject([{ msg: 'unexpected error serving a request' }])
  })
})
