/**
 * The worker workloads of `pnpm bench` (issue 5), nodeledger only (etcd has no counterpart):
 *
 *   gossip   a delta published by one worker, until 99% of the other N - 1 workers have it (by
 *            gossip or by the log, whichever comes first), for N workers in child processes of up
 *            to WORKERS_PER_PROCESS_MAX trackers each, against a fresh 3-replica cluster per N.
 *   catchup  a worker's time to caught-up with a registry of `records` records: cold (empty data
 *            dir) and warm (restarted on its data dir after `WARM_GAP_RECORDS` more writes).
 */
import { fork } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { setPriority, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { loadOrCreateKey } from '@nodeledger/authority'
import { AuthorityClient } from '@nodeledger/client'
import type { StatusResult } from '@nodeledger/protocol'
import { ProcessCluster } from '@nodeledger/testkit'
import { NodeEventTracker } from '@nodeledger/worker'
import { DeltaFactory, generatePeers } from './payload.ts'
import type { Progress } from './progress.ts'
import { percentileOfSorted, round, summarize } from './stats.ts'
import type { LatencySummary } from './stats.ts'
import type { Cleanup } from './target.ts'
import type { Arrival, HostReply, HostRequest, WorkerStatus } from './worker-protocol.ts'
import { WORKERS_PER_PROCESS_MAX } from './worker-protocol.ts'
import { describe } from './workloads.ts'

const HERE = dirname(fileURLToPath(import.meta.url))
const WORKER_HOST = join(HERE, 'worker-host.ts')

/** Between the starts of two measured deltas: several may be in flight, as in a busy network. */
export const GOSSIP_SPACING_MS = 300
/** The share of the other workers a delta must reach: the issue's "99% of N workers". */
export const GOSSIP_REACH_FRACTION = 0.99
/** A mesh is formed when every worker has this many gossip connections (gossipsub's D_lo)... */
export const MESH_CONNECTIONS_MIN = 4
/** ...or this long after the last worker started, whichever comes first. */
export const MESH_WAIT_MS_MAX = 20_000
/** Gossipsub heartbeats every worker must have run after the mesh is formed (they graft the mesh). */
export const MESH_HEARTBEATS_MIN = 2
/** A worker that has not seen a delta this long after its publication is counted as missing it. */
export const ARRIVAL_TIMEOUT_MS = 10_000
/** Starting 200 workers on a loaded 2-core machine takes a while; longer than this is broken. */
export const WORKERS_START_TIMEOUT_MS = 300_000

/** Records written while the worker is down, before each warm restart. */
export const WARM_GAP_RECORDS = 100
/** Submits in flight while filling the registry. */
export const FILL_IN_FLIGHT = 64
/** A worker's start (catch-up included) longer than this is broken, not slow. */
export const CATCHUP_START_TIMEOUT_MS = 120_000

const now = (): number => performance.timeOrigin + performance.now()

// ---- a cluster for the worker workloads ----

export interface RegistryCluster {
  readonly cluster: ProcessCluster
  readonly operator: AuthorityClient
  readonly operatorPeerId: string
  close(): Promise<void>
}

/** A profiled replica asked to stop (SIGTERM: a leader hands over, exits and writes its profile) gets this long. */
const PROFILED_STOP_TIMEOUT_MS = 30_000

/** A fresh 3-replica cluster; with `profileDir`, every replica runs under `node --cpu-prof` into `<profileDir>/replica-<id>/`. */
export async function openCluster(cleanups: Set<Cleanup>, profileDir?: string): Promise<RegistryCluster> {
  const cluster = ProcessCluster.create({ replicas: 3 })
  const operatorKey = await loadOrCreateKey(resolve(cluster.dir, cluster.file.operators[0]!.keyFile))
  // Patient: the workloads load a 2-core machine on purpose; they measure workers, not the retry budget.
  const operator = new AuthorityClient({
    bootstrap: cluster.multiaddrs,
    privateKey: operatorKey,
    requestTimeoutMs: 3_000,
    attemptsMax: 40,
  })
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    await operator.stop().catch(() => {})
    if (profileDir !== undefined) {
      // A profiled replica writes its profile only when it exits on its own: SIGTERM, then SIGKILL if it hangs.
      await Promise.all(
        cluster.ids.map(async (id) => {
          if (!cluster.isRunning(id)) return
          cluster.signal(id, 'SIGTERM')
          await cluster.waitExit(id, PROFILED_STOP_TIMEOUT_MS).catch(() => {})
        }),
      )
    }
    await cluster.stopAll()
  }
  cleanups.add(close)
  for (const id of cluster.ids) {
    if (profileDir === undefined) {
      cluster.start(id)
      continue
    }
    const dir = join(profileDir, `replica-${id}`)
    mkdirSync(dir, { recursive: true })
    // ProcessCluster runs `node main.ts authority ...`; NODE_OPTIONS gives that node --cpu-prof.
    const inherited = process.env.NODE_OPTIONS ?? ''
    cluster.start(id, { env: { NODE_OPTIONS: `${inherited} --cpu-prof --cpu-prof-dir=${dir}`.trim() } })
  }
  await operator.start()
  await leaderStatus(operator, 30_000, cluster)
  return { cluster, operator, operatorPeerId: peerIdFromPrivateKey(operatorKey).toString(), close }
}

