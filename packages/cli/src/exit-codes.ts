/**
 * What the process exit code means, for scripts. Stable: scripts branch on these.
 *   0 ok · 1 internal error · 2 bad input (usage, INVALID, TOO_LARGE) · 3 not found · 4 stale
 *   5 unavailable (NOT_LEADER with no leader to follow, TIMEOUT, UNAVAILABLE) · 6 unauthorized
 */
export const EXIT = {
  OK: 0,
  INTERNAL: 1,
  BAD_INPUT: 2,
  NOT_FOUND: 3,
  STALE: 4,
  UNAVAILABLE: 5,
  UNAUTHORIZED: 6,
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
}

export function exitCodeFor(error: unknown): number {
  const code = (error as { code?: unknown }).code
  return typeof code === 'string' && code in BY_CODE ? BY_CODE[code]! : EXIT.INTERNAL
}

/** A usage mistake found by our own checks (commander reports its own with exit code 2 too). */
export class UsageError extends Error {
  readonly code = 'INVALID'
}
