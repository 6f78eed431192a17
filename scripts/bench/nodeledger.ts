import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { DEFAULT_TIMING, loadOrCreateKey } from '@nodeledger/authority'
import { AuthorityClient } from '@nodeledger/client'
import type { ClientLogger } from '@nodeledger/client'
import { ProcessCluster } from '@nodeledger/testkit'
import type { ClusterFileShape } from '@nodeledger/testkit'
import { linesFrom, logSize, nodeledgerRoleChange, waitForElection } from './logs.ts'
import { DeltaFactory } from './payload.ts'
import type { Peers } from './payload.ts'
import type { BenchTarget, ClientEvent, Cleanup, Election, LogMark, RoleChange, WriteRequest } from './target.ts'

/**
 * A 3- or 5-replica nodeledger cluster of real `nodeledger authority` processes (ProcessCluster,
 * each replica on its own 127.0.0.x), driven by one AuthorityClient holding the operator key, which
 * may submit deltas for any origin.
 */

type Timing = ClusterFileShape['timing']

/** Client events kept between two takeClientEvents calls (a failover trial has a few dozen). */
const CLIENT_EVENTS_MAX = 1_000
/** A replica asked to stop (SIGTERM: a leader hands over, then exits and writes its profile) gets this long. */
const GRACEFUL_STOP_TIMEOUT_MS = 15_000
/** Attempts inside one client call; the failover loop retries calls on top of this. */
const CLIENT_ATTEMPTS_MAX = 20
const CLIENT_REQUEST_TIMEOUT_MS = 2_000

export interface OpenNodeledgerOptions {
  timing: 'default' | 'equal'
  replicas: 3 | 5
  /**
   * Run every replica under `node --cpu-prof`, writing to `<profileDir>/replica-<id>/` when it
   * exits; close() then stops them gracefully (SIGTERM) so that they do.
   */
  profileDir?: string
  /** The client's backoff between attempts (run.ts: 5 ms up to 20 ms); undefined: the client's own defaults. */
  clientBackoff: { baseMs: number; maxMs: number } | undefined
  equalTiming: { heartbeatIntervalMs: number; electionTimeoutMs: number }
  peers: Peers
  /**
   * Who submits: `operator` (the default), one client holding the cluster file's operator key, as
   * etcd gets one client; or `origin`, each key's own client (the worker path: the stream's peer is
   * the delta's origin), 64 libp2p nodes in the bench process.
   */
  submitAs: 'origin' | 'operator'
  factoryHolder: { factory?: DeltaFactory }
  cleanups: Set<Cleanup>
}

/** The timing the equal-timeouts run writes into the cluster file: 10 ms ticks. */
function equalTiming(equal: { heartbeatIntervalMs: number; electionTimeoutMs: number }): Timing {
  const tickIntervalMs = DEFAULT_TIMING.tickIntervalMs
  return {
    tickIntervalMs,
    heartbeatTicks: Math.round(equal.heartbeatIntervalMs / tickIntervalMs),
    electionTimeoutTicks: Math.round(equal.electionTimeoutMs / tickIntervalMs),
    leaseReads: DEFAULT_TIMING.leaseReads,
  }
}

function label(timing: Timing): string {
  return `heartbeat ${timing.heartbeatTicks * timing.tickIntervalMs} ms, election ${timing.electionTimeoutTicks * timing.tickIntervalMs} ms (${timing.tickIntervalMs} ms ticks)`
}

export function nodeledgerTimingLabel(
  timing: 'default' | 'equal',
  equal: { heartbeatIntervalMs: number; electionTimeoutMs: number },
): string {
  return label(timing === 'default' ? DEFAULT_TIMING : equalTiming(equal))
}

