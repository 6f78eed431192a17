/**
 * The replica's durable Raft log on LevelDB. See level-storage.ts for the contract and codec.ts for
 * the on-disk format.
 */
export { LevelStorage } from './level-storage.ts'
export type { LevelStorageOptions, LevelStorageStats, StorageUpdate } from './level-storage.ts'
export { FORMAT_VERSION } from './codec.ts'
export { StorageError } from '../errors.ts'
export type { StorageErrorCode } from '../errors.ts'
