import { applyConfChange, decodeConfChange, encodeConfChange } from './conf-change.ts'
import { resolveConfig } from './config.ts'
import type { Config, ResolvedConfig } from './config.ts'
import { entrySizeBytes } from './entry.ts'
import { RaftError, assert } from './errors.ts'
import { Progress, ProgressState } from './progress.ts'
import { VoteResult, majorityValue, voteResult } from './quorum.ts'
import { RaftLog } from './raft-log.ts'
import { ReadOnlyQueue } from './read-only.ts'
import { PROBE_BACKOFF_HEARTBEATS_MAX } from './constants.ts'
import { CampaignReason, EntryType, MessageType, NONE, ReadMode, Role } from './types.ts'
import type { ConfChange, ConfState, Entry, Message, NodeId, ReadState, Snapshot, SnapshotMetadata } from './types.ts'

interface IncomingSnapshot {
  metadata: SnapshotMetadata
  totalBytes: number
  parts: Uint8Array[]
  receivedBytes: number
}

/** A proposal the leader accepted: watch for `index` being applied with `term` (another term means lost). */
export interface ProposalTicket {
  readonly index: number
  readonly term: number
}

/**
 * The Raft state machine. Not used directly by hosts: RawNode wraps it with ready()/advance().
 * Structure follows etcd's raft.go: becomeX() are the only code that changes role, step() handles
 * terms then dispatches by role. Every rule cites the paper (Raft §N) or the thesis where it lives.
 */
export class Raft {
  readonly id: NodeId
  readonly config: ResolvedConfig
  readonly log: RaftLog
  term = 0
  vote: NodeId = NONE
  lead: NodeId = NONE
  role: Role = Role.Follower

  /** Messages produced since the last Ready; taken by RawNode. */
  messages: Message[] = []
  readStates: ReadState[] = []
  droppedReads: string[] = []

  voters = new Set<NodeId>()
  learners = new Set<NodeId>()
  /** The membership as of the snapshot, and every ConfChange entry after it (thesis §4.1: a change takes effect once in the log). */
  private baseConf: ConfState
  private confLog: Array<{ index: number; conf: ConfState }> = []
  readonly progress = new Map<NodeId, Progress>()
  private readonly votes = new Map<NodeId, boolean>()

  /** Local logical clock: ticks since this instance started. */
  tickCount = 0
  private electionElapsed = 0
  private heartbeatElapsed = 0
  private randomizedElectionTimeout = 0
  /**
   * True for the first election timeout after start: a replica that just restarted has forgotten
   * whether it heard a leader, so it refuses votes as if it had (protects leader leases).
   */
  private bootLease = true
  /** Set when the host reported the leader unreachable: the next campaign says why. */
  private leaderLost = false

  leadTransferee: NodeId = NONE
  /** Lease reads are refused until this tick (after a transfer, another replica may lead early). */
  private leaseBlockedUntilTick = 0
  private uncommittedBytes = 0
  /** Set by proposals: AppendEntries go out once per Ready, batching everything proposed meanwhile. */
  broadcastPending = false
  /** Reads wait for a heartbeat round that has not been sent yet (it goes out with the next Ready). */
  readRoundPending = false
  /** The ReadIndex context of the heartbeat round in flight: its quorum releases every read before it. */
  private readRoundContext: string | undefined
  private readonly readOnly = new ReadOnlyQueue()
  /** Reads asked before this leader committed an entry of its term (thesis §6.4 step 1). */
  private pendingReads: Array<{ context: string; mode: ReadMode }> = []
  private incomingSnapshot: IncomingSnapshot | undefined

  constructor(config: Config) {
    this.config = resolveConfig(config)
    this.id = this.config.id
    this.log = new RaftLog(this.config.storage, this.config.applied ?? 0)
    this.log.onAppend = (entries) => this.onEntriesAppended(entries)
    const { hardState, confState } = this.config.storage.initialState()
    this.baseConf = confState
    this.term = hardState.term
    this.vote = hardState.vote
    // Recover membership changes that were appended after the snapshot.
    const first = this.log.firstIndex()
    const last = this.log.lastIndex()
    if (last >= first) {
      for (const entry of this.log.slice(first, last + 1, Number.POSITIVE_INFINITY)) this.noteConfEntry(entry)
    }
    this.applyConfToTracker()
    this.becomeFollower(this.term, NONE)
  }

  // ---------------------------------------------------------------------------------------------
  // Membership

  currentConf(): ConfState {
    return this.confLog.length > 0 ? this.confLog[this.confLog.length - 1]!.conf : this.baseConf
  }

  /** Index of the newest ConfChange entry in the log (0 if none since the snapshot). */
  lastConfIndex(): number {
    return this.confLog.length > 0 ? this.confLog[this.confLog.length - 1]!.index : 0
  }

  /** The membership in force at `index` (which must not be below the applied index). */
  confStateAt(index: number): ConfState {
    let conf = this.baseConf
    for (const change of this.confLog) {
      if (change.index > index) break
      conf = change.conf
    }
    return conf
  }

  private noteConfEntry(entry: Entry): void {
    if (entry.type !== EntryType.ConfChange) return
    const change = decodeConfChange(entry.data)
    this.confLog.push({ index: entry.index, conf: applyConfChange(this.currentConf(), change) })
  }

  /** Called whenever entries enter the log: truncated ConfChanges are forgotten, new ones take effect. */
  private onEntriesAppended(entries: readonly Entry[]): void {
    if (entries.length === 0) return
    const from = entries[0]!.index
    const before = this.currentConf()
    while (this.confLog.length > 0 && this.confLog[this.confLog.length - 1]!.index >= from) this.confLog.pop()
    for (const entry of entries) this.noteConfEntry(entry)
    if (this.currentConf() !== before) this.applyConfToTracker()
  }

