/**
 * The data that crosses the core's boundary: log entries, messages, persisted state and the Ready.
 * Everything here is plain data (numbers, strings, Uint8Array) so a host can encode it with msgpackr
 * and the simulator can copy it without help.
 */

/** A replica id. 0 means "none" (no leader known, no vote cast). */
export type NodeId = number
export const NONE: NodeId = 0

export const EntryType = {
  /** Application data proposed by a client. */
  Normal: 'normal',
  /** Appended by a new leader so it can commit entries of its term (Raft §5.4.2, §8). */
  NoOp: 'noop',
  /** A single-server membership change; takes effect as soon as it is in the log (Raft thesis §4.1). */
  ConfChange: 'confchange',
} as const
export type EntryType = (typeof EntryType)[keyof typeof EntryType]

export interface Entry {
  readonly index: number
  readonly term: number
  readonly type: EntryType
  /** Opaque to the core. For ConfChange entries, an encoded ConfChange (see encodeConfChange). */
  readonly data: Uint8Array
}

export const ConfChangeType = {
  AddVoter: 'add-voter',
  AddLearner: 'add-learner',
  RemoveNode: 'remove-node',
  /** Changes nothing in the membership: carries new `context` for a member (its address, etc.). */
  UpdateNode: 'update-node',
} as const
export type ConfChangeType = (typeof ConfChangeType)[keyof typeof ConfChangeType]

export interface ConfChange {
  readonly type: ConfChangeType
  readonly nodeId: NodeId
  /**
   * Opaque to the core (etcd's ConfChange.Context): what the host wants every replica to learn
   * with the change, e.g. the new member's peer id and address. At most CONF_CHANGE_CONTEXT_LENGTH_MAX.
   */
  readonly context?: string
}

/** The membership: voters decide elections and commits, learners only receive the log. */
export interface ConfState {
  readonly voters: readonly NodeId[]
  readonly learners: readonly NodeId[]
}

export interface HardState {
  readonly term: number
  readonly vote: NodeId
  readonly commit: number
}

export interface SnapshotMetadata {
  readonly index: number
  readonly term: number
  readonly confState: ConfState
}

export interface Snapshot {
  readonly metadata: SnapshotMetadata
  readonly data: Uint8Array
}

export const Role = {
  Follower: 'follower',
  PreCandidate: 'pre-candidate',
  Candidate: 'candidate',
  Leader: 'leader',
} as const
export type Role = (typeof Role)[keyof typeof Role]

export interface SoftState {
  readonly leader: NodeId
  readonly role: Role
}

export const MessageType = {
  /** Local: time to campaign. */
  Hup: 'hup',
  Append: 'append',
  AppendResponse: 'append-response',
  Vote: 'vote',
  VoteResponse: 'vote-response',
  PreVote: 'pre-vote',
  PreVoteResponse: 'pre-vote-response',
  Heartbeat: 'heartbeat',
  HeartbeatResponse: 'heartbeat-response',
  /** One chunk of an InstallSnapshot transfer. */
  Snapshot: 'snapshot',
  /** A follower's acknowledgement of the snapshot bytes it holds so far. */
  SnapshotResponse: 'snapshot-response',
  /** Sent by a leader handing over leadership: campaign now, skipping PreVote and leases. */
  TimeoutNow: 'timeout-now',
} as const
export type MessageType = (typeof MessageType)[keyof typeof MessageType]

/**
 * Why a vote was requested. `transfer` bypasses leases (the leader asked for it); `leader-lost`
 * marks a campaign started because the host saw the leader's connection close.
 */
export const CampaignReason = {
  Election: 'election',
  Transfer: 'transfer',
  LeaderLost: 'leader-lost',
} as const
export type CampaignReason = (typeof CampaignReason)[keyof typeof CampaignReason]

/** One chunk of a snapshot in flight (Raft §7 InstallSnapshot, with offset/done). */
export interface SnapshotChunk {
  readonly metadata: SnapshotMetadata
  readonly offset: number
  readonly totalBytes: number
  readonly data: Uint8Array
}

/**
 * A Raft message. Fields not used by a type are absent. Field meanings follow etcd's raftpb:
 * for Append, (logTerm, index) name the entry preceding `entries`; for AppendResponse, `index` is
 * the last index the follower now matches (or the rejected index, with `reject`).
 */
