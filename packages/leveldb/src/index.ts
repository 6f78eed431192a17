import { open as openFile } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * @nodeledger/leveldb: what the replica's log store and the worker's cache share about their
 * LevelDB dirs. Each maps the outcome to its own typed error (StorageError, WorkerCacheError).
 *
 * ```ts
 * const failure = levelFailure(error)          // { kind: 'LOCKED' | 'CORRUPT' | 'IO', code, detail }
 * await writeMarkerFile(dir, 'NODELEDGER', text) // file and directory entry fsynced
 * ```
 */

/** What a LevelDB error means to a caller: another holder of the lock, damaged files, or anything else. */
export type LevelFailureKind = 'LOCKED' | 'CORRUPT' | 'IO'

export interface LevelFailure {
  readonly kind: LevelFailureKind
  /** LevelDB's own code (`LEVEL_LOCKED`, `LEVEL_CORRUPTION`, …), from the error or its cause. */
  readonly code: string | undefined
  /** The most specific message available, for a person. */
  readonly detail: string
}

/** Reads an error thrown by `level` (abstract-level wraps the real one in `cause`). */
export function levelFailure(error: unknown): LevelFailure {
  const own = (error as { code?: unknown } | null)?.code
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause
  const code = typeof cause?.code === 'string' ? cause.code : typeof own === 'string' ? own : undefined
  const detail = String(cause?.message ?? (error as Error | null)?.message)
  const kind: LevelFailureKind = code === 'LEVEL_LOCKED' ? 'LOCKED' : code === 'LEVEL_CORRUPTION' ? 'CORRUPT' : 'IO'
  return { kind, code, detail }
}

/**
 * Durably marks `dir` as initialized: the file and the directory entry are both fsynced, so after a
 * crash the marker exists only if the dir's first batch (written before it) is durable too.
 */
export async function writeMarkerFile(dir: string, fileName: string, content: string): Promise<void> {
  const file = await openFile(join(dir, fileName), 'w')
  try {
    await file.writeFile(content)
    await file.sync()
  } finally {
    await file.close()
  }
  const directory = await openFile(dir, 'r')
  try {
    await directory.sync()
  } finally {
    await directory.close()
  }
}
