import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { emptyRecord } from '@nodeledger/registry'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  ProtocolError,
  encodeErrorResponse,
  encodeSnapshotChunk,
  encodeSnapshotEnd,
  encodeSnapshotHeader,
  snapshotFrames,
} from '@nodeledger/protocol'
import type { SnapshotHeader, WatchEvent } from '@nodeledger/protocol'
import { multiaddr } from '@multiformats/multiaddr'
import {
  AuthorityClient,
  BACKOFF_BASE_MS_DEFAULT,
  BACKOFF_MAX_MS_DEFAULT,
  FeedRoute,
  backoffDelayMs,
} from '../src/index.ts'
import type { AuthorityClientInit } from '../src/index.ts'
import { FakeCluster } from './fake-cluster.ts'
import type { Behaviour } from './fake-cluster.ts'

let cluster: FakeCluster
let client: AuthorityClient | undefined

beforeEach(async () => {
  cluster = await FakeCluster.start(3)
})

afterEach(async () => {
  await client?.stop()
  client = undefined
  await cluster.stop()
})

async function startClient(init: Partial<AuthorityClientInit> = {}): Promise<AuthorityClient> {
  client = new AuthorityClient({ bootstrap: cluster.addresses, backoffBaseMs: 1, backoffMaxMs: 4, ...init })
  await client.start()
  return client
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError)
    return (error as ProtocolError).code
  }
  throw new Error('expected a ProtocolError')
}

/** `count` distinct valid origins (the fake does not check who submits for whom). */
async function origins(count: number): Promise<string[]> {
  return Promise.all(
    Array.from({ length: count }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()),
  )
}

function delta(origin: string, seq: number) {
  return { originPeerId: origin, seq, fields: { isWebScraper: true, version: '1.0.0' } }
}

describe('leader discovery', () => {
  it('asks a replica for status, caches the leader and sends writes there', async () => {
    cluster.leaderId = 2
    const c = await startClient()
    const origin = c.libp2p.peerId.toString()
    expect(await c.submit(delta(origin, 1))).toEqual({ index: 1, duplicate: false })
    expect(await c.submit(delta(origin, 2))).toEqual({ index: 2, duplicate: false })
    expect(c.leader).toBe(cluster.replica(2).multiaddr)
    expect(cluster.count('submit')).toEqual([0, 2, 0])
    expect(cluster.count('status')).toEqual([1, 0, 0]) // one discovery, then the cache
  })

  it('follows a NOT_LEADER hint at once when the leader moves', async () => {
    const c = await startClient()
    const origin = c.libp2p.peerId.toString()
    await c.submit(delta(origin, 1))
    cluster.leaderId = 3 // replica 1 now answers NOT_LEADER naming 3
    expect(await c.submit(delta(origin, 2))).toEqual({ index: 2, duplicate: false })
    expect(c.leader).toBe(cluster.replica(3).multiaddr)
    expect(cluster.count('submit')).toEqual([2, 0, 1])
  })

  it('retries elsewhere when a replica knows no leader, until one is elected', async () => {
    cluster.leaderId = 0
    let statuses = 0
    for (const replica of cluster.replicas) {
      replica.behaviour = (request, self) => {
        if (request.op === 'status' && ++statuses === 3) cluster.leaderId = 2
        return cluster.standard(request, self)
      }
    }
    const c = await startClient()
    expect(await c.get(c.libp2p.peerId.toString())).toEqual({ record: null, index: 0 })
    expect(cluster.count('get')).toEqual([0, 1, 0])
  })
})

describe('failover', () => {
  it('moves to the new leader when the old one dies, and a retried submit stays exactly once', async () => {
    const c = await startClient()
    const origin = c.libp2p.peerId.toString()
    await c.submit(delta(origin, 1))
    // The leader applies seq 2 and dies before answering; replica 2 takes over with the same log.
    cluster.replica(1).behaviour = (request, self) => {
      if (request.op === 'submit') {
        cluster.apply(request.delta.originPeerId, request.delta.seq)
        cluster.leaderId = 2
        return { kind: 'drop' }
      }
      return cluster.standard(request, self)
    }
    expect(await c.submit(delta(origin, 2))).toEqual({ index: 2, duplicate: true })
    const submits = cluster.replicas.flatMap((r) => r.requests).filter((r) => r.op === 'submit')
    expect(submits.slice(1)).toEqual([
      { op: 'submit', delta: delta(origin, 2) },
      { op: 'submit', delta: delta(origin, 2) },
    ])
    expect(cluster.lastIndex).toBe(2)
  })

  it('moves on when the leader process is gone entirely', async () => {
    const c = await startClient()
    const origin = c.libp2p.peerId.toString()
    await c.submit(delta(origin, 1))
    await cluster.replica(1).node.stop()
    cluster.leaderId = 3
    expect(await c.submit(delta(origin, 2))).toEqual({ index: 2, duplicate: false })
    expect(c.leader).toBe(cluster.replica(3).multiaddr)
  })
})

