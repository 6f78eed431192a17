import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import type { Libp2p, Stream } from '@libp2p/interface'
import {
  API_PROTOCOL,
  API_REQUEST_FRAME_BYTES_MAX,
  ProtocolError,
  SESSION_REQUESTS_INFLIGHT_MAX,
  decodeRequest,
  encodeErrorResponse,
  encodeResponse,
  encodeWatchEvent,
  frameStream,
  readFrame,
  writeFrame,
} from '@nodeledger/protocol'
import type { ApiRequest, DecodedRequest, LeaderHint, StatusResult, WatchEvent } from '@nodeledger/protocol'
import type { LengthPrefixedStream } from '@libp2p/utils'

/**
 * A tiny stand-in for the authority's API server: real libp2p hosts on 127.0.0.1 that speak
 * /nodeledger/api/1 with the protocol package's codecs, whose answers each test scripts. It serves
 * one-request streams and sessions (PROTOCOL.md "Sessions") as the contract says: a session's
 * answers go out as they complete, at most SESSION_REQUESTS_INFLIGHT_MAX pending (it stops reading
 * meanwhile), watch answered INVALID, a bad frame answered without an id and the session closed.
 */

/**
 * What a fake replica does with one request: answer, fail, hang, drop the stream (a whole session),
 * run a watch, or answer later (`deferred`: lets a test answer a session's requests out of order).
 */
export type Answer =
  | { readonly kind: 'deferred'; readonly answer: Promise<Answer> }
  | { readonly kind: 'result'; readonly result: unknown }
  | { readonly kind: 'error'; readonly error: ProtocolError }
  | { readonly kind: 'hang' }
  | { readonly kind: 'drop' }
  | { readonly kind: 'watch'; readonly events: readonly WatchEvent[]; readonly end: ProtocolError | 'drop' | 'hold' }
  /** Raw frames written in order (a snapshot answer), then the stream closed or reset. */
  | { readonly kind: 'frames'; readonly frames: readonly Uint8Array[]; readonly end: 'close' | 'drop' }

export type Behaviour = (request: ApiRequest, replica: FakeReplica) => Answer

export interface FakeReplica {
  readonly id: number
  readonly node: Libp2p
  readonly peerId: string
  readonly multiaddr: string
  /** Every request received, in order, without its session id. */
  readonly requests: ApiRequest[]
  /** Streams opened to this replica's API protocol (sessions and one-request streams alike). */
  streams: number
  /** Most requests pending at once on any one session. */
  sessionPendingMax: number
  behaviour: Behaviour
  hint(): LeaderHint
}

export class FakeCluster {
  readonly replicas: FakeReplica[] = []
  /** Applied (origin -> highest seq) shared by all replicas: the replicated registry, in short. */
  readonly applied = new Map<string, { seq: number; index: number }>()
  lastIndex = 0
  leaderId = 1

