/**
 * Backup and restore: the snapshot file (`nodeledger snapshot save` writes it from the `snapshot`
 * op, `status` reads it) and seeding a new cluster's data dirs from it (`restore`).
 * docs/PROTOCOL.md "Snapshot file" and "Restore" describe both.
 */
export { BackupError } from './errors.ts'
export type { BackupErrorCode } from './errors.ts'
export {
  SNAPSHOT_FILE_BYTES_MAX,
  SNAPSHOT_FILE_HEADER_BYTES_MAX,
  SNAPSHOT_FILE_VERSION,
  decodeSnapshotFile,
  encodeSnapshotFile,
  inspectSnapshotFile,
  readSnapshotFile,
  writeSnapshotFileAtomic,
} from './snapshot-file.ts'
export type { SnapshotContents, SnapshotFile, SnapshotFileHeader } from './snapshot-file.ts'
export { restoreSnapshot } from './restore.ts'
export type { RestoreOptions, RestoreResult, RestoredReplica } from './restore.ts'
