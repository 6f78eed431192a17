import type { Message, TopicValidatorResult } from '@libp2p/gossipsub'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { AuthorityClient } from '@nodeledger/client'
import { DELTAS_TOPIC, ProtocolError, encodeGossipDelta, isRetryable, validateGossipDelta } from '@nodeledger/protocol'
import type { Readiness } from '@nodeledger/metrics'
import type { SinceResult, SubmitResult } from '@nodeledger/protocol'
import { CAPABILITY_FIELD, canDoWork, compareReliability, mergeDelta, recordsDigest } from '@nodeledger/registry'
import type { Category, Delta, ListFilter, NodeData, SelfReported } from '@nodeledger/registry'
import type { Logger } from 'pino'
import { WorkerCache } from '../cache/worker-cache.ts'
import { TrackerCells } from '../metrics/worker-metrics.ts'
import {
  ANTI_ENTROPY_INTERVAL_MS_DEFAULT,
  GOSSIP_PEERS_TARGET_DEFAULT,
  HEARTBEAT_INTERVAL_MS_DEFAULT,
  LEASE_TTL_MS_DEFAULT,
  PEER_DIALS_PER_ROUND_MAX,
  PEER_MAINTENANCE_INTERVAL_MS,
  READY_APPLIED_LAG_ENTRIES_MAX,
  READY_HEARTBEAT_INTERVALS_MAX,
  REQUEST_ATTEMPTS_MAX_DEFAULT,
  REQUEST_TIMEOUT_MS_DEFAULT,
  SYNC_PAGE_RECORDS,
  WATCH_RETRY_DELAY_MS,
} from './constants.ts'
import { checkHeartbeatInterval } from './heartbeat-interval.ts'
import { createWorkerHost } from './host.ts'
import type { WorkerHost } from './host.ts'

export interface NodeEventTrackerOptions {
  /** The worker's own LevelDB dir (created if missing; refused if corrupt or locked). */
  readonly dataDir: string
  /** Replica multiaddrs, each ending in /p2p/<peerId>. */
  readonly bootstrap: readonly string[]
  /** The worker's identity: its peer id is the origin of its deltas. */
  readonly privateKey: PrivateKey
  /** Where the worker listens for gossip peers; default one free port on 127.0.0.1. */
  readonly listen?: readonly string[]
  /** What the worker reports about itself on join (capabilities, version, stake...). */
  readonly self?: Partial<Omit<SelfReported, 'multiaddrs'>>
  /** How often the worker heartbeats the leader; must stay below leaseTtlMs (checkHeartbeatInterval). */
  readonly heartbeatIntervalMs?: number
  /**
   * The cluster's lease TTL (cluster file `liveness.ttlMs`), which the heartbeat interval is checked
   * against at start; default LEASE_TTL_MS_DEFAULT, the authority's default. The API does not tell
   * a client the TTL, so whoever starts the tracker passes what the cluster file says.
   */
  readonly leaseTtlMs?: number
  readonly antiEntropyIntervalMs?: number
  readonly gossipPeersTarget?: number
  readonly requestTimeoutMs?: number
  readonly logger?: Logger
  /**
   * Called once the first catch-up is done, inside `start()` (before it resolves, so before the
   * caller could listen for the `synced` event): for callers that time or report startup.
   */
  readonly onSynced?: (appliedIndex: number) => void
  /** Where this tracker counts gossip, watch, heartbeats (a WorkerMetrics' tracker(…)); default: cells of its own. */
  readonly metrics?: TrackerCells
}

/** Where a change came from: the log (confirmed) or a peer's gossip (provisional until the log has it). */
export type ChangeSource = 'log' | 'gossip'

export interface ChangeEventDetail {
  readonly record: NodeData
  readonly source: ChangeSource
}

/** Filter for `all`: the registry's list filter, without paging. */
export type TrackerFilter = Omit<ListFilter, 'afterPeerId' | 'limit'>

