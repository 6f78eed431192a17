/** Where the leader is, as a leader hint carries it. */
export interface LeaderAddress {
  readonly id: number
  readonly peerId: string
  readonly multiaddr: string
}

/**
 * Errors of the replica process itself (not of the wire protocol, whose codes live in
 * @nodeledger/protocol). Codes are stable; messages say what to fix.
 *   INVALID_CLUSTER   the cluster file is unreadable, inconsistent, or contradicts the data dir or
 *                     the membership of record (the log's)
 *   INVALID_FRAME     a peer sent a Raft frame that does not decode (the frame is dropped, counted)
 *   STOPPED           the replica is shutting down
 *   LOST_STATE        the data dir is empty but this replica is a member that has run: it may have
 *                     acknowledged writes and votes it no longer holds; it must be replaced
 *   CLUSTER_EXISTS    `--initial-cluster-state new` for a cluster that already exists
 *   NOT_A_MEMBER      the membership of record does not include this replica (never added, or removed)
 *   NEEDS_NEW         the data dir is empty and the replica is a founder that never ran: the cluster
 *                     is being created, start it with `--initial-cluster-state new`
 *   CORRUPT_SNAPSHOT  a state-machine snapshot fails its checksum or does not decode
 */
export type ReplicaErrorCode =
  | 'INVALID_CLUSTER'
  | 'INVALID_FRAME'
  | 'STOPPED'
  | 'LOST_STATE'
  | 'CLUSTER_EXISTS'
  | 'NOT_A_MEMBER'
  | 'NEEDS_NEW'
  | 'CORRUPT_SNAPSHOT'

export class ReplicaError extends Error {
  static override readonly name = 'ReplicaError'
  readonly code: ReplicaErrorCode
  constructor(code: ReplicaErrorCode, message: string) {
    super(message)
    this.name = 'ReplicaError'
    this.code = code
  }
}

/** Why a replica refused a request: the API server maps these to wire error codes one to one. */
export class ReplicaRequestError extends Error {
  static override readonly name = 'ReplicaRequestError'
  readonly code: 'NOT_LEADER' | 'UNAVAILABLE' | 'TIMEOUT' | 'STALE' | 'INVALID' | 'CONFLICT' | 'NOT_READY' | 'REFUSED'
  readonly leader: LeaderAddress | undefined
  constructor(code: ReplicaRequestError['code'], message: string, leader?: LeaderAddress) {
    super(message)
    this.name = 'ReplicaRequestError'
    this.code = code
    this.leader = leader
  }
}
