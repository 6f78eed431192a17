import { cellsHistogram, collectedCounter, collectedGauge } from '@nodeledger/metrics'
import type { Collect } from '@nodeledger/metrics'
import { Role } from '@nodeledger/raft'
import { Registry, collectDefaultMetrics } from 'prom-client'
import type { ReplicaDriver } from '../replica/driver.ts'
import type { ReplicaStatus } from '../replica/replica.ts'
import type { LevelStorageStats } from '../storage/level-storage.ts'
import { API_CODE_LABELS, API_OP_LABELS, ApiCells, LeaseCells, LinkCells, RaftCells } from './cells.ts'
import type { PeerLinkCells, PeerLinkState } from './cells.ts'

/** What the replica shows the metrics at scrape time (Replica implements it). */
export interface ReplicaMetricsSource {
  status(): ReplicaStatus
  stats(): { readonly driver: ReplicaDriver<unknown>['counters']; readonly storage: LevelStorageStats }
  /** The highest commit index a leader has sent this replica (its own when it leads). */
  readonly leaderCommitSeen: number
  /** How far the registry's clock (the newest leader stamp applied) runs ahead of this replica's, ≥ 0. */
  clockAheadMs(): number
  readonly tickIntervalMs: number
}

export interface ReplicaMetricsOptions {
  /** Node's process metrics (CPU, memory, event loop lag, GC): once per process, so the CLI's, not a test's. */
  readonly processMetrics?: boolean
}

const ROLES: readonly Role[] = [Role.Follower, Role.PreCandidate, Role.Candidate, Role.Leader]
const TRANSPORTS = ['raft', 'snapshot'] as const

/**
 * A replica's metrics component: one prom-client Registry (never the global default one, so a
 * test can run several replicas in one process) with every metric a replica exports, and the
 * cells its classes report into (cells.ts): `raft` (Replica), `api` (ApiServer), `leases`
 * (LeaseKeeper), `raftLinks` and `snapshotLinks` (PeerLinks). Gauges of the replica's state (term,
 * indexes, role) and the driver's own counters are read from the replica at scrape time.
 *
 * @example
 * ```ts
 * const metrics = new ReplicaMetrics({ processMetrics: true })
 * const http = await startReplicaHttp({ metrics, replica: () => replica, id, address, logger }) // renders metrics.registry
 * const replica = await Replica.start({ cluster, id, logger, metrics })   // binds itself
 * const api = new ApiServer({ replica, logger })                          // reports into replica.metrics
 * ```
 */
export class ReplicaMetrics {
  readonly registry = new Registry()
  readonly raft = new RaftCells()
  readonly api = new ApiCells()
  readonly leases = new LeaseCells()
  readonly raftLinks = new LinkCells()
  readonly snapshotLinks = new LinkCells()
  #replica: ReplicaMetricsSource | undefined

  constructor(options: ReplicaMetricsOptions = {}) {
    if (options.processMetrics === true) collectDefaultMetrics({ register: this.registry })
    this.#defineRaft()
    this.#defineApi()
    this.#defineLeases()
    this.#definePeerLinks()
  }

  /** The replica these metrics describe; its id labels every series (`replica="1"`). */
  bindReplica(replica: ReplicaMetricsSource, id: number): void {
    if (this.#replica !== undefined && this.#replica !== replica)
      throw new Error('ReplicaMetrics: already bound to another replica (one metrics component per replica)')
    this.#replica = replica
    this.registry.setDefaultLabels({ replica: String(id) })
  }

  /** Reports from the bound replica (nothing before one is bound). */
  #fromReplica(read: (replica: ReplicaMetricsSource, emit: Parameters<Collect<string>>[0]) => void): Collect<string> {
    return (emit) => {
      if (this.#replica !== undefined) read(this.#replica, emit)
    }
  }

  #gauge(name: string, help: string, read: (replica: ReplicaMetricsSource) => number): void {
    collectedGauge({ registry: this.registry, name, help, collect: this.#fromReplica((r, emit) => emit(read(r))) })
  }

  #counter(name: string, help: string, read: () => number): void {
    collectedCounter({ registry: this.registry, name, help, collect: (emit) => emit(read()) })
  }

  #driverCounter(name: string, help: string, read: (counters: ReplicaDriver<unknown>['counters']) => number): void {
    collectedCounter({
      registry: this.registry,
      name,
      help,
      collect: this.#fromReplica((r, emit) => emit(read(r.stats().driver))),
    })
  }

