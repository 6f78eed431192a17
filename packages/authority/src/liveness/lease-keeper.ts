import type { PeerId } from '@libp2p/interface'
import { ProtocolError } from '@nodeledger/protocol'
import type { PresenceResult } from '@nodeledger/protocol'
import type { LivenessReason } from '@nodeledger/registry'
import type { Logger } from 'pino'
import type { ClusterLiveness } from '../cluster-file.ts'
import {
  LEASE_ACTIVATIONS_INFLIGHT_MAX,
  LEASE_ACTIVATIONS_QUEUED_MAX,
  LEASE_ACTIVATIONS_RETRY_AFTER_MS,
  LEASE_SWEEP_INTERVAL_MS,
  LEASE_SWEEP_STALL_MS_MIN,
  LEASE_TRANSITIONS_INFLIGHT_MAX,
  REQUEST_TIMEOUT_MS_DEFAULT,
} from '../constants.ts'
import { LeaseCells } from '../metrics/cells.ts'
import { ReplicaRequestError } from '../replica-errors.ts'
import type { Replica } from '../replica/replica.ts'
import { AdmissionGate } from './admission-gate.ts'

export interface LeaseKeeperOptions {
  readonly replica: Replica
  readonly logger: Logger
  readonly liveness: ClusterLiveness
  /** Peers that are never leased (replicas, operators): their connections are not node presence. */
  readonly exemptPeerIds: { has(peerId: string): boolean }
  /** Wall clock for last-seen times; the log entries are stamped by the replica's own clock. */
  readonly clock?: () => number
  /** Where heartbeats and transitions are counted (the replica's metrics); default: cells of its own. */
  readonly metrics?: LeaseCells
}

/**
 * The leader's leases on worker nodes, like etcd leases: a node is active while its heartbeats keep
 * arriving within the TTL. Last-seen times live only in this leader's memory; only transitions
 * (active → inactive and back) become log entries (`liveness` commands, stamped with the leader's
 * clock), so the log grows with changes, not with time.
 *
 *   heartbeat / connect  refresh last-seen; an inactive node becomes active (one entry)
 *   TTL sweep            an active node unseen for ttlMs becomes inactive (one entry)
 *   leave                the node says goodbye: inactive now (one entry)
 *   disconnect           its last connection closed and it did not return within the grace: inactive
 *
 * A replica that is not leading keeps no last-seen times. When it becomes leader it starts every
 * active node with a fresh grace period (its predecessor's memory died with it), so a failover
 * never expires a live node; a node that died with the old leader expires one TTL later.
 */