export async function leaderStatus(
  client: AuthorityClient,
  timeoutMs: number,
  cluster?: ProcessCluster,
): Promise<StatusResult> {
  const deadline = Date.now() + timeoutMs
  let last = 'no answer yet'
  while (Date.now() < deadline) {
    try {
      const statuses = await client.statusAll({ signal: AbortSignal.timeout(2_000) })
      const leader = statuses.find((entry) => entry.status?.role === 'leader')?.status
      if (leader !== undefined) return leader
      last = statuses.map((entry) => entry.status?.role ?? entry.error?.code).join(', ')
    } catch (error) {
      last = describe(error)
    }
    await sleep(50)
  }
  const tails =
    cluster === undefined ? '' : `\n${cluster.ids.map((id) => `replica ${id}: ${cluster.tail(id, 5)}`).join('\n')}`
  throw new Error(`no nodeledger leader within ${timeoutMs} ms (${last})${tails}`)
}

// ---- worker-host children ----

/** One worker-host child: requests out, replies in, each reply handed to whoever waits for it. */
export class WorkerHostProcess {
  readonly index: number
  readonly logPath: string
  private readonly child: ChildProcess
  private readonly waiters = new Set<{
    match: (reply: HostReply) => boolean
    resolve: (reply: HostReply) => void
    reject: (error: Error) => void
  }>()
  private readonly listeners = new Set<(reply: HostReply) => void>()
  private exited: Promise<void>
  private exitError: Error | undefined

  /** `nice`: the child's niceness (0: as the bench; 10: the replicas get the CPU first). */
  constructor(index: number, runDir: string, nice = 0) {
    this.index = index
    this.logPath = join(runDir, `worker-host-${index}.log`)
    const logFd = openSync(this.logPath, 'a')
    this.child = fork(WORKER_HOST, [], { execPath: process.execPath, stdio: ['ignore', logFd, logFd, 'ipc'] })
    closeSync(logFd)
    if (nice !== 0 && this.child.pid !== undefined) setPriority(this.child.pid, nice)
    this.child.on('message', (reply: HostReply) => {
      for (const listener of this.listeners) listener(reply)
      for (const waiter of [...this.waiters]) {
        if (reply.type === 'error') {
          this.waiters.delete(waiter)
          waiter.reject(new Error(`worker host ${index}: ${reply.message}`))
        } else if (waiter.match(reply)) {
          this.waiters.delete(waiter)
          waiter.resolve(reply)
        }
      }
    })
    this.exited = new Promise((resolveExit) => {
      this.child.once('exit', (code, signal) => {
        this.exitError = new Error(
          `worker host ${index} exited (${signal ?? code}); its log: ${this.logPath}\n${tail(this.logPath)}`,
        )
        for (const waiter of this.waiters) waiter.reject(this.exitError)
        this.waiters.clear()
        resolveExit()
      })
    })
  }

