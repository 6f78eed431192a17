/**
 * A child process of `pnpm bench` that runs up to WORKERS_PER_PROCESS_MAX NodeEventTrackers (the
 * issue allows several workers per process, for density) and answers the bench over IPC. It starts
 * them, reports their gossip connections and gossipsub heartbeats, publishes a delta from one of
 * them on request, and times when each of the others first sees an expected (origin, seq).
 *
 * Times are `performance.timeOrigin + performance.now()`: every process on this machine reads the
 * same wall clock, with sub-millisecond resolution, so the parent can subtract them across
 * processes.
 *
 * Not for use outside the bench: it trusts its parent's messages.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { DELTAS_TOPIC } from '@nodeledger/protocol'
import { NodeEventTracker } from '@nodeledger/worker'
import type { ChangeEventDetail } from '@nodeledger/worker'
import { pino } from 'pino'
import type { HostReply, HostRequest, WorkerStatus } from './worker-protocol.ts'
import { WORKERS_PER_PROCESS_MAX } from './worker-protocol.ts'

/** Trackers started at once: their joins queue on the same two cores as everything else. */
const START_BATCH = 5

interface Expectation {
  readonly author: string
  readonly seq: number
  /** One slot per local tracker; null until it has the record (the author's own stays null). */
  readonly arrivals: Array<{ atMs: number; source: 'log' | 'gossip' } | null>
  waiting: number
  readonly timer: NodeJS.Timeout
}

const trackers: NodeEventTracker[] = []
const heartbeatCounts: number[] = []
const lastHeartbeatAtMs: number[] = []
/** Gaps between consecutive gossipsub heartbeats per tracker since the last `status` with reset. */
let heartbeatGapsMs: number[] = []
const expectations = new Map<string, Expectation>()
/** Connections to these are the client's, not gossip's. */
let replicaPeerIds = new Set<string>()
const loopDelay = monitorEventLoopDelay({ resolution: 10 })
loopDelay.enable()

const now = (): number => performance.timeOrigin + performance.now()
const logger = pino({ level: process.env.BENCH_WORKER_LOG ?? 'silent' }, pino.destination(2))

function send(reply: HostReply): void {
  process.send!(reply)
}

function keyOf(author: string, seq: number): string {
  return `${author}#${seq}`
}

function onChange(trackerIndex: number, detail: ChangeEventDetail): void {
  if (expectations.size === 0) return
  for (const expectation of expectations.values()) {
    if (detail.record.peerId !== expectation.author || detail.record.originSeq < expectation.seq) continue
    if (expectation.arrivals[trackerIndex] !== null || trackers[trackerIndex]!.peerId === expectation.author) continue
    expectation.arrivals[trackerIndex] = { atMs: now(), source: detail.source }
    expectation.waiting--
    if (expectation.waiting === 0) finish(expectation)
  }
}

function finish(expectation: Expectation): void {
  clearTimeout(expectation.timer)
  expectations.delete(keyOf(expectation.author, expectation.seq))
  send({
    type: 'arrivals',
    author: expectation.author,
    seq: expectation.seq,
    arrivals: expectation.arrivals.filter((_, i) => trackers[i]!.peerId !== expectation.author),
  })
}

async function startTrackers(request: Extract<HostRequest, { type: 'start' }>): Promise<void> {
  if (request.count > WORKERS_PER_PROCESS_MAX)
    throw new RangeError(`at most ${WORKERS_PER_PROCESS_MAX} workers per process, asked for ${request.count}`)
  mkdirSync(request.dataRoot, { recursive: true })
  replicaPeerIds = new Set(
    request.bootstrap.map((address) => address.slice(address.lastIndexOf('/p2p/') + '/p2p/'.length)),
  )
  for (let first = 0; first < request.count; first += START_BATCH) {
    const batch = Array.from({ length: Math.min(START_BATCH, request.count - first) }, (_, j) => first + j)
    const started = await Promise.all(
      batch.map(async (i) =>
        NodeEventTracker.start({
          dataDir: join(request.dataRoot, `worker-${i}`),
          bootstrap: request.bootstrap,
          privateKey: await generateKeyPair('Ed25519'),
          self: { isStaked: true, version: 'bench' },
          logger: logger.child({ worker: i }),
        }),
      ),
    )
    for (const tracker of started) {
      const index = trackers.length
      trackers.push(tracker)
      heartbeatCounts.push(0)
      lastHeartbeatAtMs.push(Number.NaN)
      tracker.addEventListener('change', (event) => onChange(index, (event as CustomEvent<ChangeEventDetail>).detail))
      tracker.host.services.gossip.addEventListener('gossipsub:heartbeat', () => {
        const at = now()
        if (!Number.isNaN(lastHeartbeatAtMs[index]!)) heartbeatGapsMs.push(at - lastHeartbeatAtMs[index]!)
        lastHeartbeatAtMs[index] = at
        heartbeatCounts[index]!++
      })
    }
    send({ type: 'progress', started: trackers.length })
  }
  send({
    type: 'started',
    peerIds: trackers.map((tracker) => tracker.peerId),
    ownSeqs: trackers.map((tracker) => tracker.ownSeq),
  })
}