describe('deadlines and retries', () => {
  it('a replica that never answers is TIMEOUT once attempts run out', async () => {
    for (const replica of cluster.replicas) replica.behaviour = () => ({ kind: 'hang' })
    // 250 ms: room for a fresh dial (TCP, Noise, identify) on a loaded machine before the request is sent.
    const c = await startClient({ requestTimeoutMs: 250, attemptsMax: 2 })
    expect(await codeOf(c.status())).toBe('TIMEOUT')
    expect(cluster.count('status')).toEqual([1, 1, 0])
  })

  it('a hanging leader is left for the next replica after its deadline', async () => {
    const c = await startClient({ requestTimeoutMs: 250 })
    const origin = c.libp2p.peerId.toString()
    await c.submit(delta(origin, 1))
    cluster.replica(1).behaviour = (request, self) =>
      request.op === 'submit' ? { kind: 'hang' } : cluster.standard(request, self)
    cluster.leaderId = 2
    expect(await c.submit(delta(origin, 2))).toEqual({ index: 2, duplicate: false })
  })

  it('non-retryable codes are thrown at once, after one attempt', async () => {
    const c = await startClient()
    const origin = c.libp2p.peerId.toString()
    await c.submit(delta(origin, 5))
    expect(await codeOf(c.submit(delta(origin, 4)))).toBe('STALE')
    expect(cluster.count('submit')).toEqual([2, 0, 0])
    cluster.replica(1).behaviour = () => ({ kind: 'error', error: new ProtocolError('UNAUTHORIZED', 'not yours') })
    expect(await codeOf(c.submit(delta(origin, 6)))).toBe('UNAUTHORIZED')
    expect(cluster.count('submit')).toEqual([3, 0, 0])
  })

  it('invalid input fails locally as INVALID without a request', async () => {
    const c = await startClient()
    expect(await codeOf(c.get('not-a-peer-id'))).toBe('INVALID')
    expect(await codeOf(c.since(0, 0))).toBe('INVALID')
    expect(cluster.replicas.every((r) => r.requests.length === 0)).toBe(true)
  })

  it('gives up after attemptsMax when every replica is UNAVAILABLE', async () => {
    for (const replica of cluster.replicas)
      replica.behaviour = () => ({ kind: 'error', error: new ProtocolError('UNAVAILABLE', 'no quorum') })
    const c = await startClient({ attemptsMax: 5 })
    expect(await codeOf(c.status())).toBe('UNAVAILABLE')
    expect(cluster.count('status').reduce((a, b) => a + b)).toBe(5)
  })

  it('a caller abort ends the request with the caller reason', async () => {
    for (const replica of cluster.replicas) replica.behaviour = () => ({ kind: 'hang' })
    const c = await startClient({ requestTimeoutMs: 60_000 })
    const controller = new AbortController()
    const reason = new Error('caller gave up')
    const pending = c.status(undefined, { signal: controller.signal })
    while (cluster.count('status')[0] === 0) await new Promise((resolve) => setTimeout(resolve, 5))
    controller.abort(reason)
    await expect(pending).rejects.toBe(reason)
  })

  it('stale reads go to any replica without discovery', async () => {
    const c = await startClient()
    cluster.leaderId = 2
    const result = await c.get(c.libp2p.peerId.toString(), { consistency: 'stale' })
    expect(result.index).toBe(0)
    expect(cluster.count('status')).toEqual([0, 0, 0])
  })
})

