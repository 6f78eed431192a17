/**
 * The worker workloads' defaults and the IPC messages between `pnpm bench` and its worker-host
 * children (worker-host.ts). No imports: run.ts reads the defaults without loading the worker stack.
 */

/** The worker counts for the gossip workload. */
export const GOSSIP_WORKERS_DEFAULT = [50, 100, 200] as const
/** Deltas measured per worker count: p99 over 30 is the second largest, an honest tail for a bench. */
export const GOSSIP_DELTAS_DEFAULT = 30
/** Registry size for the catchup workload (the figure). */
export const CATCHUP_RECORDS_DEFAULT = 10_000
export const CATCHUP_TRIALS_DEFAULT = 5
/** The worker counts for the scale workload (issue 13). */
export const SCALE_WORKERS_DEFAULT = [100, 250, 500, 1000] as const

/** Trackers one child process runs at most: 50 libp2p nodes already share one event loop. */
export const WORKERS_PER_PROCESS_MAX = 50

export type HostRequest =
  | { type: 'start'; bootstrap: readonly string[]; dataRoot: string; count: number }
  /** With `reset`, the heartbeat gaps and event-loop delay start over after this answer. */
  | { type: 'status'; reset: boolean }
  /** Time when each local tracker (but the author) first sees `author`'s record at `seq` or later. */
  | { type: 'expect'; author: string; seq: number; timeoutMs: number }
  /** Local tracker `index` publishes `update({ returnedItems })`, which must get `seq`. */
  | { type: 'publish'; index: number; seq: number; returnedItems: number }
  | { type: 'stop' }

export interface WorkerStatus {
  readonly peerId: string
  /** Connections to other workers (replica connections left out). */
  readonly gossipConnections: number
  /** Connected peers subscribed to the deltas topic. */
  readonly topicPeers: number
  /** Peers in this tracker's gossipsub mesh for the topic. */
  readonly meshPeers: number
  /** Topic peers whose gossipsub score is below 0 (no mesh, no gossip to them). */
  readonly negativeScorePeers: number
  /** Gossipsub heartbeats so far. */
  readonly heartbeats: number
  /** Records in the tracker's cache. */
  readonly size: number
}

export interface Arrival {
  readonly atMs: number
  readonly source: 'log' | 'gossip'
}

export type HostReply =
  | { type: 'progress'; started: number }
  /** Each tracker's peer id and own seq once started (its join's). */
  | { type: 'started'; peerIds: string[]; ownSeqs: number[] }
  | {
      type: 'status'
      workers: WorkerStatus[]
      heartbeatGapsMs: number[]
      eventLoopDelayP99Ms: number
      eventLoopDelayMaxMs: number
    }
  | { type: 'expecting'; author: string; seq: number }
  /** One entry per tracker of this process other than the author; null: not seen before the timeout. */
  | { type: 'arrivals'; author: string; seq: number; arrivals: Array<Arrival | null> }
  | { type: 'published'; author: string; seq: number; publishedAtMs: number; acknowledgedAtMs: number; index: number }
  | { type: 'stopped' }
  | { type: 'error'; message: string }
