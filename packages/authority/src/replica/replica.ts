import {
  EntryType,
  MessageType,
  RaftError,
  RawNode,
  ReadMode,
  Role,
  createSeededRng,
  decodeConfChange,
} from '@nodeledger/raft'
import type { Entry, Message, NodeId, Ready, Snapshot } from '@nodeledger/raft'
import { Registry, encodeCommand } from '@nodeledger/registry'
import type { ApplyResult, Command } from '@nodeledger/registry'
import type { Libp2p } from '@libp2p/interface'
import type { Logger } from 'pino'
import { memberById } from '../cluster-file.ts'
import type { ClusterFile, ClusterMember } from '../cluster-file.ts'
import * as constants from '../constants.ts'
import { decodeRaftFrame, encodeRaftFrame } from '../raft-codec.ts'
import { ReplicaError, ReplicaRequestError } from '../replica-errors.ts'
import { LevelStorage } from '../storage/index.ts'
import { PeerLinks, createReplicaHost, loadOrCreateKey } from '../transport/index.ts'
import { ApplyWaiters } from './apply-waiters.ts'
import { RegistryDigest } from './registry-digest.ts'

export type Consistency = 'linearizable' | 'lease' | 'stale'

/** A synced batch slower than this is logged: the disk, not Raft, is then the bottleneck. */
const SLOW_SAVE_WARN_MS = 100

export interface ReplicaOptions {
  readonly cluster: ClusterFile
  readonly id: NodeId
  readonly logger: Logger
  /** Wall clock for the leader's stamp in log entries; never read by apply. */
  readonly clock?: () => number
  /** Seed for election timeouts; default derives from the clock and id. */
  readonly seed?: number
}

export interface ReplicaStatus {
  readonly id: NodeId
  readonly peerId: string
  readonly role: Role
  readonly term: number
  readonly leader: ClusterMember | undefined
  readonly commit: number
  readonly applied: number
  readonly firstIndex: number
  readonly lastIndex: number
  readonly snapshotIndex: number
  readonly voters: readonly NodeId[]
  readonly learners: readonly NodeId[]
  readonly registryRecords: number
  readonly logEntries: number
}

/**
 * One authority replica: the Raft core driven for real. The driver loop is the one place where the
 * core meets LevelDB and libp2p, and reads top to bottom: persist → send → apply → advance. Events
 * (ticks, frames, proposals) only touch the core and wake the loop; whatever arrives while a Ready is
 * being persisted rides the next one (group commit).
 */
export class Replica {
  readonly id: NodeId
  readonly member: ClusterMember
  readonly cluster: ClusterFile
  readonly registry: Registry
  readonly libp2p: Libp2p
  private readonly logger: Logger
  private readonly clock: () => number
  private readonly node: RawNode
  private readonly storage: LevelStorage
  private readonly raftLinks: PeerLinks
  private readonly snapshotLinks: PeerLinks
  private readonly applyWaiters = new ApplyWaiters()
  private readonly digest = new RegistryDigest()
  /** Proposals waiting to be applied: index -> the term they were proposed in. */
  private readonly proposals = new Map<
    number,
    Array<{ term: number; resolve: (result: ApplyResult) => void; reject: (error: Error) => void }>
  >()
  private readonly reads = new Map<string, { resolve: (index: number) => void; reject: (error: Error) => void }>()
  private nextReadId = 1
  private appliedIndex: number
  private snapshotIndex: number
  private tickTimer: NodeJS.Timeout | undefined
  private wake: (() => void) | undefined
  private loopDone: Promise<void> | undefined
  private stopped = false
  private lastRole: Role = Role.Follower
  private lastLeader: NodeId = 0
  readonly counters = { framesRejected: 0, proposalsLost: 0, snapshotsTaken: 0, readyHandled: 0 }