  /** The child's pid (undefined once it has exited). */
  get pid(): number | undefined {
    return this.exitError === undefined ? this.child.pid : undefined
  }

  send(request: HostRequest): void {
    if (this.exitError !== undefined) throw this.exitError
    this.child.send(request)
  }

  /** The next reply of `type` (that `match` accepts), or a rejection after `timeoutMs`. */
  next<T extends HostReply['type']>(
    type: T,
    timeoutMs: number,
    match: (reply: Extract<HostReply, { type: T }>) => boolean = () => true,
  ): Promise<Extract<HostReply, { type: T }>> {
    if (this.exitError !== undefined) return Promise.reject(this.exitError)
    return new Promise((resolveReply, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter)
        reject(new Error(`worker host ${this.index}: no ${type} reply within ${timeoutMs} ms`))
      }, timeoutMs)
      const waiter = {
        match: (reply: HostReply) => reply.type === type && match(reply as Extract<HostReply, { type: T }>),
        resolve: (reply: HostReply) => {
          clearTimeout(timer)
          resolveReply(reply as Extract<HostReply, { type: T }>)
        },
        reject: (error: Error) => {
          clearTimeout(timer)
          reject(error)
        },
      }
      this.waiters.add(waiter)
    })
  }

  onReply(listener: (reply: HostReply) => void): void {
    this.listeners.add(listener)
  }

  async request<T extends HostReply['type']>(
    request: HostRequest,
    type: T,
    timeoutMs: number,
  ): Promise<Extract<HostReply, { type: T }>> {
    const reply = this.next(type, timeoutMs)
    this.send(request)
    return await reply
  }

  /** Stops its trackers (no leave: the cluster goes next anyway), then the process; SIGKILL if it hangs. */
  async stop(): Promise<void> {
    if (this.exitError === undefined) {
      try {
        await this.request({ type: 'stop' }, 'stopped', 30_000)
      } catch {
        // Killed below.
      }
    }
    const gone = await Promise.race([this.exited.then(() => true), sleep(5_000).then(() => false)])
    if (!gone) {
      this.child.kill('SIGKILL')
      await this.exited
    }
  }
}

function tail(path: string, lines = 10): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}

// ---- gossip propagation ----

export interface GossipResult extends LatencySummary {
  /** Workers in the network (the N of the issue). */
  workers: number
  processes: number
  /** Deltas published; those that did not reach 99% of the others within ARRIVAL_TIMEOUT_MS are `failedDeltas`. */
  deltas: number
  failedDeltas: number
  /** Until every other worker has it (p50 and p99 over deltas). */
  allP50Ms: number
  allP99Ms: number
  /** Receipts (worker, delta) whose first sighting came by gossip rather than from the log. */
  gossipFirstFraction: number
  /** Receipts still missing when a delta's arrival timeout ran out. */
  receiptsMissing: number
  /** The author's update() until the leader acknowledged the submit. */
  acknowledgeP50Ms: number
  startWorkersS: number
  meshFormedS: number
  /** At the start of the measurement: the least and the median per worker. */
  gossipConnectionsMin: number
  gossipConnectionsMedian: number
  meshPeersMin: number
  meshPeersMedian: number
  topicPeersMin: number
  topicPeersMedian: number
  /** Workers that score at least one topic peer below zero (such peers are kept out of the mesh). */
  workersWithNegativeScores: number
  /** Gossipsub heartbeat intervals of every worker during the measurement (configured: 1000 ms). */
  heartbeatIntervalP99Ms: number
  heartbeatIntervalMaxMs: number
  /** The worst worker-host event loop during the measurement. */
  eventLoopDelayP99Ms: number
  eventLoopDelayMaxMs: number
}