  static async start(count: number): Promise<FakeCluster> {
    const cluster = new FakeCluster()
    for (let id = 1; id <= count; id++) cluster.replicas.push(await cluster.#startReplica(id))
    return cluster
  }

  get addresses(): string[] {
    return this.replicas.map((replica) => replica.multiaddr)
  }

  replica(id: number): FakeReplica {
    return this.replicas[id - 1]!
  }

  async stop(): Promise<void> {
    await Promise.all(this.replicas.map((replica) => replica.node.stop()))
  }

  /** The well-behaved default: the leader serves, followers point to it. */
  readonly standard: Behaviour = (request, replica) => {
    if (request.op === 'status') return { kind: 'result', result: this.status(replica) }
    if (replica.id !== this.leaderId) {
      return {
        kind: 'error',
        error: new ProtocolError('NOT_LEADER', 'not the leader', { leader: this.replica(this.leaderId).hint() }),
      }
    }
    switch (request.op) {
      case 'submit':
        return { kind: 'result', result: this.apply(request.delta.originPeerId, request.delta.seq) }
      case 'get':
        return { kind: 'result', result: { record: null, index: this.lastIndex } }
      case 'list':
        return { kind: 'result', result: { records: [], index: this.lastIndex } }
      case 'since':
        return { kind: 'result', result: { records: [], throughIndex: this.lastIndex, more: false } }
      case 'watch':
        return { kind: 'watch', events: [], end: 'hold' }
      case 'presence':
        return { kind: 'result', result: { active: request.event === 'heartbeat', index: this.lastIndex } }
      case 'member':
      case 'transfer':
        return { kind: 'error', error: new ProtocolError('UNAUTHORIZED', 'the fake cluster changes no membership') }
      case 'snapshot':
        return { kind: 'error', error: new ProtocolError('UNAUTHORIZED', 'the fake cluster takes no snapshots') }
    }
  }

  /** Exactly-once as PROTOCOL.md says: greater seq applies, equal is a duplicate, lower is STALE. */
  apply(origin: string, seq: number): { index: number; duplicate: boolean } {
    const previous = this.applied.get(origin)
    if (previous !== undefined && seq === previous.seq) return { index: previous.index, duplicate: true }
    if (previous !== undefined && seq < previous.seq)
      throw new ProtocolError('STALE', `seq ${seq} below ${previous.seq}`)
    this.lastIndex++
    this.applied.set(origin, { seq, index: this.lastIndex })
    return { index: this.lastIndex, duplicate: false }
  }

  status(replica: FakeReplica): StatusResult {
    const leader = this.leaderId === 0 ? null : this.replica(this.leaderId).hint()
    return {
      clusterId: 'fake-cluster',
      id: replica.id,
      peerId: replica.peerId,
      role: replica.id === this.leaderId ? 'leader' : 'follower',
      term: 3,
      leader,
      commit: this.lastIndex,
      applied: this.lastIndex,
      firstIndex: 1,
      lastIndex: this.lastIndex,
      snapshotIndex: 0,
      members: this.replicas.map((r) => ({
        id: r.id,
        peerId: r.peerId,
        multiaddr: r.multiaddr,
        voter: true,
        started: true,
      })),
      registryRecords: this.applied.size,
      registryDigest: '0'.repeat(64),
      version: '0.0.0-test',
    }
  }

  /** Requests of `op` each replica received, by replica id. */
  count(op: ApiRequest['op']): number[] {
    return this.replicas.map((replica) => replica.requests.filter((request) => request.op === op).length)
  }

  async #startReplica(id: number): Promise<FakeReplica> {
    const node = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      services: { identify: identify() },
    })
    const address = node.getMultiaddrs().find((a) => a.toString().startsWith('/ip4/127.0.0.1/tcp/'))!
    const replica: FakeReplica = {
      id,
      node,
      peerId: node.peerId.toString(),
      multiaddr: address.toString(),
      requests: [],
      streams: 0,
      sessionPendingMax: 0,
      behaviour: this.standard,
      hint: () => ({ id, peerId: node.peerId.toString(), multiaddrs: [address.toString()] }),
    }
    // As many streams per connection as the authority's API server allows (API_STREAMS_PER_CONNECTION_MAX).
    await node.handle(API_PROTOCOL, (stream) => serve(stream, replica), { maxInboundStreams: 256 })
    return replica
  }
}