  private constructor(parts: {
    options: ReplicaOptions
    member: ClusterMember
    storage: LevelStorage
    libp2p: Libp2p
    registry: Registry
    raftLinks: PeerLinks
    snapshotLinks: PeerLinks
  }) {
    const { options } = parts
    this.id = options.id
    this.cluster = options.cluster
    this.member = parts.member
    this.logger = options.logger.child({ replica: options.id })
    this.clock = options.clock ?? Date.now
    this.storage = parts.storage
    this.libp2p = parts.libp2p
    this.registry = parts.registry
    this.raftLinks = parts.raftLinks
    this.snapshotLinks = parts.snapshotLinks
    const snapshot = this.storage.snapshot()
    this.snapshotIndex = snapshot.metadata.index
    this.appliedIndex = snapshot.metadata.index
    const timing = options.cluster.timing
    this.node = new RawNode({
      id: options.id,
      storage: this.storage,
      rng: createSeededRng(options.seed ?? (this.clock() ^ (options.id * 2654435761)) >>> 0),
      applied: this.appliedIndex,
      electionTimeoutTicks: timing.electionTimeoutTicks,
      heartbeatTicks: timing.heartbeatTicks,
      leaseReads: timing.leaseReads,
    })
  }

  /** Open the data dir, restore the registry, join the network and start the driver loop. */
  static async start(options: ReplicaOptions): Promise<Replica> {
    const { cluster, id, logger } = options
    const member = memberById(cluster, id)
    const replicaPeerIds = cluster.replicas.map((replica) => replica.peerId)
    const bootstrapRegistry = new Registry({ replicaPeerIds })
    const storage = await LevelStorage.open(member.dataDir, {
      bootstrap: {
        confState: { voters: cluster.replicas.map((replica) => replica.id), learners: [] },
        data: bootstrapRegistry.snapshot(),
      },
    })
    const registry = new Registry({ replicaPeerIds })
    const snapshot = storage.snapshot()
    if (snapshot.data.byteLength > 0) registry.restore(snapshot.data, { verify: false })
    const privateKey = await loadOrCreateKey(member.keyFile)
    const listen = [member.multiaddr.replace(/\/p2p\/[^/]+$/, '')]
    const libp2p = await createReplicaHost({ privateKey, listen, logger })
    if (libp2p.peerId.toString() !== member.peerId) {
      await libp2p.stop()
      await storage.close()
      throw new ReplicaError(
        'INVALID_CLUSTER',
        `key ${member.keyFile} is peer ${libp2p.peerId.toString()}, but the cluster file says replica ${id} is ${member.peerId}`,
      )
    }
    const peers = new Map(
      cluster.replicas
        .filter((replica) => replica.id !== id)
        .map((replica) => [replica.id, { peerId: replica.peerId, multiaddr: replica.multiaddr }]),
    )
    let replica: Replica | undefined
    const onFrame = (from: number, frame: Uint8Array): void => replica?.onFrame(from, frame)
    const onPeerDown = (peer: number): void => replica?.onPeerDown(peer)
    const raftLinks = new PeerLinks({
      libp2p,
      protocol: constants.RAFT_PROTOCOL,
      peers,
      self: id,
      onFrame,
      onPeerDown,
      logger,
      queueFramesMax: constants.RAFT_QUEUE_FRAMES_MAX,
      frameBytesMax: constants.RAFT_FRAME_BYTES_MAX,
    })
    const snapshotLinks = new PeerLinks({
      libp2p,
      protocol: constants.SNAPSHOT_PROTOCOL,
      peers,
      self: id,
      onFrame,
      onPeerDown: () => {},
      logger,
      queueFramesMax: constants.SNAPSHOT_QUEUE_FRAMES_MAX,
      frameBytesMax: constants.RAFT_FRAME_BYTES_MAX,
    })
    replica = new Replica({ options, member, storage, libp2p, registry, raftLinks, snapshotLinks })
    await raftLinks.start()
    await snapshotLinks.start()
    replica.startLoop()
    replica.logger.info(
      {
        peerId: member.peerId,
        listen,
        snapshotIndex: replica.snapshotIndex,
        lastIndex: storage.lastIndex(),
        records: registry.size,
      },
      'replica started',
    )
    return replica
  }

  // ---------------------------------------------------------------------------------------------
  // Events in

  private onFrame(from: number, frame: Uint8Array): void {
    let messages: Message[]
    try {
      messages = decodeRaftFrame(frame, from, this.id)
    } catch (error) {
      this.counters.framesRejected++
      this.logger.warn({ peer: from, err: (error as Error).message }, 'raft frame rejected')
      return
    }
    for (const message of messages) this.node.step(message)
    if (this.wake === undefined) this.sendHeartbeats()
    this.wake?.()
  }

