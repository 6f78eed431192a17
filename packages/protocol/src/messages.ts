import type { Delta, ListFilter, NodeData } from '@nodeledger/registry'
import type { LeaderHint, ProtocolError } from './errors.ts'

/**
 * The client API's messages as values (PROTOCOL.md "Messages"). The wire adds `v` to every frame;
 * codec.ts adds and checks it, so these types do not carry it.
 */

/**
 * How a read is served (PROTOCOL.md "Consistency"):
 *   linearizable  the leader confirms leadership with a quorum (ReadIndex), then reads; the default
 *   lease         the leader reads while its lease holds, without a quorum round trip
 *   stale         any replica reads its own applied state, which may lag
 */
export type Consistency = 'linearizable' | 'lease' | 'stale'
export const CONSISTENCIES: readonly Consistency[] = ['linearizable', 'lease', 'stale']
export const CONSISTENCY_DEFAULT: Consistency = 'linearizable'

export type Op =
  | 'submit'
  | 'get'
  | 'list'
  | 'since'
  | 'watch'
  | 'status'
  | 'presence'
  | 'member'
  | 'transfer'
  | 'snapshot'
export const OPS: readonly Op[] = [
  'submit',
  'get',
  'list',
  'since',
  'watch',
  'status',
  'presence',
  'member',
  'transfer',
  'snapshot',
]

/** A membership change an operator asks the leader for (PROTOCOL.md "Membership"). */
export type MemberAction = 'add' | 'promote' | 'remove'
export const MEMBER_ACTIONS: readonly MemberAction[] = ['add', 'promote', 'remove']

/** What a node tells the leader about its own liveness (PROTOCOL.md "Presence"). */
export type PresenceEvent = 'heartbeat' | 'leave'
export const PRESENCE_EVENTS: readonly PresenceEvent[] = ['heartbeat', 'leave']

export interface SubmitRequest {
  readonly op: 'submit'
  readonly delta: Delta
}
export interface GetRequest {
  readonly op: 'get'
  readonly peerId: string
  readonly consistency: Consistency
}
/** `filter.afterPeerId` and `filter.limit` are the page; a decoded filter always has `limit`. */
export interface ListRequest {
  readonly op: 'list'
  readonly filter: ListFilter
  readonly consistency: Consistency
}
export interface SinceRequest {
  readonly op: 'since'
  readonly index: number
  readonly limit: number
}
export interface WatchRequest {
  readonly op: 'watch'
  readonly fromIndex: number
}
export interface StatusRequest {
  readonly op: 'status'
}
/**
 * A node's heartbeat or graceful leave, for its own record (the leader's lease, etcd-style). The
 * leader keeps last-seen times in memory and logs only transitions, so a heartbeat that changes
 * nothing costs no log entry.
 */
export interface PresenceRequest {
  readonly op: 'presence'
  readonly peerId: string
  readonly event: PresenceEvent
}

/**
 * One single-server membership change, by an operator, on the leader: `add` a learner (a new id, with
 * its peer id and address), `promote` a caught-up learner to voter, `remove` a member.
 */
export interface MemberRequest {
  readonly op: 'member'
  readonly action: MemberAction
  /** The member's Raft id (`id` is a session's request id). */
  readonly memberId: number
  /** `add` only: the new member's peer id, and its multiaddr (ending in /p2p/<peerId>). */
  readonly peerId?: string
  readonly multiaddr?: string
}
/** Hand leadership to voter `to` (thesis §3.10); answered once it leads. */
export interface TransferRequest {
  readonly op: 'transfer'
  readonly to: number
}
/**
 * The leader's state machine snapshot at a linearizable point (operators only), for a backup
 * (`nodeledger snapshot save`). Answered on its own stream with snapshot frames: a header, the data
 * in chunks, an end with the checksum (PROTOCOL.md "Snapshot").
 */
export interface SnapshotRequest {
  readonly op: 'snapshot'
}

export type ApiRequest =
  | SubmitRequest
  | MemberRequest
  | TransferRequest
  | GetRequest
  | ListRequest
  | SinceRequest
  | WatchRequest
  | StatusRequest
  | PresenceRequest
  | SnapshotRequest

/** A decoded request frame: the request, and its `id` when it was sent in a session (PROTOCOL.md "Sessions"). */
export type DecodedRequest = ApiRequest & { readonly id?: number }

/** The ops answered by a stream of frames, each on a stream of its own (never in a session). */
export type StreamOp = 'watch' | 'snapshot'

/** The ops answered by one response frame: every op but `watch` and `snapshot`, and the only ones a session carries. */
export type UnaryOp = Exclude<Op, StreamOp>

/** What a caller builds: reads may leave consistency out (linearizable). */
export type ApiRequestInit =
  | SubmitRequest
  | MemberRequest
  | TransferRequest
  | (Omit<GetRequest, 'consistency'> & { readonly consistency?: Consistency })
  | (Omit<ListRequest, 'consistency'> & { readonly consistency?: Consistency })
  | SinceRequest
  | WatchRequest
  | StatusRequest
  | PresenceRequest
  | SnapshotRequest

/** `index`: the log index of the entry that carries the delta (for a duplicate, of the first one). */
export interface SubmitResult {
  readonly index: number
  readonly duplicate: boolean
}

/**
 * `active`: whether the registry holds the node active once this answer is sent. `index`: the
 * entry that made the transition, or the leader's applied index when nothing needed logging.
 */