export interface WorkerRef {
  readonly host: WorkerHostProcess
  readonly index: number
  readonly peerId: string
  seq: number
  busy: boolean
}

export async function gossipPropagation(options: {
  workers: number
  deltas: number
  progress: Progress
  random: () => number
  cleanups: Set<Cleanup>
}): Promise<GossipResult> {
  const { workers: total, progress } = options
  const runDir = mkdtempSync(join(tmpdir(), `nodeledger-bench-gossip-${total}-`))
  const registry = await openCluster(options.cleanups)
  const processes = Math.ceil(total / WORKERS_PER_PROCESS_MAX)
  const hosts: WorkerHostProcess[] = []
  const stopHosts: Cleanup = async () => {
    await Promise.all(hosts.map((host) => host.stop()))
  }
  options.cleanups.add(stopHosts)
  try {
    // ---- start the workers, spread evenly over the processes ----
    const startBar = progress.phase(`nodeledger gossip-${total} start workers`, total, 'workers')
    const startedAt = now()
    const refs = await startWorkerHosts({
      total,
      bootstrap: registry.cluster.multiaddrs,
      runDir,
      hosts,
      onStarted: (count) => startBar.update(count),
    })
    const startWorkersS = round((now() - startedAt) / 1000, 1)
    startBar.done(`${total} workers in ${startWorkersS} s`)

    // ---- let the mesh form ----
    const meshBar = progress.phase(`nodeledger gossip-${total} mesh`, MESH_WAIT_MS_MAX / 1000, 's')
    const meshStartedAt = now()
    let statuses = await allStatuses(hosts, false)
    while (now() - meshStartedAt < MESH_WAIT_MS_MAX) {
      const least = Math.min(...statuses.workers.map((worker) => worker.gossipConnections))
      meshBar.update(Math.floor((now() - meshStartedAt) / 1000), `fewest gossip connections ${least}`)
      if (least >= MESH_CONNECTIONS_MIN) break
      await sleep(500)
      statuses = await allStatuses(hosts, false)
    }
    const heartbeatsAtMesh = statuses.workers.map((worker) => worker.heartbeats)
    for (let waited = 0; waited < 10_000; waited += 250) {
      if (statuses.workers.every((worker, i) => worker.heartbeats >= heartbeatsAtMesh[i]! + MESH_HEARTBEATS_MIN)) break
      await sleep(250)
      statuses = await allStatuses(hosts, false)
    }
    const meshFormedS = round((now() - meshStartedAt) / 1000, 1)
    // The measurement window starts here: heartbeat gaps and event-loop delays from now on.
    statuses = await allStatuses(hosts, true)
    const connections = statuses.workers.map((worker) => worker.gossipConnections).sort((a, b) => a - b)
    const mesh = statuses.workers.map((worker) => worker.meshPeers).sort((a, b) => a - b)
    const topicPeers = statuses.workers.map((worker) => worker.topicPeers).sort((a, b) => a - b)
    const workersWithNegativeScores = statuses.workers.filter((worker) => worker.negativeScorePeers > 0).length
    meshBar.done(
      `in ${meshFormedS} s; gossip connections min ${connections[0]} median ${percentileOfSorted(connections, 0.5)}, mesh peers min ${mesh[0]} median ${percentileOfSorted(mesh, 0.5)}, topic peers min ${topicPeers[0]} median ${percentileOfSorted(topicPeers, 0.5)}, ${workersWithNegativeScores} workers score a peer below 0`,
    )

    // ---- publish deltas from random workers, ~GOSSIP_SPACING_MS apart ----
    const deltaBar = progress.phase(`nodeledger gossip-${total} deltas`, options.deltas, 'deltas')
    const measured = await measureGossipDeltas({
      hosts,
      refs,
      total,
      deltas: options.deltas,
      random: options.random,
      bar: deltaBar,
    })
    const { reachMs, allMs, acknowledgeMs, failedDeltas, receipts, byGossip, receiptsMissing, firstError } = measured
    const window = await allStatuses(hosts, false)
    const reach = summarize(reachMs)
    const all = summarize(allMs)
    const intervals = [...window.heartbeatGapsMs].sort((a, b) => a - b)
    const result: GossipResult = {
      ...reach,
      workers: total,
      processes,
      deltas: options.deltas,
      failedDeltas,
      allP50Ms: all.p50Ms,
      allP99Ms: all.p99Ms,
      gossipFirstFraction: round(receipts === 0 ? Number.NaN : byGossip / receipts, 3),
      receiptsMissing,
      acknowledgeP50Ms: summarize(acknowledgeMs).p50Ms,
      startWorkersS,
      meshFormedS,
      gossipConnectionsMin: connections[0]!,
      gossipConnectionsMedian: percentileOfSorted(connections, 0.5),
      meshPeersMin: mesh[0]!,
      meshPeersMedian: percentileOfSorted(mesh, 0.5),
      topicPeersMin: topicPeers[0]!,
      topicPeersMedian: percentileOfSorted(topicPeers, 0.5),
      workersWithNegativeScores,
      heartbeatIntervalP99Ms: round(percentileOfSorted(intervals, 0.99), 1),
      heartbeatIntervalMaxMs: round(intervals.at(-1) ?? Number.NaN, 1),
      eventLoopDelayP99Ms: round(window.eventLoopDelayP99Ms, 1),
      eventLoopDelayMaxMs: round(window.eventLoopDelayMaxMs, 1),
    }
    deltaBar.done(
      `to 99%: p50 ${result.p50Ms} ms p99 ${result.p99Ms} ms; gossip first ${Math.round(result.gossipFirstFraction * 100)}%; heartbeat interval max ${result.heartbeatIntervalMaxMs} ms${failedDeltas > 0 ? `; ${failedDeltas} failed (${firstError ?? 'below 99%'})` : ''}`,
    )
    return result
  } finally {
    options.cleanups.delete(stopHosts)
    await stopHosts()
    options.cleanups.delete(registry.close)
    await registry.close()
    // BENCH_DEBUG keeps the worker hosts' logs (BENCH_WORKER_LOG=warn fills them).
    if (process.env.BENCH_DEBUG === undefined) rmSync(runDir, { recursive: true, force: true })
    else progress.log(`gossip-${total}: worker host logs kept in ${runDir}`)
  }
}

