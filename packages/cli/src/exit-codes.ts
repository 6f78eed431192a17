/**
 * What the process exit code means, for scripts. Stable: scripts branch on these, and a code is
 * never reused for another meaning. `nodeledger --help` and the README print the same table
 * (EXIT_CODE_TABLE).
 */
export const EXIT = {
  OK: 0,
  /** A bug in nodeledger: the message and NODELEDGER_DEBUG=1's stack trace belong in an issue. */
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
  CONFLICT: 11,
  NOT_READY: 12,
  REFUSED: 13,
  MISMATCH: 14,
  ADDRESS_IN_USE: 15,
  /** Ctrl-C on a one-shot command still at work (a follow-up command such as watch exits 0). */
  INTERRUPTED: 130,
} as const

/** One line per code, for `--help` and the README. */
export const EXIT_CODE_TABLE: ReadonlyArray<readonly [number, string]> = [
  [EXIT.OK, 'ok'],
  [EXIT.INTERNAL, 'internal error (a bug: rerun with NODELEDGER_DEBUG=1 and report it)'],
  [
    EXIT.BAD_INPUT,
    'bad input: usage, a bad flag value, cluster file or key file (INVALID, TOO_LARGE), a restore into a data dir that is not empty (NOT_EMPTY)',
  ],
  [EXIT.NOT_FOUND, 'not found (no such record, replica or member)'],
  [EXIT.STALE, 'stale: a newer write of that node was applied first'],
  [EXIT.UNAVAILABLE, 'unavailable: no leader, no quorum, nobody answered in time'],
  [EXIT.UNAUTHORIZED, 'unauthorized: the key is not an operator of the cluster file'],
  [EXIT.REFUSED_START, 'a replica refused to start as it is (LOST_STATE, CLUSTER_EXISTS, NOT_A_MEMBER, NEEDS_NEW)'],
  [EXIT.LOCKED, 'the data dir is locked by another process'],
  [EXIT.CORRUPT, 'the data dir or snapshot file is corrupt or of an unknown format'],
  [EXIT.IO, 'the disk failed (IO)'],
  [EXIT.CONFLICT, 'conflict: that id, peer id or address is (or was) a member'],
  [EXIT.NOT_READY, 'not ready: the learner is not caught up yet (member promote --wait waits)'],
  [EXIT.REFUSED, 'refused: removing the last voter or the leader (transfer-leader first)'],
  [EXIT.MISMATCH, 'mismatch: a replica is not who the cluster file says (peer id, id or clusterId)'],
  [
    EXIT.ADDRESS_IN_USE,
    "cannot listen on an address, the replica's or its --http one (in use, or not an address of this host)",
  ],
  [EXIT.INTERRUPTED, 'interrupted (Ctrl-C) before the command finished; a re-run resumes'],
]

export function exitCodeHelp(): string {
  return `Exit codes:\n${EXIT_CODE_TABLE.map(([code, meaning]) => `  ${String(code).padStart(3)}  ${meaning}`).join('\n')}`
}

const BY_CODE: Record<string, number> = {
  INVALID: EXIT.BAD_INPUT,
  TOO_LARGE: EXIT.BAD_INPUT,
  INVALID_CLUSTER: EXIT.BAD_INPUT,
  INVALID_KEY: EXIT.BAD_INPUT,
  INVALID_CONFIG: EXIT.BAD_INPUT,
  INVALID_ADDRESS: EXIT.BAD_INPUT,
  NOT_EMPTY: EXIT.BAD_INPUT,
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
  CONFLICT: EXIT.CONFLICT,
  NOT_READY: EXIT.NOT_READY,
  REFUSED: EXIT.REFUSED,
  MISMATCH: EXIT.MISMATCH,
  EADDRINUSE: EXIT.ADDRESS_IN_USE,
  EADDRNOTAVAIL: EXIT.ADDRESS_IN_USE,
  EACCES: EXIT.ADDRESS_IN_USE,
  HTTP_LISTEN_FAILED: EXIT.ADDRESS_IN_USE,
  INTERRUPTED: EXIT.INTERRUPTED,
}

export function exitCodeFor(error: unknown): number {
  const code = codeOf(error)
  return code !== undefined && code in BY_CODE ? BY_CODE[code]! : EXIT.INTERNAL
}

/** The error's code, or its cause's (libp2p wraps the socket's EADDRINUSE). */
export function codeOf(error: unknown): string | undefined {
  for (let current = error, depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string' && code in BY_CODE) return code
    current = (current as { cause?: unknown }).cause
  }
  const own = (error as { code?: unknown } | null)?.code
  return typeof own === 'string' ? own : undefined
}

/** A usage mistake found by our own checks (commander reports its own with exit code 2 too). */
export class UsageError extends Error {
  readonly code = 'INVALID'
}

/** A refusal found by the CLI itself, with the wire or CLI code it stands for (CONFLICT, MISMATCH, …). */
export class CliError extends Error {
  readonly code: string
  constructor(code: string, message: string) {
    super(message)
    this.code = code
  }
}