async function serve(stream: Stream, replica: FakeReplica): Promise<void> {
  replica.streams++
  const lp = frameStream(stream, { maxBytes: API_REQUEST_FRAME_BYTES_MAX })
  try {
    let request: DecodedRequest
    try {
      request = decodeRequest(await readFrame(lp, { maxBytes: API_REQUEST_FRAME_BYTES_MAX }))
    } catch (error) {
      await writeFrame(lp, encodeErrorResponse(error))
      await stream.close()
      return
    }
    if (request.id !== undefined) {
      await serveSession(stream, lp, replica, request)
      return
    }
    replica.requests.push(request)
    const answer = await settle(behave(replica, request))
    switch (answer.kind) {
      case 'result':
        await writeFrame(lp, encodeResponse(request.op as 'status', answer.result as StatusResult))
        await stream.close()
        return
      case 'error':
        await writeFrame(lp, encodeErrorResponse(answer.error))
        await stream.close()
        return
      case 'hang':
        return // the client's deadline resets the stream
      case 'drop':
        stream.abort(new Error('dropped by the fake replica'))
        return
      case 'watch':
        for (const event of answer.events) await writeFrame(lp, encodeWatchEvent(event))
        if (answer.end === 'drop') stream.abort(new Error('watch dropped by the fake replica'))
        else if (answer.end !== 'hold') {
          await writeFrame(lp, encodeErrorResponse(answer.end))
          await stream.close()
        }
        return
      case 'frames':
        for (const frame of answer.frames) await writeFrame(lp, frame)
        if (answer.end === 'drop') stream.abort(new Error('stream dropped by the fake replica'))
        else await stream.close()
        return
    }
  } catch {
    stream.abort(new Error('fake replica failed'))
  }
}

/** A session: answer each request as its answer settles, read on while fewer than the limit are pending. */
async function serveSession(
  stream: Stream,
  lp: LengthPrefixedStream<Stream>,
  replica: FakeReplica,
  first: DecodedRequest,
): Promise<void> {
  let pending = 0
  let wakeReader: (() => void) | undefined
  const answer = async (request: ApiRequest, id: number): Promise<void> => {
    pending++
    replica.sessionPendingMax = Math.max(replica.sessionPendingMax, pending)
    const reply =
      request.op === 'watch'
        ? { kind: 'error' as const, error: new ProtocolError('INVALID', 'watch is not allowed in a session') }
        : await settle(behave(replica, request))
    pending--
    wakeReader?.()
    switch (reply.kind) {
      case 'result':
        await writeFrame(lp, encodeResponse(request.op as 'status', reply.result as StatusResult, id))
        return
      case 'error':
        await writeFrame(lp, encodeErrorResponse(reply.error, id))
        return
      case 'hang':
        pending++ // never answered: it holds its slot, as on a real server until its deadline
        return
      case 'drop':
      case 'watch':
      case 'frames':
        stream.abort(new Error('session dropped by the fake replica'))
        return
    }
  }
  let next: DecodedRequest = first
  while (true) {
    const { id, ...request } = next
    replica.requests.push(request as ApiRequest)
    void answer(request as ApiRequest, id!).catch(() => stream.abort(new Error('fake replica failed')))
    while (pending >= SESSION_REQUESTS_INFLIGHT_MAX) await new Promise<void>((resolve) => (wakeReader = resolve))
    let bytes: Uint8Array
    try {
      bytes = await readFrame(lp, { maxBytes: API_REQUEST_FRAME_BYTES_MAX })
    } catch {
      return // the client closed or reset the session
    }
    try {
      next = decodeRequest(bytes)
      if (next.id === undefined)
        throw new ProtocolError('INVALID', 'request.id: expected an id on every request of a session')
    } catch (error) {
      await writeFrame(lp, encodeErrorResponse(error))
      await stream.close()
      return
    }
  }
}

function behave(replica: FakeReplica, request: ApiRequest): Answer {
  try {
    return replica.behaviour(request, replica)
  } catch (error) {
    return { kind: 'error', error: error as ProtocolError }
  }
}

/** A deferred answer once it settles; a rejected one is an error answer. */
async function settle(answer: Answer): Promise<Exclude<Answer, { kind: 'deferred' }>> {
  let current = answer
  while (current.kind === 'deferred') {
    try {
      current = await current.answer
    } catch (error) {
      current = { kind: 'error', error: error as ProtocolError }
    }
  }
  return current
}
