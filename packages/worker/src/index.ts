/**
 * @nodeledger/worker: the ordinary node of the network (issue 5). So far, its durable local cache:
 * every NodeData record the worker knows, the last log index it applied and its own origin seq, in
 * its own LevelDB, served from memory. The NodeEventTracker (gossip, leader-following sync) builds
 * on it.
 *
 * @example
 * ```ts
 * import { WorkerCache, WorkerCacheError } from '@nodeledger/worker'
 *
 * const cache = await WorkerCache.open(dataDir) // CORRUPT / UNSUPPORTED_VERSION / LOCKED: refuse to start
 * watchFrom(cache.appliedIndex)                 // resume the log where the cache left off
 *
 * await cache.putProvisional(recordFromGossip)  // shown at once, marked provisional
 * await cache.applyConfirmed(changes.records, changes.throughIndex) // the log confirms
 * await cache.replaceAll(snapshot.records, snapshotIndex)           // after a compaction resync
 *
 * await cache.setOwnSeqAtLeast(lastSeqTheAuthorityHas) // after a wiped dir
 * const seq = await cache.reserveSeq()          // durable before use: never reused after a crash
 * publish({ originPeerId: self, seq, fields })
 *
 * cache.get(peerId); cache.all(); cache.isProvisional(peerId)
 * await cache.close()
 * ```
 */

export { WorkerCache } from './cache/worker-cache.ts'
export { FORMAT_VERSION as CACHE_FORMAT_VERSION } from './cache/codec.ts'
export { PROVISIONAL_RECORDS_MAX } from './cache/constants.ts'
export { WORKER_ERROR_CODES, WorkerAssertionError, WorkerCacheError } from './errors.ts'
export type { WorkerCacheErrorCode } from './errors.ts'