  #defineRaft(): void {
    const registry = this.registry
    const raft = this.raft
    collectedGauge<'role'>({
      registry,
      name: 'nodeledger_raft_role',
      help: "This replica's Raft role: 1 for the current one, 0 for the others",
      labelNames: ['role'],
      collect: this.#fromReplica((r, emit) => {
        const role = r.status().role
        for (const each of ROLES) emit(each === role ? 1 : 0, { role: each })
      }),
    })
    this.#gauge('nodeledger_raft_term', 'Current Raft term', (r) => r.status().term)
    this.#gauge('nodeledger_raft_leader_id', 'Id of the leader this replica knows of; 0 when none', (r) => {
      return r.status().leader?.id ?? 0
    })
    this.#gauge('nodeledger_raft_commit_index', 'Commit index', (r) => r.status().commit)
    this.#gauge('nodeledger_raft_applied_index', 'Index applied to the registry', (r) => r.status().applied)
    this.#gauge('nodeledger_raft_last_index', 'Last index in the log', (r) => r.status().lastIndex)
    this.#gauge('nodeledger_raft_first_index', 'First index still in the log (after compaction)', (r) => {
      return r.status().firstIndex
    })
    this.#gauge('nodeledger_raft_snapshot_index', 'Index of the newest snapshot; 0 when none', (r) => {
      return r.status().snapshotIndex
    })
    this.#gauge(
      'nodeledger_raft_leader_commit_index',
      'Highest commit index a leader has sent this replica (its own when leading): what /ready measures lag against',
      (r) => Math.max(r.leaderCommitSeen, r.status().commit),
    )
    this.#gauge(
      'nodeledger_raft_applied_lag_entries',
      "Entries between the leader's commit index (as this replica last heard it) and this replica's applied index",
      (r) => {
        const status = r.status()
        return Math.max(0, Math.max(r.leaderCommitSeen, status.commit) - status.applied)
      },
    )
    this.#gauge('nodeledger_raft_voters', 'Voters in the membership', (r) => r.status().voters.length)
    this.#gauge('nodeledger_raft_learners', 'Learners in the membership', (r) => r.status().learners.length)
    this.#counter(
      'nodeledger_raft_proposals_accepted_total',
      'Proposals the driver took; each ends applied, lost or unknown',
      () => raft.proposalsAccepted,
    )
    this.#counter(
      'nodeledger_raft_proposals_dropped_total',
      'Proposals refused before anything was proposed (not the leader, a transfer under way, overloaded, stopping)',
      () => raft.proposalsDropped,
    )
    this.#driverCounter(
      'nodeledger_raft_proposals_lost_total',
      "Proposals definitely not applied: a new leader's entry took their index",
      (c) => c.proposalsLost,
    )
    this.#driverCounter(
      'nodeledger_raft_proposals_unknown_total',
      'Proposals whose outcome is unknown (a snapshot replaced the log there, or the replica stopped)',
      (c) => c.proposalsUnknown,
    )
    this.#counter(
      'nodeledger_raft_frames_rejected_total',
      'Raft frames from peers that did not decode',
      () => raft.framesRejected,
    )
    this.#driverCounter('nodeledger_raft_readies_total', 'Readies the driver persisted and applied', (c) => c.readies)
    this.#driverCounter(
      'nodeledger_raft_heartbeats_early_total',
      'Heartbeats (and answers) sent while a write was in flight',
      (c) => c.heartbeatsEarly,
    )
    this.#driverCounter(
      'nodeledger_raft_stalls_total',
      'Times the tick timer ran late by two ticks or more (a pause, a starved event loop)',
      (c) => c.stalls,
    )
    collectedCounter({
      registry,
      name: 'nodeledger_raft_stalled_seconds_total',
      help: 'Time the tick timer ran late, reported to the lease clock',
      collect: this.#fromReplica((r, emit) => emit((r.stats().driver.ticksStalled * r.tickIntervalMs) / 1000)),
    })
    this.#driverCounter(
      'nodeledger_raft_reads_dropped_total',
      'Read barriers dropped (leadership changed before they were confirmed)',
      (c) => c.readsDropped,
    )
    this.#driverCounter('nodeledger_snapshots_taken_total', 'Snapshots taken (and the log compacted)', (c) => {
      return c.snapshotsTaken
    })
    this.#driverCounter('nodeledger_snapshots_installed_total', "Leader's snapshots installed", (c) => {
      return c.snapshotsInstalled
    })
    cellsHistogram({
      registry,
      name: 'nodeledger_fsync_duration_seconds',
      help: 'Synced writes of the log (entries, hard state, snapshot) in one LevelDB batch, to the end of its fsync',
      buckets: raft.fsync.bounds,
      series: () => [[{}, raft.fsync]],
    })
    this.#counter(
      'nodeledger_storage_unsynced_writes_total',
      'Writes without an fsync (only the commit index moved)',
      () => raft.writesUnsynced,
    )
    this.#counter(
      'nodeledger_storage_entries_written_total',
      'Log entries written to storage',
      () => raft.entriesWritten,
    )
    this.#gauge(
      'nodeledger_storage_log_bytes',
      'Encoded bytes of the log after the snapshot (before LevelDB compression)',
      (r) => r.stats().storage.logBytes,
    )
    cellsHistogram({
      registry,
      name: 'nodeledger_apply_duration_seconds',
      help: 'One committed entry applied to the state machine (registry and member directory)',
      buckets: raft.apply.bounds,
      series: () => [[{}, raft.apply]],
    })
    this.#gauge('nodeledger_registry_records', 'Records in the registry', (r) => r.status().registryRecords)
    this.#gauge(
      'nodeledger_clock_ahead_seconds',
      "How far the registry's clock (the newest leader stamp applied) runs ahead of this replica's clock; 0 when not ahead. Uptimes stand still while a leader's stamps are clamped to it",
      (r) => r.clockAheadMs() / 1000,
    )
    this.#counter(
      'nodeledger_clock_ahead_warnings_total',
      "Warnings logged because the registry's clock ran ahead of this replica's by more than the bound",
      () => raft.clockAheadWarnings,
    )
  }

  #defineApi(): void {
    const registry = this.registry
    const api = this.api
    collectedCounter<'op' | 'code'>({
      registry,
      name: 'nodeledger_api_requests_total',
      help: 'API requests answered, by op and code (OK or the error code); a watch counts when it ends',
      labelNames: ['op', 'code'],
      collect: (emit) => {
        for (const op of API_OP_LABELS) {
          const answers = api.ops[op].answers
          for (let slot = 0; slot < API_CODE_LABELS.length; slot++) {
            // Every op shows its OK series; other codes once they happened (the set stays small).
            if (slot === 0 || answers[slot]! > 0) emit(answers[slot]!, { op, code: API_CODE_LABELS[slot]! })
          }
        }
      },
    })
    cellsHistogram<'op'>({
      registry,
      name: 'nodeledger_api_request_duration_seconds',
      help: 'API request latency, from the request read to its answer built, by op (watch streams excluded)',
      labelNames: ['op'],
      buckets: api.ops.get.latency.bounds,
      series: () => API_OP_LABELS.filter((op) => op !== 'watch').map((op) => [{ op }, api.ops[op].latency] as const),
    })
    this.#counter('nodeledger_api_sessions_total', 'API sessions opened', () => api.sessions)
    collectedGauge({
      registry,
      name: 'nodeledger_api_sessions_open',
      help: 'API sessions open now',
      collect: (emit) => emit(api.sessionsOpen),
    })
    collectedGauge({
      registry,
      name: 'nodeledger_api_watchers',
      help: 'Watch streams open now',
      collect: (emit) => emit(api.watchersOpen),
    })
    this.#counter(
      'nodeledger_api_client_resets_total',
      'Streams a client reset or closed before a whole request arrived (a client leaving; logged at debug)',
      () => api.clientResets,
    )
  }

  #defineLeases(): void {
    const leases = this.leases
    collectedGauge({
      registry: this.registry,
      name: 'nodeledger_leases_held',
      help: 'Worker leases this replica holds (the leader keeps them; 0 elsewhere)',
      collect: (emit) => emit(leases.source?.leases ?? 0),
    })
    this.#counter('nodeledger_lease_heartbeats_total', 'Worker heartbeats answered as leader', () => leases.heartbeats)
    collectedCounter<'to'>({
      registry: this.registry,
      name: 'nodeledger_lease_transitions_total',
      help: 'Liveness entries written: a node became active or inactive',
      labelNames: ['to'],
      collect: (emit) => {
        emit(leases.transitionsActive, { to: 'active' })
        emit(leases.transitionsInactive, { to: 'inactive' })
      },
    })
    this.#counter(
      'nodeledger_lease_transitions_failed_total',
      'Liveness transitions that could not be written (retried by the next sweep or event)',
      () => leases.transitionsFailed,
    )
    this.#counter(
      'nodeledger_lease_stalls_credited_total',
      'Lease sweeps that ran late (the leader was stalled): every lease credited with the stall, nothing expired',
      () => leases.stallsCredited,
    )
    this.#counter(
      'nodeledger_lease_activations_refused_total',
      'Activations (joins) refused UNAVAILABLE with a retry hint: more were waiting than the join queue holds',
      () => leases.source?.activationsRefused ?? 0,
    )
  }

  #definePeerLinks(): void {
    const registry = this.registry
    const links: ReadonlyArray<readonly [(typeof TRANSPORTS)[number], LinkCells]> = [
      ['raft', this.raftLinks],
      ['snapshot', this.snapshotLinks],
    ]
    const perPeer = (name: string, help: string, read: (cells: PeerLinkCells) => number): void => {
      collectedCounter<'protocol' | 'peer'>({
        registry,
        name,
        help,
        labelNames: ['protocol', 'peer'],
        collect: (emit) => {
          for (const [protocol, cells] of links)
            for (const [peer, peerCells] of cells.peers()) emit(read(peerCells), { protocol, peer: String(peer) })
        },
      })
    }
    perPeer('nodeledger_peer_link_sent_bytes_total', 'Bytes of frames handed to the link to a peer', (c) => c.bytesSent)
    perPeer('nodeledger_peer_link_sent_frames_total', 'Frames handed to the link to a peer', (c) => c.framesSent)
    perPeer('nodeledger_peer_link_received_bytes_total', 'Bytes of frames read from a peer', (c) => c.bytesReceived)
    perPeer('nodeledger_peer_link_received_frames_total', 'Frames read from a peer', (c) => c.framesReceived)
    perPeer(
      'nodeledger_peer_link_reconnects_total',
      "Outbound streams opened again after a link's first one",
      (c) => c.reconnects,
    )
    perPeer('nodeledger_peer_link_dial_failures_total', 'Failed attempts to open the link', (c) => c.dialFailures)
    collectedGauge<'protocol' | 'peer' | 'direction'>({
      registry,
      name: 'nodeledger_peer_link_up',
      help: "1 when the link's stream is open in that direction (outbound: ours to the peer; inbound: the peer's to us)",
      labelNames: ['protocol', 'peer', 'direction'],
      collect: (emit) => {
        for (const [protocol, cells] of links) {
          for (const link of cells.source?.linkStates() ?? []) {
            const peer = String(link.peer)
            emit(link.outboundUp ? 1 : 0, { protocol, peer, direction: 'outbound' })
            emit(link.inboundUp ? 1 : 0, { protocol, peer, direction: 'inbound' })
          }
        }
      },
    })
    const queued = (name: string, help: string, read: (link: PeerLinkState) => number): void => {
      collectedGauge<'protocol' | 'peer'>({
        registry,
        name,
        help,
        labelNames: ['protocol', 'peer'],
        collect: (emit) => {
          for (const [protocol, cells] of links)
            for (const link of cells.source?.linkStates() ?? []) emit(read(link), { protocol, peer: String(link.peer) })
        },
      })
    }
    queued('nodeledger_peer_link_queued_frames', 'Frames waiting to be sent to a peer', (l) => l.queuedFrames)
    queued('nodeledger_peer_link_queued_bytes', 'Bytes waiting to be sent to a peer', (l) => l.queuedBytes)
    collectedCounter<'protocol' | 'reason'>({
      registry,
      name: 'nodeledger_peer_link_frames_dropped_total',
      help: 'Frames not sent (Raft retransmits): queue full, unknown peer, too large, or lost with a stream that died',
      labelNames: ['protocol', 'reason'],
      collect: (emit) => {
        for (const [protocol, cells] of links) {
          let inFlight = 0
          for (const [, peer] of cells.peers()) inFlight += peer.framesDroppedInFlight
          emit(cells.framesDroppedQueueFull, { protocol, reason: 'queue_full' })
          emit(cells.framesDroppedUnknownPeer, { protocol, reason: 'unknown_peer' })
          emit(cells.framesDroppedTooLarge, { protocol, reason: 'too_large' })
          emit(inFlight, { protocol, reason: 'in_flight' })
        }
      },
    })
    const perProtocol = (name: string, help: string, read: (cells: LinkCells) => number): void => {
      collectedCounter<'protocol'>({
        registry,
        name,
        help,
        labelNames: ['protocol'],
        collect: (emit) => {
          for (const [protocol, cells] of links) emit(read(cells), { protocol })
        },
      })
    }
    perProtocol(
      'nodeledger_peer_link_frames_invalid_total',
      'Inbound frames over the size limit or malformed (each closed its stream)',
      (c) => c.framesInvalid,
    )
    perProtocol(
      'nodeledger_peer_link_inbound_refused_total',
      'Inbound streams from peer ids that are not members, aborted',
      (c) => c.inboundRefused,
    )
    perProtocol(
      'nodeledger_peer_link_downs_total',
      "A member's last connection closed (reported to Raft at once)",
      (c) => c.peerDowns,
    )
  }
}