export async function openNodeledger(options: OpenNodeledgerOptions): Promise<NodeledgerTarget> {
  const cluster = ProcessCluster.create({ replicas: options.replicas })
  const stopCluster: Cleanup = () => cluster.stopAll()
  options.cleanups.add(stopCluster)
  const timing = options.timing === 'equal' ? equalTiming(options.equalTiming) : DEFAULT_TIMING
  if (options.timing === 'equal') {
    const file = JSON.parse(readFileSync(cluster.clusterPath, 'utf8')) as ClusterFileShape
    file.timing = timing
    writeFileSync(cluster.clusterPath, JSON.stringify(file, null, 2))
  }
  // Key paths in the cluster file are relative to its directory.
  const operatorKey = await loadOrCreateKey(resolve(cluster.dir, cluster.file.operators[0]!.keyFile))
  const peerIds = options.peers.peerIds
  const submitterPeerId = options.submitAs === 'operator' ? peerIdFromPrivateKey(operatorKey).toString() : peerIds[0]!
  options.factoryHolder.factory ??= new DeltaFactory(submitterPeerId, peerIds[0]!)
  const startOptions = (id: number): { env?: Record<string, string> } => {
    if (options.profileDir === undefined) return {}
    const dir = join(options.profileDir, `replica-${id}`)
    mkdirSync(dir, { recursive: true })
    // ProcessCluster runs `node main.ts authority ...`; NODE_OPTIONS gives that node --cpu-prof.
    const inherited = process.env.NODE_OPTIONS ?? ''
    return { env: { NODE_OPTIONS: `${inherited} --cpu-prof --cpu-prof-dir=${dir}`.trim() } }
  }
  for (const id of cluster.ids) cluster.start(id, startOptions(id))
  const events: ClientEvent[] = []
  const record = (fields: object, what: string): void => {
    if (what !== 'attempt failed' && what !== 'giving up' && what !== 'leader found') return
    const code = (fields as { code?: unknown }).code
    events.push({ atMs: Date.now(), what, ...(typeof code === 'string' ? { code } : {}) })
    if (events.length > CLIENT_EVENTS_MAX) events.splice(0, events.length - CLIENT_EVENTS_MAX)
  }
  const logger: ClientLogger = { debug: record, warn: record }
  const newClient = (privateKey: PrivateKey): AuthorityClient =>
    new AuthorityClient({
      bootstrap: cluster.multiaddrs,
      privateKey,
      requestTimeoutMs: CLIENT_REQUEST_TIMEOUT_MS,
      attemptsMax: CLIENT_ATTEMPTS_MAX,
      ...(options.clientBackoff === undefined
        ? {}
        : { backoffBaseMs: options.clientBackoff.baseMs, backoffMaxMs: options.clientBackoff.maxMs }),
      logger,
    })
  const operator = newClient(operatorKey)
  const clients =
    options.submitAs === 'operator' ? peerIds.map(() => operator) : options.peers.privateKeys.map(newClient)
  const all = [operator, ...(options.submitAs === 'operator' ? [] : clients)]
  const stopClients: Cleanup = async () => {
    await Promise.all(all.map((client) => client.stop().catch(() => {})))
  }
  options.cleanups.add(stopClients)
  await Promise.all(all.map((client) => client.start()))
  const target = new NodeledgerTarget({
    cluster,
    client: operator,
    clients,
    peerIds,
    factory: options.factoryHolder.factory,
    timing,
    events,
    startOptions,
    profiled: options.profileDir !== undefined,
  })
  options.cleanups.delete(stopClients)
  options.cleanups.delete(stopCluster)
  return target
}

interface NodeledgerTargetInit {
  cluster: ProcessCluster
  client: AuthorityClient
  clients: readonly AuthorityClient[]
  peerIds: readonly string[]
  factory: DeltaFactory
  timing: Timing
  events: ClientEvent[]
  startOptions: (id: number) => { env?: Record<string, string> }
  profiled: boolean
}

export class NodeledgerTarget implements BenchTarget {
  readonly system = 'nodeledger' as const
  readonly memberIds: readonly number[]
  readonly timing: Timing
  private readonly cluster: ProcessCluster
  /** Status and leader queries. */
  private readonly client: AuthorityClient
  /** The client that submits (and reads) key i. */
  private readonly clients: readonly AuthorityClient[]
  private readonly peerIds: readonly string[]
  private readonly factory: DeltaFactory
  private readonly events: ClientEvent[]
  private readonly startOptions: (id: number) => { env?: Record<string, string> }
  private readonly profiled: boolean
  private closed = false

  constructor(init: NodeledgerTargetInit) {
    this.cluster = init.cluster
    this.client = init.client
    this.clients = init.clients
    this.peerIds = init.peerIds
    this.factory = init.factory
    this.timing = init.timing
    this.events = init.events
    this.startOptions = init.startOptions
    this.profiled = init.profiled
    this.memberIds = init.cluster.ids
  }

