/**
 * The error codes of @nodeledger/authority, one table (fastify's habit, STYLE §9). Codes are stable;
 * messages may change and say what to fix. Append new codes here; never rename one.
 */
export const ERROR_CODES = {
  /** The data dir fails validation on open (checksum, missing or unexpected key, broken invariant). */
  CORRUPT: 'CORRUPT',
  /** The data dir was written by a storage format this build does not know. */
  UNSUPPORTED_VERSION: 'UNSUPPORTED_VERSION',
  /** Another process (or another open store in this one) holds the data dir's lock. */
  LOCKED: 'LOCKED',
  /** The disk refused a read or write; after a failed write the store refuses further writes. */
  IO: 'IO',
  /** The store was used after close(). */
  CLOSED: 'CLOSED',
} as const

export type StorageErrorCode = 'CORRUPT' | 'UNSUPPORTED_VERSION' | 'LOCKED' | 'IO' | 'CLOSED'

/** An error of the durable Raft log (src/storage). Tests and callers branch on `code`. */
export class StorageError extends Error {
  static override readonly name = 'StorageError'
  readonly code: StorageErrorCode

  constructor(code: StorageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StorageError'
    this.code = code
  }
}