/** Starts `total` workers over ceil(total / WORKERS_PER_PROCESS_MAX) worker hosts (pushed on `hosts` at once, for cleanup). */
export async function startWorkerHosts(options: {
  total: number
  bootstrap: readonly string[]
  runDir: string
  hosts: WorkerHostProcess[]
  onStarted?: (started: number) => void
  /** Default WORKERS_START_TIMEOUT_MS. */
  timeoutMs?: number
  /** The worker hosts' niceness (default 0). */
  nice?: number
}): Promise<WorkerRef[]> {
  const { total, hosts } = options
  const processes = Math.ceil(total / WORKERS_PER_PROCESS_MAX)
  const started = new Array<number>(processes).fill(0)
  const refs: WorkerRef[] = []
  await Promise.all(
    Array.from({ length: processes }, async (_, p) => {
      const host = new WorkerHostProcess(p, options.runDir, options.nice)
      hosts.push(host)
      host.onReply((reply) => {
        if (reply.type !== 'progress') return
        started[p] = reply.started
        options.onStarted?.(started.reduce((sum, n) => sum + n, 0))
      })
      const count = Math.floor(total / processes) + (p < total % processes ? 1 : 0)
      const reply = await host.request(
        { type: 'start', bootstrap: options.bootstrap, dataRoot: join(options.runDir, `host-${p}`), count },
        'started',
        options.timeoutMs ?? WORKERS_START_TIMEOUT_MS,
      )
      for (const [index, peerId] of reply.peerIds.entries())
        refs.push({ host, index, peerId, seq: reply.ownSeqs[index]!, busy: false })
    }),
  )
  return refs
}

