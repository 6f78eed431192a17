import { collectedCounter, collectedGauge } from '@nodeledger/metrics'
import type { Readiness } from '@nodeledger/metrics'
import { Registry, collectDefaultMetrics } from 'prom-client'

/** What a tracker shows the metrics at scrape time (NodeEventTracker implements it). */
export interface TrackerView {
  readonly peerId: string
  /** Records in the cache. */
  readonly size: number
  readonly appliedIndex: number
  /** The leader's applied index as last heard (a heartbeat's answer, a page's throughIndex). */
  readonly leaderIndex: number
  /** Connections to other workers (the gossip mesh's candidates). */
  gossipPeers(): number
  readiness(): Readiness
}

/**
 * The numbers one tracker reports into, incremented by reference (no label lookup, no string
 * built on the hot path); WorkerMetrics renders them with the tracker's `worker` label. A tracker
 * built without them (a test, a library user) makes its own, which nothing scrapes.
 */
export class TrackerCells {
  /** Gossip in: deltas validated and shown as provisional records. */
  gossipAccepted = 0
  /** Gossip in, refused (unsigned, malformed, oversized, not signed by its origin): the sender is penalised. */
  gossipRejected = 0
  /** Gossip in, dropped without penalty (a replay, an overtaken seq). */
  gossipIgnored = 0
  /** Gossip out: this worker's own deltas published. */
  gossipPublished = 0
  gossipPublishFailures = 0
  /** Watch events applied from the leader's log. */
  logEvents = 0
  /** The watch was interrupted and resumed (a lost connection, a leader change), or restarted. */
  watchReconnects = 0
  antiEntropyRepairs = 0
  heartbeats = 0
  heartbeatFailures = 0
  resyncs = 0
  source: TrackerView | undefined
}

export interface WorkerMetricsOptions {
  /** Node's process metrics (CPU, memory, event loop lag, GC): once per process, so the CLI's, not a test's. */
  readonly processMetrics?: boolean
}

/** Trackers one process may report: `nodeledger workers --count` is bounded by what a process can hold. */
export const TRACKERS_PER_PROCESS_MAX = 1_000

/**
 * A worker process's metrics component: one prom-client Registry (not the global one: tests run
 * many workers in one process) with every metric a worker exports, one `worker` label value per
 * tracker in the process ("1" … "N", as `nodeledger workers` numbers them; nodeledger_worker_info
 * maps each to its peer id), and the process's readiness: every tracker ready.
 *
 * @example
 * ```ts
 * const metrics = new WorkerMetrics({ processMetrics: true })
 * const tracker = await NodeEventTracker.start({ ...options, metrics: metrics.tracker('1') })
 * metrics.registry.metrics() // Prometheus text; metrics.readiness() for GET /ready
 * ```
 */
export class WorkerMetrics {
  readonly registry = new Registry()
  readonly #trackers = new Map<string, TrackerCells>()

  constructor(options: WorkerMetricsOptions = {}) {
    if (options.processMetrics === true) collectDefaultMetrics({ register: this.registry })
    this.#define()
  }

  /** The cells of the tracker labelled `worker` (created once). */
  tracker(worker: string): TrackerCells {
    let cells = this.#trackers.get(worker)
    if (cells === undefined) {
      if (this.#trackers.size >= TRACKERS_PER_PROCESS_MAX)
        throw new RangeError(`at most ${TRACKERS_PER_PROCESS_MAX} trackers report into one WorkerMetrics`)
      cells = new TrackerCells()
      this.#trackers.set(worker, cells)
    }
    return cells
  }

  /**
   * The process is ready when each of the `expected` trackers has started and is ready (synced,
   * following a leader, close to its index); otherwise the first reason, and how many are ready.
   */
  readiness(expected: number): Readiness {
    let ready = 0
    let reason: string | undefined
    for (const [worker, cells] of this.#trackers) {
      const readiness = cells.source?.readiness() ?? { ready: false, reason: 'starting' }
      if (readiness.ready) ready++
      else reason ??= `worker ${worker}: ${readiness.reason ?? 'not ready'}`
    }
    if (this.#trackers.size < expected) reason ??= `${this.#trackers.size} of ${expected} workers started`
    return reason === undefined ? { ready: true, workers: ready } : { ready: false, reason, workers: ready, expected }
  }

  #each(read: (cells: TrackerCells, view: TrackerView | undefined) => number | undefined) {
    return (emit: (value: number, labels?: Readonly<Record<'worker', string>>) => void): void => {
      for (const [worker, cells] of this.#trackers) {
        const value = read(cells, cells.source)
        if (value !== undefined) emit(value, { worker })
      }
    }
  }

  #counter(name: string, help: string, read: (cells: TrackerCells) => number): void {
    collectedCounter<'worker'>({
      registry: this.registry,
      name,
      help,
      labelNames: ['worker'],
      collect: this.#each(read),
    })
  }

