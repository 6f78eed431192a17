/**
 * What the process exit code means, for scripts. Stable: scripts branch on these.
 *   0 ok · 1 internal error · 2 bad input (usage, INVALID, TOO_LARGE, a bad cluster file) · 3 not
 *   found · 4 stale · 5 unavailable (NOT_LEADER with no leader to follow, TIMEOUT, UNAVAILABLE) ·
 *   6 unauthorized · 7 a replica refused to start as it is (LOST_STATE, CLUSTER_EXISTS,
 *   NOT_A_MEMBER, NEEDS_NEW: the message says what to do) · 8 the data dir is locked by another
 *   process · 9 the data dir is corrupt or of an unknown format · 10 the disk failed (IO)
 */
export const EXIT = {
  OK: 0,
  INTERNAL: 1,
  BAD_INPUT: 2,
  NOT_FOUND: 3,
  STALE: 4,
  UNAVAILABLE: 5,
  UNAUTHORIZED: 6,
  REFUSED_START: 7,
  LOCKED: 8,
  CORRUPT: 9,
  IO: 10,
} as const

const BY_CODE: Record<string, number> = {
  INVALID: EXIT.BAD_INPUT,
  TOO_LARGE: EXIT.BAD_INPUT,
  INVALID_CLUSTER: EXIT.BAD_INPUT,
  NOT_FOUND: EXIT.NOT_FOUND,
  STALE: EXIT.STALE,
  NOT_LEADER: EXIT.UNAVAILABLE,
  TIMEOUT: EXIT.UNAVAILABLE,
  UNAVAILABLE: EXIT.UNAVAILABLE,
  UNAUTHORIZED: EXIT.UNAUTHORIZED,
  LOST_STATE: EXIT.REFUSED_START,
  CLUSTER_EXISTS: EXIT.REFUSED_START,
  NOT_A_MEMBER: EXIT.REFUSED_START,
  NEEDS_NEW: EXIT.REFUSED_START,
  LOCKED: EXIT.LOCKED,
  CORRUPT: EXIT.CORRUPT,
  CORRUPT_SNAPSHOT: EXIT.CORRUPT,
  UNSUPPORTED_VERSION: EXIT.CORRUPT,
  IO: EXIT.IO,
}

export function exitCodeFor(error: unknown): number {
  const code = (error as { code?: unknown }).code
  return typeof code === 'string' && code in BY_CODE ? BY_CODE[code]! : EXIT.INTERNAL
}

/** A usage mistake found by our own checks (commander reports its own with exit code 2 too). */
export class UsageError extends Error {
  readonly code = 'INVALID'
}
