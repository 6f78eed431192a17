/**
 * @nodeledger/worker: the ordinary node of the network. `NodeEventTracker` is the worker: it joins,
 * heartbeats, gossips its own deltas, follows the leader's log into a durable local cache, and
 * answers `get`, `all(filter)` and `eligible(category)` from memory.
 *
 * ```ts
 * const tracker = await NodeEventTracker.start({ dataDir, bootstrap, privateKey, self: { isWebScraper: true, version: '1.2.0' } })
 * tracker.addEventListener('change', (event) => console.log(event.detail.record.peerId, event.detail.source))
 * tracker.eligible('web')                 // active, staked, capable, most reliable first
 * await tracker.update({ isTwitterScraper: true }) // gossiped at once, acknowledged by the leader
 * await tracker.stop()                    // graceful leave
 * ```
 *
 * Metrics and health: a WorkerMetrics per process, one `tracker(label)` per tracker, served by
 * startWorkerHttp (GET /metrics, /health, /ready):
 * ```ts
 * const metrics = new WorkerMetrics({ processMetrics: true })
 * const http = await startWorkerHttp({ metrics, address: { host: '127.0.0.1', port: 9201 }, expected: 1 })
 * const tracker = await NodeEventTracker.start({ dataDir, bootstrap, privateKey, metrics: metrics.tracker('1') })
 * ```
 *
 * Underneath, the durable cache:
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

export { NodeEventTracker } from './tracker/node-event-tracker.ts'
export type {
  ChangeEventDetail,
  ChangeSource,
  NodeEventTrackerOptions,
  TrackerFilter,
} from './tracker/node-event-tracker.ts'
export { createWorkerHost } from './tracker/host.ts'
export { TRACKERS_PER_PROCESS_MAX, TrackerCells, WorkerMetrics } from './metrics/worker-metrics.ts'
export type { TrackerView, WorkerMetricsOptions } from './metrics/worker-metrics.ts'
export { startWorkerHttp } from './metrics/worker-http.ts'
export { SELF_UPDATE_TIMEOUT_MS, WorkerGatewaySource } from './gateway/worker-gateway.ts'
export type { WorkerHttpOptions } from './metrics/worker-http.ts'
export type { WorkerHost } from './tracker/host.ts'
export * as trackerDefaults from './tracker/constants.ts'
export { WorkerCache } from './cache/worker-cache.ts'
export { FORMAT_VERSION as CACHE_FORMAT_VERSION } from './cache/codec.ts'
export { PROVISIONAL_RECORDS_MAX } from './cache/constants.ts'
export { WORKER_ERROR_CODES, WorkerAssertionError, WorkerCacheError, WorkerConfigError } from './errors.ts'
export { checkHeartbeatInterval } from './tracker/heartbeat-interval.ts'
export type { WorkerCacheErrorCode } from './errors.ts'