  #gauge(name: string, help: string, read: (view: TrackerView) => number): void {
    collectedGauge<'worker'>({
      registry: this.registry,
      name,
      help,
      labelNames: ['worker'],
      collect: this.#each((_cells, view) => (view === undefined ? undefined : read(view))),
    })
  }

  #define(): void {
    const registry = this.registry
    collectedGauge<'worker' | 'peer_id'>({
      registry,
      name: 'nodeledger_worker_info',
      help: 'Each tracker of this process: its worker label and its peer id (always 1)',
      labelNames: ['worker', 'peer_id'],
      collect: (emit) => {
        for (const [worker, cells] of this.#trackers)
          if (cells.source !== undefined) emit(1, { worker, peer_id: cells.source.peerId })
      },
    })
    this.#gauge('nodeledger_worker_records', "Records in the worker's cache", (view) => view.size)
    this.#gauge('nodeledger_worker_applied_index', 'Last log index applied to the cache', (view) => view.appliedIndex)
    this.#gauge(
      'nodeledger_worker_leader_index',
      "The leader's applied index as this worker last heard it (a heartbeat's answer, a page's end)",
      (view) => view.leaderIndex,
    )
    this.#gauge(
      'nodeledger_worker_applied_lag_entries',
      "Entries between the leader's index (as last heard) and the cache's applied index",
      (view) => Math.max(0, view.leaderIndex - view.appliedIndex),
    )
    this.#gauge('nodeledger_worker_ready', '1 when the worker is ready (GET /ready), else 0', (view) => {
      return view.readiness().ready ? 1 : 0
    })
    this.#gauge('nodeledger_worker_gossip_peers', 'Connections to other workers', (view) => view.gossipPeers())
    collectedCounter<'worker' | 'result'>({
      registry,
      name: 'nodeledger_worker_gossip_received_total',
      help: 'Gossip in: deltas accepted (shown as provisional), rejected (the sender is penalised) or ignored (replays)',
      labelNames: ['worker', 'result'],
      collect: (emit) => {
        for (const [worker, cells] of this.#trackers) {
          emit(cells.gossipAccepted, { worker, result: 'accepted' })
          emit(cells.gossipRejected, { worker, result: 'rejected' })
          emit(cells.gossipIgnored, { worker, result: 'ignored' })
        }
      },
    })
    this.#counter('nodeledger_worker_gossip_published_total', "Gossip out: this worker's own deltas published", (c) => {
      return c.gossipPublished
    })
    this.#counter(
      'nodeledger_worker_gossip_publish_failures_total',
      'Own deltas gossipsub could not publish (the submit still makes them durable)',
      (c) => c.gossipPublishFailures,
    )
    this.#counter(
      'nodeledger_worker_log_events_total',
      "Watch events applied from the leader's log",
      (c) => c.logEvents,
    )
    this.#counter(
      'nodeledger_worker_watch_reconnects_total',
      'Times the watch was interrupted and resumed from the last applied index (a lost connection, a new leader)',
      (c) => c.watchReconnects,
    )
    this.#counter(
      'nodeledger_worker_anti_entropy_repairs_total',
      'Anti-entropy rounds that found changes the watch had not delivered',
      (c) => c.antiEntropyRepairs,
    )
    collectedCounter<'worker' | 'result'>({
      registry,
      name: 'nodeledger_worker_heartbeats_total',
      help: 'Heartbeats to the leader, acknowledged or failed',
      labelNames: ['worker', 'result'],
      collect: (emit) => {
        for (const [worker, cells] of this.#trackers) {
          emit(cells.heartbeats, { worker, result: 'ok' })
          emit(cells.heartbeatFailures, { worker, result: 'failed' })
        }
      },
    })
    this.#counter(
      'nodeledger_worker_resyncs_total',
      "Cache rebuilt from the authority (the worker's index was beyond the cluster's log)",
      (c) => c.resyncs,
    )
  }
}
