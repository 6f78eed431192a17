import { GatewayError, RecordFeed } from '@nodeledger/gateway'
import type { GatewaySource, GatewayStatus, SelfUpdateResult } from '@nodeledger/gateway'
import type { Category, Changes, ListFilter, NodeData, SelfReported } from '@nodeledger/registry'
import type { ChangeEventDetail, NodeEventTracker } from '../tracker/node-event-tracker.ts'

/**
 * How long PUT /v1/self waits for the log: the tracker retries a submit through elections until it
 * is acknowledged, and an HTTP client should not hang on a cluster that has no leader for minutes.
 * Past this it is answered TIMEOUT (504); the submit goes on, and may still be applied.
 */
export const SELF_UPDATE_TIMEOUT_MS = 30_000

/**
 * A worker's data for the HTTP gateway (read-write): the records its tracker confirmed from the
 * log, mirrored in a RecordFeed (the tracker's cache keeps no change index), the tracker's ranking,
 * and PUT /v1/self as `tracker.update` (gossiped, then submitted with the worker's own key: a
 * worker's gateway changes only its own record).
 *
 * The HTTP listener starts before the tracker (so /health answers while it catches up): until
 * `attach` every route answers 503 UNAVAILABLE.
 *
 * Served from the log's records, not gossip's provisional ones: every answer carries the log index
 * it reflects, and the event ids are log indexes. `eligible` is the tracker's own ranking, which
 * counts provisional records as the tracker does.
 */
export class WorkerGatewaySource implements GatewaySource {
  readonly role = 'worker' as const
  readonly #feed = new RecordFeed()
  #tracker: NodeEventTracker | undefined
  readonly #updateTimeoutMs: number

  constructor(options: { updateTimeoutMs?: number } = {}) {
    this.#updateTimeoutMs = options.updateTimeoutMs ?? SELF_UPDATE_TIMEOUT_MS
  }

  /** Serve `tracker` from now on: its confirmed records now, then every record the log changes. */
  attach(tracker: NodeEventTracker): void {
    if (this.#tracker !== undefined) throw new Error('WorkerGatewaySource: a tracker is attached already')
    // The copy and the listener are taken in one turn of the event loop: no change falls between.
    this.#feed.replaceAll(tracker.confirmedRecords())
    tracker.addEventListener('change', (event) => {
      const { record, source } = (event as CustomEvent<ChangeEventDetail>).detail
      if (source === 'log') this.#feed.apply([record])
    })
    tracker.addEventListener('resynced', () => this.#feed.replaceAll(tracker.confirmedRecords()))
    this.#tracker = tracker
  }

  #attached(): NodeEventTracker {
    if (this.#tracker === undefined)
      throw new GatewayError('UNAVAILABLE', 'the worker is starting: catching up with the log')
    return this.#tracker
  }

  appliedIndex(): number {
    return this.#attached().appliedIndex
  }

  get(peerId: string): NodeData | undefined {
    this.#attached()
    return this.#feed.get(peerId)
  }

  list(filter: ListFilter): NodeData[] {
    this.#attached()
    return this.#feed.list(filter)
  }

  changesSince(index: number, limit: number): Changes {
    this.#attached()
    return this.#feed.changesSince(index, limit)
  }

  waitForChange(index: number, signal: AbortSignal): Promise<void> {
    return this.#feed.waitForChange(index, signal)
  }

  eligible = (category: Category): NodeData[] => this.#attached().eligible(category)

  status(): GatewayStatus {
    const tracker = this.#attached()
    const leader = tracker.client.leader
    const leaderPeerId = leader === undefined ? undefined : /\/p2p\/([^/]+)$/.exec(leader)?.[1]
    const readiness = tracker.readiness()
    return {
      role: 'worker',
      peerId: tracker.peerId,
      appliedIndex: tracker.appliedIndex,
      leader: leaderPeerId === undefined ? null : { peerId: leaderPeerId, multiaddr: leader },
      // What the leader last said it had applied (a heartbeat's answer, a page, an event).
      lagEntries: tracker.leaderIndex === 0 ? null : Math.max(0, tracker.leaderIndex - tracker.appliedIndex),
      leaderIndex: tracker.leaderIndex,
      ready: readiness.ready,
      ...(readiness.reason === undefined ? {} : { reason: readiness.reason }),
      records: this.#feed.size,
      ownSeq: tracker.ownSeq,
      gossipPeers: tracker.gossipPeers(),
    }
  }

  /**
   * Answered once the log has the update and this worker has applied it: a GET on this gateway
   * right after the answer shows the change (read your writes), at the index answered.
   */
  updateSelf = async (fields: Partial<SelfReported>): Promise<SelfUpdateResult> => {
    const deadline = AbortSignal.timeout(this.#updateTimeoutMs)
    const update = this.#attached().update(fields)
    // The submit goes on after a timeout: its outcome is the tracker's, not this request's.
    update.catch(() => {})
    const timedOut = (): GatewayError =>
      new GatewayError(
        'TIMEOUT',
        `the log has not acknowledged the update within ${this.#updateTimeoutMs} ms; it is still being submitted and may be applied`,
      )
    const aborted = new Promise<never>((_resolve, reject) => {
      if (deadline.aborted) reject(timedOut())
      deadline.addEventListener('abort', () => reject(timedOut()), { once: true })
    })
    aborted.catch(() => {})
    const result = await Promise.race([update, aborted])
    await this.#feed.waitForChange(result.index - 1, deadline).catch(() => {
      throw timedOut()
    })
    return { seq: result.seq, index: result.index }
  }
}
