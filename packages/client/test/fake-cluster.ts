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
  decodeRequest,
  encodeErrorResponse,
  encodeResponse,
  encodeWatchEvent,
  frameStream,
  readFrame,
  writeFrame,
} from '@nodeledger/protocol'
import type { ApiRequest, LeaderHint, StatusResult, WatchEvent } from '@nodeledger/protocol'

/**
 * A tiny stand-in for the authority's API server: real libp2p hosts on 127.0.0.1 that speak
 * /nodeledger/api/1 with the protocol package's codecs, whose answers each test scripts.
 */

/** What a fake replica does with one request: answer, fail, hang, drop the stream, or run a watch. */
export type Answer =
  | { readonly kind: 'result'; readonly result: unknown }
  | { readonly kind: 'error'; readonly error: ProtocolError }
  | { readonly kind: 'hang' }
  | { readonly kind: 'drop' }
  | { readonly kind: 'watch'; readonly events: readonly WatchEvent[]; readonly end: ProtocolError | 'drop' | 'hold' }

export type Behaviour = (request: ApiRequest, replica: FakeReplica) => Answer

export interface FakeReplica {
  readonly id: number
  readonly node: Libp2p
  readonly peerId: string
  readonly multiaddr: string
  readonly requests: ApiRequest[]
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
      return { kind: 'error', error: new ProtocolError('NOT_LEADER', 'not the leader', { leader: this.replica(this.leaderId).hint() }) }
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
    }
  }

  /** Exactly-once as PROTOCOL.md says: greater seq applies, equal is a duplicate, lower is STALE. */
  apply(origin: string, seq: number): { index: number; duplicate: boolean } {
    const previous = this.applied.get(origin)
    if (previous !== undefined && seq === previous.seq) return { index: previous.index, duplicate: true }
    if (previous !== undefined && seq < previous.seq) throw new ProtocolError('STALE', `seq ${seq} below ${previous.seq}`)
    this.lastIndex++
    this.applied.set(origin, { seq, index: this.lastIndex })
    return { index: this.lastIndex, duplicate: false }
  }

  status(replica: FakeReplica): StatusResult {
    const leader = this.leaderId === 0 ? null : this.replica(this.leaderId).hint()
    return {
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
      members: this.replicas.map((r) => ({ id: r.id, peerId: r.peerId, multiaddr: r.multiaddr, voter: true })),
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
      behaviour: this.standard,
      hint: () => ({ id, peerId: node.peerId.toString(), multiaddrs: [address.toString()] }),
    }
    await node.handle(API_PROTOCOL, (stream) => serve(stream, replica))
    return replica
  }
}

async function serve(stream: Stream, replica: FakeReplica): Promise<void> {
  const lp = frameStream(stream, { maxBytes: API_REQUEST_FRAME_BYTES_MAX })
  try {
    let request: ApiRequest
    try {
      request = decodeRequest(await readFrame(lp, { maxBytes: API_REQUEST_FRAME_BYTES_MAX }))
    } catch (error) {
      await writeFrame(lp, encodeErrorResponse(error))
      await stream.close()
      return
    }
    replica.requests.push(request)
    let answer: Answer
    try {
      answer = replica.behaviour(request, replica)
    } catch (error) {
      answer = { kind: 'error', error: error as ProtocolError }
    }
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
    }
  } catch {
    stream.abort(new Error('fake replica failed'))
  }
}