describe('backoff', () => {
  it('stays within [cap / 2, cap] with cap = min(max, base * 2^(attempt - 1))', () => {
    for (const random of [0, 0.25, 0.5, 0.999999]) {
      for (let attempt = 1; attempt <= 40; attempt++) {
        const cap = Math.min(BACKOFF_MAX_MS_DEFAULT, BACKOFF_BASE_MS_DEFAULT * 2 ** (attempt - 1))
        const delay = backoffDelayMs(attempt, BACKOFF_BASE_MS_DEFAULT, BACKOFF_MAX_MS_DEFAULT, () => random)
        expect(delay).toBeGreaterThanOrEqual(cap / 2)
        expect(delay).toBeLessThanOrEqual(cap)
      }
    }
    expect(backoffDelayMs(0, 20, 500, () => 0.5)).toBe(0)
    expect(backoffDelayMs(1000, 20, 500, () => 1)).toBe(500)
  })

  it('the client waits with its configured jitter between attempts', async () => {
    for (const replica of cluster.replicas)
      replica.behaviour = () => ({ kind: 'error', error: new ProtocolError('UNAVAILABLE', 'no quorum') })
    const draws: number[] = []
    const c = await startClient({
      attemptsMax: 4,
      random: () => {
        draws.push(0.5)
        return 0.5
      },
    })
    await codeOf(c.status())
    expect(draws.length).toBe(3) // one backoff before each retry, none before the first attempt
  })
})

describe('status', () => {
  it('statusAll answers for every replica, with an error for the one that is down', async () => {
    await cluster.replica(2).node.stop()
    const c = await startClient({ requestTimeoutMs: 500 })
    const all = await c.statusAll()
    expect(all.map((s) => s.multiaddr)).toEqual(cluster.addresses)
    expect(all[0]!.status?.role).toBe('leader')
    expect(all[1]!.error?.code).toBe('UNAVAILABLE')
    expect(all[2]!.status?.leader?.id).toBe(1)
  })

  it('status(target) asks that replica only', async () => {
    const c = await startClient()
    expect((await c.status(cluster.replica(3).multiaddr)).id).toBe(3)
    expect(cluster.count('status')).toEqual([0, 0, 1])
  })
})

describe('watch', () => {
  const record = emptyRecord('12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK')
  const event = (throughIndex: number): WatchEvent => ({
    records: [{ ...record, changedIndex: throughIndex }],
    throughIndex,
  })

  it('resumes from the last throughIndex on NOT_LEADER and after a dropped connection', async () => {
    cluster.replica(1).behaviour = (request, self) => {
      if (request.op !== 'watch') return cluster.standard(request, self)
      cluster.leaderId = 2
      return {
        kind: 'watch',
        events: [event(11), event(12)],
        end: new ProtocolError('NOT_LEADER', 'stepped down', { leader: cluster.replica(2).hint() }),
      }
    }
    cluster.replica(2).behaviour = (request, self) => {
      if (request.op !== 'watch') return cluster.standard(request, self)
      cluster.leaderId = 3
      return { kind: 'watch', events: [event(13)], end: 'drop' }
    }
    cluster.replica(3).behaviour = (request, self) => {
      if (request.op !== 'watch') return cluster.standard(request, self)
      return { kind: 'watch', events: [event(14)], end: 'hold' }
    }
    const c = await startClient()
    const seen: number[] = []
    for await (const e of c.watch(10)) {
      seen.push(e.throughIndex)
      if (e.throughIndex === 14) break
    }
    expect(seen).toEqual([11, 12, 13, 14])
    const watches = cluster.replicas.map((r) => r.requests.filter((q) => q.op === 'watch'))
    expect(watches).toEqual([
      [{ op: 'watch', fromIndex: 10 }],
      [{ op: 'watch', fromIndex: 12 }],
      [{ op: 'watch', fromIndex: 13 }],
    ])
  })

  it('a non-retryable error ends the watch', async () => {
    cluster.replica(1).behaviour = (request, self) =>
      request.op === 'watch'
        ? { kind: 'watch', events: [], end: new ProtocolError('NOT_FOUND', 'beyond the log') }
        : cluster.standard(request, self)
    const c = await startClient()
    const iterate = async (): Promise<void> => {
      for await (const _ of c.watch(1_000_000)) {
        /* nothing arrives */
      }
    }
    expect(await codeOf(iterate())).toBe('NOT_FOUND')
  })

  it('gives up after attemptsMax failures in a row', async () => {
    for (const replica of cluster.replicas) {
      replica.behaviour = (request, self) =>
        request.op === 'watch' ? { kind: 'watch', events: [], end: 'drop' } : cluster.standard(request, self)
    }
    const c = await startClient({ attemptsMax: 3 })
    const iterate = async (): Promise<void> => {
      for await (const _ of c.watch(0)) {
        /* nothing arrives */
      }
    }
    expect(await codeOf(iterate())).toBe('UNAVAILABLE')
    expect(cluster.count('watch')).toEqual([3, 0, 0])
  })
})

