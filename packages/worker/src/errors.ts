/**
 * The error codes of @nodeledger/worker, one table (STYLE §9). Codes are stable; messages may change
 * and say what to fix. Append new codes here; never rename one.
 */
export const WORKER_ERROR_CODES = {
  /** The cache dir fails validation on open (checksum, shape, unexpected key, broken invariant). */
  CORRUPT: 'CORRUPT',
  /** The cache dir was written by a format this build does not know. */
  UNSUPPORTED_VERSION: 'UNSUPPORTED_VERSION',
  /** Another process (or another open cache in this one) holds the dir's LevelDB lock. */
  LOCKED: 'LOCKED',
  /** The disk refused a read or write; after a failed write the cache refuses further writes. */
  IO: 'IO',
  /** The cache was used after close(). */
  CLOSED: 'CLOSED',
  /** A tracker option makes no sense (a heartbeat interval that cannot keep the lease alive). */
  INVALID_CONFIG: 'INVALID_CONFIG',
} as const

export type WorkerCacheErrorCode = Exclude<keyof typeof WORKER_ERROR_CODES, 'INVALID_CONFIG'>

/** An error of the worker's durable cache (src/cache). Callers and tests branch on `code`. */
export class WorkerCacheError extends Error {
  static override readonly name = 'WorkerCacheError'
  readonly code: WorkerCacheErrorCode

  constructor(code: WorkerCacheErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'WorkerCacheError'
    this.code = code
  }
}

/**
 * A tracker refused its options before touching anything (no cache opened, no host started): the
 * message names the values and what to change. The CLI maps INVALID_CONFIG to exit code 2.
 */
export class WorkerConfigError extends Error {
  static override readonly name = 'WorkerConfigError'
  readonly code = WORKER_ERROR_CODES.INVALID_CONFIG

  constructor(message: string) {
    super(message)
    this.name = 'WorkerConfigError'
  }
}

/** A broken invariant: a bug in the caller or in this package, never bad input. Crash loudly. */
export class WorkerAssertionError extends Error {
  static override readonly name = 'WorkerAssertionError'
  constructor(message: string) {
    super(`worker invariant violated: ${message}`)
    this.name = 'WorkerAssertionError'
  }
}

export function assert(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) throw new WorkerAssertionError(typeof message === 'string' ? message : message())
}