export interface Message {
  readonly type: MessageType
  readonly from: NodeId
  readonly to: NodeId
  readonly term: number
  readonly logTerm?: number
  readonly index?: number
  readonly entries?: readonly Entry[]
  readonly commit?: number
  /**
   * Refused. On a SnapshotResponse: the follower's log is empty while the snapshot lists it as a
   * voter, so it lost the state it once acknowledged and must not be restored in place (replace it).
   */
  readonly reject?: boolean
  readonly rejectHint?: number
  readonly reason?: CampaignReason
  /** ReadIndex request context carried by heartbeats and echoed in their responses. */
  readonly context?: string
  /** Leader's tick when it sent a heartbeat, echoed back: the basis of the leader lease. */
  readonly sentTick?: number
  readonly snapshot?: SnapshotChunk
  /** SnapshotResponse: how many bytes of the snapshot the follower holds (the leader resumes there). */
  readonly bytesReceived?: number
}

/** A ReadIndex answer: once the state machine has applied `index`, serve the read named `context`. */
export interface ReadState {
  readonly index: number
  readonly context: string
}

/**
 * What the host must do, in this order (the order is the correctness argument, Raft §5 and etcd's
 * node.go):
 *   1. persist `snapshot` (if any), then `entries` and `hardState` atomically; with fsync when
 *      `mustSync` (a commit index alone may be written without one: a restart re-learns it);
 *   2. send `messages` (only after step 1: a vote or an acknowledgement must be durable first);
 *   3. install `snapshot` into the state machine, then apply `committedEntries` in order;
 *   4. hand `readStates` to the waiting readers once the applied index reaches each one's index, and
 *      fail the reads named in `droppedReads` (leadership changed before they were confirmed);
 *   5. call `advance(ready)`.
 * The one exception to "persist, then send": heartbeats and their responses may be taken out early
 * with RawNode.takeHeartbeats() and sent at once (they carry no unpersisted state).
 */
export interface Ready {
  /** Present when leader or role changed since the last Ready. */
  readonly softState?: SoftState
  /** Present when term, vote or commit changed since the last Ready. */
  readonly hardState?: HardState
  readonly entries: readonly Entry[]
  readonly snapshot?: Snapshot
  /**
   * Whether step 1 must be synced to disk before step 2 (etcd's MustSync): true when there are
   * entries or a snapshot, or when the term or vote changed. False when only the commit index moved.
   */
  readonly mustSync: boolean
  readonly messages: readonly Message[]
  readonly committedEntries: readonly Entry[]
  readonly readStates: readonly ReadState[]
  /** Contexts of ReadIndex requests that will never be answered: report them as failed. */
  readonly droppedReads: readonly string[]
}

/** What a hot path needs to know, without allocating the membership or the progress map. */
export interface BasicStatus {
  readonly id: NodeId
  readonly role: Role
  readonly term: number
  readonly vote: NodeId
  readonly leader: NodeId
  readonly commit: number
  readonly applied: number
  readonly firstIndex: number
  readonly lastIndex: number
  readonly leadTransferee: NodeId
  /** Leading, or the leader was heard within an election timeout (Raft.leaderHeardRecently). */
  readonly leaderHeardRecently: boolean
}

export interface Status extends BasicStatus {
  readonly confState: ConfState
  /** Leader only: each peer's replication progress. */
  readonly progress?: Readonly<Record<number, PeerProgress>>
}

/** The leader's view of one member's replication (Status.progress). */
export interface PeerProgress {
  readonly match: number
  readonly next: number
  readonly state: string
  readonly recentActive: boolean
  /** The member reported that it lost its state (an empty log while a voter): nothing is sent to it. */
  readonly lostState: boolean
}

/** A seeded source of randomness; the core never touches Math.random. */
export interface Rng {
  /** A uniformly distributed integer in [0, maxExclusive). */
  nextInt(maxExclusive: number): number
}

export const ReadMode = {
  /** ReadIndex confirmed by a heartbeat round to a quorum (Raft thesis §6.4). */
  Linearizable: 'linearizable',
  /** Served from the leader's lease (quorum heard within the election timeout) under CheckQuorum. */
  Lease: 'lease',
} as const
export type ReadMode = (typeof ReadMode)[keyof typeof ReadMode]