  private sendHeartbeats(): void {
    const heartbeats = this.node.takeHeartbeats()
    if (heartbeats.length > 0) this.send(heartbeats)
  }

  private onPeerDown(peer: number): void {
    this.node.reportUnreachable(peer)
    this.wake?.()
  }

  // ---------------------------------------------------------------------------------------------
  // The driver loop

  private startLoop(): void {
    this.tickTimer = setInterval(() => {
      this.node.tick()
      // While a Ready is being persisted the loop is not sending: heartbeats go out now, so a slow
      // fsync never looks like a dead leader to the followers.
      if (this.wake === undefined) this.sendHeartbeats()
      this.wake?.()
    }, this.cluster.timing.tickIntervalMs)
    this.loopDone = this.runLoop().catch((error: unknown) => {
      // A failed fsync or a broken invariant: the only safe thing is to stop serving (TIGER_STYLE).
      this.logger.fatal({ err: error }, 'driver loop failed; replica stops')
      process.exitCode = 70
      void this.stop()
    })
  }

  private async runLoop(): Promise<void> {
    while (!this.stopped) {
      if (!this.node.hasReady()) {
        await new Promise<void>((resolve) => {
          this.wake = resolve
        })
        this.wake = undefined
        continue
      }
      await this.handleReady(this.node.ready())
    }
  }

  private async handleReady(ready: Ready & { droppedReads: readonly string[] }): Promise<void> {
    // 1. Persist: snapshot, entries and hard state in one synced batch.
    if (ready.snapshot !== undefined || ready.entries.length > 0 || ready.hardState !== undefined) {
      const startedMs = performance.now()
      // A Ready that only moves the commit index needs no fsync (etcd's MustSync): the storage decides.
      await this.storage.save({
        ...(ready.hardState !== undefined ? { hardState: ready.hardState } : {}),
        entries: ready.entries,
        ...(ready.snapshot !== undefined ? { snapshot: ready.snapshot } : {}),
        sync: false,
      })
      const saveLatencyMs = performance.now() - startedMs
      if (saveLatencyMs > SLOW_SAVE_WARN_MS)
        this.logger.warn(
          { saveLatencyMs: Math.round(saveLatencyMs), entries: ready.entries.length },
          'slow synced write',
        )
    }
    // 2. Send, one frame per peer and protocol.
    this.send(ready.messages)
    // 3. Apply.
    if (ready.snapshot !== undefined) this.installSnapshot(ready.snapshot)
    for (const entry of ready.committedEntries) this.apply(entry)
    // 4. Reads.
    for (const read of ready.readStates) this.reads.get(read.context)?.resolve(read.index)
    for (const context of ready.droppedReads)
      this.reads.get(context)?.reject(this.notLeader('leadership changed while the read was confirmed'))
    this.node.advance(ready)
    this.counters.readyHandled++
    if (ready.softState !== undefined) this.onSoftState()
    this.applyWaiters.release(this.appliedIndex)
    await this.maybeSnapshot()
  }

  private send(messages: readonly Message[]): void {
    if (messages.length === 0) return
    const raftByPeer = new Map<NodeId, Message[]>()
    for (const message of messages) {
      if (message.type === MessageType.Snapshot) {
        this.snapshotLinks.send(message.to, encodeRaftFrame([message]))
        continue
      }
      const batch = raftByPeer.get(message.to)
      if (batch === undefined) raftByPeer.set(message.to, [message])
      else batch.push(message)
    }
    for (const [peer, batch] of raftByPeer) this.raftLinks.send(peer, encodeRaftFrame(batch))
  }

  private installSnapshot(snapshot: Snapshot): void {
    this.registry.restore(snapshot.data, { verify: false })
    this.digest.reset()
    this.appliedIndex = snapshot.metadata.index
    this.snapshotIndex = snapshot.metadata.index
    // Proposals the snapshot jumped over: their outcome is unknown here; the client retries (exactly once by seq).
    for (const [index, waiters] of this.proposals) {
      if (index > snapshot.metadata.index) continue
      this.proposals.delete(index)
      for (const waiter of waiters)
        waiter.reject(
          new ReplicaRequestError('UNAVAILABLE', 'outcome unknown: a snapshot replaced the log here; retry'),
        )
    }
    this.logger.info({ index: snapshot.metadata.index, bytes: snapshot.data.byteLength }, 'snapshot installed')
  }

