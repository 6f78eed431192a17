import type { ClusterMember } from './cluster-file.ts'

/**
 * Errors of the replica process itself (not of the wire protocol, whose codes live in
 * @nodeledger/protocol). Codes are stable; messages say what to fix.
 *   INVALID_CLUSTER  the cluster file is unreadable or inconsistent
 *   INVALID_FRAME    a peer sent a Raft frame that does not decode (the frame is dropped, counted)
 *   STOPPED          the replica is shutting down
 */
export type ReplicaErrorCode = 'INVALID_CLUSTER' | 'INVALID_FRAME' | 'STOPPED'

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
  readonly code: 'NOT_LEADER' | 'UNAVAILABLE' | 'TIMEOUT' | 'STALE'
  readonly leader: ClusterMember | undefined
  constructor(code: ReplicaRequestError['code'], message: string, leader?: ClusterMember) {
    super(message)
    this.name = 'ReplicaRequestError'
    this.code = code
    this.leader = leader
  }
}