  private applyConfToTracker(): void {
    const conf = this.currentConf()
    this.voters = new Set(conf.voters)
    this.learners = new Set(conf.learners)
    const members = new Set([...conf.voters, ...conf.learners])
    for (const id of [...this.progress.keys()]) {
      if (!members.has(id)) this.progress.delete(id)
    }
    for (const id of members) {
      const existing = this.progress.get(id)
      if (existing === undefined) {
        const progress = this.newProgress(id, this.log.lastIndex() + 1)
        // A member added while we lead starts as recently active, so CheckQuorum gives it a chance.
        progress.recentActive = true
        this.progress.set(id, progress)
      } else {
        existing.isLearner = this.learners.has(id)
      }
    }
    if (this.leadTransferee !== NONE && !this.voters.has(this.leadTransferee)) this.abortLeaderTransfer()
  }

  private newProgress(id: NodeId, next: number): Progress {
    return new Progress(next, this.learners.has(id), this.config.inflightMessagesMax, this.config.inflightBytesMax)
  }

  /** Drop ConfChange history that can no longer be truncated or asked about. */
  pruneConfLog(): void {
    const applied = this.log.applied
    let keepFrom = 0
    for (let i = 0; i < this.confLog.length; i++) {
      if (this.confLog[i]!.index <= applied) keepFrom = i
    }
    if (keepFrom > 0) {
      this.baseConf = this.confLog[keepFrom - 1]!.conf
      this.confLog = this.confLog.slice(keepFrom)
    }
  }

  /** A voter can campaign; learners, removed replicas and one installing a snapshot cannot. */
  promotable(): boolean {
    return this.voters.has(this.id) && this.log.unstable.snapshot === undefined
  }

  // ---------------------------------------------------------------------------------------------
  // Role transitions: the only code that sets `role`.