/** What measureGossipDeltas saw: per delta, the time to 99% and to all of the other workers. */
export interface DeltaMeasurement {
  reachMs: number[]
  allMs: number[]
  acknowledgeMs: number[]
  failedDeltas: number
  receipts: number
  byGossip: number
  receiptsMissing: number
  firstError: string | undefined
}

/** Publishes `deltas` updates from random workers, ~GOSSIP_SPACING_MS apart, and times their arrivals everywhere. */
export async function measureGossipDeltas(options: {
  hosts: readonly WorkerHostProcess[]
  refs: readonly WorkerRef[]
  total: number
  deltas: number
  random: () => number
  bar: { update(value: number, info?: string): void }
}): Promise<DeltaMeasurement> {
  const { hosts, refs, total } = options
  const deltaBar = options.bar
  // ---- publish deltas from random workers, ~GOSSIP_SPACING_MS apart ----
  const reachMs: number[] = []
  const allMs: number[] = []
  const acknowledgeMs: number[] = []
  let failedDeltas = 0
  let receipts = 0
  let byGossip = 0
  let receiptsMissing = 0
  let firstError: string | undefined
  const inFlight: Array<Promise<void>> = []
  const needed = Math.ceil(GOSSIP_REACH_FRACTION * (total - 1))
  for (let d = 0; d < options.deltas; d++) {
    const roundStartedAt = now()
    const author = pickAuthor(refs, options.random)
    author.busy = true
    author.seq++
    const seq = author.seq
    const arrivalsDone = hosts.map((host) =>
      host.next(
        'arrivals',
        ARRIVAL_TIMEOUT_MS + 30_000,
        (reply) => reply.author === author.peerId && reply.seq === seq,
      ),
    )
    // Every host listens before the author publishes.
    await Promise.all(
      hosts.map((host) =>
        host.request(
          { type: 'expect', author: author.peerId, seq, timeoutMs: ARRIVAL_TIMEOUT_MS },
          'expecting',
          10_000,
        ),
      ),
    )
    const published = author.host.next(
      'published',
      ARRIVAL_TIMEOUT_MS + 30_000,
      (reply) => reply.author === author.peerId && reply.seq === seq,
    )
    author.host.send({ type: 'publish', index: author.index, seq, returnedItems: seq })
    inFlight.push(
      (async () => {
        try {
          const [publication, ...replies] = await Promise.all([published, ...arrivalsDone])
          const arrivals = replies.flatMap((reply) => reply.arrivals)
          if (arrivals.length !== total - 1) throw new Error(`expected ${total - 1} arrivals, got ${arrivals.length}`)
          const seen = arrivals.filter((arrival): arrival is Arrival => arrival !== null)
          receipts += seen.length
          byGossip += seen.filter((arrival) => arrival.source === 'gossip').length
          receiptsMissing += arrivals.length - seen.length
          acknowledgeMs.push(publication.acknowledgedAtMs - publication.publishedAtMs)
          const times = seen.map((arrival) => arrival.atMs - publication.publishedAtMs).sort((a, b) => a - b)
          if (times.length >= needed) reachMs.push(round(times[needed - 1]!, 1))
          else failedDeltas++
          if (times.length === arrivals.length) allMs.push(round(times[times.length - 1]!, 1))
        } catch (error) {
          failedDeltas++
          firstError ??= describe(error)
        } finally {
          author.busy = false
        }
        deltaBar.update(reachMs.length + failedDeltas, `last ${reachMs.at(-1) ?? '-'} ms to 99%`)
      })(),
    )
    await sleep(Math.max(0, GOSSIP_SPACING_MS - (now() - roundStartedAt)))
  }
  await Promise.all(inFlight)
  return { reachMs, allMs, acknowledgeMs, failedDeltas, receipts, byGossip, receiptsMissing, firstError }
}

