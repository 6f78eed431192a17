import type { NodeId } from './types.ts'

/**
 * Stable error codes. Messages may change; codes do not. Callers (and tests) branch on `code`.
 *   NOT_LEADER        a write, read or transfer was asked of a replica that does not lead; `leader`
 *                     carries the leader it knows of (0 if none)
 *   DROPPED           the leader refused the proposal (transfer in progress, uncommitted-bytes
 *                     limit, a membership change already pending); retrying later may succeed
 *   INVALID           the request itself is wrong (unknown node, bad config, bad snapshot)
 *   COMPACTED         asked for log entries that a snapshot has replaced
 *   UNAVAILABLE       asked for log entries that storage does not have yet
 *   SNAPSHOT_OUT_OF_DATE  a snapshot older than the one storage already holds
 */
export type RaftErrorCode = 'NOT_LEADER' | 'DROPPED' | 'INVALID' | 'COMPACTED' | 'UNAVAILABLE' | 'SNAPSHOT_OUT_OF_DATE'

export class RaftError extends Error {
  static override readonly name = 'RaftError'
  readonly code: RaftErrorCode
  /** For NOT_LEADER: the leader this replica knows of, or 0. */
  readonly leader: NodeId

  constructor(code: RaftErrorCode, message: string, leader: NodeId = 0) {
    super(message)
    this.name = 'RaftError'
    this.code = code
    this.leader = leader
  }
}

/** A broken invariant inside the core: a bug, never bad input. Crash loudly (TIGER_STYLE). */
export class RaftAssertionError extends Error {
  static override readonly name = 'RaftAssertionError'
  constructor(message: string) {
    super(`raft invariant violated: ${message}`)
    this.name = 'RaftAssertionError'
  }
}

export function assert(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) throw new RaftAssertionError(typeof message === 'string' ? message : message())
}