export class LeaseKeeper {
  readonly #replica: Replica
  readonly #logger: Logger
  readonly #liveness: ClusterLiveness
  readonly #exempt: { has(peerId: string): boolean }
  readonly #clock: () => number
  readonly #lastSeenMs = new Map<string, number>()
  /** Per node, the transition in flight: later ones chain after it, so each sees the state it left. */
  readonly #transitions = new Map<string, Promise<unknown>>()
  readonly #disconnectTimers = new Map<string, NodeJS.Timeout>()
  readonly #shutdown = new AbortController()
  #sweepTimer: NodeJS.Timeout | undefined
  /** When the last sweep ran (this keeper's clock): a longer gap than the interval is a stall. */
  #lastSweepMs: number | undefined
  /** The term this keeper last led in; a different term means a fresh set of leases. */
  #leadingTerm = 0
  /** Heartbeats and transitions, counted for the metrics; the leases held are read from `leases`. */
  readonly #metrics: LeaseCells
  /** Activations by heartbeat (joins) admitted at once and waiting (issue 13: back-pressure on a join storm). */
  readonly #activations = new AdmissionGate({
    inflightMax: LEASE_ACTIVATIONS_INFLIGHT_MAX,
    queuedMax: LEASE_ACTIVATIONS_QUEUED_MAX,
    retryAfterMs: LEASE_ACTIVATIONS_RETRY_AFTER_MS,
    what: 'activations',
  })

  constructor(options: LeaseKeeperOptions) {
    this.#replica = options.replica
    this.#logger = options.logger.child({ component: 'leases' })
    this.#liveness = options.liveness
    this.#exempt = options.exemptPeerIds
    this.#clock = options.clock ?? Date.now
    this.#metrics = options.metrics ?? new LeaseCells()
    this.#metrics.source = this
  }

  start(): void {
    this.#replica.libp2p.addEventListener('peer:connect', this.#onConnect)
    this.#replica.libp2p.addEventListener('peer:disconnect', this.#onDisconnect)
    this.#sweepTimer = setInterval(() => this.#sweep(), LEASE_SWEEP_INTERVAL_MS)
    this.#sweepTimer.unref()
  }

  stop(): void {
    this.#shutdown.abort()
    this.#replica.libp2p.removeEventListener('peer:connect', this.#onConnect)
    this.#replica.libp2p.removeEventListener('peer:disconnect', this.#onDisconnect)
    clearInterval(this.#sweepTimer)
    for (const timer of this.#disconnectTimers.values()) clearTimeout(timer)
    this.#disconnectTimers.clear()
  }

  /** Activations refused UNAVAILABLE so far (the queue was full). */
  get activationsRefused(): number {
    return this.#activations.refused
  }

  /** Nodes this leader currently holds a lease for (for status and tests). */
  get leases(): number {
    return this.#lastSeenMs.size
  }

  /** A heartbeat from `peerId`. Answers once the registry holds the node active. */
  async heartbeat(peerId: string, signal: AbortSignal): Promise<PresenceResult> {
    this.#requireLeader()
    this.#metrics.heartbeats++
    this.#lastSeenMs.set(peerId, this.#clock())
    const record = this.#replica.registry.get(peerId)
    if (record === undefined)
      throw new ProtocolError(
        'NOT_FOUND',
        `${peerId} has no record yet: submit its join delta before its first heartbeat`,
      )
    await this.#transitions.get(peerId)
    if (this.#replica.registry.get(peerId)?.isActive === true) return { active: true, index: this.#replica.applied }
    // A join storm: activations wait for a slot, and beyond the queue are refused with a retry hint.
    return await this.#activations.run(signal, async () => {
      if (this.#replica.registry.get(peerId)?.isActive === true) return { active: true, index: this.#replica.applied }
      return await this.#transition(peerId, true, 'heartbeat', signal)
    })
  }

  /** A graceful leave: the node is inactive as of this entry, and its lease is forgotten. */
  async leave(peerId: string, signal: AbortSignal): Promise<PresenceResult> {
    this.#requireLeader()
    this.#lastSeenMs.delete(peerId)
    if (this.#replica.registry.get(peerId) === undefined)
      throw new ProtocolError('NOT_FOUND', `${peerId} has no record`)
    await this.#transitions.get(peerId)
    if (this.#replica.registry.get(peerId)?.isActive !== true) return { active: false, index: this.#replica.applied }
    return await this.#transition(peerId, false, 'left', signal)
  }

  /**
   * Proposes one transition, chained after any in flight for the same node, and re-checks the state
   * when its turn comes (the one before may already have done the work).
   */
  #transition(peerId: string, active: boolean, reason: LivenessReason, signal: AbortSignal): Promise<PresenceResult> {
    const previous = this.#transitions.get(peerId) ?? Promise.resolve()
    const next = previous
      .catch(() => {})
      .then(async (): Promise<PresenceResult> => {
        const record = this.#replica.registry.get(peerId)
        if (record === undefined) throw new ProtocolError('NOT_FOUND', `${peerId} has no record`)
        if (record.isActive === active) return { active, index: this.#replica.applied }
        const { index, result } = await this.#replica.propose(
          { kind: 'liveness', replicaPeerId: this.#replica.member.peerId, peerId, active, reason },
          signal,
        )
        if (result.status === 'rejected') throw new ProtocolError('INVALID', result.message)
        if (active) this.#metrics.transitionsActive++
        else this.#metrics.transitionsInactive++
        this.#logger.info({ peer: peerId, active, reason, index }, active ? 'node active' : 'node inactive')
        return { active: this.#replica.registry.get(peerId)?.isActive === true, index }
      })
    this.#transitions.set(peerId, next)
    void next
      .then(
        () => {},
        () => {
          this.#metrics.transitionsFailed++
        },
      )
      .finally(() => {
        if (this.#transitions.get(peerId) === next) this.#transitions.delete(peerId)
      })
    return next
  }

  /** Fire-and-forget transitions (sweep, connections): failures are retried by the next sweep or event. */
  #background(peerId: string, active: boolean, reason: LivenessReason): void {
    if (this.#transitions.size >= LEASE_TRANSITIONS_INFLIGHT_MAX) return
    const deadline = AbortSignal.timeout(REQUEST_TIMEOUT_MS_DEFAULT)
    this.#transition(peerId, active, reason, deadline).catch((error: unknown) => {
      if (!this.#shutdown.signal.aborted)
        this.#logger.debug(
          { peer: peerId, active, reason, err: error },
          'liveness transition not made; the next sweep retries',
        )
    })
  }

  #requireLeader(): void {
    if (!this.#replica.isLeader()) {
      throw new ReplicaRequestError('NOT_LEADER', 'leases are kept by the leader', this.#replica.leaderMember())
    }
    this.#noticeLeadership()
  }

  /** On a new term as leader: forget everything and give every active node a fresh grace period. */
  #noticeLeadership(): boolean {
    if (!this.#replica.isLeader()) {
      if (this.#leadingTerm !== 0) {
        this.#leadingTerm = 0
        this.#lastSeenMs.clear()
      }
      return false
    }
    const term = this.#replica.term
    if (term === this.#leadingTerm) return true
    this.#leadingTerm = term
    this.#lastSeenMs.clear()
    const nowMs = this.#clock()
    let granted = 0
    for (const record of this.#replica.registry.list({ active: true, limit: Number.MAX_SAFE_INTEGER })) {
      this.#lastSeenMs.set(record.peerId, nowMs)
      granted++
    }
    this.#logger.info(
      { term, activeNodes: granted, ttlMs: this.#liveness.ttlMs },
      'leading: every active node starts a fresh lease',
    )
    return true
  }

  /**
   * Expire leases unseen for the TTL. Records that became active by other paths get a lease here.
   *
   * A sweep that runs late means this process was stalled (starved of CPU, paused, a long GC): the
   * heartbeats that arrived meanwhile still sit unread in the sockets, and Node runs this timer
   * before it reads them. Last-seen times are this leader's, so the time it could not listen is not
   * the nodes' silence: every lease is credited with the stall, and this sweep expires nothing (the
   * queued heartbeats are read before the next one). Issue 13: a starved leader expired hundreds of
   * live workers in a join storm.
   */
  #sweep(): void {
    const nowMs = this.#clock()
    const stallMs = this.#lastSweepMs === undefined ? 0 : nowMs - this.#lastSweepMs - LEASE_SWEEP_INTERVAL_MS
    this.#lastSweepMs = nowMs
    if (!this.#noticeLeadership()) return
    if (stallMs >= LEASE_SWEEP_STALL_MS_MIN) {
      for (const [peerId, seenMs] of this.#lastSeenMs) this.#lastSeenMs.set(peerId, seenMs + stallMs)
      this.#metrics.stallsCredited++
      this.#logger.warn(
        { stallMs, leases: this.#lastSeenMs.size },
        'lease sweep ran late (this process was stalled): leases credited with the stall, nothing expired',
      )
      return
    }
    const expiredBeforeMs = nowMs - this.#liveness.ttlMs
    for (const record of this.#replica.registry.list({ active: true, limit: Number.MAX_SAFE_INTEGER })) {
      const seenMs = this.#lastSeenMs.get(record.peerId)
      if (seenMs === undefined) {
        this.#lastSeenMs.set(record.peerId, nowMs)
        continue
      }
      if (seenMs >= expiredBeforeMs || this.#transitions.has(record.peerId)) continue
      this.#lastSeenMs.delete(record.peerId)
      this.#background(record.peerId, false, 'ttl')
    }
  }

  readonly #onConnect = (event: CustomEvent<PeerId>): void => {
    const peerId = event.detail.toString()
    if (this.#exempt.has(peerId)) return
    const timer = this.#disconnectTimers.get(peerId)
    if (timer !== undefined) {
      clearTimeout(timer)
      this.#disconnectTimers.delete(peerId)
    }
    if (!this.#noticeLeadership()) return
    const record = this.#replica.registry.get(peerId)
    // Only nodes that reported themselves are leased: a bare connection creates no record.
    if (record === undefined) return
    this.#lastSeenMs.set(peerId, this.#clock())
    if (!record.isActive) this.#background(peerId, true, 'connected')
  }

  readonly #onDisconnect = (event: CustomEvent<PeerId>): void => {
    const peerId = event.detail.toString()
    if (this.#exempt.has(peerId) || this.#disconnectTimers.has(peerId)) return
    if (!this.#noticeLeadership() || this.#replica.registry.get(peerId)?.isActive !== true) return
    const timer = setTimeout(() => {
      this.#disconnectTimers.delete(peerId)
      if (this.#shutdown.signal.aborted || !this.#noticeLeadership()) return
      if (this.#replica.libp2p.getConnections(event.detail).length > 0) return
      this.#lastSeenMs.delete(peerId)
      this.#background(peerId, false, 'disconnected')
    }, this.#liveness.disconnectGraceMs)
    timer.unref()
    this.#disconnectTimers.set(peerId, timer)
  }
}