export function pickAuthor(refs: readonly WorkerRef[], random: () => number): WorkerRef {
  for (let attempt = 0; attempt < 1_000; attempt++) {
    const ref = refs[Math.floor(random() * refs.length)]!
    if (!ref.busy) return ref
  }
  throw new Error('every worker has a delta in flight')
}

export async function allStatuses(
  hosts: readonly WorkerHostProcess[],
  reset: boolean,
): Promise<{
  workers: WorkerStatus[]
  heartbeatGapsMs: number[]
  eventLoopDelayP99Ms: number
  eventLoopDelayMaxMs: number
}> {
  const replies = await Promise.all(hosts.map((host) => host.request({ type: 'status', reset }, 'status', 30_000)))
  return {
    workers: replies.flatMap((reply) => reply.workers),
    heartbeatGapsMs: replies.flatMap((reply) => reply.heartbeatGapsMs),
    eventLoopDelayP99Ms: Math.max(...replies.map((reply) => reply.eventLoopDelayP99Ms)),
    eventLoopDelayMaxMs: Math.max(...replies.map((reply) => reply.eventLoopDelayMaxMs)),
  }
}

// ---- catch-up ----

export interface CatchupResult {
  /** Records in the registry when the worker started (the first trial's figure). */
  records: number
  trials: number
  /** start() called until the worker had applied everything the leader had committed before it started. */
  caughtUpP50Ms: number
  caughtUpMaxMs: number
  /** start() called until it resolved (caught up, joined and first heartbeat acknowledged). */
  startP50Ms: number
  startMaxMs: number
  caughtUpMs: number[]
  /** Filling the registry (cold only). */
  fillWritesPerS?: number
}

