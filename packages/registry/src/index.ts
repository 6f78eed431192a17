/**
 * @nodeledger/registry: the NodeData registry that the Raft log replicates. NodeData records,
 * deltas and observations, their merge rules, the codec (and the wire MessagePack dialect every
 * nodeledger protocol uses, msgpack.ts) and the deterministic state machine. Imports nothing of ours; does no I/O and reads no clock.
 *
 * @example
 * ```ts
 * import { Registry, encodeCommand } from '@nodeledger/registry'
 *
 * const registry = new Registry({ replicaPeerIds: [replicaA, replicaB, replicaC] })
 *
 * // Leader: stamp the command with its clock and propose the bytes to Raft.
 * const data = encodeCommand({
 *   timestampMs: Date.now(),
 *   command: {
 *     kind: 'delta',
 *     submitterPeerId: worker, // the peer the leader authenticated
 *     delta: { originPeerId: worker, seq: 7, fields: { isTwitterScraper: true, multiaddrs: ['/ip4/10.0.0.5/tcp/4001'] } },
 *   },
 * })
 *
 * // Every replica, for each committed entry, in order:
 * const result = registry.apply({ index: 42, data })
 * if (result.status === 'rejected') log.warn({ code: result.code }, 'entry rejected')
 *
 * registry.get(worker)               // the record, as of index 42
 * registry.eligible('twitter')       // active staked twitter workers, most reliable first
 * registry.changesSince(40)          // what a watcher at index 40 has not seen
 * const bytes = registry.snapshot()  // identical bytes on every replica at index 42
 * new Registry().restore(bytes)
 * ```
 */

export { Registry } from './registry.ts'
export type { RegistryOptions } from './registry.ts'
export type {
  ApplyResult,
  Changes,
  Command,
  CommandEnvelope,
  CommandKind,
  Delta,
  ListFilter,
  LivenessReason,
  ObservationEvent,
  RegistryLogEntry,
  RegistryStats,
  StaleReason,
} from './commands.ts'
export {
  CAPABILITY_FIELD,
  CATEGORIES,
  LAST_LEFT_REASONS,
  RECORD_FIELDS,
  RECORD_FIELDS_V1,
  SELF_REPORTED_FIELDS,
  canDoWork,
  emptyRecord,
  uptimeMs,
} from './model.ts'
export type { Category, LastLeftReason, NodeData, SelfReported, SelfReportedField } from './model.ts'
export {
  SNAPSHOT_COUNTERS,
  decodeCommand,
  decodeRecord,
  decodeSnapshot,
  encodeCommand,
  encodeRecord,
  encodeRecordForDigest,
  encodeSnapshot,
  encodeValidatedCommand,
} from './codec.ts'
export { checkDelta, checkMultiaddrs, checkPeerId } from './validate.ts'
export { MSGPACK_DEPTH_MAX, MsgpackError, checkWire, packWire, unpackWire } from './msgpack.ts'
export type { DecodeOptions, SnapshotState } from './codec.ts'
export { mergeDelta, observeJoined, observeLeft, endPresences, setLiveness } from './merge.ts'
export type { MergeOutcome } from './merge.ts'
export { compareReliability } from './ranking.ts'
export { DIGEST_BYTES, recordHash, recordsDigest } from './digest.ts'
export { changedFields, foldDeltas } from './deltas.ts'
export { REGISTRY_ERROR_CODES, RegistryAssertionError, RegistryError } from './errors.ts'
export type { RegistryErrorCode } from './errors.ts'
export * from './constants.ts'