describe('spread feeds (feedKey): since and watch from the home replica, then the others (issue 13)', () => {
  const record = emptyRecord('12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK')
  const event = (throughIndex: number): WatchEvent => ({
    records: [{ ...record, changedIndex: throughIndex }],
    throughIndex,
  })
  /** A key whose home replica is `id` (FeedRoute's hash over the replicas by peer id). */
  function keyHomedOn(id: number): string {
    const replicas = cluster.replicas.map((r) => ({ address: multiaddr(r.multiaddr), peerId: r.peerId }))
    for (let i = 0; ; i++)
      if (new FeedRoute(replicas, `key-${i}`).home.peerId === cluster.replica(id).peerId) return `key-${i}`
  }
  /** Followers serve feeds too: every replica answers since and watch. */
  const feeds: Behaviour = (request, self) => {
    if (request.op === 'since') return { kind: 'result', result: { records: [], throughIndex: 7, more: false } }
    return cluster.standard(request, self)
  }

  it('since goes to the home replica (a follower), not the leader; writes still go to the leader', async () => {
    for (const replica of cluster.replicas) replica.behaviour = feeds
    const c = await startClient({ feedKey: keyHomedOn(3) })
    for (let i = 0; i < 3; i++) expect((await c.since(0, 10)).throughIndex).toBe(7)
    await c.submit({ originPeerId: record.peerId, seq: 1, fields: {} })
    expect(cluster.count('since')).toEqual([0, 0, 3])
    expect(cluster.count('submit')[0]).toBe(1)
  })

  it('a home that drops moves the feed to the next replica; a NOT_LEADER hint is followed at once', async () => {
    for (const replica of cluster.replicas) replica.behaviour = feeds
    cluster.replica(2).behaviour = (request, self) => (request.op === 'since' ? { kind: 'drop' } : feeds(request, self))
    const c = await startClient({ feedKey: keyHomedOn(2) })
    expect((await c.since(0, 10)).throughIndex).toBe(7)
    const afterDrop = cluster.count('since')
    expect(afterDrop[1]).toBe(1)
    expect(afterDrop[0]! + afterDrop[2]!).toBe(1)

    // Every follower behind: each sends the caller to the leader (1), which serves.
    for (const id of [2, 3])
      cluster.replica(id).behaviour = (request, self) =>
        request.op === 'since'
          ? { kind: 'error', error: new ProtocolError('NOT_LEADER', 'behind', { leader: cluster.replica(1).hint() }) }
          : feeds(request, self)
    const before = cluster.count('since')[0]!
    expect((await c.since(7, 10)).throughIndex).toBe(7)
    expect(cluster.count('since')[0]!).toBeGreaterThan(before)
  })

  it('a watch resumes on the next replica from its last throughIndex when its home drops it', async () => {
    const home = 3
    cluster.replica(home).behaviour = (request, self) =>
      request.op === 'watch' ? { kind: 'watch', events: [event(11), event(12)], end: 'drop' } : feeds(request, self)
    for (const id of [1, 2])
      cluster.replica(id).behaviour = (request, self) =>
        request.op === 'watch' ? { kind: 'watch', events: [event(13)], end: 'hold' } : feeds(request, self)
    const c = await startClient({ feedKey: keyHomedOn(home) })
    const seen: number[] = []
    for await (const e of c.watch(10)) {
      seen.push(e.throughIndex)
      if (e.throughIndex === 13) break
    }
    expect(seen).toEqual([11, 12, 13])
    const watches = cluster.replicas.map((r) =>
      r.requests.filter((q) => q.op === 'watch').map((q) => (q as { fromIndex: number }).fromIndex),
    )
    expect(watches[home - 1]).toEqual([10])
    expect([...watches[0]!, ...watches[1]!]).toEqual([12])
  })
})