export async function catchup(options: {
  records: number
  trials: number
  progress: Progress
  cleanups: Set<Cleanup>
}): Promise<{ cold: CatchupResult; warm: CatchupResult }> {
  const { progress } = options
  const registry = await openCluster(options.cleanups)
  const runDir = mkdtempSync(join(tmpdir(), 'nodeledger-bench-catchup-'))
  let tracker: NodeEventTracker | undefined
  const stopTracker: Cleanup = async () => {
    await tracker?.stop({ leave: false }).catch(() => {})
  }
  options.cleanups.add(stopTracker)
  try {
    // ---- fill the registry: `records` nodes, then WARM_GAP_RECORDS more per trial ----
    const peers = await generatePeers(options.records + options.trials * WARM_GAP_RECORDS)
    const factory = new DeltaFactory(registry.operatorPeerId, peers.peerIds[0]!)
    let written = 0
    const write = async (
      peerIds: readonly string[],
      bar?: { update(value: number, info?: string): void },
    ): Promise<void> => {
      let cursor = 0
      await Promise.all(
        Array.from({ length: FILL_IN_FLIGHT }, async () => {
          while (cursor < peerIds.length) {
            const peerId = peerIds[cursor++]!
            await registry.operator.submit(factory.delta(peerId, 1))
            written++
            if (bar !== undefined && written % 250 === 0) bar.update(written)
          }
        }),
      )
    }
    const fillBar = progress.phase(`nodeledger catchup fill ${options.records}`, options.records, 'records')
    const fillStartedAt = now()
    await write(peers.peerIds.slice(0, options.records), fillBar)
    const fillWritesPerS = round(options.records / ((now() - fillStartedAt) / 1000), 1)
    fillBar.done(`${fillWritesPerS} writes/s`)

    const cold: number[] = []
    const coldStart: number[] = []
    const warm: number[] = []
    const warmStart: number[] = []
    let coldRecords = 0
    let warmRecords = 0
    const bar = progress.phase(`nodeledger catchup ${options.records} (cold, warm)`, options.trials, 'trials')
    for (let trial = 0; trial < options.trials; trial++) {
      const privateKey = await generateKeyPair('Ed25519')
      const dataDir = join(runDir, `worker-${trial}`)
      const start = async (): Promise<{ caughtUpMs: number; startMs: number; records: number }> => {
        const leader = await leaderStatus(registry.operator, 10_000)
        let first: { atMs: number; appliedIndex: number } | undefined
        const startedAt = now()
        tracker = await NodeEventTracker.start({
          dataDir,
          bootstrap: registry.cluster.multiaddrs,
          privateKey,
          requestTimeoutMs: 5_000,
          onSynced: (appliedIndex) => (first ??= { atMs: now(), appliedIndex }),
        })
        const resolvedAt = now()
        if (first === undefined) throw new Error('start() resolved without calling onSynced')
        // Caught up: the cache has applied the commit index the leader had before start() was called.
        let caughtUpAt = first.appliedIndex >= leader.commit ? first.atMs : Number.NaN
        while (Number.isNaN(caughtUpAt)) {
          if (tracker.appliedIndex >= leader.commit) caughtUpAt = now()
          else if (now() - startedAt > CATCHUP_START_TIMEOUT_MS)
            throw new Error(
              `worker at index ${tracker.appliedIndex}, leader committed ${leader.commit} before it started`,
            )
          else await sleep(5)
        }
        if (tracker.size < leader.registryRecords)
          throw new Error(`worker holds ${tracker.size} records, the registry had ${leader.registryRecords}`)
        return {
          caughtUpMs: round(caughtUpAt - startedAt, 1),
          startMs: round(resolvedAt - startedAt, 1),
          records: leader.registryRecords,
        }
      }
      // (a) cold: an empty data dir, a new identity.
      const a = await start()
      cold.push(a.caughtUpMs)
      coldStart.push(a.startMs)
      coldRecords ||= a.records
      await tracker!.stop({ leave: false })
      tracker = undefined
      // (b) warm: WARM_GAP_RECORDS written while it is down, then the same data dir again.
      await write(
        peers.peerIds.slice(
          options.records + trial * WARM_GAP_RECORDS,
          options.records + (trial + 1) * WARM_GAP_RECORDS,
        ),
      )
      const b = await start()
      warm.push(b.caughtUpMs)
      warmStart.push(b.startMs)
      warmRecords ||= b.records
      await tracker!.stop({ leave: false })
      tracker = undefined
      rmSync(dataDir, { recursive: true, force: true })
      bar.update(trial + 1, `cold ${Math.round(a.caughtUpMs)} ms, warm ${Math.round(b.caughtUpMs)} ms`)
    }
    const summary = (caughtUpMs: number[], startMs: number[], records: number): CatchupResult => {
      const caught = summarize(caughtUpMs)
      const started = summarize(startMs)
      return {
        records,
        trials: options.trials,
        caughtUpP50Ms: caught.p50Ms,
        caughtUpMaxMs: caught.maxMs,
        startP50Ms: started.p50Ms,
        startMaxMs: started.maxMs,
        caughtUpMs,
      }
    }
    const result = {
      cold: { ...summary(cold, coldStart, coldRecords), fillWritesPerS },
      warm: summary(warm, warmStart, warmRecords),
    }
    bar.done(
      `cold p50 ${result.cold.caughtUpP50Ms} ms max ${result.cold.caughtUpMaxMs} ms; warm p50 ${result.warm.caughtUpP50Ms} ms max ${result.warm.caughtUpMaxMs} ms`,
    )
    return result
  } finally {
    options.cleanups.delete(stopTracker)
    await stopTracker()
    options.cleanups.delete(registry.close)
    await registry.close()
    rmSync(runDir, { recursive: true, force: true })
  }
}