export interface PresenceResult {
  readonly active: boolean
  readonly index: number
}

/** `index`: the entry that made the change (applied on the leader); `members`: the membership after it. */
export interface MemberResult {
  readonly index: number
  readonly members: readonly MemberStatus[]
}

/** `leader`: the voter that leads now (the one asked for). */
export interface TransferResult {
  readonly leader: number
}

/** `index`: the applied index the read was served at. */
export interface GetResult {
  readonly record: NodeData | null
  readonly index: number
}

/** `nextAfterPeerId`: present when more records may follow; pass it as the next page's afterPeerId. */
export interface ListResult {
  readonly records: readonly NodeData[]
  readonly index: number
  readonly nextAfterPeerId?: string
}

/** The registry's Changes: records changed after the request's index, through `throughIndex`. */
export interface SinceResult {
  readonly records: readonly NodeData[]
  readonly throughIndex: number
  readonly more: boolean
}

/** One watch event: the records changed by entries up to `throughIndex`, after the previous event. */
export interface WatchEvent {
  readonly records: readonly NodeData[]
  readonly throughIndex: number
}

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader'
export const ROLES: readonly Role[] = ['follower', 'pre-candidate', 'candidate', 'leader']

export interface MemberStatus {
  readonly id: number
  readonly peerId: string
  /** Dialable multiaddr ending in /p2p/<peerId>. */
  readonly multiaddr: string
  readonly voter: boolean
  /**
   * The member has run (acknowledged an entry beyond the cluster's creation, or was promoted after
   * catching up). A started member whose disk is lost must be replaced, never recreated.
   */
  readonly started: boolean
}

export interface StatusResult {
  /** The cluster's id (the cluster file's `clusterId`): replicas of different clusters never mix. */
  readonly clusterId: string
  readonly id: number
  readonly peerId: string
  readonly role: Role
  readonly term: number
  readonly leader: LeaderHint | null
  readonly commit: number
  readonly applied: number
  readonly firstIndex: number
  readonly lastIndex: number
  readonly snapshotIndex: number
  /** The membership of record: the log's, with each member's address (not the cluster file's). */
  readonly members: readonly MemberStatus[]
  readonly registryRecords: number
  /**
   * Digest (hex, 32 bytes) of the registry's records at `applied`: the XOR of SHA-256 over each
   * record's encoding. Replicas that applied the same log report the same digest, so a person or a
   * test can see at a glance that they agree.
   */
  readonly registryDigest: string
  /** Software version of the replica. */
  readonly version: string
}

/**
 * The first frame of a snapshot answer: where the snapshot stands in the log and what it holds,
 * all read in one step with the data. `members` is the membership of record at `index` (the
 * directory's addresses, the Raft configuration's voter flag); `records` and `registryDigest` are
 * the registry's at `index`, as status would report them there.
 */
export interface SnapshotHeader {
  readonly clusterId: string
  /** The replica that took the snapshot: the leader when it answered. */
  readonly leader: number
  /** The applied index the snapshot was taken at, at or after the read's ReadIndex. */
  readonly index: number
  /** The term of the entry at `index`. */
  readonly term: number
  readonly members: readonly MemberStatus[]
  readonly records: number
  readonly registryDigest: string
  /** Bytes of data the chunks carry, in all. */
  readonly totalBytes: number
}

/** One piece of the data: `data` belongs at byte `offset`, which is every byte sent before it. */
export interface SnapshotChunk {
  readonly offset: number
  readonly data: Uint8Array
}

/** The last frame of a complete answer: the data's length and SHA-256 (32 bytes). */
export interface SnapshotEnd {
  readonly totalBytes: number
  readonly sha256: Uint8Array
}

/** A decoded snapshot frame: one of the three kinds, or the error that ends the answer. */
export type SnapshotFrame =
  | { readonly ok: true; readonly kind: 'header'; readonly header: SnapshotHeader }
  | { readonly ok: true; readonly kind: 'chunk'; readonly chunk: SnapshotChunk }
  | { readonly ok: true; readonly kind: 'end'; readonly end: SnapshotEnd }
  | { readonly ok: false; readonly error: ProtocolError }

/** The result type of each op; `watch` answers with WatchEvent frames, `snapshot` with snapshot frames. */
export interface ResultByOp {
  readonly submit: SubmitResult
  readonly get: GetResult
  readonly list: ListResult
  readonly since: SinceResult
  readonly watch: WatchEvent
  readonly status: StatusResult
  readonly presence: PresenceResult
  readonly member: MemberResult
  readonly transfer: TransferResult
  readonly snapshot: SnapshotHeader
}

/** A decoded response: the result, or the server's error as a throwable ProtocolError. */
export type ApiResponse<R> =
  | { readonly ok: true; readonly result: R }
  | { readonly ok: false; readonly error: ProtocolError }

/**
 * A frame read from a session (codec.ts `decodeSessionResponse`): the answer to request `id`;
 * `response` undefined when the id is not one the reader is waiting for; or, with no `id`, the
 * server's error that ends the whole session.
 */
export type SessionResponse =
  | { readonly id: number; readonly response: ApiResponse<ResultByOp[UnaryOp]> | undefined }
  | { readonly id: undefined; readonly response: { readonly ok: false; readonly error: ProtocolError } }

/** A decoded watch frame: an event, or the error that ends the watch. */
export type WatchFrame =
  | { readonly ok: true; readonly event: WatchEvent }
  | { readonly ok: false; readonly error: ProtocolError }
