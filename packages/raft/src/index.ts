/**
 * @nodeledger/raft: the Raft consensus core as a pure state machine (etcd-io/raft's RawNode shape).
 * No sockets, disk, timers, clock or Math.random: time is tick(), randomness a seeded Rng, and all
 * I/O leaves in a Ready.
 *
 * @example
 * ```ts
 * import { RawNode, MemoryStorage, createSeededRng } from '@nodeledger/raft'
 * const storage = MemoryStorage.bootstrap({ voters: [1, 2, 3], learners: [] })
 * const node = new RawNode({ id: 1, storage, rng: createSeededRng(42) })
 * every10ms(() => node.tick())                      // the host owns time
 * onMessage((m) => node.step(m))                   // and the network
 * while (node.hasReady()) {
 *   const ready = node.ready()
 *   persist(ready.hardState, ready.entries, ready.snapshot)   // 1. durable first
 *   send(ready.messages)                                      // 2. then talk
 *   apply(ready.snapshot, ready.committedEntries)             // 3. then apply
 *   node.advance(ready)                                       // 4. hand it back
 * }
 * ```
 */
export { RawNode } from './raw-node.ts'
export type { ProposalTicket } from './raft.ts'
export { MemoryStorage } from './storage.ts'
export type { Storage } from './storage.ts'
export type { Config } from './config.ts'
export { resolveConfig } from './config.ts'
export { RaftError, RaftAssertionError } from './errors.ts'
export type { RaftErrorCode } from './errors.ts'
export { createSeededRng } from './rng.ts'
export { applyConfChange, decodeConfChange, encodeConfChange, confStatesEqual } from './conf-change.ts'
export { entrySizeBytes } from './entry.ts'
export * from './types.ts'
export * as defaults from './constants.ts'
