import {
  ConfChangeType,
  EntryType,
  RaftError,
  ReadMode,
  Role,
  createSeededRng,
  decodeConfChange,
} from '@nodeledger/raft'
import type { ConfChange, ConfState, Entry, Message, NodeId } from '@nodeledger/raft'
import { encodeValidatedCommand } from '@nodeledger/registry'
import type { ApplyResult, Command, Registry } from '@nodeledger/registry'
import type { Libp2p } from '@libp2p/interface'
import type { MemberRequest, MemberStatus, StatusResult } from '@nodeledger/protocol'
import { multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import { SOFTWARE_VERSION } from '../constants.ts'
import type { ClusterFile, ClusterMember } from '../cluster-file.ts'
import * as constants from '../constants.ts'
import { ClockAhead } from '../metrics/clock-ahead.ts'
import type { RaftCells } from '../metrics/cells.ts'
import { replicaReadiness } from '../metrics/readiness.ts'
import { ReplicaMetrics } from '../metrics/replica-metrics.ts'
import type { Readiness } from '@nodeledger/metrics'
import { decodeRaftFrame } from '../raft-codec.ts'
import { ReplicaError, ReplicaRequestError } from '../replica-errors.ts'
import { LevelStorage } from '../storage/index.ts'
import { PeerLinks, createReplicaHost, loadOrCreateKey } from '../transport/index.ts'
import type { PeerAddress } from '../transport/index.ts'
import { ApplyWaiters } from './apply-waiters.ts'
import { LeaderHistory } from './leader-history.ts'
import type { LeaderTerm } from './leader-history.ts'
import { DriverError, ReplicaDriver } from './driver.ts'
import type { DriverStateMachine, DriverStorage, ProposalOutcome, StorageUpdate } from './driver.ts'
import { readIdentity, writeIdentity } from './identity.ts'
import { decideEmptyStart, serveStartingStatus } from './join.ts'
import type { InitialClusterState } from './join.ts'
import { Members, decodeMemberContext, encodeMemberContext } from './members.ts'
import type { Member } from './members.ts'
import { RaftTransport } from './raft-transport.ts'
import { ReplicaStateMachine, encodeStateSnapshot } from './state-machine.ts'

export type Consistency = 'linearizable' | 'lease' | 'stale'
export type { InitialClusterState } from './join.ts'

/** A synced batch slower than this is logged: the disk, not Raft, is then the bottleneck. */
const SLOW_SAVE_WARN_MS = 100
/** How often the leader looks for founders to mark started, and other membership housekeeping. */
const MEMBERSHIP_CHECK_INTERVAL_MS = 500

export interface ReplicaOptions {
  readonly cluster: ClusterFile
  readonly id: NodeId
  readonly logger: Logger
  /** Wall clock for the leader's stamp in log entries; never read by apply. */
  readonly clock?: () => number
  /** Seed for election timeouts; default derives from the clock and id. */
  readonly seed?: number
  /** How an empty data dir may start (join.ts); ignored when the dir holds state. Default `existing`. */
  readonly initialClusterState?: InitialClusterState
  /**
   * This replica's own address, key and data dir, for a member added after the cluster's creation
   * (the cluster file lists the founders). Default: its entry in the cluster file.
   */
  readonly self?: { readonly multiaddr: string; readonly keyFile: string; readonly dataDir: string }
  /** The metrics component this replica and its API server report into; default: one of its own. */
  readonly metrics?: ReplicaMetrics
}

export interface ReplicaStatus {
  readonly id: NodeId
  readonly peerId: string
  readonly role: Role
  readonly term: number
  readonly leader: Member | undefined
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

/** A member as the directory and the core's membership together describe it. */
export interface MemberView extends Member {
  readonly voter: boolean
}

/**
 * One authority replica: the replica's driver (driver.ts) over LevelDB, libp2p and the process
 * clock, around the registry and the member directory (ReplicaStateMachine). This class owns what
 * the driver does not: opening the data dir and deciding how it may start (join.ts), the libp2p host
 * and the links to the other members (which follow the membership of record), and the request
 * side for the API server (proposals, read barriers, membership changes, status).
 */
export class Replica {
  readonly id: NodeId
  readonly member: ClusterMember
  readonly cluster: ClusterFile
  readonly libp2p: Libp2p
  readonly #logger: Logger
  readonly #clock: () => number
  readonly #storage: LevelStorage
  readonly #stateMachine: ReplicaStateMachine
  readonly #driver: ReplicaDriver<ApplyResult | undefined>
  readonly #raftLinks: PeerLinks
  readonly #snapshotLinks: PeerLinks
  readonly #applyWaiters = new ApplyWaiters()
  /**
   * Members learned from conf changes appended but not yet applied (the leader dials them at once),
   * and on a learner that joined empty, the membership its peer reported until its log has one.
   */
  readonly #pendingMembers = new Map<NodeId, PeerAddress>()
  #membershipTimer: NodeJS.Timeout | undefined
  #stopped = false
  #stopping: Promise<void> | undefined
  #lastRole: Role = Role.Follower
  #lastLeader: NodeId = 0
  /** Everything this replica and its API server count (metrics/replica-metrics.ts). */
  readonly metrics: ReplicaMetrics
  readonly #raftCells: RaftCells
  readonly #clockAhead: ClockAhead
  /** The highest commit index in a leader's Append or Heartbeat: how far the cluster has committed (/ready). */
  #leaderCommitSeen = 0
  /** Who led which term since when, as this replica saw it (the cluster page's leader history). */
  readonly #leaderHistory = new LeaderHistory()

  private constructor(parts: {
    options: ReplicaOptions
    member: ClusterMember
    storage: LevelStorage
    libp2p: Libp2p
    stateMachine: ReplicaStateMachine
    /** A learner joining empty: the membership its peer reported (see EmptyStart). */
    joinedMembers: readonly MemberStatus[]
  }) {
    const { options } = parts
    for (const member of parts.joinedMembers) {
      if (member.id !== options.id && member.peerId !== '')
        this.#pendingMembers.set(member.id, { peerId: member.peerId, multiaddr: member.multiaddr })
    }
    this.id = options.id
    this.cluster = options.cluster
    this.member = parts.member
    this.#logger = options.logger.child({ replica: options.id })
    this.#clock = options.clock ?? Date.now
    this.#storage = parts.storage
    this.libp2p = parts.libp2p
    this.#stateMachine = parts.stateMachine
    this.metrics = options.metrics ?? new ReplicaMetrics()
    this.#raftCells = this.metrics.raft
    this.#clockAhead = new ClockAhead({
      registryClockMs: () => this.#stateMachine.registry.stats().clockMs,
      clock: this.#clock,
      nowMs: () => performance.now(),
      isLeader: () => this.#driver.isLeader,
      logger: this.#logger,
      cells: this.#raftCells,
    })
    const onFrame = (from: number, frame: Uint8Array): void => this.#onFrame(from, frame)
    const peers = this.#peerAddresses()
    this.#raftLinks = new PeerLinks({
      libp2p: this.libp2p,
      protocol: constants.RAFT_PROTOCOL,
      peers,
      self: this.id,
      onFrame,
      onPeerDown: (peer) => this.#driver.reportUnreachable(peer),
      logger: this.#logger,
      queueFramesMax: constants.RAFT_QUEUE_FRAMES_MAX,
      frameBytesMax: constants.RAFT_FRAME_BYTES_MAX,
      metrics: this.metrics.raftLinks,
    })
    this.#snapshotLinks = new PeerLinks({
      libp2p: this.libp2p,
      protocol: constants.SNAPSHOT_PROTOCOL,
      peers,
      self: this.id,
      onFrame,
      onPeerDown: () => {},
      logger: this.#logger,
      queueFramesMax: constants.SNAPSHOT_QUEUE_FRAMES_MAX,
      frameBytesMax: constants.RAFT_FRAME_BYTES_MAX,
      metrics: this.metrics.snapshotLinks,
    })
    const timing = options.cluster.timing
    this.#driver = new ReplicaDriver({
      id: this.id,
      storage: levelDriverStorage(this.#storage),
      transport: new RaftTransport(this.#raftLinks, this.#snapshotLinks),
      time: processTime(),
      stateMachine: timedApply(this.#stateMachine, this.#raftCells),
      events: {
        softState: (state, term) => this.#onSoftState(state.role, state.leader, term),
        applied: (index) => {
          this.#applyWaiters.release(index)
          this.#clockAhead.afterApply()
        },
        appending: (entries) => this.#onAppending(entries),
        persisted: (latencyMs, entries, synced) => {
          const cells = this.#raftCells
          cells.entriesWritten += entries
          if (synced) cells.fsync.observeMs(latencyMs)
          else cells.writesUnsynced++
          if (latencyMs > SLOW_SAVE_WARN_MS) {
            this.#logger.warn({ saveLatencyMs: Math.round(latencyMs), entries }, 'slow synced write')
          }
        },
        snapshotInstalled: (metadata, bytes) =>
          this.#logger.info({ index: metadata.index, bytes }, 'snapshot installed'),
        snapshotTaken: (index, bytes) => this.#logger.info({ index, bytes }, 'snapshot taken, log compacted'),
        stalled: (ticks) => {
          if (ticks * timing.tickIntervalMs >= 100) {
            this.#logger.warn({ stalledMs: ticks * timing.tickIntervalMs }, 'the process was stalled; leases count it')
          }
        },
        fatal: (error) => {
          // A failed fsync or a broken invariant: the only safe thing is to stop serving (TIGER_STYLE).
          this.#logger.fatal({ err: error }, 'driver failed; replica stops')
          process.exitCode = 70
          void this.stop()
        },
      },
      raft: {
        rng: createSeededRng(options.seed ?? (this.#clock() ^ (options.id * 2654435761)) >>> 0),
        electionTimeoutTicks: timing.electionTimeoutTicks,
        heartbeatTicks: timing.heartbeatTicks,
        leaseReads: timing.leaseReads,
      },
      tickIntervalMs: timing.tickIntervalMs,
      snapshotEveryEntries: options.cluster.snapshotEveryEntries,
      pendingProposalsMax: constants.PENDING_PROPOSALS_MAX,
    })
    this.#stateMachine.onMembersChanged = () => this.#syncPeers()
    this.metrics.bindReplica(this, this.id)
  }

  /**
   * Open the data dir, decide how it may start, restore the state machine, join the network and
   * start the driver. Refuses with ReplicaError (INVALID_CLUSTER, LOST_STATE, CLUSTER_EXISTS,
   * NOT_A_MEMBER, NEEDS_NEW) or StorageError (CORRUPT, LOCKED, …) before serving anything.
   */
  static async start(options: ReplicaOptions): Promise<Replica> {
    const { cluster, id } = options
    const logger = options.logger.child({ replica: id })
    const member = selfMember(cluster, id, options.self)
    const founders: Member[] = cluster.replicas.map((replica) => ({
      id: replica.id,
      peerId: replica.peerId,
      multiaddr: replica.multiaddr,
      started: false,
    }))
    const identity = await readIdentity(member.dataDir)
    if (identity !== undefined) checkIdentity(identity, cluster, id, member.dataDir)
    const storage = await LevelStorage.open(member.dataDir)
    let libp2p: Libp2p | undefined
    try {
      const privateKey = await loadOrCreateKey(member.keyFile)
      const listen = [member.multiaddr.replace(/\/p2p\/[^/]+$/, '')]
      libp2p = await createReplicaHost({ privateKey, listen, logger })
      if (libp2p.peerId.toString() !== member.peerId) {
        throw new ReplicaError(
          'INVALID_CLUSTER',
          `key ${member.keyFile} is peer ${libp2p.peerId.toString()}, but replica ${id} is ${member.peerId}`,
        )
      }
      let joinedMembers: readonly MemberStatus[] = []
      if (storage.empty) {
        const mode = options.initialClusterState ?? 'existing'
        const unhandle = await serveStartingStatus(libp2p, () => startingStatusFor(cluster, id, member, founders))
        try {
          const decision = await decideEmptyStart({
            libp2p,
            cluster,
            id,
            mode,
            logger,
            signal: new AbortController().signal,
          })
          if (decision.kind === 'join') joinedMembers = decision.members
          if (decision.kind === 'bootstrap') {
            const data = encodeStateSnapshot(
              new Members(founders),
              new ReplicaStateMachine(founders).registry.snapshot(),
            )
            await storage.bootstrap({ voters: founders.map((founder) => founder.id), learners: [] }, data)
            logger.info(
              { founders: founders.map((founder) => founder.id) },
              'cluster created: founding membership bootstrapped',
            )
          }
        } finally {
          await unhandle()
        }
      }
      if (identity === undefined) await writeIdentity(member.dataDir, { clusterId: cluster.clusterId, replicaId: id })
      const stateMachine = new ReplicaStateMachine(founders)
      const snapshot = storage.snapshot()
      if (snapshot.data.byteLength > 0) stateMachine.restore(snapshot)
      // A learner joining empty has no membership of its own yet: its peers' was checked (join.ts).
      if (!storage.empty)
        checkClusterFile(cluster, id, membersOfRecord(storage, stateMachine.members, founders), member, logger)
      const replica = new Replica({ options, member, storage, libp2p, stateMachine, joinedMembers })
      await replica.#raftLinks.start()
      await replica.#snapshotLinks.start()
      replica.#driver.start()
      replica.#membershipTimer = setInterval(() => replica.#membershipHousekeeping(), MEMBERSHIP_CHECK_INTERVAL_MS)
      replica.#membershipTimer.unref()
      replica.#logger.info(
        {
          peerId: member.peerId,
          listen,
          snapshotIndex: replica.#driver.snapshotIndex,
          lastIndex: storage.lastIndex(),
          records: stateMachine.registry.size,
          members: stateMachine.members.all().map((known) => known.id),
        },
        'replica started',
      )
      return replica
    } catch (error) {
      if (libp2p !== undefined) await Promise.resolve(libp2p.stop()).catch(() => undefined)
      await storage.close().catch(() => undefined)
      throw error
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Events in

  #onFrame(from: number, frame: Uint8Array): void {
    let messages: Message[]
    try {
      messages = decodeRaftFrame(frame, from, this.id)
    } catch (error) {
      this.#raftCells.framesRejected++
      this.#logger.warn({ peer: from, err: (error as Error).message }, 'raft frame rejected')
      return
    }
    // Only a leader's Append and Heartbeat carry a commit index; commits never go back, so the
    // highest seen is how far the cluster has committed, as far as this replica knows.
    for (const message of messages) {
      const commit = message.commit
      if (commit !== undefined && commit > this.#leaderCommitSeen) this.#leaderCommitSeen = commit
    }
    this.#driver.step(messages)
  }

  #onSoftState(role: Role, leader: NodeId, term: number): void {
    if (role !== this.#lastRole || leader !== this.#lastLeader) {
      this.#logger.info({ term, role, leader }, role === Role.Leader ? 'became leader' : 'role changed')
    }
    this.#lastRole = role
    this.#lastLeader = leader
    if (leader !== 0) {
      const peerId = this.#stateMachine.members.get(leader)?.peerId ?? ''
      this.#leaderHistory.observe(term, leader, peerId, this.#clock())
    }
  }

  /** The leaders of the last terms this replica saw, oldest first (in memory: a restart starts it again). */
  leaderHistory(): readonly LeaderTerm[] {
    return this.#leaderHistory.terms()
  }

  /** A member added by an entry just appended: the leader replicates to it at once, so dial it now. */
  #onAppending(entries: readonly Entry[]): void {
    let changed = false
    for (const entry of entries) {
      if (entry.type !== EntryType.ConfChange) continue
      const change = decodeConfChange(entry.data)
      if (change.type !== ConfChangeType.AddLearner && change.type !== ConfChangeType.AddVoter) continue
      const context = decodeMemberContext(change.context)
      if (context.peerId === undefined || context.multiaddr === undefined || change.nodeId === this.id) continue
      this.#pendingMembers.set(change.nodeId, { peerId: context.peerId, multiaddr: context.multiaddr })
      changed = true
    }
    if (changed) this.#syncPeers()
  }

  /** The links follow the membership of record (and members appended but not yet applied). */
  #syncPeers(): void {
    const members = this.#stateMachine.members
    for (const id of this.#pendingMembers.keys()) {
      if (members.get(id) !== undefined || members.isRetired(id)) this.#pendingMembers.delete(id)
    }
    if (this.#stopped) return
    const peers = this.#peerAddresses()
    this.#raftLinks.setPeers(peers)
    this.#snapshotLinks.setPeers(peers)
  }

  #peerAddresses(): Map<number, PeerAddress> {
    const peers = new Map<number, PeerAddress>()
    for (const member of this.#stateMachine.members.all()) {
      if (member.id !== this.id && member.peerId !== '')
        peers.set(member.id, { peerId: member.peerId, multiaddr: member.multiaddr })
    }
    for (const [id, address] of this.#pendingMembers) if (!peers.has(id)) peers.set(id, address)
    // The bootstrap list's members too, unless the log retired them or gave their peer to another id:
    // a replica that installs a snapshot taken before the current leader joined knows the leader only
    // from the list until the log past the snapshot arrives, and that log comes from the leader.
    const members = this.#stateMachine.members
    const peerIds = new Set([...peers.values()].map((address) => address.peerId))
    for (const entry of this.cluster.replicas) {
      if (entry.id === this.id || peers.has(entry.id) || members.isRetired(entry.id)) continue
      if (peerIds.has(entry.peerId)) continue
      peers.set(entry.id, { peerId: entry.peerId, multiaddr: entry.multiaddr })
    }
    return peers
  }

  /**
   * The leader records, once, that each founder has run (it acknowledged an entry beyond the
   * creation): from then on an empty data dir under that founder's id is a lost disk, never a new
   * cluster (join.ts). One change at a time, as the core requires; a refusal is retried later.
   */
  #membershipHousekeeping(): void {
    if (this.#stopped || !this.#driver.isLeader) return
    const status = this.#driver.status()
    if (status.progress === undefined) return
    for (const member of this.#stateMachine.members.all()) {
      if (member.started) continue
      const progress = status.progress[member.id]
      const acknowledged = member.id === this.id ? status.commit > 1 : (progress?.match ?? 0) > 1
      if (!acknowledged || !status.confState.voters.includes(member.id)) continue
      try {
        this.#driver.proposeConfChange(
          { type: ConfChangeType.UpdateNode, nodeId: member.id, context: encodeMemberContext({ started: true }) },
          () => {},
        )
      } catch (error) {
        if (!(error instanceof RaftError) && !(error instanceof DriverError)) throw error
      }
      return
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Requests

  get registry(): Registry {
    return this.#stateMachine.registry
  }

  /** The membership of record, with the core's voter/learner split. */
  members(): MemberView[] {
    const conf = this.#driver.confState()
    return this.#stateMachine.members
      .all()
      .filter((member) => conf.voters.includes(member.id) || conf.learners.includes(member.id))
      .map((member) => ({ ...member, voter: conf.voters.includes(member.id) }))
  }

  /** Whether `peerId` is a member of record (replicas may submit for any origin, and are never leased). */
  isMemberPeer(peerId: string): boolean {
    return this.#stateMachine.members.byPeerId(peerId) !== undefined
  }

  /** The current Raft term, read cheaply. */
  get term(): number {
    return this.#driver.basicStatus().term
  }

  isLeader(): boolean {
    return this.#driver.isLeader
  }

  get applied(): number {
    return this.#driver.appliedIndex
  }

  /** Leading, or a follower or learner that heard its leader within an election timeout. */
  leaderHeardRecently(): boolean {
    return this.#driver.basicStatus().leaderHeardRecently
  }

  /** Digest of the registry's records: equal on replicas that applied the same log. */
  registryDigest(): string {
    return this.#stateMachine.registryDigest()
  }

  leaderMember(): Member | undefined {
    const leader = this.#driver.basicStatus().leader
    return leader === 0 ? undefined : this.#stateMachine.members.get(leader)
  }

  #notLeader(message = 'this replica does not lead'): ReplicaRequestError {
    return new ReplicaRequestError('NOT_LEADER', message, this.leaderMember())
  }

  /**
   * Propose a registry command stamped with the leader's clock; resolves once applied here. Errors:
   * NOT_LEADER and UNAVAILABLE (refused before proposing: nothing was proposed), TIMEOUT (outcome
   * unknown), UNAVAILABLE "replaced by a new leader" (definitely not applied) or "outcome unknown".
   */
  async propose(command: Command, signal: AbortSignal): Promise<{ index: number; result: ApplyResult }> {
    // Encoded once: the command is built from validated values (the API decoder checked the delta,
    // peer ids come from records and the membership), and applying it here reuses the envelope.
    const envelope = { timestampMs: this.#clock(), command }
    const data = encodeValidatedCommand(envelope)
    const { index, result } = await this.#proposeWith(signal, (done) => {
      const ticket = this.#driver.propose(data, done)
      this.#stateMachine.proposed(ticket.index, ticket.term, envelope)
      return ticket
    })
    if (result === undefined) throw new Error(`entry ${index} applied without a registry result`)
    return { index, result }
  }

  /**
   * An operator's membership change (PROTOCOL.md "Membership"), checked here before it is proposed,
   * resolved once applied on this leader. Refusals: CONFLICT (the id, peer id or address is in use,
   * or the id was a member once: ids are never reused), NOT_READY (a learner not caught up yet),
   * REFUSED (the last voter; the leader itself: transfer first), INVALID (no such learner or member).
   */
  async changeMembership(request: MemberRequest, signal: AbortSignal): Promise<{ index: number }> {
    this.#requireRunning()
    const change = this.#checkMembershipChange(request)
    const { index } = await this.#proposeWith(signal, (done) => this.#driver.proposeConfChange(change, done))
    return { index }
  }

  #checkMembershipChange(request: MemberRequest): ConfChange {
    const id = request.memberId
    const members = this.#stateMachine.members
    const conf = this.#driver.confState()
    const isVoter = conf.voters.includes(id)
    const isLearner = conf.learners.includes(id)
    switch (request.action) {
      case 'add': {
        const peerId = request.peerId!
        const address = request.multiaddr!
        if (isVoter || isLearner || members.get(id) !== undefined) {
          throw new ReplicaRequestError('CONFLICT', `replica ${id} is already a member`)
        }
        if (members.isRetired(id)) {
          throw new ReplicaRequestError(
            'CONFLICT',
            `replica id ${id} was a member and was removed: ids are never reused; pick a new one`,
          )
        }
        for (const member of members.all()) {
          if (member.peerId === peerId)
            throw new ReplicaRequestError('CONFLICT', `peer ${peerId} is already replica ${member.id}`)
          if (sameAddress(member.multiaddr, address)) {
            throw new ReplicaRequestError('CONFLICT', `address ${address} is already replica ${member.id}'s`)
          }
        }
        return {
          type: ConfChangeType.AddLearner,
          nodeId: id,
          context: encodeMemberContext({ peerId, multiaddr: address, started: false }),
        }
      }
      case 'promote': {
        if (isVoter) throw new ReplicaRequestError('CONFLICT', `replica ${id} is already a voter`)
        if (!isLearner) throw new ReplicaRequestError('INVALID', `replica ${id} is not a learner: add it first`)
        const progress = this.#driver.status().progress?.[id]
        const commit = this.#driver.basicStatus().commit
        const match = progress?.match ?? 0
        // Caught up means the learner answered: it acknowledged an entry (match > 0), the leader streams
        // to it (replicate: not probing, not sending a snapshot). The lag bound alone would pass a learner
        // that never received anything while the commit is small. (recentActive is not asked: CheckQuorum
        // clears it every election timeout, so it would refuse a healthy learner now and then.)
        const answered = progress !== undefined && !progress.lostState && match > 0 && progress.state === 'replicate'
        if (!answered) {
          throw new ReplicaRequestError(
            'NOT_READY',
            `learner ${id} has not caught up (it holds the log up to ${match}, ${progress === undefined ? 'the leader has no progress for it' : `the leader's progress for it is ${progress.state}`}): is it started with --initial-cluster-state existing? ask again when it has caught up`,
          )
        }
        if (match + constants.PROMOTE_LAG_ENTRIES_MAX < commit) {
          throw new ReplicaRequestError(
            'NOT_READY',
            `learner ${id} holds the log up to ${match}, the leader's commit is ${commit}: it can vote once it is within ${constants.PROMOTE_LAG_ENTRIES_MAX} entries; ask again when it has caught up`,
          )
        }
        return { type: ConfChangeType.AddVoter, nodeId: id }
      }
      case 'remove': {
        if (!isVoter && !isLearner) throw new ReplicaRequestError('INVALID', `replica ${id} is not a member`)
        if (isVoter && conf.voters.length === 1) {
          throw new ReplicaRequestError('REFUSED', `replica ${id} is the last voter: a cluster needs one`)
        }
        if (id === this.id) {
          throw new ReplicaRequestError(
            'REFUSED',
            `replica ${id} leads: hand leadership over first (nodeledger transfer-leader --to N), then remove it`,
          )
        }
        return { type: ConfChangeType.RemoveNode, nodeId: id }
      }
    }
  }

  #proposeWith(
    signal: AbortSignal,
    propose: (done: (outcome: ProposalOutcome<ApplyResult | undefined>) => void) => unknown,
  ): Promise<{ index: number; result: ApplyResult | undefined }> {
    this.#requireRunning()
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(new ReplicaRequestError('TIMEOUT', 'request deadline passed'))
        return
      }
      const onAbort = (): void =>
        reject(new ReplicaRequestError('TIMEOUT', 'request deadline passed; the outcome is unknown'))
      signal.addEventListener('abort', onAbort, { once: true })
      try {
        propose((outcome) => {
          signal.removeEventListener('abort', onAbort)
          if (outcome.status === 'applied') {
            resolve({ index: outcome.index, result: outcome.result })
            return
          }
          if (outcome.status === 'lost') {
            reject(
              new ReplicaRequestError(
                'UNAVAILABLE',
                `the entry proposed at ${outcome.index} was replaced by a new leader; retry`,
              ),
            )
            return
          }
          reject(new ReplicaRequestError('UNAVAILABLE', `outcome unknown (${outcome.reason}); retry`))
        })
        this.#raftCells.proposalsAccepted++
      } catch (error) {
        this.#raftCells.proposalsDropped++
        signal.removeEventListener('abort', onAbort)
        reject(this.#mapRefusal(error))
      }
    })
  }

  /**
   * Make the local registry safe to read at `consistency`: linearizable confirms leadership with a
   * heartbeat quorum (ReadIndex), lease trusts the leader lease (counted in elapsed time) when the
   * cluster enables it, stale reads whatever this replica has applied. Resolves with the applied
   * index the read may be served at.
   */
  async readBarrier(consistency: Consistency, signal: AbortSignal): Promise<number> {
    this.#requireRunning()
    if (consistency === 'stale') return this.#driver.appliedIndex
    return new Promise<number>((resolve, reject) => {
      if (signal.aborted) {
        reject(new ReplicaRequestError('TIMEOUT', 'request deadline passed'))
        return
      }
      const onAbort = (): void => reject(new ReplicaRequestError('TIMEOUT', 'request deadline passed'))
      signal.addEventListener('abort', onAbort, { once: true })
      try {
        this.#driver.read(consistency === 'lease' ? ReadMode.Lease : ReadMode.Linearizable, (outcome) => {
          signal.removeEventListener('abort', onAbort)
          if (outcome.status === 'ready') resolve(outcome.index)
          else reject(this.#notLeader(`the read was not confirmed: ${outcome.reason}`))
        })
      } catch (error) {
        signal.removeEventListener('abort', onAbort)
        reject(this.#mapRefusal(error))
      }
    })
  }

  /** Resolves once this replica has applied `index`. */
  async waitApplied(index: number, signal: AbortSignal): Promise<void> {
    if (this.#driver.appliedIndex >= index) return
    await this.#applyWaiters.wait(index, signal)
  }

  /** The driver's and the core's refusals, before anything was proposed or read. */
  #mapRefusal(error: unknown): Error {
    if (error instanceof RaftError) {
      if (error.code === 'NOT_LEADER') return this.#notLeader(error.message)
      // Refused by the leader itself (a transfer under way, the uncommitted log full): nothing was
      // proposed. No leader hint: the wire carries one only with NOT_LEADER.
      if (error.code === 'DROPPED') return new ReplicaRequestError('UNAVAILABLE', error.message)
      if (error.code === 'INVALID') return new ReplicaRequestError('INVALID', error.message)
    }
    if (error instanceof DriverError) {
      return new ReplicaRequestError('UNAVAILABLE', error.code === 'STOPPED' ? 'replica is stopping' : error.message)
    }
    return error as Error
  }

  #requireRunning(): void {
    if (this.#stopped) throw new ReplicaRequestError('UNAVAILABLE', 'replica is stopping')
  }

  status(): ReplicaStatus {
    const basic = this.#driver.basicStatus()
    const conf = this.#driver.confState()
    return {
      id: this.id,
      peerId: this.member.peerId,
      role: basic.role,
      term: basic.term,
      leader: this.leaderMember(),
      commit: basic.commit,
      applied: this.#driver.appliedIndex,
      firstIndex: basic.firstIndex,
      lastIndex: basic.lastIndex,
      snapshotIndex: this.#driver.snapshotIndex,
      voters: conf.voters,
      learners: conf.learners,
      registryRecords: this.#stateMachine.registry.size,
      logEntries: Math.max(0, basic.lastIndex - basic.firstIndex + 1),
    }
  }

  /** The leader's view of each member's replication (member list, lag). */
  progress(): Readonly<Record<number, { match: number; state: string; lostState: boolean }>> | undefined {
    return this.#driver.status().progress
  }

  /**
   * Hand leadership to the most caught-up voter before going away, so clients see a planned
   * handover instead of an election timeout (SIGTERM on the leader).
   */
  async transferLeadership(timeoutMs: number): Promise<boolean> {
    const status = this.#driver.status()
    if (status.role !== Role.Leader || status.progress === undefined) return false
    let target: NodeId = 0
    let bestMatch = -1
    for (const [id, progress] of Object.entries(status.progress)) {
      const peer = Number(id)
      if (
        peer !== this.id &&
        status.confState.voters.includes(peer) &&
        !progress.lostState &&
        progress.match > bestMatch
      ) {
        bestMatch = progress.match
        target = peer
      }
    }
    if (target === 0) return false
    return this.transferLeadershipTo(target, timeoutMs)
  }

  /** Transfer leadership to `target` (thesis §3.10); true once this replica no longer leads. */
  async transferLeadershipTo(target: NodeId, timeoutMs: number): Promise<boolean> {
    try {
      this.#driver.transferLeader(target)
    } catch (error) {
      throw this.#mapRefusal(error)
    }
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, this.cluster.timing.tickIntervalMs))
      if (!this.#driver.isLeader) {
        this.#logger.info({ target }, 'leadership transferred')
        return true
      }
    }
    return false
  }

  /** Take a snapshot now (operator request); resolves with the snapshot index. */
  snapshotNow(): Promise<number> {
    return new Promise((resolve, reject) =>
      this.#driver.snapshotNow((error, index) => (error === undefined ? resolve(index) : reject(error))),
    )
  }

  /** The state machine's snapshot at the applied index, with its index, term and membership (snapshot save). */
  snapshotAtApplied(): { index: number; term: number; confState: ConfState; data: Uint8Array } {
    const index = this.#driver.appliedIndex
    return {
      index,
      term: this.#driver.logTerm(index) ?? this.#storage.snapshot().metadata.term,
      confState: this.#driver.confStateAt(index),
      data: this.#stateMachine.snapshot(),
    }
  }

  async stop(): Promise<void> {
    if (this.#stopping !== undefined) return this.#stopping
    this.#stopped = true
    this.#stopping = (async () => {
      clearInterval(this.#membershipTimer)
      await new Promise<void>((resolve) => this.#driver.stop(resolve))
      this.#applyWaiters.rejectAll(new ReplicaRequestError('UNAVAILABLE', 'replica is stopping'))
      await this.#raftLinks.stop()
      await this.#snapshotLinks.stop()
      await this.libp2p.stop()
      await this.#storage.close()
      this.#logger.info('replica stopped')
    })()
    return this.#stopping
  }

  /** The driver's own counters and the store's figures, for metrics. */
  stats(): { driver: ReplicaDriver<unknown>['counters']; storage: ReturnType<LevelStorage['stats']> } {
    return { driver: this.#driver.counters, storage: this.#storage.stats() }
  }

  /** The highest commit index a leader has sent this replica (metrics, /ready). */
  get leaderCommitSeen(): number {
    return this.#leaderCommitSeen
  }

  /** How far the registry's clock (the newest leader stamp applied) runs ahead of this replica's, ≥ 0. */
  clockAheadMs(): number {
    return this.#clockAhead.aheadMs()
  }

  get tickIntervalMs(): number {
    return this.cluster.timing.tickIntervalMs
  }

  /** GET /ready: a leader known and this replica's applied index close enough to its commit (readiness.ts). */
  readiness(): Readiness {
    const basic = this.#driver.basicStatus()
    return replicaReadiness({
      stopped: this.#stopped,
      role: basic.role,
      leader: basic.leader,
      commit: basic.commit,
      applied: this.#driver.appliedIndex,
      leaderCommitSeen: this.#leaderCommitSeen,
    })
  }
}

/** Two multiaddrs name the same listener when their transport parts are equal (the /p2p/ part aside). */
function sameAddress(a: string, b: string): boolean {
  const strip = (address: string): string => {
    try {
      return multiaddr(address).decapsulateCode(421).toString()
    } catch {
      return address
    }
  }
  return strip(a) === strip(b)
}

// -------------------------------------------------------------------------------------------------
// Start-up checks

function selfMember(cluster: ClusterFile, id: NodeId, self: ReplicaOptions['self']): ClusterMember {
  const fromFile = cluster.replicas.find((replica) => replica.id === id)
  if (self !== undefined) {
    const peerId = self.multiaddr.match(/\/p2p\/([^/]+)$/)?.[1]
    if (peerId === undefined)
      throw new ReplicaError('INVALID_CLUSTER', `--multiaddr ${self.multiaddr} must end in /p2p/<peerId>`)
    if (fromFile !== undefined && fromFile.peerId !== peerId) {
      throw new ReplicaError(
        'INVALID_CLUSTER',
        `replica ${id} is ${fromFile.peerId} in the cluster file, but --multiaddr says ${peerId}`,
      )
    }
    return { id, multiaddr: self.multiaddr, peerId, dataDir: self.dataDir, keyFile: self.keyFile }
  }
  if (fromFile === undefined) {
    throw new ReplicaError(
      'INVALID_CLUSTER',
      `replica ${id} is not in the cluster file (ids: ${cluster.replicas.map((r) => r.id).join(', ')}); a member added later is started with its own --multiaddr, --key and --data`,
    )
  }
  return fromFile
}

function checkIdentity(
  identity: { clusterId: string; replicaId: number },
  cluster: ClusterFile,
  id: NodeId,
  dataDir: string,
): void {
  if (identity.clusterId !== cluster.clusterId) {
    throw new ReplicaError(
      'INVALID_CLUSTER',
      `data dir ${dataDir} belongs to cluster ${identity.clusterId}, but the cluster file is for cluster ${cluster.clusterId} (was the file re-created with cluster init --force? A new cluster file cannot adopt existing data dirs)`,
    )
  }
  if (identity.replicaId !== id) {
    throw new ReplicaError(
      'INVALID_CLUSTER',
      `data dir ${dataDir} is replica ${identity.replicaId}'s, not replica ${id}'s`,
    )
  }
}

/** The directory as of the stored snapshot plus every membership change in the stored log. */
function membersOfRecord(storage: LevelStorage, fromSnapshot: Members, founders: readonly Member[]): Members {
  const members = new Members(fromSnapshot.size > 0 ? fromSnapshot.all() : founders, fromSnapshot.retiredIds())
  const first = storage.firstIndex()
  const last = storage.lastIndex()
  if (last >= first) {
    for (const entry of storage.entries(first, last + 1, Number.POSITIVE_INFINITY)) {
      if (entry.type === EntryType.ConfChange) members.apply(entry)
    }
  }
  return members
}

/**
 * The cluster file is the bootstrap list; the membership of record is the log's. A file that
 * contradicts the log (an id with another peer id or address, this replica removed) is refused;
 * one that is only out of date (members added or removed since) is used as it is, with a warning.
 */
function checkClusterFile(
  cluster: ClusterFile,
  id: NodeId,
  members: Members,
  self: ClusterMember,
  logger: Logger,
): void {
  if (members.size === 0) return
  const own = members.get(id)
  if (own === undefined) {
    throw new ReplicaError(
      'NOT_A_MEMBER',
      `replica ${id} is not a member of record (the log's membership: ${members
        .all()
        .map((member) => member.id)
        .join(', ')}): it was removed; its data dir is obsolete`,
    )
  }
  if (own.peerId !== '' && own.peerId !== self.peerId) {
    throw new ReplicaError(
      'INVALID_CLUSTER',
      `the log says replica ${id} is ${own.peerId}, but its key is ${self.peerId}`,
    )
  }
  const contradictions: string[] = []
  const outdated: string[] = []
  for (const entry of cluster.replicas) {
    const recorded = members.get(entry.id)
    if (recorded === undefined) {
      outdated.push(`replica ${entry.id} is in the file but not a member of record`)
      continue
    }
    if (recorded.peerId !== '' && recorded.peerId !== entry.peerId) {
      contradictions.push(`replica ${entry.id} is ${entry.peerId} in the file but ${recorded.peerId} in the log`)
    }
  }
  for (const recorded of members.all()) {
    if (!cluster.replicas.some((entry) => entry.id === recorded.id))
      outdated.push(`member ${recorded.id} is not in the file`)
  }
  if (contradictions.length > 0) {
    throw new ReplicaError(
      'INVALID_CLUSTER',
      `the cluster file contradicts the membership of record: ${contradictions.join('; ')}. The log's membership decides; fix the file (nodeledger member list shows the membership)`,
    )
  }
  if (outdated.length > 0) {
    logger.warn(
      { differences: outdated },
      'the cluster file (the bootstrap list) differs from the membership of record; the log decides',
    )
  }
}

function startingStatusFor(
  cluster: ClusterFile,
  id: NodeId,
  member: ClusterMember,
  founders: readonly Member[],
): StatusResult {
  return {
    clusterId: cluster.clusterId,
    id,
    peerId: member.peerId,
    role: Role.Follower,
    term: 0,
    leader: null,
    commit: 0,
    applied: 0,
    firstIndex: 0,
    lastIndex: 0,
    snapshotIndex: 0,
    members: founders.map((founder) => ({
      id: founder.id,
      peerId: founder.peerId,
      multiaddr: founder.multiaddr,
      voter: true,
      started: false,
    })),
    registryRecords: 0,
    registryDigest: '0'.repeat(64),
    version: SOFTWARE_VERSION,
  }
}

// -------------------------------------------------------------------------------------------------
// Ports

/** The state machine as the driver sees it, each apply timed into `cells.apply` (two clock reads). */
function timedApply(stateMachine: ReplicaStateMachine, cells: RaftCells): DriverStateMachine<ApplyResult | undefined> {
  const histogram = cells.apply
  return {
    apply: (entry) => {
      const startedMs = performance.now()
      const result = stateMachine.apply(entry)
      histogram.observeMs(performance.now() - startedMs)
      return result
    },
    restore: (snapshot) => stateMachine.restore(snapshot),
    snapshot: () => stateMachine.snapshot(),
  }
}

/** LevelStorage as the driver's store: its promises become the driver's completion callbacks. */
function levelDriverStorage(storage: LevelStorage): DriverStorage {
  return {
    initialState: () => storage.initialState(),
    entries: (low, high, bytesMax) => storage.entries(low, high, bytesMax),
    term: (index) => storage.term(index),
    firstIndex: () => storage.firstIndex(),
    lastIndex: () => storage.lastIndex(),
    snapshot: () => storage.snapshot(),
    save: (update: StorageUpdate, done) => {
      storage.save(update).then(
        () => done(),
        (error: unknown) => done(error as Error),
      )
    },
    createSnapshot: (index, confState, data, done) => {
      storage.createSnapshot(index, confState, data).then(
        () => done(),
        (error: unknown) => done(error as Error),
      )
    },
  }
}

/**
 * The process clock: performance.now() (monotonic; it keeps counting while the process is
 * stopped, which is what leases need), setInterval for ticks, setImmediate to run the pipeline once
 * per burst of I/O callbacks (every frame and request of one event-loop turn rides one Ready).
 */
function processTime() {
  return {
    nowMs: () => performance.now(),
    every: (intervalMs: number, callback: () => void) => {
      const timer = setInterval(callback, intervalMs)
      return () => clearInterval(timer)
    },
    soon: (callback: () => void) => {
      setImmediate(callback)
    },
  }
}