describe('sessions (PROTOCOL.md "Sessions")', () => {
  /** A promise a test resolves by hand, to hold a fake replica's answers back. */
  function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
    let open!: (value: T) => void
    const promise = new Promise<T>((resolve) => (open = resolve))
    return { promise, open }
  }

  it('many concurrent requests share one stream per replica', async () => {
    const c = await startClient()
    const origin = c.libp2p.peerId.toString()
    await c.get(origin) // finds the leader (replica 1) once
    const workers = await origins(32)
    const results = await Promise.all([
      ...workers.map((worker) => c.submit(delta(worker, 1))),
      ...Array.from({ length: 32 }, () => c.get(origin)),
    ])
    expect(results).toHaveLength(64)
    expect(cluster.count('submit')).toEqual([32, 0, 0])
    expect(cluster.replicas.map((r) => r.streams)).toEqual([1, 0, 0]) // discovery and all 64 on one session
    await c.status()
    expect(cluster.replica(1).streams).toBe(1)
  })

  it('routes answers that come back out of order to their own requests', async () => {
    const held: Array<{ index: number; open: (answer: { kind: 'result'; result: unknown }) => void }> = []
    const all = gate()
    cluster.replica(1).behaviour = (request, self) => {
      if (request.op !== 'since') return cluster.standard(request, self)
      const answer = gate<{ kind: 'result'; result: unknown }>()
      held.push({ index: request.index, open: answer.open })
      if (held.length === 5) all.open()
      return { kind: 'deferred', answer: answer.promise }
    }
    const c = await startClient()
    await c.status()
    const pending = [10, 20, 30, 40, 50].map((index) => c.since(index, 100))
    await all.promise
    for (const { index, open } of held.reverse())
      open({ kind: 'result', result: { records: [], throughIndex: index + 1, more: index === 30 } })
    expect(await Promise.all(pending)).toEqual(
      [10, 20, 30, 40, 50].map((index) => ({ records: [], throughIndex: index + 1, more: index === 30 })),
    )
    expect(cluster.replica(1).streams).toBe(1)
  })

  it('a session that dies fails all its requests, which then retry on the new leader', async () => {
    const c = await startClient()
    const origin = c.libp2p.peerId.toString()
    await c.submit(delta(origin, 1))
    const received = gate()
    let submits = 0
    cluster.replica(1).behaviour = (request, self) => {
      if (request.op !== 'submit') return cluster.standard(request, self)
      if (++submits === 10) received.open()
      // Every submit waits until all ten are in; then the replica dies (its session is reset).
      return { kind: 'deferred', answer: received.promise.then(() => ({ kind: 'drop' as const })) }
    }
    received.promise.then(() => (cluster.leaderId = 2))
    const workers = await origins(10)
    const results = await Promise.all(workers.map((worker) => c.submit(delta(worker, 1))))
    expect(results.map((r) => r.duplicate)).toEqual(Array.from({ length: 10 }, () => false))
    expect(cluster.count('submit')).toEqual([11, 10, 0])
    expect(c.leader).toBe(cluster.replica(2).multiaddr)
    expect(cluster.replica(2).streams).toBe(1)
    expect(cluster.replica(1).streams).toBeGreaterThanOrEqual(1)
  })

  it('one request missing its deadline leaves the others and the session alone; its late answer is dropped', async () => {
    const late = gate()
    let first = true
    cluster.replica(1).behaviour = (request, self) => {
      if (request.op !== 'status' || !first) return cluster.standard(request, self)
      first = false
      return {
        kind: 'deferred',
        answer: late.promise.then(() => ({ kind: 'result' as const, result: cluster.status(self) })),
      }
    }
    const c = await startClient({ requestTimeoutMs: 400 })
    const target = cluster.replica(1).multiaddr
    const slow = codeOf(c.status(target))
    const others = await Promise.all(Array.from({ length: 9 }, () => c.status(target)))
    expect(others.map((s) => s.id)).toEqual(Array.from({ length: 9 }, () => 1))
    expect(await slow).toBe('TIMEOUT')
    late.open()
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect((await c.status(target)).id).toBe(1)
    expect(cluster.replica(1).streams).toBe(1)
  })

  it('never has more than SESSION_REQUESTS_INFLIGHT_MAX requests in flight; the rest wait their turn', async () => {
    const release = gate()
    let gets = 0
    cluster.replica(1).behaviour = (request, self) => {
      if (request.op !== 'get') return cluster.standard(request, self)
      if (++gets === 256) release.open()
      return { kind: 'deferred', answer: release.promise.then(() => cluster.standard(request, self)) }
    }
    const c = await startClient({ requestTimeoutMs: 10_000 })
    const origin = c.libp2p.peerId.toString()
    await c.status()
    const results = await Promise.all(Array.from({ length: 300 }, () => c.get(origin)))
    expect(results).toHaveLength(300)
    expect(cluster.replica(1).sessionPendingMax).toBe(256)
    expect(cluster.replica(1).streams).toBe(1)
  })

  it('streamPerRequest keeps the one-request-per-stream flow, which servers still serve', async () => {
    const c = await startClient({ streamPerRequest: true })
    const origin = c.libp2p.peerId.toString()
    await c.submit(delta(origin, 1))
    await Promise.all([c.get(origin), c.status(), c.submit(delta(origin, 2))])
    // discovery, then four requests: one stream each
    expect(cluster.replicas.map((r) => r.streams)).toEqual([5, 0, 0])
  })
})