  private apply(entry: Entry): void {
    this.appliedIndex = entry.index
    let result: ApplyResult | undefined
    if (entry.type === EntryType.Normal) {
      result = this.registry.apply({ index: entry.index, data: entry.data })
      if (result.status === 'applied') this.digest.markChanged(result.peerIds)
      if (result.status === 'rejected')
        this.logger.warn({ index: entry.index, code: result.code }, 'entry rejected by the registry')
    } else if (entry.type === EntryType.ConfChange) {
      this.logger.info({ index: entry.index, change: decodeConfChange(entry.data) }, 'membership change applied')
    }
    const waiters = this.proposals.get(entry.index)
    if (waiters === undefined) return
    this.proposals.delete(entry.index)
    for (const waiter of waiters) {
      if (waiter.term === entry.term && result !== undefined) {
        waiter.resolve(result)
      } else {
        this.counters.proposalsLost++
        waiter.reject(
          new ReplicaRequestError(
            'UNAVAILABLE',
            `the entry proposed at ${entry.index} was replaced by a new leader; retry`,
          ),
        )
      }
    }
  }

  private onSoftState(): void {
    const status = this.node.status()
    if (status.role !== this.lastRole || status.leader !== this.lastLeader) {
      this.logger.info(
        { term: status.term, role: status.role, leader: status.leader },
        status.role === Role.Leader ? 'became leader' : 'role changed',
      )
    }
    this.lastRole = status.role
    this.lastLeader = status.leader
  }

  private async maybeSnapshot(force = false): Promise<void> {
    if (!force && this.appliedIndex - this.snapshotIndex < this.cluster.snapshotEveryEntries) return
    if (this.appliedIndex <= this.snapshotIndex) return
    const index = this.appliedIndex
    const data = this.registry.snapshot()
    await this.storage.createSnapshot(index, this.node.confStateAt(index), data)
    this.snapshotIndex = index
    this.counters.snapshotsTaken++
    this.logger.info({ index, bytes: data.byteLength }, 'snapshot taken, log compacted')
  }

  /** Take a snapshot now (operator request). */
  async snapshotNow(): Promise<number> {
    await this.maybeSnapshot(true)
    return this.snapshotIndex
  }

  // ---------------------------------------------------------------------------------------------
  // Requests

  /** The current Raft term, read directly (no status object built). */
  get term(): number {
    return this.node.raft.term
  }

  isLeader(): boolean {
    return this.node.raft.role === Role.Leader
  }

  /** Digest of the registry's records (see RegistryDigest): equal on replicas that applied the same log. */
  registryDigest(): string {
    return this.digest.digest(this.registry)
  }

  leaderMember(): ClusterMember | undefined {
    const leader = this.node.status().leader
    return leader === 0 ? undefined : this.cluster.replicas.find((replica) => replica.id === leader)
  }

  private notLeader(message = 'this replica does not lead'): ReplicaRequestError {
    return new ReplicaRequestError('NOT_LEADER', message, this.leaderMember())
  }

  /** Propose a registry command stamped with the leader's clock; resolves once applied here. */
  async propose(command: Command, signal: AbortSignal): Promise<{ index: number; result: ApplyResult }> {
    this.requireRunning()
    if (this.proposals.size >= constants.PENDING_PROPOSALS_MAX)
      throw new ReplicaRequestError('UNAVAILABLE', `too many proposals in flight (${constants.PENDING_PROPOSALS_MAX})`)
    const data = encodeCommand({ timestampMs: this.clock(), command })
    let ticket: { index: number; term: number }
    try {
      ticket = this.node.propose(data)
    } catch (error) {
      throw this.mapRaftError(error)
    }
    this.wake?.()
    const result = await this.waitFor<ApplyResult>(signal, (resolve, reject) => {
      const waiters = this.proposals.get(ticket.index) ?? []
      waiters.push({ term: ticket.term, resolve, reject })
      this.proposals.set(ticket.index, waiters)
    })
    return { index: ticket.index, result }
  }