  private reset(term: number): void {
    assert(term >= this.term, () => `term must never decrease (${this.term} -> ${term})`)
    if (term !== this.term) {
      this.term = term
      this.vote = NONE
    }
    this.lead = NONE
    this.electionElapsed = 0
    this.heartbeatElapsed = 0
    this.randomizedElectionTimeout =
      this.config.electionTimeoutTicks + this.config.rng.nextInt(this.config.electionTimeoutTicks)
    this.abortLeaderTransfer()
    this.votes.clear()
    this.leaderLost = false
    for (const [id, progress] of this.progress) {
      const fresh = this.newProgress(id, this.log.lastIndex() + 1)
      if (id === this.id) fresh.match = this.log.stableIndex()
      this.progress.set(id, fresh)
      void progress
    }
    this.uncommittedBytes = 0
    for (const context of this.readOnly.drain()) this.droppedReads.push(context)
    for (const read of this.pendingReads) this.droppedReads.push(read.context)
    this.pendingReads = []
    this.broadcastPending = false
    this.readRoundPending = false
    this.readRoundContext = undefined
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term)
    this.lead = lead
    this.role = Role.Follower
  }

  private becomePreCandidate(): void {
    assert(this.role !== Role.Leader, 'invalid transition [leader -> pre-candidate]')
    // PreVote does not touch term or vote (thesis §9.6): a failed probe leaves no trace.
    this.votes.clear()
    this.lead = NONE
    this.role = Role.PreCandidate
  }

  private becomeCandidate(): void {
    assert(this.role !== Role.Leader, 'invalid transition [leader -> candidate]')
    const leaderLost = this.leaderLost
    this.reset(this.term + 1)
    this.leaderLost = leaderLost
    this.vote = this.id
    this.role = Role.Candidate
  }

  private becomeLeader(): void {
    assert(this.role !== Role.Follower, 'invalid transition [follower -> leader]')
    this.reset(this.term)
    this.lead = this.id
    this.role = Role.Leader
    const own = this.progress.get(this.id)
    if (own !== undefined) {
      own.becomeReplicate()
      // Only what is on our disk counts toward commit (parallel append, thesis §10.2.1).
      own.match = this.log.stableIndex()
      own.next = this.log.lastIndex() + 1
    }
    // Raft §8: a no-op of the new term lets the leader commit (and learn) everything before it.
    this.appendEntries([{ index: 0, term: 0, type: EntryType.NoOp, data: new Uint8Array() }])
    // A lone voter is its own quorum: the no-op commits now, or reads and membership changes (which
    // wait for an entry of this term to commit) would wait for the first client write.
    this.maybeCommit()
    this.bcastAppend()
  }

  // ---------------------------------------------------------------------------------------------
  // Time

  /**
   * This replica leads, or a follower or learner heard its leader within an election timeout: its
   * applied state is at most that far behind the cluster's (what a follower may serve a feed from).
   * A partitioned learner never campaigns, so a known `lead` alone says nothing about freshness.
   */
  leaderHeardRecently(): boolean {
    if (this.role === Role.Leader) return true
    return this.lead !== NONE && this.electionElapsed < this.config.electionTimeoutTicks
  }

  tick(): void {
    this.tickCount++
    if (this.role === Role.Leader) this.tickHeartbeat()
    else this.tickElection()
  }

  private tickElection(): void {
    this.electionElapsed++
    if (this.bootLease && this.electionElapsed >= this.config.electionTimeoutTicks) this.bootLease = false
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0
      this.hup(this.leaderLost ? CampaignReason.LeaderLost : CampaignReason.Election)
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++
    this.electionElapsed++
    if (this.electionElapsed >= this.config.electionTimeoutTicks) {
      this.electionElapsed = 0
      if (this.config.checkQuorum) {
        if (!this.quorumActive()) {
          this.becomeFollower(this.term, NONE)
          return
        }
        for (const [id, progress] of this.progress) progress.recentActive = id === this.id
      }
      // A transfer that has not finished within an election timeout is abandoned (thesis §3.10).
      if (this.leadTransferee !== NONE) this.abortLeaderTransfer()
    }
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0
      this.bcastHeartbeat(this.readOnly.lastContext())
      this.retransmitSnapshotChunks()
    }
  }

  private quorumActive(): boolean {
    let active = 0
    for (const id of this.voters) {
      // A voter that lost its state (markLostState) answers, but vouches for nothing.
      const progress = this.progress.get(id)
      if (id === this.id || (progress?.recentActive === true && !progress.lostState)) active++
    }
    return active >= Math.floor(this.voters.size / 2) + 1
  }

  // ---------------------------------------------------------------------------------------------
  // Host notifications

  /**
   * The host's clock moved `ticks` further than the ticks it delivered: the process was paused or
   * its event loop starved. Timers are not replayed (an election timeout that lapsed while nobody
   * could run it is not evidence of a dead leader), but the lease clock is: a lease is counted in
   * elapsed time as the host measures it, so a leader back from a stall does not trust a lease that
   * has run out in real time (thesis §6.4.1; Consul had exactly this bug in 2014).
   */
  reportStall(ticks: number): void {
    assert(
      Number.isSafeInteger(ticks) && ticks >= 0,
      () => `stalled ticks must be a non-negative integer (got ${ticks})`,
    )
    this.tickCount += ticks
  }

  /**
   * The host saw its connection to `peer` close. A follower that loses its leader this way campaigns
   * almost at once instead of waiting out the election timeout; PreVote keeps that safe, since peers
   * that still hear the leader refuse. Followers stagger by rank so two rarely split the vote.
   */
  reportUnreachable(peer: NodeId): void {
    if (this.role === Role.Leader) {
      const progress = this.progress.get(peer)
      if (progress === undefined) return
      if (progress.state === ProgressState.Replicate) progress.becomeProbe()
      // Its acknowledgements no longer vouch for our lease: it may already be voting elsewhere.
      progress.heartbeatAckedTick = -1
      return
    }
    if (this.role !== Role.Follower || peer !== this.lead || !this.promotable()) return
    this.leaderLost = true
    const others = [...this.voters].filter((id) => id !== peer).sort((a, b) => a - b)
    const rank = Math.max(0, others.indexOf(this.id))
    const delayTicks =
      rank * this.config.leaderLostStaggerTicks + this.config.rng.nextInt(this.config.leaderLostStaggerTicks)
    if (this.config.leaseReads) {
      // The old leader may still hold a lease that counts on us: keep refusing votes until it has
      // run out (electionElapsed reaches the election timeout), then campaign at once.
      this.randomizedElectionTimeout = Math.min(
        this.randomizedElectionTimeout,
        this.config.electionTimeoutTicks + delayTicks,
      )
      return
    }
    // No leases to protect: forget the leader (so we grant votes to others who lost it too) and
    // campaign after our stagger.
    this.lead = NONE
    this.electionElapsed = Math.max(0, this.randomizedElectionTimeout - delayTicks)
    if (delayTicks === 0) {
      this.electionElapsed = 0
      this.hup(CampaignReason.LeaderLost)
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Proposals and reads

  propose(data: Uint8Array): ProposalTicket {
    return this.proposeEntry(EntryType.Normal, data)
  }

  /**
   * Single-server membership change (thesis §4.1). One at a time: refused while another is in the
   * log uncommitted, and until this leader has committed an entry of its own term (the fix for the
   * single-server change bug, thesis errata).
   */
  proposeConfChange(change: ConfChange): ProposalTicket {
    this.requireLeader()
    applyConfChange(this.currentConf(), change)
    if (this.lastConfIndex() > this.log.committed) {
      throw new RaftError(
        'DROPPED',
        `membership change at ${this.lastConfIndex()} is not committed yet; one change at a time`,
      )
    }
    if (!this.committedInCurrentTerm())
      throw new RaftError('DROPPED', 'leader has not committed an entry of its term yet')
    return this.proposeEntry(EntryType.ConfChange, encodeConfChange(change))
  }

  private proposeEntry(type: EntryType, data: Uint8Array): ProposalTicket {
    this.requireLeader()
    if (this.leadTransferee !== NONE) {
      throw new RaftError('DROPPED', `leadership is being transferred to ${this.leadTransferee}`, this.leadTransferee)
    }
    const sizeBytes = entrySizeBytes({ index: 0, term: 0, type, data })
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + sizeBytes > this.config.uncommittedBytesMax) {
      throw new RaftError(
        'DROPPED',
        `uncommitted log is full (${this.uncommittedBytes} bytes, limit ${this.config.uncommittedBytesMax})`,
      )
    }
    const index = this.appendEntries([{ index: 0, term: 0, type, data }])
    this.broadcastPending = true
    // A single voter commits on its own.
    this.maybeCommit()
    return { index, term: this.term }
  }

  private requireLeader(): void {
    if (this.role !== Role.Leader) {
      throw new RaftError(
        'NOT_LEADER',
        this.lead === NONE ? 'no leader is known' : `replica ${this.lead} leads`,
        this.lead,
      )
    }
  }

  private committedInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term
  }

  /** ReadIndex (thesis §6.4). The answer arrives as a ReadState in a later Ready. */
  readIndex(context: string, mode: ReadMode = ReadMode.Linearizable): void {
    this.requireLeader()
    if (!this.committedInCurrentTerm()) {
      if (this.pendingReads.length >= this.config.pendingReadsMax) {
        throw new RaftError(
          'DROPPED',
          `too many reads waiting for the new leader's first commit (${this.config.pendingReadsMax})`,
        )
      }
      this.pendingReads.push({ context, mode })
      return
    }
    this.serveRead(context, mode)
  }

  private serveRead(context: string, mode: ReadMode): void {
    if (this.voters.size === 1 && this.voters.has(this.id)) {
      this.readStates.push({ index: this.log.committed, context })
      return
    }
    if (mode === ReadMode.Lease && this.leaseValid()) {
      this.readStates.push({ index: this.log.committed, context })
      return
    }
    // Batched (etcd's read batching): every read that arrives before the next Ready shares one
    // heartbeat round, and a read that arrives while a round is in flight joins the round after it.
    this.readOnly.add(context, this.log.committed, this.id)
    this.readRoundPending = true
  }

  /**
   * Leader lease (thesis §6.4.1): a quorum acknowledged a heartbeat we sent at tick T, so none of
   * them grants a vote before T + electionTimeout (they refuse while they recently heard a leader).
   * The margin absorbs clock drift between replicas.
   */
  leaseValid(): boolean {
    if (this.role !== Role.Leader || !this.config.leaseReads || this.leadTransferee !== NONE) return false
    if (this.tickCount < this.leaseBlockedUntilTick || !this.committedInCurrentTerm()) return false
    const leaseStartTick = majorityValue(this.voters, (id) =>
      id === this.id ? this.tickCount : (this.progress.get(id)?.heartbeatAckedTick ?? -1),
    )
    if (leaseStartTick < 0) return false
    return this.tickCount < leaseStartTick + this.config.electionTimeoutTicks - this.config.leaseMarginTicks
  }

  transferLeader(target: NodeId): void {
    this.requireLeader()
    if (target === this.id) return
    if (!this.voters.has(target)) throw new RaftError('INVALID', `cannot transfer leadership to ${target}: not a voter`)
    if (this.leadTransferee === target) return
    if (this.leadTransferee !== NONE) this.abortLeaderTransfer()
    // The transfer has one election timeout to complete (thesis §3.10).
    this.electionElapsed = 0
    this.leadTransferee = target
    const progress = this.progress.get(target)!
    if (progress.match === this.log.lastIndex()) this.sendTimeoutNow(target)
    else this.sendAppend(target)
  }

  private abortLeaderTransfer(): void {
    this.leadTransferee = NONE
  }

  private sendTimeoutNow(target: NodeId): void {
    // The target may win at any moment now, without waiting out anyone's lease.
    this.leaseBlockedUntilTick = this.tickCount + 2 * this.config.electionTimeoutTicks
    this.send({ type: MessageType.TimeoutNow, from: this.id, to: target, term: this.term })
  }

  // ---------------------------------------------------------------------------------------------
  // Messages in

  step(message: Message): void {
    if (message.term === 0) {
      assert(message.type === MessageType.Hup, () => `only local messages have term 0 (got ${message.type})`)
    } else if (message.term > this.term) {
      if (message.type === MessageType.Vote || message.type === MessageType.PreVote) {
        const force = message.reason === CampaignReason.Transfer
        // With leases on, a replica that just started counts as having heard a leader: it forgot.
        const heardLeader = this.lead !== NONE || (this.bootLease && this.config.leaseReads)
        const inLease =
          this.config.checkQuorum && heardLeader && this.electionElapsed < this.config.electionTimeoutTicks
        // Thesis §4.2.3: a replica that heard a live leader recently ignores disruptive campaigns.
        if (!force && inLease) return
      }
      if (message.type === MessageType.PreVote) {
        // A pre-vote at a higher term changes nothing here.
      } else if (message.type === MessageType.PreVoteResponse && message.reject !== true) {
        // The term is only taken once a quorum grants (then the campaign proper starts).
      } else if (
        message.type === MessageType.Append ||
        message.type === MessageType.Heartbeat ||
        message.type === MessageType.Snapshot
      ) {
        this.becomeFollower(message.term, message.from)
      } else {
        this.becomeFollower(message.term, NONE)
      }
    } else if (message.term < this.term) {
      if (
        (this.config.checkQuorum || this.config.preVote) &&
        (message.type === MessageType.Heartbeat || message.type === MessageType.Append)
      ) {
        // A stale leader (e.g. back from a partition) learns our term and steps down; without this
        // it could keep our election timer reset forever under CheckQuorum (etcd #5451-style).
        this.send({ type: MessageType.AppendResponse, from: this.id, to: message.from, term: this.term })
      } else if (message.type === MessageType.PreVote) {
        this.send({ type: MessageType.PreVoteResponse, from: this.id, to: message.from, term: this.term, reject: true })
      }
      return
    }

    switch (message.type) {
      case MessageType.Hup:
        this.hup(CampaignReason.Election)
        return
      case MessageType.Vote:
      case MessageType.PreVote:
        this.handleVoteRequest(message)
        return
    }
    switch (this.role) {
      case Role.Leader:
        this.stepLeader(message)
        return
      case Role.Candidate:
      case Role.PreCandidate:
        this.stepCandidate(message)
        return
      case Role.Follower:
        this.stepFollower(message)
        return
    }
  }

  private handleVoteRequest(message: Message): void {
    const responseType = message.type === MessageType.Vote ? MessageType.VoteResponse : MessageType.PreVoteResponse
    if (this.log.lastIndex() === 0) {
      // An empty log is a replica that lost its disk or was never given state. It cannot know what
      // it once acknowledged or whom it voted for, so its vote could elect a leader without an
      // acknowledged write, or be cast twice in one term. It waits to be given state, or replaced.
      // (At term 0 it has no term to answer with; silence is a refusal too.)
      if (this.term > 0)
        this.send({ type: responseType, from: this.id, to: message.from, term: this.term, reject: true })
      return
    }
    // Raft §5.2: at most one vote per term (a repeat to the same candidate is fine).
    const canVote =
      this.vote === message.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (message.type === MessageType.PreVote && message.term > this.term)
    if (canVote && this.log.isUpToDate(message.index ?? 0, message.logTerm ?? 0)) {
      // A pre-vote answer carries the term the candidate will campaign at, a vote the current one.
      this.send({ type: responseType, from: this.id, to: message.from, term: message.term })
      if (message.type === MessageType.Vote) {
        this.electionElapsed = 0
        this.vote = message.from
      } else if (this.leaderLost && this.role === Role.Follower) {
        // We backed another replica that lost the leader too: let it finish instead of starting a
        // campaign of our own a few ticks later and splitting the vote; a normal timeout remains.
        // Forget the lost leader too: with leases on, a remembered leader would make us ignore the
        // real vote that follows (we only got here once our lease had run out).
        this.leaderLost = false
        this.lead = NONE
        this.electionElapsed = 0
      } else if (
        this.role === Role.PreCandidate &&
        this.leaderLost &&
        message.reason === CampaignReason.LeaderLost &&
        message.from < this.id
      ) {
        // Both of us lost the leader and probed at once (the stagger was shorter than a pre-vote
        // round trip on a loaded host): both would win the pre-vote, campaign together and split
        // the vote, costing a full election timeout. The lower id goes first, as the stagger meant.
        this.becomeFollower(this.term, NONE)
      }
    } else {
      this.send({ type: responseType, from: this.id, to: message.from, term: this.term, reject: true })
    }
  }

  private hup(reason: CampaignReason): void {
    if (this.role === Role.Leader || !this.promotable()) return
    // Raft §5.4.1 needs the whole committed log; a replica with unapplied conf changes could count wrong voters.
    if (this.config.preVote && reason !== CampaignReason.Transfer) this.campaign(true, reason)
    else this.campaign(false, reason)
  }

  private campaign(preVote: boolean, reason: CampaignReason): void {
    let voteTerm: number
    if (preVote) {
      this.becomePreCandidate()
      voteTerm = this.term + 1
    } else {
      this.becomeCandidate()
      voteTerm = this.term
    }
    if (this.poll(this.id, true) === VoteResult.Won) {
      // A single voter wins at once.
      if (preVote) this.campaign(false, reason)
      else this.becomeLeader()
      return
    }
    const type = preVote ? MessageType.PreVote : MessageType.Vote
    for (const id of this.voters) {
      if (id === this.id) continue
      this.send({
        type,
        from: this.id,
        to: id,
        term: voteTerm,
        index: this.log.lastIndex(),
        logTerm: this.log.lastTerm(),
        reason,
      })
    }
  }

  private poll(id: NodeId, granted: boolean): VoteResult {
    if (!this.votes.has(id)) this.votes.set(id, granted)
    return voteResult(this.voters, this.votes)
  }

  private stepFollower(message: Message): void {
    switch (message.type) {
      case MessageType.Append:
        this.electionElapsed = 0
        this.lead = message.from
        this.leaderLost = false
        this.handleAppend(message)
        return
      case MessageType.Heartbeat:
        this.electionElapsed = 0
        this.lead = message.from
        this.leaderLost = false
        this.handleHeartbeat(message)
        return
      case MessageType.Snapshot:
        this.electionElapsed = 0
        this.lead = message.from
        this.leaderLost = false
        this.handleSnapshotChunk(message)
        return
      case MessageType.TimeoutNow:
        // Thesis §3.10: the leader asked us to take over; campaign at once, bypassing leases.
        this.hup(CampaignReason.Transfer)
        return
      default:
        return
    }
  }

  private stepCandidate(message: Message): void {
    const myResponseType = this.role === Role.PreCandidate ? MessageType.PreVoteResponse : MessageType.VoteResponse
    switch (message.type) {
      case MessageType.Append:
        this.becomeFollower(message.term, message.from)
        this.handleAppend(message)
        return
      case MessageType.Heartbeat:
        this.becomeFollower(message.term, message.from)
        this.handleHeartbeat(message)
        return
      case MessageType.Snapshot:
        this.becomeFollower(message.term, message.from)
        this.handleSnapshotChunk(message)
        return
      case myResponseType: {
        const result = this.poll(message.from, message.reject !== true)
        if (result === VoteResult.Won) {
          if (this.role === Role.PreCandidate)
            this.campaign(false, this.leaderLost ? CampaignReason.LeaderLost : CampaignReason.Election)
          else this.becomeLeader()
        } else if (result === VoteResult.Lost) {
          this.becomeFollower(this.term, NONE)
        }
        return
      }
      default:
        return
    }
  }

  private stepLeader(message: Message): void {
    const progress = this.progress.get(message.from)
    if (progress === undefined) return
    progress.recentActive = true
    switch (message.type) {
      case MessageType.AppendResponse:
        this.handleAppendResponse(message, progress)
        return
      case MessageType.HeartbeatResponse:
        this.handleHeartbeatResponse(message, progress)
        return
      case MessageType.SnapshotResponse:
        if (message.reject === true) {
          if (this.voters.has(message.from)) progress.markLostState()
          return
        }
        if (progress.state === ProgressState.Snapshot && progress.pendingSnapshotIndex === message.index) {
          progress.snapshotBytesAcked = message.bytesReceived ?? 0
          this.sendSnapshotChunk(message.from, progress)
        }
        return
      default:
        return
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Follower side of replication

  private handleAppend(message: Message): void {
    const prevIndex = message.index ?? 0
    const prevTerm = message.logTerm ?? 0
    if (prevIndex < this.log.committed) {
      this.send({
        type: MessageType.AppendResponse,
        from: this.id,
        to: message.from,
        term: this.term,
        index: this.log.committed,
      })
      return
    }
    const entries = message.entries ?? []
    const lastNewIndex = this.log.maybeAppend(prevIndex, prevTerm, message.commit ?? 0, entries)
    if (lastNewIndex !== undefined) {
      this.send({
        type: MessageType.AppendResponse,
        from: this.id,
        to: message.from,
        term: this.term,
        index: lastNewIndex,
      })
      return
    }
    // Fast backtracking: point the leader at the last index whose term is <= its prevTerm, so one
    // round trip skips a whole conflicting term instead of one entry.
    const hintIndex = Math.min(prevIndex, this.log.lastIndex())
    const hint = this.log.findConflictByTerm(hintIndex, prevTerm)
    this.send({
      type: MessageType.AppendResponse,
      from: this.id,
      to: message.from,
      term: this.term,
      index: prevIndex,
      reject: true,
      rejectHint: hint.index,
      logTerm: hint.term,
    })
  }

  private handleHeartbeat(message: Message): void {
    this.log.commitTo(Math.min(message.commit ?? 0, this.log.lastIndex()))
    const response: Message = { type: MessageType.HeartbeatResponse, from: this.id, to: message.from, term: this.term }
    this.send({
      ...response,
      // An empty log vouches for nothing. A voter that lost its disk answering "you still lead" would
      // let a deposed leader confirm a ReadIndex round or a lease with it (it forgot the newer term
      // it had acknowledged); a learner joining empty counts for no quorum, so refusing costs nothing.
      ...(this.log.lastIndex() === 0 ? { reject: true } : {}),
      ...(message.context !== undefined ? { context: message.context } : {}),
      ...(message.sentTick !== undefined ? { sentTick: message.sentTick } : {}),
    })
  }

  private handleSnapshotChunk(message: Message): void {
    const chunk = message.snapshot
    if (chunk === undefined) return
    const metadata = chunk.metadata
    if (this.log.lastIndex() === 0 && metadata.confState.voters.includes(this.id)) {
      // A voter with an empty log lost the state it acknowledged (a learner joining is empty, but
      // the snapshot then lists it as a learner). Restoring it in place would let a quorum hold an
      // acknowledged write only on paper; say so, and the leader stops sending to us.
      this.incomingSnapshot = undefined
      this.send({
        type: MessageType.SnapshotResponse,
        from: this.id,
        to: message.from,
        term: this.term,
        index: metadata.index,
        bytesReceived: 0,
        reject: true,
      })
      return
    }
    if (metadata.index <= this.log.committed) {
      this.incomingSnapshot = undefined
      this.send({
        type: MessageType.AppendResponse,
        from: this.id,
        to: message.from,
        term: this.term,
        index: this.log.committed,
      })
      return
    }
    let incoming = this.incomingSnapshot
    if (
      incoming !== undefined &&
      (incoming.metadata.index !== metadata.index || incoming.metadata.term !== metadata.term)
    )
      incoming = undefined
    if (incoming === undefined) {
      if (chunk.offset !== 0) {
        this.send({
          type: MessageType.SnapshotResponse,
          from: this.id,
          to: message.from,
          term: this.term,
          index: metadata.index,
          bytesReceived: 0,
        })
        return
      }
      incoming = { metadata, totalBytes: chunk.totalBytes, parts: [], receivedBytes: 0 }
      this.incomingSnapshot = incoming
    }
    // Chunks are accepted strictly in order; a duplicate or a gap is answered with what we hold, and
    // the leader resumes from there (a transfer survives lost chunks without starting over).
    if (
      chunk.offset === incoming.receivedBytes &&
      chunk.data.byteLength > 0 &&
      incoming.receivedBytes + chunk.data.byteLength <= incoming.totalBytes
    ) {
      incoming.parts.push(chunk.data)
      incoming.receivedBytes += chunk.data.byteLength
    }
    if (incoming.receivedBytes < incoming.totalBytes) {
      this.send({
        type: MessageType.SnapshotResponse,
        from: this.id,
        to: message.from,
        term: this.term,
        index: metadata.index,
        bytesReceived: incoming.receivedBytes,
      })
      return
    }
    this.incomingSnapshot = undefined
    const data = new Uint8Array(incoming.totalBytes)
    let offset = 0
    for (const part of incoming.parts) {
      data.set(part, offset)
      offset += part.byteLength
    }
    const restored = this.restore({ metadata, data })
    this.send({
      type: MessageType.AppendResponse,
      from: this.id,
      to: message.from,
      term: this.term,
      index: restored ? this.log.lastIndex() : this.log.committed,
    })
  }

  /** Install a snapshot from the leader (Raft §7). Returns false when our log already covers it. */
  private restore(snapshot: Snapshot): boolean {
    const { index, term } = snapshot.metadata
    if (index <= this.log.committed) return false
    assert(this.role === Role.Follower, () => `only a follower installs a snapshot (role ${this.role})`)
    if (this.log.matchTerm(index, term)) {
      // Our log already holds the snapshot's last entry: just commit up to it.
      this.log.commitTo(index)
      return false
    }
    this.log.restore(snapshot)
    this.baseConf = snapshot.metadata.confState
    this.confLog = []
    this.applyConfToTracker()
    return true
  }

  // ---------------------------------------------------------------------------------------------
  // Leader side of replication

  /** Append entries proposed here (term and index are assigned now); returns the last index. */
  private appendEntries(
    entries: Array<{ index: number; term: number; type: Entry['type']; data: Uint8Array }>,
  ): number {
    let index = this.log.lastIndex()
    const stamped: Entry[] = entries.map((entry) => ({ ...entry, index: ++index, term: this.term }))
    for (const entry of stamped) this.uncommittedBytes += entrySizeBytes(entry)
    // Our own entries count toward commit once persisted (onPersisted), not now: the host may send
    // them to followers before its own write completes (parallel append, thesis §10.2.1).
    return this.log.append(stamped)
  }

  /** Raft §5.3/§5.4.2: commit the highest index a majority holds, but only by counting an entry of our term. */
  private maybeCommit(): boolean {
    const quorumIndex = majorityValue(this.voters, (id) =>
      id === this.id ? this.log.stableIndex() : (this.progress.get(id)?.match ?? 0),
    )
    if (quorumIndex <= this.log.committed) return false
    if (this.log.term(quorumIndex) !== this.term) return false
    const previous = this.log.committed
    this.log.commitTo(quorumIndex)
    this.onCommitAdvanced(previous)
    return true
  }

  private onCommitAdvanced(previousCommit: number): void {
    if (this.uncommittedBytes > 0) {
      for (const entry of this.log.slice(previousCommit + 1, this.log.committed + 1, Number.POSITIVE_INFINITY)) {
        if (entry.term === this.term) this.uncommittedBytes -= entrySizeBytes(entry)
      }
      this.uncommittedBytes = Math.max(0, this.uncommittedBytes)
    }
    if (this.pendingReads.length > 0 && this.committedInCurrentTerm()) {
      const reads = this.pendingReads
      this.pendingReads = []
      for (const read of reads) this.serveRead(read.context, read.mode)
    }
    // A leader that removed itself hands over once the change is committed (thesis §4.2.2).
    if (!this.voters.has(this.id) && this.lastConfIndex() <= this.log.committed) {
      let best: NodeId = NONE
      for (const id of this.voters) {
        const progress = this.progress.get(id)
        if (progress !== undefined && progress.match === this.log.lastIndex()) best = id
      }
      if (best !== NONE) this.send({ type: MessageType.TimeoutNow, from: this.id, to: best, term: this.term })
      this.becomeFollower(this.term, NONE)
    }
  }

  private handleAppendResponse(message: Message, progress: Progress): void {
    const from = message.from
    const index = message.index ?? 0
    if (message.reject === true) {
      let nextProbe = message.rejectHint ?? 0
      if ((message.logTerm ?? 0) > 0) nextProbe = this.log.findConflictByTerm(nextProbe, message.logTerm!).index
      const nextBefore = progress.next
      if (progress.maybeDecreaseTo(index, nextProbe)) {
        if ((message.rejectHint ?? 0) === 0 && this.voters.has(from)) {
          // The hint is 0 only from an empty log: this voter lost its disk. It cannot be restored in
          // place (whatever it acknowledged before is gone from a quorum's count); it must be replaced.
          progress.markLostState()
          return
        }
        if (progress.state === ProgressState.Replicate) progress.becomeProbe()
        // A snapshot in flight decides what comes next; its answer moves the follower on.
        if (progress.state === ProgressState.Snapshot) return
        if (progress.next < nextBefore) {
          this.sendAppend(from)
        } else {
          // The follower rejected the probe at `match + 1` itself: its log ends before entries it
          // once acknowledged. Resending at once would loop as fast as the network allows (one
          // wiped follower drew 44 MB/s); back off, and let the next probes carry no entries.
          progress.backOffProbe(PROBE_BACKOFF_HEARTBEATS_MAX)
        }
      }
      return
    }
    const wasPaused = progress.isPaused()
    // A probe answered at the known match teaches nothing new, but proves the follower matches: it
    // moves to replicate (etcd does the same), or a caught-up follower would probe forever.
    if (!progress.maybeUpdate(index) && !(progress.state === ProgressState.Probe && index === progress.match)) return
    if (progress.state === ProgressState.Probe) {
      progress.becomeReplicate()
    } else if (progress.state === ProgressState.Snapshot && progress.match >= progress.pendingSnapshotIndex) {
      progress.becomeProbe()
      progress.becomeReplicate()
    } else if (progress.state === ProgressState.Replicate) {
      progress.inflights.freeLE(index)
    }
    if (this.maybeCommit()) {
      if (this.role !== Role.Leader) return
      this.bcastAppend()
    } else if (wasPaused) {
      // Entries if there are any; an empty append only when it moves the follower's commit.
      this.sendAppend(from, progress.canBumpCommit(this.log.committed))
    }
    // Keep the pipe full while the follower lags.
    while (this.sendAppend(from, false)) {
      // each call sends one batch
    }
    if (from === this.leadTransferee && progress.match === this.log.lastIndex()) this.sendTimeoutNow(from)
  }

  private handleHeartbeatResponse(message: Message, progress: Progress): void {
    // A probe that got no answer may have been lost: the heartbeat's answer lets the next one go,
    // unless the follower keeps rejecting the same probe (then it waits out its backoff).
    progress.onHeartbeatResponse()
    // AppendEntries can be lost; if the window is full of them nothing would ever move again. Let one
    // more through: if the follower has a gap it rejects it, and the leader falls back to probing.
    if (progress.state === ProgressState.Replicate && progress.inflights.full()) progress.inflights.freeFirst()
    // A probing follower is brought back to replicate by a probe even when it already holds every
    // entry (etcd does the same): otherwise the next proposal would go out as a lone probe.
    if (message.reject === true && this.voters.has(message.from)) {
      // From an empty log (handleHeartbeat): this voter lost its disk and must be replaced. It counts
      // toward no read round, no lease and no quorum check, and is sent nothing more.
      progress.markLostState()
      return
    }
    if (progress.match < this.log.lastIndex() || progress.state === ProgressState.Probe) this.sendAppend(message.from)
    // A learner joining empty: probed (it needs a snapshot), and counted for nothing, as every learner.
    if (message.reject === true) return
    if (message.sentTick !== undefined)
      progress.heartbeatAckedTick = Math.max(progress.heartbeatAckedTick, message.sentTick)
    if (message.context === undefined || !this.voters.has(message.from)) return
    const released = this.readOnly.acknowledge(message.context, message.from, this.voters)
    for (const read of released) {
      this.readStates.push(read)
      if (read.context === this.readRoundContext) this.readRoundContext = undefined
    }
    // Reads that arrived during the round go out in the next one.
    if (this.readRoundContext === undefined && this.readOnly.lastContext() !== undefined) this.readRoundPending = true
  }

  /** Send the next batch of entries (or a snapshot) to `to`. Returns whether anything was sent. */
  sendAppend(to: NodeId, sendIfEmpty = true): boolean {
    const progress = this.progress.get(to)
    if (progress === undefined || to === this.id || progress.isPaused()) return false
    const prevIndex = progress.next - 1
    const prevTerm = this.log.term(prevIndex)
    let entries: Entry[] | undefined
    if (prevTerm !== undefined) {
      // A repeated probe (the last one was rejected for nothing) checks the match only.
      const countMax = progress.probeBackingOff() ? 0 : this.config.entriesPerMessageMax
      const high = Math.min(this.log.lastIndex() + 1, progress.next + countMax)
      try {
        entries = this.log.slice(progress.next, high, this.config.entriesBytesPerMessageMax)
      } catch (error) {
        if (!(error instanceof RaftError && error.code === 'COMPACTED')) throw error
      }
    }
    if (prevTerm === undefined || entries === undefined) return this.startSnapshot(to, progress)
    if (entries.length === 0 && !sendIfEmpty) return false
    this.send({
      type: MessageType.Append,
      from: this.id,
      to,
      term: this.term,
      index: prevIndex,
      logTerm: prevTerm,
      entries,
      commit: this.log.committed,
    })
    progress.noteSentCommit(Math.min(this.log.committed, prevIndex + entries.length))
    if (entries.length > 0) {
      const last = entries[entries.length - 1]!.index
      if (progress.state === ProgressState.Replicate) {
        progress.optimisticUpdate(last)
        let bytes = 0
        for (const entry of entries) bytes += entrySizeBytes(entry)
        progress.inflights.add(last, bytes)
      }
    }
    if (progress.state === ProgressState.Probe) progress.probeSent = true
    return true
  }

  private startSnapshot(to: NodeId, progress: Progress): boolean {
    // A follower that does not answer would get chunks nobody reads; wait until it is heard from.
    if (!progress.recentActive) return false
    const snapshot = this.log.snapshot()
    assert(snapshot.metadata.index > 0, 'a compacted log always has a snapshot')
    progress.becomeSnapshot(snapshot.metadata.index)
    this.sendSnapshotChunk(to, progress)
    return true
  }

  private sendSnapshotChunk(to: NodeId, progress: Progress): void {
    const snapshot = this.log.snapshot()
    if (snapshot.metadata.index !== progress.pendingSnapshotIndex) {
      // A newer snapshot replaced the one in flight: start over with it.
      progress.becomeSnapshot(snapshot.metadata.index)
    }
    const totalBytes = snapshot.data.byteLength
    const offset = Math.min(progress.snapshotBytesAcked, totalBytes)
    if (offset === totalBytes && totalBytes > 0 && progress.snapshotChunkSentTick >= 0 && offset > 0) {
      // Everything is acknowledged; the follower's AppendResponse will move it on.
      return
    }
    const data = snapshot.data.subarray(offset, Math.min(totalBytes, offset + this.config.snapshotChunkBytes))
    progress.snapshotChunkSentTick = this.tickCount
    this.send({
      type: MessageType.Snapshot,
      from: this.id,
      to,
      term: this.term,
      snapshot: { metadata: snapshot.metadata, offset, totalBytes, data },
    })
  }

  /** Chunks and their acknowledgements can be lost; resend from the acknowledged offset. */
  private retransmitSnapshotChunks(): void {
    for (const [id, progress] of this.progress) {
      if (id === this.id || progress.state !== ProgressState.Snapshot) continue
      if (this.tickCount - progress.snapshotChunkSentTick >= 2 * this.config.heartbeatTicks)
        this.sendSnapshotChunk(id, progress)
    }
  }

  bcastAppend(): void {
    for (const id of this.progress.keys()) {
      if (id !== this.id) this.sendAppend(id)
    }
  }

  private bcastHeartbeat(context: string | undefined): void {
    // A round carrying the newest read's context supersedes any in flight: its quorum releases all.
    if (context !== undefined) this.readRoundContext = context
    for (const [id, progress] of this.progress) {
      if (id === this.id) continue
      // Never tell a follower to commit past what it is known to hold.
      const commit = Math.min(progress.match, this.log.committed)
      progress.noteSentCommit(commit)
      this.send({
        type: MessageType.Heartbeat,
        from: this.id,
        to: id,
        term: this.term,
        commit,
        sentTick: this.tickCount,
        ...(context !== undefined ? { context } : {}),
      })
    }
  }

  /** Flush a batched broadcast (called by RawNode before it builds a Ready). */
  flushBroadcast(): void {
    if (this.readRoundPending && this.readRoundContext === undefined && this.role === Role.Leader) {
      this.bcastHeartbeat(this.readOnly.lastContext())
    }
    this.readRoundPending = false
    if (!this.broadcastPending) return
    this.broadcastPending = false
    if (this.role === Role.Leader) this.bcastAppend()
  }

  /**
   * The host persisted our log up to `index` (RawNode.advance). A leader's own entries count toward
   * commit only now; if that completes a quorum, followers hear the new commit index.
   */
  onPersisted(): void {
    if (this.role !== Role.Leader) return
    const own = this.progress.get(this.id)
    if (own === undefined || !own.maybeUpdate(this.log.stableIndex())) return
    if (!this.maybeCommit() || this.role !== Role.Leader) return
    for (const [id, progress] of this.progress) {
      if (id !== this.id) this.sendAppend(id, progress.canBumpCommit(this.log.committed))
    }
  }

  private send(message: Message): void {
    assert(message.to !== this.id, 'a replica never sends to itself')
    this.messages.push(message)
  }
}
