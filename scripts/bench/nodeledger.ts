import { readFileSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { DEFAULT_TIMING, loadOrCreateKey } from '@nodeledger/authority'
import { AuthorityClient } from '@nodeledger/client'
import { ProcessCluster } from '@nodeledger/testkit'
import type { ClusterFileShape } from '@nodeledger/testkit'
import { DeltaFactory } from './payload.ts'
import type { Peers } from './payload.ts'
import type { BenchTarget, Cleanup, WriteRequest } from './target.ts'

/**
 * A 3-replica nodeledger cluster of real `nodeledger authority` processes (ProcessCluster, each
 * replica on its own 127.0.0.x), driven by one AuthorityClient holding the operator key, which may
 * submit deltas for any origin.
 */

type Timing = ClusterFileShape['timing']

/**
 * Backoff of the bench's client between attempts: 5 ms, up to 20 ms. The etcd side looks for its
 * new leader every 5 ms, so both clients knock at the same pace and the failover gap measures the
 * cluster, not the client's patience (the client's defaults, 20 ms doubling to 500 ms, can add up to
 * a few hundred ms on top of an election).
 */
const CLIENT_BACKOFF_BASE_MS = 5
const CLIENT_BACKOFF_MAX_MS = 20
/** Attempts inside one client call; the failover loop retries calls on top of this. */
const CLIENT_ATTEMPTS_MAX = 20
const CLIENT_REQUEST_TIMEOUT_MS = 2_000

export interface OpenNodeledgerOptions {
  timing: 'default' | 'equal'
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

export async function openNodeledger(options: OpenNodeledgerOptions): Promise<BenchTarget> {
  const cluster = ProcessCluster.create({ replicas: 3 })
  const stopCluster: Cleanup = () => cluster.stopAll()
  options.cleanups.add(stopCluster)
  if (options.timing === 'equal') {
    const file = JSON.parse(readFileSync(cluster.clusterPath, 'utf8')) as ClusterFileShape
    file.timing = equalTiming(options.equalTiming)
    writeFileSync(cluster.clusterPath, JSON.stringify(file, null, 2))
  }
  // Key paths in the cluster file are relative to its directory.
  const operatorKey = await loadOrCreateKey(resolve(cluster.dir, cluster.file.operators[0]!.keyFile))
  const peerIds = options.peers.peerIds
  const submitterPeerId = options.submitAs === 'operator' ? peerIdFromPrivateKey(operatorKey).toString() : peerIds[0]!
  options.factoryHolder.factory ??= new DeltaFactory(submitterPeerId, peerIds[0]!)
  cluster.startAll()
  const newClient = (privateKey: PrivateKey): AuthorityClient =>
    new AuthorityClient({
      bootstrap: cluster.multiaddrs,
      privateKey,
      requestTimeoutMs: CLIENT_REQUEST_TIMEOUT_MS,
      attemptsMax: CLIENT_ATTEMPTS_MAX,
      backoffBaseMs: CLIENT_BACKOFF_BASE_MS,
      backoffMaxMs: CLIENT_BACKOFF_MAX_MS,
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
  const target = new NodeledgerTarget(cluster, operator, clients, peerIds, options.factoryHolder.factory)
  options.cleanups.delete(stopClients)
  options.cleanups.delete(stopCluster)
  return target
}

class NodeledgerTarget implements BenchTarget {
  readonly system = 'nodeledger' as const
  readonly memberIds: readonly number[]
  private readonly cluster: ProcessCluster
  /** Status and leader queries. */
  private readonly client: AuthorityClient
  /** The client that submits (and reads) key i. */
  private readonly clients: readonly AuthorityClient[]
  private readonly peerIds: readonly string[]
  private readonly factory: DeltaFactory
  private closed = false

  constructor(
    cluster: ProcessCluster,
    client: AuthorityClient,
    clients: readonly AuthorityClient[],
    peerIds: readonly string[],
    factory: DeltaFactory,
  ) {
    this.cluster = cluster
    this.client = client
    this.clients = clients
    this.peerIds = peerIds
    this.factory = factory
    this.memberIds = cluster.ids
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
    this.cluster.start(member)
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
    await this.cluster.stopAll()
  }
}
