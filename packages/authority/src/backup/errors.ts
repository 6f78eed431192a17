/**
 * Errors of backup and restore (`nodeledger snapshot save | status | restore`). Codes are stable;
 * messages say what is wrong and what to do.
 *   CORRUPT             a snapshot file fails a check: its length, its checksum, its header, the
 *                       state inside it; nothing is written from it
 *   UNSUPPORTED_VERSION a snapshot file of a format version this build does not read
 *   NOT_FOUND           the snapshot file does not exist
 *   INVALID             a bad argument (a path that cannot be a snapshot file, say)
 *   INVALID_CLUSTER     the cluster file cannot receive this snapshot: the same cluster id as the
 *                       snapshot's cluster, a key of the old cluster, two replicas sharing a data dir
 *   NOT_EMPTY           a target data dir holds something: restore writes only into empty or missing dirs
 *   IO                  the disk refused a read or a write
 */
export type BackupErrorCode =
  | 'CORRUPT'
  | 'UNSUPPORTED_VERSION'
  | 'NOT_FOUND'
  | 'INVALID'
  | 'INVALID_CLUSTER'
  | 'NOT_EMPTY'
  | 'IO'

export class BackupError extends Error {
  static override readonly name = 'BackupError'
  readonly code: BackupErrorCode

  constructor(code: BackupErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'BackupError'
    this.code = code
  }
}

/** An I/O failure as a BackupError: ENOENT is NOT_FOUND, anything else IO, naming what was being done. */
export function ioError(doing: string, error: unknown): BackupError {
  if (error instanceof BackupError) return error
  const code = (error as NodeJS.ErrnoException).code
  return new BackupError(
    code === 'ENOENT' ? 'NOT_FOUND' : 'IO',
    `${doing}: ${(error as Error).message ?? String(error)}`,
    { cause: error },
  )
}