describe('snapshot', () => {
  const data = new Uint8Array(Array.from({ length: 10 }, (_, i) => i * 7))
  const header = (totalBytes = data.byteLength): SnapshotHeader => ({
    clusterId: 'fake-cluster',
    leader: 1,
    index: 42,
    term: 3,
    members: cluster.status(cluster.replica(1)).members,
    records: 5,
    registryDigest: '0'.repeat(64),
    totalBytes,
  })
  /** The leader answers snapshots with `frames()`; other requests as usual. */
  const answerSnapshots = (id: number, frames: () => Uint8Array[], end: 'close' | 'drop' = 'close') => {
    cluster.replica(id).behaviour = (request, self) =>
      request.op === 'snapshot' ? { kind: 'frames', frames: frames(), end } : cluster.standard(request, self)
  }

  it('assembles the data from the leader, following a NOT_LEADER hint, and reports progress', async () => {
    const c = await startClient()
    // The client caches replica 1 as the leader; then leadership moves to 2.
    const [origin] = await origins(1)
    await c.submit(delta(origin!, 1))
    cluster.leaderId = 2
    answerSnapshots(1, () => [
      encodeErrorResponse(new ProtocolError('NOT_LEADER', 'replica 2 leads', { leader: cluster.replica(2).hint() })),
    ])
    answerSnapshots(2, () => [...snapshotFrames(header(), data, 4)])
    const progress: number[] = []
    const snapshot = await c.snapshot({ onProgress: (received) => progress.push(received) })
    expect([...snapshot.data]).toEqual([...data])
    expect(snapshot.header).toEqual(header())
    expect(progress).toEqual([0, 4, 8, 10])
    expect(cluster.count('snapshot')).toEqual([1, 1, 0])
  })

  it('a transfer cut part way is retried from the start, as a new request', async () => {
    let attempts = 0
    answerSnapshots(1, () => {
      attempts++
      const frames = [...snapshotFrames(header(), data, 4)]
      // First attempt: the header and one chunk, then the stream resets; then the whole answer.
      return attempts === 1 ? frames.slice(0, 2) : frames
    })
    cluster.replica(1).behaviour = ((inner) => (request, self) => {
      const answer = inner(request, self)
      return answer.kind === 'frames' && attempts === 1 ? { ...answer, end: 'drop' } : answer
    })(cluster.replica(1).behaviour)
    const c = await startClient()
    expect([...(await c.snapshot()).data]).toEqual([...data])
    expect(cluster.count('snapshot')).toEqual([2, 0, 0])
  })

  it('an answer that breaks the protocol, or a final error, is thrown after one attempt', async () => {
    const c = await startClient()
    answerSnapshots(1, () => [
      encodeSnapshotHeader(header()),
      encodeSnapshotChunk({ offset: 0, data }),
      encodeSnapshotEnd({ totalBytes: data.byteLength, sha256: new Uint8Array(32) }),
    ])
    expect(await codeOf(c.snapshot())).toBe('INVALID')
    answerSnapshots(1, () => [encodeSnapshotHeader(header()), encodeSnapshotChunk({ offset: 3, data })])
    expect(await codeOf(c.snapshot())).toBe('INVALID')
    answerSnapshots(1, () => [encodeErrorResponse(new ProtocolError('UNAUTHORIZED', 'operators only'))])
    expect(await codeOf(c.snapshot())).toBe('UNAUTHORIZED')
    expect(cluster.count('snapshot')).toEqual([3, 0, 0])
  })

  it('an answer that ends early is UNAVAILABLE, one that stalls TIMEOUT, each retried until attempts run out', async () => {
    answerSnapshots(1, () => [encodeSnapshotHeader(header())], 'close')
    // The stream closes without the rest: UNAVAILABLE each time, until attempts run out.
    const c = await startClient({ attemptsMax: 2 })
    expect(await codeOf(c.snapshot({ frameTimeoutMs: 200 }))).toBe('UNAVAILABLE')
    cluster.replica(1).behaviour = (request, self) =>
      request.op === 'snapshot' ? { kind: 'hang' } : cluster.standard(request, self)
    expect(await codeOf(c.snapshot({ frameTimeoutMs: 200 }))).toBe('TIMEOUT')
    expect(cluster.count('snapshot')).toEqual([4, 0, 0])
  })
})
