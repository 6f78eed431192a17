/**
 * The API's error codes (PROTOCOL.md "Errors"). Codes are stable; messages are not. Clients branch
 * on `code`, and a NOT_LEADER error carries the leader (when known) in `leader`.
 *
 *   NOT_LEADER   this replica does not lead; `leader` says who does, if it knows
 *   TIMEOUT      the request's deadline passed before it was answered (commit or read not confirmed)
 *   INVALID      a malformed frame, message or value; retrying the same request cannot help
 *   UNAUTHORIZED the stream's peer may not do this (a delta for another origin)
 *   STALE        a delta whose seq is below the origin's last applied seq
 *   TOO_LARGE    a frame, string, array or page beyond its limit
 *   UNAVAILABLE  no quorum, shutting down, or the connection or stream failed
 *   NOT_FOUND    the requested index was compacted away, or the requested thing does not exist
 *   CONFLICT     a membership change names an id, peer id or address already in use (or an id
 *                that was a member before: ids are never reused)
 *   NOT_READY    a learner is not caught up enough to be promoted yet; ask again later
 *   REFUSED      a membership change the cluster must not make as it stands: removing the last
 *                voter, removing the leader before handing over leadership
 */
export type ProtocolErrorCode =
  | 'NOT_LEADER'
  | 'TIMEOUT'
  | 'INVALID'
  | 'UNAUTHORIZED'
  | 'STALE'
  | 'TOO_LARGE'
  | 'UNAVAILABLE'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'NOT_READY'
  | 'REFUSED'

export const PROTOCOL_ERROR_CODES: readonly ProtocolErrorCode[] = [
  'NOT_LEADER',
  'TIMEOUT',
  'INVALID',
  'UNAUTHORIZED',
  'STALE',
  'TOO_LARGE',
  'UNAVAILABLE',
  'NOT_FOUND',
  'CONFLICT',
  'NOT_READY',
  'REFUSED',
]

/** Codes after which the same request may succeed on another replica or a little later. */
export const RETRYABLE_ERROR_CODES: readonly ProtocolErrorCode[] = ['NOT_LEADER', 'TIMEOUT', 'UNAVAILABLE']

export function isRetryable(code: ProtocolErrorCode): boolean {
  return RETRYABLE_ERROR_CODES.includes(code)
}

/** Who leads, as a follower knows it: Raft id, peer id and dialable multiaddrs (ending in /p2p/<peerId>). */
export interface LeaderHint {
  readonly id: number
  readonly peerId: string
  readonly multiaddrs: readonly string[]
}

/** The wire form of an error (`error` in a response frame). */
export interface WireError {
  readonly code: ProtocolErrorCode
  readonly message: string
  readonly leader?: LeaderHint
}

export class ProtocolError extends Error {
  static override readonly name = 'ProtocolError'
  readonly code: ProtocolErrorCode
  readonly leader?: LeaderHint

  constructor(code: ProtocolErrorCode, message: string, options?: { cause?: unknown; leader?: LeaderHint }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'ProtocolError'
    this.code = code
    if (options?.leader !== undefined) this.leader = options.leader
  }
}

export function isProtocolError(error: unknown): error is ProtocolError {
  return error instanceof ProtocolError
}

/**
 * The wire form of any error. A ProtocolError keeps its code (and leader hint); anything else is
 * a server bug or an I/O failure the client cannot act on beyond retrying: UNAVAILABLE, without
 * internal detail.
 */
export function errorToWire(error: unknown): WireError {
  if (error instanceof ProtocolError) {
    const message = error.message.length > 1024 ? `${error.message.slice(0, 1021)}...` : error.message
    return error.leader === undefined
      ? { code: error.code, message }
      : { code: error.code, message, leader: error.leader }
  }
  return { code: 'UNAVAILABLE', message: 'internal error' }
}

/** A validated WireError (see codec.ts `checkWireError`) back to a throwable ProtocolError. */
export function errorFromWire(wire: WireError): ProtocolError {
  return new ProtocolError(wire.code, wire.message, wire.leader === undefined ? undefined : { leader: wire.leader })
}
