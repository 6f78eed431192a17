import type { Config } from './config.ts'
import { assert } from './errors.ts'
import { Raft } from './raft.ts'
import type { ProposalTicket } from './raft.ts'
import { ReadMode } from './types.ts'
import type {
  BasicStatus,
  ConfChange,
  ConfState,
  HardState,
  Message,
  NodeId,
  PeerProgress,
  Ready,
  SoftState,
  Status,
} from './types.ts'

/**
 * The host's handle on one replica's Raft (etcd's RawNode). Inputs: tick, step, propose,
 * proposeConfChange, readIndex, transferLeader, reportUnreachable. Output: a Ready, handled in the
 * order written on its type, then advance(). Nothing here blocks, reads a clock or does I/O.
 */
export class RawNode {
  readonly #raft: Raft
  private previousSoftState: SoftState
  private previousHardState: HardState
  /** Guards the contract: one Ready out at a time. */
  private readyOutstanding = false

  constructor(config: Config) {
    this.#raft = new Raft(config)
    this.previousSoftState = this.softState()
    this.previousHardState = this.hardState()
  }

  tick(): void {
    this.#raft.tick()
  }

  step(message: Message): void {
    // Local-only message types never come from the network.
    if (message.type === 'hup') return
    if (message.from === this.#raft.id || message.to !== this.#raft.id) return
    this.#raft.step(message)
  }

  /** Start an election now (tests and operators; replicas normally wait for their timeout). */
  campaign(): void {
    this.#raft.step({ type: 'hup', from: this.#raft.id, to: this.#raft.id, term: 0 })
  }

  /** Throws RaftError NOT_LEADER (with the leader's id) or DROPPED; never loses a proposal silently. */
  propose(data: Uint8Array): ProposalTicket {
    return this.#raft.propose(data)
  }

  proposeConfChange(change: ConfChange): ProposalTicket {
    return this.#raft.proposeConfChange(change)
  }

  readIndex(context: string, mode: ReadMode = ReadMode.Linearizable): void {
    this.#raft.readIndex(context, mode)
  }

  transferLeader(target: NodeId): void {
    this.#raft.transferLeader(target)
  }

  reportUnreachable(peer: NodeId): void {
    this.#raft.reportUnreachable(peer)
  }

  /** The host's clock ran `ticks` ahead of the ticks it delivered (a pause): leases count that time. */
  reportStall(ticks: number): void {
    this.#raft.reportStall(ticks)
  }

  /** Term of the entry at `index` (stable or not), or undefined when compacted or beyond the log. */
  logTerm(index: number): number | undefined {
    return this.#raft.log.term(index)
  }

  /** The membership at `index` (>= the applied index): what a snapshot taken there must record. */
  confStateAt(index: number): ConfState {
    return this.#raft.confStateAt(index)
  }

  /**
   * Heartbeats and heartbeat responses, taken out of the next Ready so the host can send them at
   * once, even while it is still persisting the previous Ready. They carry no log state a receiver
   * could act on unsafely: a heartbeat's commit never exceeds what the follower is known to hold,
   * and is already durable on a quorum; the leader's term was persisted before it could lead; a
   * response carries only the echoed context and tick. Without this, a slow fsync on the leader
   * would delay its heartbeats and let followers time out while it is perfectly alive.
   */
  takeHeartbeats(): Message[] {
    const raft = this.#raft
    if (raft.messages.length === 0) return []
    const heartbeats: Message[] = []
    const rest: Message[] = []
    for (const message of raft.messages) {
      if (message.type === 'heartbeat' || message.type === 'heartbeat-response') heartbeats.push(message)
      else rest.push(message)
    }
    if (heartbeats.length > 0) raft.messages = rest
    return heartbeats
  }

  hasReady(): boolean {
    const raft = this.#raft
    if (raft.broadcastPending || raft.readRoundPending) return true
    const soft = this.softState()
    if (soft.leader !== this.previousSoftState.leader || soft.role !== this.previousSoftState.role) return true
    if (!hardStatesEqual(this.hardState(), this.previousHardState)) return true
    if (raft.log.unstable.snapshot !== undefined || raft.log.unstable.entries.length > 0) return true
    if (raft.messages.length > 0 || raft.readStates.length > 0 || raft.droppedReads.length > 0) return true
    return raft.log.hasNextCommittedEntries()
  }

  ready(): Ready {
    assert(!this.readyOutstanding, 'ready() called again before advance()')
    const raft = this.#raft
    raft.flushBroadcast()
    const soft = this.softState()
    const hard = this.hardState()
    const snapshot = raft.log.unstable.snapshot
    const entries = raft.log.unstableEntries()
    // etcd's MustSync: entries, a snapshot, or a new term or vote must be on disk before anything is
    // sent; a commit index alone need not be (a restart re-learns it from the leader).
    const mustSync =
      entries.length > 0 ||
      snapshot !== undefined ||
      hard.term !== this.previousHardState.term ||
      hard.vote !== this.previousHardState.vote
    const ready: Ready = {
      ...(soft.leader !== this.previousSoftState.leader || soft.role !== this.previousSoftState.role
        ? { softState: soft }
        : {}),
      ...(!hardStatesEqual(hard, this.previousHardState) ? { hardState: hard } : {}),
      entries,
      ...(snapshot !== undefined ? { snapshot } : {}),
      mustSync,
      messages: raft.messages,
      committedEntries: raft.log.nextCommittedEntries(raft.config.committedBytesPerReadyMax),
      readStates: raft.readStates,
      droppedReads: raft.droppedReads,
    }
    raft.messages = []
    raft.readStates = []
    raft.droppedReads = []
    this.previousSoftState = soft
    this.previousHardState = hard
    this.readyOutstanding = true
    return ready
  }

  /** The host finished a Ready: its entries are durable and its committed entries applied. */
  advance(ready: Ready): void {
    assert(this.readyOutstanding, 'advance() without a Ready')
    this.readyOutstanding = false
    const log = this.#raft.log
    if (ready.snapshot !== undefined) {
      log.stableSnapshotTo(ready.snapshot.metadata.index)
      log.appliedTo(ready.snapshot.metadata.index)
    }
    const committed = ready.committedEntries
    if (committed.length > 0) log.appliedTo(committed[committed.length - 1]!.index)
    const entries = ready.entries
    if (entries.length > 0) {
      const last = entries[entries.length - 1]!
      log.stableTo(last.index, last.term)
      this.#raft.onPersisted()
    }
    this.#raft.pruneConfLog()
  }

  /** Whether this replica leads now (no allocation: every request asks). */
  isLeader(): boolean {
    return this.#raft.role === 'leader'
  }

  /** Role, term, commit and log bounds, with no allocation beyond the answer (for hot paths). */
  basicStatus(): BasicStatus {
    const raft = this.#raft
    return {
      id: raft.id,
      role: raft.role,
      term: raft.term,
      vote: raft.vote,
      leader: raft.lead,
      commit: raft.log.committed,
      applied: raft.log.applied,
      firstIndex: raft.log.firstIndex(),
      lastIndex: raft.log.lastIndex(),
      leadTransferee: raft.leadTransferee,
      leaderHeardRecently: raft.leaderHeardRecently(),
    }
  }

  /** The membership in force now (the newest ConfChange in the log, committed or not). */
  confState(): ConfState {
    return this.#raft.currentConf()
  }

  /** basicStatus() plus the membership and, on a leader, each member's replication progress. */
  status(): Status {
    const raft = this.#raft
    const basic = this.basicStatus()
    if (raft.role !== 'leader') return { ...basic, confState: raft.currentConf() }
    const progress: Record<number, PeerProgress> = {}
    for (const [id, pr] of raft.progress)
      progress[id] = {
        match: pr.match,
        next: pr.next,
        state: pr.state,
        recentActive: pr.recentActive,
        lostState: pr.lostState,
      }
    return { ...basic, confState: raft.currentConf(), progress }
  }

  private softState(): SoftState {
    return { leader: this.#raft.lead, role: this.#raft.role }
  }

  private hardState(): HardState {
    return { term: this.#raft.term, vote: this.#raft.vote, commit: this.#raft.log.committed }
  }
}

function hardStatesEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit
}