/**
 * The worker's view of the network (the NodeEventTracker): every node's NodeData in memory, kept
 * in its own LevelDB, fed by the leader's log and by gossip.
 *
 *   start   open the cache; get our last seq back from the authority (a wiped dir must not reuse
 *           seqs); catch up with `since(appliedIndex)` pages; join (a delta with our capabilities,
 *           version and addresses, gossiped and submitted); first heartbeat; then watch the log
 *           from the cache's index, heartbeat on an interval, and run anti-entropy.
 *   log     the watch follows whichever replica leads and resumes from the last applied index, so
 *           nothing is missed and nothing applied twice; a periodic `since` closes any gap.
 *   gossip  a peer's delta shows at once as a provisional record, until the log confirms it.
 *   stop    a graceful leave (acknowledged by the leader), then close.
 *
 * Events (an EventTarget): `change` (CustomEvent<ChangeEventDetail>) for every record that changed,
 * `synced` once the first catch-up is done, `resynced` when the cache was rebuilt from the
 * authority's state (no `change` events for that: read `confirmedRecords()` again).
 */
export class NodeEventTracker extends EventTarget {
  readonly peerId: string
  readonly #options: NodeEventTrackerOptions
  readonly #logger: Logger | undefined
  readonly #cache: WorkerCache
  readonly #host: WorkerHost
  readonly #client: AuthorityClient
  readonly #replicaPeerIds: ReadonlySet<string>
  readonly #shutdown = new AbortController()
  readonly #timers: NodeJS.Timeout[] = []
  /** Deltas the topic validator accepted, by message: gossipsub hands the same object to the handler. */
  readonly #accepted = new WeakMap<Message, Delta>()
  /** Log applies run one at a time, in order: the watch and anti-entropy share this queue. */
  #logQueue: Promise<unknown> = Promise.resolve()
  #watchDone: Promise<void> = Promise.resolve()
  #stopped = false
  /** Stopping has begun: no new heartbeat is sent (one after the leave would make the node active again). */
  #stopping = false
  #stopDone: Promise<void> | undefined
  /** The heartbeat in flight, if any: a leave waits for its answer, so the leader sees the leave last. */
  #heartbeatInFlight: Promise<void> | undefined
  #syncing = false
  /** The first catch-up is done (readiness). */
  #synced = false
  /** When the leader last acknowledged a heartbeat (performance.now()), and the index it answered with. */
  #heartbeatAckedMs = Number.NEGATIVE_INFINITY
  #leaderIndex = 0
  /** What this tracker counts (gossip, watch, heartbeats): a WorkerMetrics renders them. */
  readonly metrics: TrackerCells