  /**
   * Make the local registry safe to read at `consistency`: linearizable confirms leadership with a
   * heartbeat quorum (ReadIndex), lease trusts the leader lease when the cluster enables it, stale
   * reads whatever this replica has applied.
   */
  async readBarrier(consistency: Consistency, signal: AbortSignal): Promise<number> {
    this.requireRunning()
    if (consistency === 'stale') return this.appliedIndex
    const context = `${this.id}-${this.nextReadId++}`
    try {
      this.node.readIndex(context, consistency === 'lease' ? ReadMode.Lease : ReadMode.Linearizable)
    } catch (error) {
      throw this.mapRaftError(error)
    }
    this.wake?.()
    try {
      const index = await this.waitFor<number>(signal, (resolve, reject) =>
        this.reads.set(context, { resolve, reject }),
      )
      await this.applyWaiters.wait(index, signal)
      return index
    } finally {
      this.reads.delete(context)
    }
  }

  /** Resolves once this replica has applied `index`. */
  async waitApplied(index: number, signal: AbortSignal): Promise<void> {
    if (this.appliedIndex >= index) return
    await this.applyWaiters.wait(index, signal)
  }

  get applied(): number {
    return this.appliedIndex
  }

  private waitFor<T>(
    signal: AbortSignal,
    register: (resolve: (value: T) => void, reject: (error: Error) => void) => void,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (signal.aborted) {
        reject(new ReplicaRequestError('TIMEOUT', 'request deadline passed'))
        return
      }
      const onAbort = (): void => reject(new ReplicaRequestError('TIMEOUT', 'request deadline passed'))
      signal.addEventListener('abort', onAbort, { once: true })
      register(
        (value) => {
          signal.removeEventListener('abort', onAbort)
          resolve(value)
        },
        (error) => {
          signal.removeEventListener('abort', onAbort)
          reject(error)
        },
      )
    })
  }

  private mapRaftError(error: unknown): Error {
    if (error instanceof RaftError) {
      if (error.code === 'NOT_LEADER') return this.notLeader(error.message)
      if (error.code === 'DROPPED') return new ReplicaRequestError('UNAVAILABLE', error.message, this.leaderMember())
    }
    return error as Error
  }

  private requireRunning(): void {
    if (this.stopped) throw new ReplicaRequestError('UNAVAILABLE', 'replica is stopping')
  }

  status(): ReplicaStatus {
    const status = this.node.status()
    return {
      id: this.id,
      peerId: this.member.peerId,
      role: status.role,
      term: status.term,
      leader: this.leaderMember(),
      commit: status.commit,
      applied: this.appliedIndex,
      firstIndex: status.firstIndex,
      lastIndex: status.lastIndex,
      snapshotIndex: this.snapshotIndex,
      voters: status.confState.voters,
      learners: status.confState.learners,
      registryRecords: this.registry.size,
      logEntries: Math.max(0, status.lastIndex - status.firstIndex + 1),
    }
  }

  /**
   * Hand leadership to the most caught-up voter before going away, so clients see a planned
   * handover instead of an election timeout (SIGTERM on the leader).
   */
  async transferLeadership(timeoutMs: number): Promise<boolean> {
    const status = this.node.status()
    if (status.role !== Role.Leader || status.progress === undefined) return false
    let target: NodeId = 0
    let bestMatch = -1
    for (const [id, progress] of Object.entries(status.progress)) {
      if (Number(id) !== this.id && status.confState.voters.includes(Number(id)) && progress.match > bestMatch) {
        bestMatch = progress.match
        target = Number(id)
      }
    }
    if (target === 0) return false
    this.node.transferLeader(target)
    this.wake?.()
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, this.cluster.timing.tickIntervalMs))
      if (this.node.status().role !== Role.Leader) {
        this.logger.info({ target }, 'leadership transferred')
        return true
      }
    }
    return false
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    if (this.tickTimer !== undefined) clearInterval(this.tickTimer)
    this.wake?.()
    await this.loopDone
    const stopping = new ReplicaRequestError('UNAVAILABLE', 'replica is stopping')
    for (const waiters of this.proposals.values()) for (const waiter of waiters) waiter.reject(stopping)
    this.proposals.clear()
    for (const read of this.reads.values()) read.reject(stopping)
    this.applyWaiters.rejectAll(stopping)
    await this.raftLinks.stop()
    await this.snapshotLinks.stop()
    await this.libp2p.stop()
    await this.storage.close()
    this.logger.info('replica stopped')
  }
}