function status(reset: boolean): void {
  const workers: WorkerStatus[] = trackers.map((tracker, i) => {
    const gossip = tracker.host.services.gossip
    // The service is gossipsub's class, which has these; its exported interface leaves them out.
    const gossipClass = gossip as unknown as { getMeshPeers(topic: string): string[]; getScore(peerId: string): number }
    return {
      peerId: tracker.peerId,
      gossipConnections: tracker.host
        .getConnections()
        .filter((connection) => !replicaPeerIds.has(connection.remotePeer.toString())).length,
      topicPeers: gossip.getSubscribers(DELTAS_TOPIC).length,
      meshPeers: gossipClass.getMeshPeers(DELTAS_TOPIC).length,
      negativeScorePeers: gossip
        .getSubscribers(DELTAS_TOPIC)
        .filter((peer) => gossipClass.getScore(peer.toString()) < 0).length,
      heartbeats: heartbeatCounts[i]!,
      size: tracker.size,
    }
  })
  send({
    type: 'status',
    workers,
    heartbeatGapsMs,
    eventLoopDelayP99Ms: loopDelay.percentile(99) / 1e6,
    eventLoopDelayMaxMs: loopDelay.max / 1e6,
  })
  if (reset) {
    heartbeatGapsMs = []
    loopDelay.reset()
  }
}

function expect(author: string, seq: number, timeoutMs: number): void {
  const arrivals: Expectation['arrivals'] = trackers.map(() => null)
  let waiting = 0
  for (const [i, tracker] of trackers.entries()) {
    if (tracker.peerId === author) continue
    // Already there (cannot happen for a fresh seq, but a late duplicate expect must not hang).
    if ((tracker.get(author)?.originSeq ?? 0) >= seq) arrivals[i] = { atMs: now(), source: 'log' }
    else waiting++
  }
  const expectation: Expectation = {
    author,
    seq,
    arrivals,
    waiting,
    timer: setTimeout(() => finish(expectation), timeoutMs),
  }
  expectations.set(keyOf(author, seq), expectation)
  send({ type: 'expecting', author, seq })
  if (waiting === 0) finish(expectation)
}

async function publish(index: number, seq: number, returnedItems: number): Promise<void> {
  const tracker = trackers[index]!
  // update() reserves ownSeq + 1; the parent, which armed every expectation for `seq`, must agree.
  if (tracker.ownSeq + 1 !== seq)
    throw new Error(`worker ${index} would publish seq ${tracker.ownSeq + 1}, the bench expects ${seq}`)
  const publishedAtMs = now()
  const result = await tracker.update({ returnedItems })
  send({ type: 'published', author: tracker.peerId, seq, publishedAtMs, acknowledgedAtMs: now(), index: result.index })
}

async function stopAll(): Promise<void> {
  for (const expectation of expectations.values()) clearTimeout(expectation.timer)
  await Promise.allSettled(trackers.map((tracker) => tracker.stop({ leave: false })))
  send({ type: 'stopped' })
}

process.on('message', (message: HostRequest) => {
  const run = async (): Promise<void> => {
    switch (message.type) {
      case 'start':
        return await startTrackers(message)
      case 'status':
        return status(message.reset)
      case 'expect':
        return expect(message.author, message.seq, message.timeoutMs)
      case 'publish':
        return await publish(message.index, message.seq, message.returnedItems)
      case 'stop':
        await stopAll()
        process.disconnect()
        return
    }
  }
  run().catch((error: unknown) =>
    send({ type: 'error', message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) }),
  )
})

// The parent gone (crashed, SIGKILLed) means nobody will stop us: go.
process.on('disconnect', () => process.exit(0))