  private constructor(options: NodeEventTrackerOptions, cache: WorkerCache, host: WorkerHost, client: AuthorityClient) {
    super()
    this.#options = options
    this.#logger = options.logger?.child({ component: 'tracker' })
    this.#cache = cache
    this.#host = host
    this.#client = client
    this.metrics = options.metrics ?? new TrackerCells()
    this.peerId = peerIdFromPrivateKey(options.privateKey).toString()
    this.#replicaPeerIds = new Set(
      options.bootstrap.map(
        (address) =>
          multiaddr(address)
            .getComponents()
            .find((component) => component.name === 'p2p')?.value ?? '',
      ),
    )
    this.metrics.source = this
  }

  /** Starts a worker: resolves once it has caught up with the log, joined and been marked active. */
  static async start(options: NodeEventTrackerOptions): Promise<NodeEventTracker> {
    // Before anything is opened: a refused interval leaves no cache lock, host or connection behind.
    const warning = checkHeartbeatInterval(
      options.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS_DEFAULT,
      options.leaseTtlMs ?? LEASE_TTL_MS_DEFAULT,
    )
    if (warning !== undefined) options.logger?.warn({ component: 'tracker' }, warning)
    const cache = await WorkerCache.open(options.dataDir)
    let host: WorkerHost | undefined
    try {
      host = await createWorkerHost({
        privateKey: options.privateKey,
        listen: options.listen ?? ['/ip4/127.0.0.1/tcp/0'],
      })
      const client = new AuthorityClient({
        bootstrap: options.bootstrap,
        libp2p: host,
        requestTimeoutMs: options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT,
        attemptsMax: REQUEST_ATTEMPTS_MAX_DEFAULT,
        // since and watch from the replica this worker's peer id hashes to (issue 13: the leader
        // no longer carries every worker's feed); writes and heartbeats still go to the leader.
        feedKey: peerIdFromPrivateKey(options.privateKey).toString(),
        ...(options.logger === undefined ? {} : { logger: options.logger.child({ component: 'client' }) }),
      })
      await client.start()
      const tracker = new NodeEventTracker(options, cache, host, client)
      await tracker.#start()
      return tracker
    } catch (error) {
      await Promise.resolve(host?.stop()).catch(() => {})
      await cache.close().catch(() => {})
      throw error
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Reads: from memory.

  get(peerId: string): NodeData | undefined {
    return this.#cache.get(peerId)
  }

  /** Every known node matching `filter`, sorted by peer id. */
  all(filter: TrackerFilter = {}): NodeData[] {
    const matches = this.#cache.all().filter((record) => {
      if (filter.active !== undefined && record.isActive !== filter.active) return false
      if (filter.staked !== undefined && record.isStaked !== filter.staked) return false
      if (filter.capability !== undefined && !record[CAPABILITY_FIELD[filter.capability]]) return false
      if (filter.updatedSinceMs !== undefined && record.lastUpdatedMs < filter.updatedSinceMs) return false
      return true
    })
    return matches.sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0))
  }

  /** Nodes that can take `category` work now (active, staked, capable), most reliable first. */
  eligible(category: Category): NodeData[] {
    return this.#cache
      .all()
      .filter((record) => record.isActive && canDoWork(record, category))
      .sort(compareReliability)
  }

  /**
   * The records as the log delivered them, without gossip's provisional ones: what the log index
   * (`appliedIndex`) describes. The HTTP gateway serves these; `change` events with source `log`
   * and the `resynced` event keep a copy of them current.
   */
  confirmedRecords(): NodeData[] {
    return this.#cache.allConfirmed()
  }

  /** Whether `get(peerId)` is gossip the log has not confirmed yet. */
  isProvisional(peerId: string): boolean {
    return this.#cache.isProvisional(peerId)
  }

  /** The last log index applied to the cache. */
  get appliedIndex(): number {
    return this.#cache.appliedIndex
  }

  /** The highest seq this worker has used for its own deltas. */
  get ownSeq(): number {
    return this.#cache.ownSeq
  }

  get size(): number {
    return this.#cache.size
  }

  /** The leader's applied index as last heard: a heartbeat's answer, or the end of a page or event applied. */
  get leaderIndex(): number {
    return this.#leaderIndex
  }

  /** Connections to other workers (not replicas). */
  gossipPeers(): number {
    let peers = 0
    for (const connection of this.#host.getConnections())
      if (!this.#replicaPeerIds.has(connection.remotePeer.toString())) peers++
    return peers
  }

  /**
   * Ready (GET /ready) once synced, while it follows a leader (the leader acknowledged a heartbeat
   * within READY_HEARTBEAT_INTERVALS_MAX intervals) and has applied to within
   * READY_APPLIED_LAG_ENTRIES_MAX entries of the leader's index.
   */
  readiness(): Readiness {
    const details = { appliedIndex: this.appliedIndex, leaderIndex: this.#leaderIndex }
    if (this.#stopping) return { ready: false, reason: 'stopping', ...details }
    if (!this.#synced) return { ready: false, reason: 'catching up with the log', ...details }
    const intervalMs = this.#options.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS_DEFAULT
    const silentMs = performance.now() - this.#heartbeatAckedMs
    if (silentMs > READY_HEARTBEAT_INTERVALS_MAX * intervalMs) {
      const silence = Number.isFinite(silentMs) ? `for ${Math.round(silentMs)} ms` : 'yet'
      return { ready: false, reason: `no leader acknowledged a heartbeat ${silence}`, ...details }
    }
    const behind = this.#leaderIndex - this.appliedIndex
    if (behind > READY_APPLIED_LAG_ENTRIES_MAX) {
      return {
        ready: false,
        reason: `applied ${this.appliedIndex} is ${behind} entries behind the leader's ${this.#leaderIndex} (ready within ${READY_APPLIED_LAG_ENTRIES_MAX})`,
        ...details,
      }
    }
    return { ready: true, ...details }
  }

  /** The digest of every record held, as replicas report `registryDigest`: equal means equal records. */
  digest(): string {
    return recordsDigest(this.#cache.all())
  }

  /** The libp2p host (its addresses, its connections). */
  get host(): WorkerHost {
    return this.#host
  }

  get client(): AuthorityClient {
    return this.#client
  }

  // ---------------------------------------------------------------------------------------------
  // Own changes.

  /**
   * Publishes a change of this node's own fields (capabilities, version, work counters): a new seq,
   * gossiped at once, then submitted to the leader; resolves when the log has it (acknowledged),
   * with the seq it was published with.
   */
  async update(fields: Partial<SelfReported>): Promise<SubmitResult & { readonly seq: number }> {
    const seq = await this.#cache.reserveSeq()
    const delta: Delta = { originPeerId: this.peerId, seq, fields }
    await this.#gossip(delta)
    const result = await this.#untilDone('submit', () => this.#client.submit(delta, { signal: this.#shutdown.signal }))
    return { ...result, seq }
  }

  /** Stops the worker; with `leave` (the default) it first tells the leader it is leaving. */
  stop(options: { leave?: boolean } = {}): Promise<void> {
    // A second call waits for the first (whose leave option stands).
    this.#stopDone ??= this.#stopOnce(options)
    return this.#stopDone
  }

  async #stopOnce(options: { leave?: boolean }): Promise<void> {
    this.#stopping = true
    for (const timer of this.#timers) clearInterval(timer)
    // A heartbeat the leader handles after the leave activates the node again (a heartbeat is how a
    // node returns): the leave goes only once no heartbeat is in flight (CI caught one racing it).
    await this.#heartbeatInFlight
    if (options.leave !== false) {
      try {
        await this.#client.leave(this.peerId, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS_DEFAULT * 2) })
        this.#logger?.info('left the network')
      } catch (error) {
        this.#logger?.warn({ err: error }, 'leave not acknowledged; the lease will expire')
      }
    }
    this.#stopped = true
    this.#shutdown.abort(new ProtocolError('UNAVAILABLE', 'worker stopping'))
    await this.#watchDone.catch(() => {})
    await this.#logQueue.catch(() => {})
    await this.#client.stop()
    await this.#host.stop()
    await this.#cache.close()
  }

  // ---------------------------------------------------------------------------------------------

  async #start(): Promise<void> {
    const gossip = this.#host.services.gossip
    // The string values are gossipsub's TopicValidatorResult values (see protocol gossip.ts).
    gossip.topicValidators.set(DELTAS_TOPIC, (_peer, message) => this.#validate(message) as TopicValidatorResult)
    gossip.addEventListener('message', (event) => this.#onGossip(event.detail))
    gossip.subscribe(DELTAS_TOPIC)

    // Our last seq lives in the log too: a wiped data dir must never publish a seq twice.
    const own = await this.#untilDone('get own record', () =>
      this.#client.get(this.peerId, { signal: this.#shutdown.signal }),
    )
    if (own.record !== null) await this.#cache.setOwnSeqAtLeast(own.record.originSeq)
    await this.#catchUp()
    this.#synced = true
    this.#options.onSynced?.(this.appliedIndex)
    this.dispatchEvent(new CustomEvent('synced', { detail: { appliedIndex: this.appliedIndex } }))

    const fields = {
      ...this.#options.self,
      multiaddrs: this.#host.getMultiaddrs().map((address) => address.toString()),
    }
    await this.update(fields)
    await this.#heartbeat()
    this.#logger?.info(
      { peerId: this.peerId, appliedIndex: this.appliedIndex, records: this.size, seq: this.ownSeq },
      'worker joined',
    )

    this.#watchDone = this.#watchLoop()
    this.#every(this.#options.heartbeatIntervalMs ?? HEARTBEAT_INTERVAL_MS_DEFAULT, () => void this.#heartbeat())
    this.#every(this.#options.antiEntropyIntervalMs ?? ANTI_ENTROPY_INTERVAL_MS_DEFAULT, () => void this.#antiEntropy())
    this.#every(PEER_MAINTENANCE_INTERVAL_MS, () => this.#maintainPeers())
    this.#maintainPeers()
  }

  /** The leader had applied through `index` (a page or an event ends there). */
  #heardLeaderAt(index: number): void {
    if (index > this.#leaderIndex) this.#leaderIndex = index
  }

  #every(intervalMs: number, run: () => void): void {
    const timer = setInterval(run, intervalMs)
    timer.unref()
    this.#timers.push(timer)
  }

  /** Retries a request until it succeeds or the worker stops; final errors (not retryable) throw. */
  async #untilDone<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    for (let round = 1; ; round++) {
      try {
        return await attempt()
      } catch (error) {
        if (this.#shutdown.signal.aborted) throw error
        const code = error instanceof ProtocolError ? error.code : undefined
        if (code !== 'UNAVAILABLE' && code !== 'TIMEOUT' && code !== 'NOT_LEADER') throw error
        this.#logger?.warn({ what, round, code }, 'authority unavailable, retrying')
        await sleep(WATCH_RETRY_DELAY_MS, this.#shutdown.signal)
      }
    }
  }

  /** `since` pages from the cache's index until the log has nothing more; a lost index resyncs from 0. */
  async #catchUp(): Promise<void> {
    if (this.#syncing) return
    this.#syncing = true
    try {
      for (let more = true; more && !this.#stopped; ) {
        const from = this.#cache.appliedIndex
        let page: SinceResult
        try {
          page = await this.#untilDone('since', () =>
            this.#client.since(from, SYNC_PAGE_RECORDS, { signal: this.#shutdown.signal }),
          )
        } catch (error) {
          // Our index is beyond the cluster's log: its data was replaced. Start over from its state.
          if (error instanceof ProtocolError && error.code === 'NOT_FOUND') {
            await this.#resync()
            continue
          }
          throw error
        }
        this.#heardLeaderAt(page.throughIndex)
        await this.#applyLog(page.records, page.throughIndex)
        more = page.more
      }
    } finally {
      this.#syncing = false
    }
  }

  /**
   * The registry from scratch: `since(0)` is the whole state (every record carries its changedIndex;
   * the registry keeps records, not history, so a compacted log loses nothing a worker needs).
   */
  async #resync(): Promise<void> {
    this.metrics.resyncs++
    const records: NodeData[] = []
    let from = 0
    let throughIndex = 0
    for (let more = true; more; ) {
      const page = await this.#untilDone('since', () =>
        this.#client.since(from, SYNC_PAGE_RECORDS, { signal: this.#shutdown.signal }),
      )
      records.push(...page.records)
      from = throughIndex = page.throughIndex
      more = page.more
    }
    // The cluster's log was replaced: what was heard of the old one no longer says anything.
    this.#leaderIndex = throughIndex
    await this.#enqueueLog(async () => {
      await this.#cache.replaceAll(dedupeLatest(records), Math.max(throughIndex, this.#cache.appliedIndex))
    })
    // No `change` per record here: whoever mirrors the confirmed records takes them all again.
    this.dispatchEvent(new CustomEvent('resynced', { detail: { appliedIndex: this.appliedIndex } }))
    this.#logger?.warn({ records: records.length, throughIndex }, 'cache rebuilt from the authority')
  }

  #enqueueLog<T>(run: () => Promise<T>): Promise<T> {
    const next = this.#logQueue.then(run, run)
    this.#logQueue = next.catch(() => {})
    return next
  }

  /**
   * Applies records the log delivered. Pages from the watch and from anti-entropy may overlap: a
   * record older than the one held is skipped by the cache, and the index only moves forward.
   */
  #applyLog(records: readonly NodeData[], throughIndex: number): Promise<void> {
    return this.#enqueueLog(async () => {
      const changed = records.filter((record) => {
        const held = this.#cache.get(record.peerId)
        return held === undefined || this.#cache.isProvisional(record.peerId) || held.changedIndex < record.changedIndex
      })
      await this.#cache.applyConfirmed(records, Math.max(throughIndex, this.#cache.appliedIndex))
      for (const record of changed)
        this.dispatchEvent(new CustomEvent<ChangeEventDetail>('change', { detail: { record, source: 'log' } }))
    })
  }

  async #watchLoop(): Promise<void> {
    while (!this.#stopped) {
      try {
        const watch = this.#client.watch(this.#cache.appliedIndex, {
          signal: this.#shutdown.signal,
          onInterrupted: () => this.metrics.watchReconnects++,
        })
        for await (const event of watch) {
          this.metrics.logEvents++
          this.#heardLeaderAt(event.throughIndex)
          await this.#applyLog(event.records, event.throughIndex)
        }
      } catch (error) {
        if (this.#stopped) return
        if (error instanceof ProtocolError && error.code === 'NOT_FOUND') {
          await this.#resync().catch((resyncError: unknown) =>
            this.#logger?.warn({ err: resyncError }, 'resync failed'),
          )
          continue
        }
        this.metrics.watchReconnects++
        // No replica answered for a while (a restart, an election): expected, and said without a stack.
        if (error instanceof ProtocolError && isRetryable(error.code))
          this.#logger?.info({ code: error.code, message: error.message }, 'watch ended; finding the leader again')
        else this.#logger?.warn({ err: error }, 'watch ended; finding the leader again')
        await sleep(WATCH_RETRY_DELAY_MS, this.#shutdown.signal).catch(() => {})
      }
    }
  }

  async #antiEntropy(): Promise<void> {
    if (this.#stopped) return
    const before = this.#cache.appliedIndex
    try {
      await this.#catchUp()
    } catch (error) {
      if (this.#stopped) return
      if (error instanceof ProtocolError && isRetryable(error.code))
        this.#logger?.info({ code: error.code, message: error.message }, 'anti-entropy failed; the next round retries')
      else this.#logger?.warn({ err: error }, 'anti-entropy failed; the next round retries')
      return
    }
    if (this.#cache.appliedIndex > before) this.metrics.antiEntropyRepairs++
  }

  async #heartbeat(): Promise<void> {
    if (this.#stopping || this.#heartbeatInFlight !== undefined) return
    const inFlight = this.#heartbeatOnce()
    this.#heartbeatInFlight = inFlight
    try {
      await inFlight
    } finally {
      this.#heartbeatInFlight = undefined
    }
  }

  async #heartbeatOnce(): Promise<void> {
    try {
      const answer = await this.#client.heartbeat(this.peerId, { signal: this.#shutdown.signal })
      this.metrics.heartbeats++
      this.#heartbeatAckedMs = performance.now()
      this.#leaderIndex = answer.index
    } catch (error) {
      this.metrics.heartbeatFailures++
      if (!this.#stopping) this.#logger?.warn({ code: (error as ProtocolError).code }, 'heartbeat not acknowledged')
    }
  }

  async #gossip(delta: Delta): Promise<void> {
    try {
      await this.#host.services.gossip.publish(DELTAS_TOPIC, encodeGossipDelta(delta))
      this.metrics.gossipPublished++
    } catch (error) {
      // Gossip is the fast path only: the submit that follows is what makes the change durable.
      this.metrics.gossipPublishFailures++
      this.#logger?.debug({ err: error, seq: delta.seq }, 'gossip publish failed')
    }
  }

  #validate(message: Message): 'accept' | 'reject' | 'ignore' {
    if (message.type !== 'signed') {
      this.metrics.gossipRejected++
      return 'reject'
    }
    const outcome = validateGossipDelta(
      { data: message.data, from: message.from.toString() },
      (origin) => this.#cache.get(origin)?.originSeq,
    )
    if (outcome.result === 'reject') {
      this.metrics.gossipRejected++
      this.#logger?.debug(
        { from: message.from.toString(), reason: outcome.reason, detail: outcome.detail },
        'gossip rejected',
      )
    } else if (outcome.result === 'ignore') {
      this.metrics.gossipIgnored++
    } else if (outcome.delta !== undefined) {
      this.#accepted.set(message, outcome.delta)
    }
    return outcome.result
  }

  #onGossip(message: Message): void {
    if (message.topic !== DELTAS_TOPIC || message.type !== 'signed' || this.#stopped) return
    // The validator decoded it moments ago; only a message it accepted reaches here.
    const delta = this.#accepted.get(message)
    if (delta === undefined) return
    this.#accepted.delete(message)
    const held = this.#cache.get(delta.originPeerId)
    const merged = mergeDelta(held, delta, Math.max(Date.now(), held?.lastUpdatedMs ?? 0), held?.changedIndex ?? 0)
    if ('stale' in merged) return
    this.metrics.gossipAccepted++
    void this.#cache.putProvisional(merged.record).then(
      (kept) => {
        if (kept)
          this.dispatchEvent(
            new CustomEvent<ChangeEventDetail>('change', { detail: { record: merged.record, source: 'gossip' } }),
          )
      },
      (error: unknown) => this.#logger?.warn({ err: error }, 'could not keep a gossiped record'),
    )
  }

  /** Keeps a few connections to other active workers, found in the registry, for the gossip mesh. */
  #maintainPeers(): void {
    if (this.#stopped) return
    const target = this.#options.gossipPeersTarget ?? GOSSIP_PEERS_TARGET_DEFAULT
    const connected = new Set(this.#host.getConnections().map((connection) => connection.remotePeer.toString()))
    let workers = 0
    for (const peerId of connected) if (!this.#replicaPeerIds.has(peerId)) workers++
    if (workers >= target) return
    const candidates = this.#cache
      .all()
      .filter(
        (record) =>
          record.isActive &&
          record.peerId !== this.peerId &&
          !connected.has(record.peerId) &&
          !this.#replicaPeerIds.has(record.peerId) &&
          record.multiaddrs.length > 0,
      )
    for (
      let dials = 0;
      dials < Math.min(PEER_DIALS_PER_ROUND_MAX, target - workers) && candidates.length > 0;
      dials++
    ) {
      const [record] = candidates.splice(Math.floor(Math.random() * candidates.length), 1)
      const address = record!.multiaddrs[0]!
      const dialable = address.includes('/p2p/') ? address : `${address}/p2p/${record!.peerId}`
      this.#host
        .dial(multiaddr(dialable), { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS_DEFAULT) })
        .catch((error: unknown) => {
          this.#logger?.debug({ peer: record!.peerId, err: error }, 'gossip peer dial failed')
        })
    }
  }
}

/** Keeps the newest record of each peer (by changedIndex) from pages that may overlap. */
function dedupeLatest(records: readonly NodeData[]): NodeData[] {
  const latest = new Map<string, NodeData>()
  for (const record of records) {
    const held = latest.get(record.peerId)
    if (held === undefined || held.changedIndex <= record.changedIndex) latest.set(record.peerId, record)
  }
  return [...latest.values()]
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason)
      return
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