  async write(request: WriteRequest): Promise<void> {
    await this.clients[request.key]!.submit(this.factory.delta(this.peerIds[request.key]!, request.seq))
  }

  async read(key: number): Promise<void> {
    await this.clients[key]!.get(this.peerIds[key]!, { consistency: 'linearizable' })
  }

  async leader(): Promise<number> {
    const statuses = await this.client.statusAll()
    const leader = statuses.find((s) => s.status?.role === 'leader')
    if (leader?.status === undefined)
      throw new Error(
        `no nodeledger replica leads (${statuses.map((s) => s.status?.role ?? s.error?.code).join(', ')})`,
      )
    return leader.status.id
  }

  kill(member: number): Promise<void> {
    return this.cluster.kill(member, 'SIGKILL').then(() => undefined)
  }

  async restart(member: number): Promise<void> {
    this.cluster.start(member, this.startOptions(member))
  }

  markLogs(): LogMark {
    return new Map(this.memberIds.map((id) => [id, logSize(this.cluster.logPath(id))]))
  }

  /**
   * A campaign that starts sooner after the kill than an election timeout minus one heartbeat
   * cannot be the timeout's (the followers had the leader's appends until the kill): it is the
   * leader-lost path (the connection to the leader closed). With lease reads on, that path waits
   * out the election timeout too, so the log cannot tell them apart.
   */
  election(mark: LogMark, killed: number, killedAtMs: number, timeoutMs: number): Promise<Election | undefined> {
    const { tickIntervalMs, heartbeatTicks, electionTimeoutTicks, leaseReads } = this.timing
    const fastPathBelowMs = leaseReads ? undefined : (electionTimeoutTicks - heartbeatTicks) * tickIntervalMs
    const read = (): RoleChange[] =>
      this.memberIds.flatMap((id) =>
        linesFrom(this.cluster.logPath(id), mark.get(id) ?? 0).flatMap((line) => nodeledgerRoleChange(id, line) ?? []),
      )
    return waitForElection(read, killed, killedAtMs, fastPathBelowMs, timeoutMs)
  }

  takeClientEvents(): ClientEvent[] {
    return this.events.splice(0, this.events.length)
  }

  pids(): ReadonlyMap<number, number> {
    const pids = new Map<number, number>()
    for (const id of this.memberIds) {
      const pid = this.cluster.pidOf(id)
      if (pid !== undefined) pids.set(id, pid)
    }
    return pids
  }

  /** The replica's pid while it runs. */
  pidOf(member: number): number | undefined {
    return this.cluster.pidOf(member)
  }

  async waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    let last = 'no answer yet'
    while (Date.now() < deadline) {
      try {
        const statuses = await this.client.statusAll({ signal: AbortSignal.timeout(1_000) })
        const answered = statuses.flatMap((s) => (s.status === undefined ? [] : [s.status]))
        const leaders = answered.filter((s) => s.role === 'leader')
        const leaderPeerIds = new Set(answered.map((s) => s.leader?.peerId ?? null))
        const commits = answered.map((s) => s.applied)
        const lag = answered.length === 0 ? Number.POSITIVE_INFINITY : Math.max(...commits) - Math.min(...commits)
        if (answered.length === statuses.length && leaders.length === 1 && leaderPeerIds.size === 1 && lag <= 5) return
        last = `${answered.length}/${statuses.length} answered, roles ${answered.map((s) => s.role).join(',')}, applied lag ${lag}`
      } catch (error) {
        last = error instanceof Error ? error.message : String(error)
      }
      await sleep(20)
    }
    throw new Error(
      `nodeledger not healthy within ${timeoutMs} ms (${last})\n${this.memberIds.map((id) => `replica ${id}: ${this.cluster.tail(id, 5)}`).join('\n')}`,
    )
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.all([this.client, ...this.clients].map((client) => client.stop().catch(() => {})))
    // A profiled replica writes its profile only when it exits on its own: SIGTERM, then SIGKILL if it hangs.
    if (this.profiled) {
      await Promise.all(
        this.memberIds
          .filter((id) => this.cluster.isRunning(id))
          .map(async (id) => {
            this.cluster.signal(id, 'SIGTERM')
            await this.cluster.waitExit(id, GRACEFUL_STOP_TIMEOUT_MS).catch(() => this.cluster.kill(id, 'SIGKILL'))
          }),
      )
    }
    await this.cluster.stopAll()
  }
}
