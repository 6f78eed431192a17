/**
 * @nodeledger/metrics: what the metrics of every nodeledger process share. Each process kind
 * (a replica: @nodeledger/authority's ReplicaMetrics; a worker: @nodeledger/worker's
 * WorkerMetrics) owns its own prom-client Registry and defines its metrics there; this package
 * gives them the pieces.
 *
 * @example
 * ```ts
 * import { Registry } from 'prom-client'
 * import { HistogramCells, cellsHistogram, collectedCounter, startOpsServer, parseHostPort } from '@nodeledger/metrics'
 *
 * const registry = new Registry()
 * const fsync = new HistogramCells()          // the hot path: fsync.observeMs(latencyMs)
 * const counts = { writes: 0 }                // the hot path: counts.writes++
 * cellsHistogram({ registry, name: 'x_fsync_duration_seconds', help: '…', buckets: fsync.bounds, series: () => [[{}, fsync]] })
 * collectedCounter({ registry, name: 'x_writes_total', help: '…', collect: (emit) => emit(counts.writes) })
 * const server = await startOpsServer({ address: parseHostPort('127.0.0.1:9101', '--http'), registry,
 *   health: () => ({}), ready: () => ({ ready: true }) })
 * await server.close()
 * ```
 */
export { HistogramCells, LATENCY_BUCKETS_SECONDS, HISTOGRAM_BUCKETS_MAX } from './histogram.ts'
export { cellsHistogram, collectedCounter, collectedGauge } from './prometheus.ts'
export type { Collect, CollectedMetricOptions, CellsHistogramOptions, Labels } from './prometheus.ts'
export {
  startOpsServer,
  listenOrRefuse,
  OPS_BODY_BYTES_MAX,
  OPS_CONNECTIONS_MAX,
  OPS_PATH_PARAM_LENGTH_MAX,
  OPS_KEEP_ALIVE_TIMEOUT_MS,
  OPS_REQUEST_TIMEOUT_MS,
} from './ops-server.ts'
export type { OpsLogger, OpsServer, OpsServerOptions, Readiness } from './ops-server.ts'
export { HTTP_HOST_DEFAULT, formatHostPort, parseHostPort, readHostPort } from './address.ts'
export type { HostPort } from './address.ts'
export { MetricsError } from './errors.ts'
export type { MetricsErrorCode } from './errors.ts'
export { PromText, PromTextError, parsePromText } from './prom-text.ts'
export type { MetricType, PromFamily, PromSample } from './prom-text.ts'
