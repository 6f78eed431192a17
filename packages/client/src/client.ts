import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Libp2p, PrivateKey, Stream } from '@libp2p/interface'
import {
  API_PROTOCOL,
  API_RESPONSE_FRAME_BYTES_MAX,
  ProtocolError,
  SnapshotAssembler,
  decodeResponse,
  decodeSnapshotFrame,
  decodeWatchFrame,
  encodeRequest,
  checkRequest,
  encodeCheckedRequest,
  frameStream,
  isRetryable,
  readFrame,
  streamError,
  writeFrame,
} from '@nodeledger/protocol'
import type {
  ApiRequestInit,
  CheckedRequest,
  ApiResponse,
  Consistency,
  GetResult,
  LeaderHint,
  ListResult,
  MemberRequest,
  MemberResult,
  ResultByOp,
  PresenceResult,
  SinceResult,
  SnapshotHeader,
  StatusResult,
  SubmitResult,
  TransferResult,
  UnaryOp,
  WatchEvent,
} from '@nodeledger/protocol'
import type { Delta, ListFilter } from '@nodeledger/registry'
import { backoffDelayMs, deadline, sleep } from './backoff.ts'
import {
  ATTEMPTS_MAX_DEFAULT,
  BACKOFF_BASE_MS_DEFAULT,
  BACKOFF_MAX_MS_DEFAULT,
  REQUEST_TIMEOUT_MS_DEFAULT,
  SNAPSHOT_FRAME_TIMEOUT_MS_DEFAULT,
} from './constants.ts'
import { FeedRoute } from './feed-route.ts'
import { Session } from './session.ts'
import type { ClientLogger } from './session.ts'

export type { ClientLogger } from './session.ts'

export interface AuthorityClientInit {
  /** Replica multiaddrs, each ending in /p2p/<peerId>. */
  readonly bootstrap: readonly string[]
  /** A running (or startable) libp2p node to use; the client then neither starts nor stops it. */
  readonly libp2p?: Libp2p
  /** Identity of the node the client creates when `libp2p` is not given (submits need the origin's key). */
  readonly privateKey?: PrivateKey
  readonly requestTimeoutMs?: number
  readonly attemptsMax?: number
  readonly backoffBaseMs?: number
  readonly backoffMaxMs?: number
  readonly logger?: ClientLogger
  /** Source of backoff jitter in [0, 1); Math.random unless a test pins it. */
  readonly random?: () => number
  /**
   * Open one stream per request (PROTOCOL.md "Client API", the flow before sessions) instead of
   * sharing one session per replica. For servers that predate sessions, and for comparison.
   */
  readonly streamPerRequest?: boolean
  /** Requests in flight per session; SESSION_REQUESTS_INFLIGHT_MAX (256) unless a test lowers it. */
  readonly sessionInflightMax?: number
  /**
   * Spread `since` and `watch` over the replicas (PROTOCOL.md "Client behaviour"; feed-route.ts):
   * they go first to the replica this key hashes to (a worker passes its peer id), then to the
   * others in turn. Without it they go to the leader.
   */
  readonly feedKey?: string
  /** Wall clock for the feed's return home; Date.now unless a test pins it. */
  readonly clock?: () => number
}

export interface RequestOptions {
  readonly signal?: AbortSignal
}

export interface ReadOptions extends RequestOptions {
  readonly consistency?: Consistency
}

export interface SnapshotOptions extends RequestOptions {
  /** Told after the header and after each chunk: bytes received so far and in all (for a progress bar). */
  readonly onProgress?: (receivedBytes: number, totalBytes: number) => void
  /** Deadline of each frame's arrival, the first one included; SNAPSHOT_FRAME_TIMEOUT_MS_DEFAULT (30 s) by default. */
  readonly frameTimeoutMs?: number
}

/** A snapshot as the leader sent it: its header and the whole data, length and SHA-256 checked. */
export interface Snapshot {
  readonly header: SnapshotHeader
  readonly data: Uint8Array
  /** The data's SHA-256 (the end frame's, which the data matched). */
  readonly sha256: Uint8Array
}

export interface WatchOptions extends RequestOptions {
  /** The watch was interrupted (a lost connection, a leader change) and is being resumed: for a reconnect count. */
  readonly onInterrupted?: (code: ProtocolError['code']) => void
}

/** One replica's answer in statusAll: its status, or why it gave none. */
export interface ReplicaStatus {
  readonly multiaddr: string
  readonly peerId: string
  readonly status?: StatusResult
  readonly error?: ProtocolError
}

interface Replica {
  readonly address: Multiaddr
  readonly text: string
  readonly peerId: string
}

/** Where a request may go: the leader only, any replica (stale reads, status), or the feed's replica (since). */
type Route = 'leader' | 'any' | 'feed'

const NO_LOGGER: ClientLogger = { debug: () => {}, warn: () => {} }

/**
 * The cluster's client (PROTOCOL.md "Client behaviour"). Finds the leader through `status`, caches
 * it, follows NOT_LEADER hints, and retries TIMEOUT, UNAVAILABLE and connection failures on the
 * next replica with jittered exponential backoff, each attempt under its own deadline. Every other
 * error code is final and thrown at once. A retried submit is the same request, so the same
 * (originPeerId, seq): the server applies it once (PROTOCOL.md "Exactly-once submit").
 *
 * Requests other than `watch` share one session per replica (PROTOCOL.md "Sessions"; session.ts),
 * opened on first use and replaced after it fails; a watch has a stream of its own.
 */
export class AuthorityClient {
  readonly #replicas: readonly Replica[]
  readonly #requestTimeoutMs: number
  readonly #attemptsMax: number
  readonly #backoffBaseMs: number
  readonly #backoffMaxMs: number
  readonly #logger: ClientLogger
  readonly #random: () => number
  readonly #privateKey: PrivateKey | undefined
  readonly #ownsLibp2p: boolean
  readonly #streamPerRequest: boolean
  readonly #sessionInflightMax: number | undefined
  /** The live session of each replica, by multiaddr; a session removes itself when it ends. */
  readonly #sessions = new Map<string, Session>()
  #libp2p: Libp2p | undefined
  #shutdown = new AbortController()
  #started = false
  /** The cached leader's address: dialed first by leader-only requests. */
  #leader: Multiaddr | undefined
  /** Round-robin position over the bootstrap replicas for discovery and failover. */
  #next = 0
  /** Where since and watch go when spread (init.feedKey); undefined: to the leader. */
  readonly #feed: FeedRoute | undefined
  readonly #clock: () => number

  constructor(init: AuthorityClientInit) {
    if (init.bootstrap.length === 0) throw new TypeError('bootstrap: at least one replica multiaddr is needed')
    this.#replicas = init.bootstrap.map((text) => {
      const address = multiaddr(text)
      const peerId = peerIdOf(address)
      if (peerId === undefined) throw new TypeError(`bootstrap: ${text} does not end in /p2p/<peerId>`)
      return { address, text: address.toString(), peerId }
    })
    this.#requestTimeoutMs = positive(init.requestTimeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT, 'requestTimeoutMs')
    this.#attemptsMax = positive(init.attemptsMax ?? ATTEMPTS_MAX_DEFAULT, 'attemptsMax')
    this.#backoffBaseMs = positive(init.backoffBaseMs ?? BACKOFF_BASE_MS_DEFAULT, 'backoffBaseMs')
    this.#backoffMaxMs = positive(init.backoffMaxMs ?? BACKOFF_MAX_MS_DEFAULT, 'backoffMaxMs')
    if (this.#backoffMaxMs < this.#backoffBaseMs) throw new TypeError('backoffMaxMs: must be at least backoffBaseMs')
    this.#logger = init.logger ?? NO_LOGGER
    this.#random = init.random ?? Math.random
    this.#privateKey = init.privateKey
    this.#libp2p = init.libp2p
    this.#ownsLibp2p = init.libp2p === undefined
    this.#streamPerRequest = init.streamPerRequest ?? false
    this.#sessionInflightMax = init.sessionInflightMax
    this.#feed = init.feedKey === undefined ? undefined : new FeedRoute(this.#replicas, init.feedKey)
    this.#clock = init.clock ?? Date.now
  }

  async start(): Promise<void> {
    if (this.#started) return
    if (this.#libp2p === undefined) {
      this.#libp2p = await createLibp2p({
        ...(this.#privateKey === undefined ? {} : { privateKey: this.#privateKey }),
        transports: [tcp()],
        connectionEncrypters: [noise()],
        streamMuxers: [yamux()],
        services: { identify: identify() },
      })
    }
    this.#shutdown = new AbortController()
    this.#started = true
  }

  /** Aborts every request in flight (they fail with UNAVAILABLE) and stops the libp2p node if the client made it. */
  async stop(): Promise<void> {
    if (!this.#started) return
    this.#started = false
    const reason = new ProtocolError('UNAVAILABLE', 'client stopped')
    this.#shutdown.abort(reason)
    for (const session of [...this.#sessions.values()]) session.close(reason)
    this.#sessions.clear()
    if (this.#ownsLibp2p && this.#libp2p !== undefined) {
      await this.#libp2p.stop()
      this.#libp2p = undefined
    }
  }

  /** The libp2p node in use (its peer id is the origin the server authorizes submits against). */
  get libp2p(): Libp2p {
    if (this.#libp2p === undefined) throw new ProtocolError('UNAVAILABLE', 'client not started')
    return this.#libp2p
  }

  /** The cached leader's multiaddr, if any. */
  get leader(): string | undefined {
    return this.#leader?.toString()
  }

  /** Submits a delta; exactly once per (originPeerId, seq), also across retries and failovers. */
  async submit(delta: Delta, options: RequestOptions = {}): Promise<SubmitResult> {
    return this.#request('submit', { op: 'submit', delta }, 'leader', options.signal)
  }

  /**
   * The node's heartbeat (its lease, kept by the leader): answers once the registry holds the node
   * active. A heartbeat of an active node costs the leader no log entry. The node must have
   * submitted a delta first (NOT_FOUND otherwise).
   */
  async heartbeat(peerId: string, options: RequestOptions = {}): Promise<PresenceResult> {
    return this.#request('presence', { op: 'presence', peerId, event: 'heartbeat' }, 'leader', options.signal)
  }

  /** A graceful leave: answers once the registry holds the node inactive. */
  async leave(peerId: string, options: RequestOptions = {}): Promise<PresenceResult> {
    return this.#request('presence', { op: 'presence', peerId, event: 'leave' }, 'leader', options.signal)
  }

  async get(peerId: string, options: ReadOptions = {}): Promise<GetResult> {
    const consistency = options.consistency ?? 'linearizable'
    return this.#request('get', { op: 'get', peerId, consistency }, routeOf(consistency), options.signal)
  }

  /** One page; pass `nextAfterPeerId` back as `filter.afterPeerId` for the next. */
  async list(filter: ListFilter = {}, options: ReadOptions = {}): Promise<ListResult> {
    const consistency = options.consistency ?? 'linearizable'
    return this.#request('list', { op: 'list', filter, consistency }, routeOf(consistency), options.signal)
  }

  async since(index: number, limit: number, options: RequestOptions = {}): Promise<SinceResult> {
    return this.#request('since', { op: 'since', index, limit }, 'feed', options.signal)
  }

  /**
   * A membership change on the leader (operators only; PROTOCOL.md "Membership"): add a learner,
   * promote a caught-up learner, remove a member. Answers once the change is applied on the leader.
   * A retry after an unknown outcome may answer CONFLICT or INVALID if the first one took effect.
   */
  async member(request: Omit<MemberRequest, 'op'>, options: RequestOptions = {}): Promise<MemberResult> {
    return this.#request('member', { op: 'member', ...request }, 'leader', options.signal)
  }

  /** Hand leadership to voter `to` (operators only); answers once it leads. */
  async transferLeader(to: number, options: RequestOptions = {}): Promise<TransferResult> {
    return this.#request('transfer', { op: 'transfer', to }, 'leader', options.signal)
  }

  /**
   * The leader's state machine snapshot at a linearizable point, for a backup (operators only;
   * PROTOCOL.md "Snapshot"): the header (index, term, membership, record count and digest) and the
   * data, checked across frames for order, length and SHA-256 (SnapshotAssembler). An attempt that
   * fails part way (NOT_LEADER, TIMEOUT, UNAVAILABLE, a cut stream) is retried from the start, on
   * the leader, up to attemptsMax attempts: the server keeps no transfer state, so a retry is a new
   * snapshot at a new point. Any other error is thrown at once. The data is held in memory, at most
   * SNAPSHOT_DATA_BYTES_MAX.
   */
  async snapshot(options: SnapshotOptions = {}): Promise<Snapshot> {
    this.#checkStarted()
    const frameTimeoutMs = positive(options.frameTimeoutMs ?? SNAPSHOT_FRAME_TIMEOUT_MS_DEFAULT, 'frameTimeoutMs')
    let lastError: ProtocolError | undefined
    let followHint = false
    for (let attempt = 0; attempt < this.#attemptsMax; attempt++) {
      if (attempt > 0 && !followHint) await this.#backoff(attempt, options.signal)
      followHint = false
      try {
        const target = await this.#leaderTarget(options.signal)
        return await this.#snapshotFrom(target, frameTimeoutMs, options)
      } catch (caught) {
        if (options.signal?.aborted === true || this.#shutdown.signal.aborted)
          throw callerReason(options.signal, this.#shutdown.signal, caught)
        const error = asProtocolError(caught)
        if (!isRetryable(error.code)) throw error
        lastError = error
        followHint = this.#learn(error)
        this.#logger.debug({ op: 'snapshot', attempt, code: error.code, leader: this.leader }, 'attempt failed')
      }
    }
    this.#logger.warn({ op: 'snapshot', attempts: this.#attemptsMax, code: lastError?.code }, 'giving up')
    throw lastError ?? new ProtocolError('UNAVAILABLE', 'snapshot: no replica answered')
  }

  /**
   * Status of `target` (a replica multiaddr; one attempt, no retry), or of any replica that
   * answers (with retries across replicas).
   */
  async status(target?: string, options: RequestOptions = {}): Promise<StatusResult> {
    if (target === undefined) return this.#request('status', { op: 'status' }, 'any', options.signal)
    return this.#once('status', { op: 'status' }, multiaddr(target), options.signal)
  }

  /** Status of every bootstrap replica, in bootstrap order, each with its result or its error. */
  async statusAll(options: RequestOptions = {}): Promise<ReplicaStatus[]> {
    return Promise.all(
      this.#replicas.map(async (replica): Promise<ReplicaStatus> => {
        try {
          const status = await this.#once('status', { op: 'status' }, replica.address, options.signal)
          return { multiaddr: replica.text, peerId: replica.peerId, status }
        } catch (error) {
          return { multiaddr: replica.text, peerId: replica.peerId, error: asProtocolError(error) }
        }
      }),
    )
  }

  /**
   * Changes from `fromIndex` on, as events, for as long as the caller iterates, from the leader or,
   * with `feedKey`, from the feed's replica (feed-route.ts). On NOT_LEADER, a lost connection or any
   * retryable error it finds a replica again and resumes from the last `throughIndex` it delivered.
   * It throws a non-retryable error at once, and gives up after `attemptsMax` consecutive failures
   * without an event in between. Ends when `signal` aborts (throwing its reason) or the caller stops
   * iterating.
   */
  async *watch(fromIndex: number, options: WatchOptions = {}): AsyncGenerator<WatchEvent, void, undefined> {
    let from = fromIndex
    let failures = 0
    let lastError: ProtocolError | undefined
    let followHint = false
    while (true) {
      if (failures >= this.#attemptsMax)
        throw lastError ?? new ProtocolError('UNAVAILABLE', 'watch: no replica answered')
      if (failures > 0 && !followHint) await this.#backoff(failures, options.signal)
      followHint = false
      let stream: Stream | undefined
      let target: Multiaddr | undefined
      const { signal, dispose } = deadline(undefined, options.signal, this.#shutdown.signal)
      try {
        target = await this.#target('feed', options.signal)
        stream = await this.#openWatch(target, from, options.signal)
        const lp = frameStream(stream, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX })
        while (true) {
          const frame = decodeWatchFrame(await readFrame(lp, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX, signal }))
          if (!frame.ok) throw frame.error
          failures = 0
          if (frame.event.throughIndex > from) from = frame.event.throughIndex
          yield frame.event
          // A spread watch that fled its home replica goes back once home is due: re-opened from
          // the last throughIndex, it loses nothing.
          if (this.#feed?.homeDue(target, this.#clock()) === true) break
        }
      } catch (caught) {
        if (signal.aborted) throw callerReason(options.signal, this.#shutdown.signal, caught)
        const error = asProtocolError(caught)
        if (!isRetryable(error.code)) throw error
        lastError = error
        failures++
        followHint = this.#learnFeed(error, target)
        this.#logger.debug({ code: error.code, from, failures }, 'watch interrupted, resuming')
        options.onInterrupted?.(error.code)
      } finally {
        dispose()
        stream?.abort(new Error('watch closed'))
      }
    }
  }

  // -------------------------------------------------------------------------------------------

  /** The retry loop shared by every request-response op. */
  async #request<O extends UnaryOp>(
    op: O,
    request: ApiRequestInit,
    route: Route,
    callerSignal: AbortSignal | undefined,
  ): Promise<ResultByOp[O]> {
    this.#checkStarted()
    // Invalid input fails here, before any attempt: INVALID is final. Checked once; each attempt
    // only packs it (with its session id), and a request over the frame limit fails TOO_LARGE there,
    // unsent and final too.
    const checked = checkRequest(request)
    let lastError: ProtocolError | undefined
    let followHint = false
    for (let attempt = 0; attempt < this.#attemptsMax; attempt++) {
      if (attempt > 0 && !followHint) await this.#backoff(attempt, callerSignal)
      followHint = false
      let target: Multiaddr | undefined
      try {
        target = await this.#target(route, callerSignal)
        return await this.#once(op, checked, target, callerSignal)
      } catch (caught) {
        if (callerSignal?.aborted === true || this.#shutdown.signal.aborted)
          throw callerReason(callerSignal, this.#shutdown.signal, caught)
        const error = asProtocolError(caught)
        if (!isRetryable(error.code)) throw error
        lastError = error
        followHint = route === 'feed' ? this.#learnFeed(error, target) : this.#learn(error)
        this.#logger.debug({ op, attempt, code: error.code, leader: this.leader }, 'attempt failed')
      }
    }
    this.#logger.warn({ op, attempts: this.#attemptsMax, code: lastError?.code }, 'giving up')
    throw lastError ?? new ProtocolError('UNAVAILABLE', `${op}: no replica answered`)
  }

  /**
   * Updates the leader cache from a retryable error. Returns true when a NOT_LEADER hint named a
   * new leader to try at once (no backoff: the hint is fresh news, not a reason to wait).
   */
  #learn(error: ProtocolError): boolean {
    if (error.code === 'NOT_LEADER' && error.leader !== undefined) {
      const previous = this.#leader?.toString()
      const hinted = this.#addressOf(error.leader)
      this.#leader = hinted
      return hinted !== undefined && hinted.toString() !== previous
    }
    this.#leader = undefined
    return false
  }

  /** Where the next attempt on `route` goes. */
  async #target(route: Route, callerSignal: AbortSignal | undefined): Promise<Multiaddr> {
    if (route === 'feed' && this.#feed !== undefined) return this.#feed.target(this.#clock())
    if (route === 'any') return this.#leader ?? this.#nextReplica()
    return await this.#leaderTarget(callerSignal)
  }

  /**
   * A feed attempt at `target` failed (undefined: before a target was chosen). A spread feed moves
   * on along its ring or follows a NOT_LEADER hint (also the leader's address); a feed that follows
   * the leader learns as every leader-only request does. Returns whether to skip the backoff.
   */
  #learnFeed(error: ProtocolError, target: Multiaddr | undefined): boolean {
    if (this.#feed === undefined || target === undefined) return this.#learn(error)
    const hinted = error.code === 'NOT_LEADER' && error.leader !== undefined ? this.#addressOf(error.leader) : undefined
    if (hinted !== undefined) this.#leader = hinted
    return this.#feed.failed(target, this.#clock(), hinted)
  }

  /** The cached leader, or one found by asking the next replica for its status (one attempt). */
  async #leaderTarget(callerSignal: AbortSignal | undefined): Promise<Multiaddr> {
    if (this.#leader !== undefined) return this.#leader
    const replica = this.#nextReplica()
    const status = await this.#once('status', { op: 'status' }, replica, callerSignal)
    const leader = status.leader === null ? undefined : this.#addressOf(status.leader)
    if (leader === undefined)
      throw new ProtocolError(
        'UNAVAILABLE',
        `replica ${status.id} knows no leader (role ${status.role}, term ${status.term})`,
      )
    this.#leader = leader
    this.#logger.debug({ leader: leader.toString(), term: status.term }, 'leader found')
    return leader
  }

  /** The hint's first multiaddr, or the bootstrap address of the same peer. */
  #addressOf(hint: LeaderHint): Multiaddr | undefined {
    const first = hint.multiaddrs[0]
    if (first !== undefined) return multiaddr(first)
    return this.#replicas.find((replica) => replica.peerId === hint.peerId)?.address
  }

  #nextReplica(): Multiaddr {
    const replica = this.#replicas[this.#next % this.#replicas.length]!
    this.#next = (this.#next + 1) % this.#replicas.length
    return replica.address
  }

  async #backoff(attempt: number, callerSignal: AbortSignal | undefined): Promise<void> {
    const { signal, dispose } = deadline(undefined, callerSignal, this.#shutdown.signal)
    try {
      await sleep(backoffDelayMs(attempt, this.#backoffBaseMs, this.#backoffMaxMs, this.#random), signal)
    } finally {
      dispose()
    }
  }

  /** One attempt under one deadline: on the target's session, or on a stream of its own. */
  async #once<O extends UnaryOp>(
    op: O,
    request: ApiRequestInit | CheckedRequest,
    target: Multiaddr,
    callerSignal: AbortSignal | undefined,
  ): Promise<ResultByOp[O]> {
    this.#checkStarted()
    const checked = 'wire' in request ? request : checkRequest(request)
    const { signal, dispose } = deadline(this.#requestTimeoutMs, callerSignal, this.#shutdown.signal)
    try {
      if (this.#streamPerRequest) return await this.#onStream(op, encodeCheckedRequest(checked), target, signal)
      return await this.#session(target).request(op, checked, signal)
    } finally {
      dispose()
    }
  }

  /** The target's live session, or a new one (opened by its first request). */
  #session(target: Multiaddr): Session {
    const key = target.toString()
    const existing = this.#sessions.get(key)
    if (existing !== undefined && !existing.ended) return existing
    const session = new Session({
      libp2p: this.libp2p,
      target,
      openTimeoutMs: this.#requestTimeoutMs,
      ...(this.#sessionInflightMax === undefined ? {} : { inflightMax: this.#sessionInflightMax }),
      logger: this.#logger,
      onEnd: (ended) => {
        if (this.#sessions.get(key) === ended) this.#sessions.delete(key)
      },
    })
    this.#sessions.set(key, session)
    return session
  }

  /** One request on a stream of its own: dial, write the request, read the one response. */
  async #onStream<O extends UnaryOp>(
    op: O,
    bytes: Uint8Array,
    target: Multiaddr,
    signal: AbortSignal,
  ): Promise<ResultByOp[O]> {
    let stream: Stream | undefined
    let response: ApiResponse<ResultByOp[O]>
    try {
      stream = await this.#dial(target, signal)
      const lp = frameStream(stream, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX })
      await writeFrame(lp, bytes, { signal })
      response = decodeResponse(op, await readFrame(lp, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX, signal }))
    } catch (error) {
      stream?.abort(error instanceof Error ? error : new Error('request failed'))
      stream = undefined
      throw streamError(error, signal, `${op} to ${target.toString()}`)
    } finally {
      // The server closes after its one response; closing our side releases the stream at once.
      if (stream !== undefined) stream.close().catch(() => {})
    }
    if (!response.ok) throw response.error
    return response.result
  }

  /** One snapshot attempt on a stream of its own: the request, then frames until the end frame. */
  async #snapshotFrom(target: Multiaddr, frameTimeoutMs: number, options: SnapshotOptions): Promise<Snapshot> {
    const what = `snapshot from ${target.toString()}`
    const { signal, dispose } = deadline(undefined, options.signal, this.#shutdown.signal)
    let stream: Stream | undefined
    try {
      const opening = deadline(this.#requestTimeoutMs, signal)
      try {
        stream = await this.#dial(target, opening.signal)
      } catch (error) {
        throw streamError(error, opening.signal, what)
      } finally {
        opening.dispose()
      }
      const lp = frameStream(stream, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX })
      await writeFrame(lp, encodeRequest({ op: 'snapshot' }), { signal })
      const assembler = new SnapshotAssembler()
      for (;;) {
        const frameDeadline = deadline(frameTimeoutMs, signal)
        let bytes: Uint8Array
        try {
          bytes = await readFrame(lp, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX, signal: frameDeadline.signal })
        } finally {
          frameDeadline.dispose()
        }
        const progress = assembler.push(decodeSnapshotFrame(bytes))
        if (progress.done) return { header: progress.header, data: progress.data, sha256: progress.sha256 }
        if (progress.header !== undefined) options.onProgress?.(progress.receivedBytes, progress.header.totalBytes)
      }
    } catch (error) {
      stream?.abort(error instanceof Error ? error : new Error('snapshot failed'))
      stream = undefined
      throw streamError(error, signal, what)
    } finally {
      // The server closes after its end frame; closing our side releases the stream at once.
      if (stream !== undefined) stream.close().catch(() => {})
      dispose()
    }
  }

  async #openWatch(target: Multiaddr, fromIndex: number, callerSignal: AbortSignal | undefined): Promise<Stream> {
    const { signal, dispose } = deadline(this.#requestTimeoutMs, callerSignal, this.#shutdown.signal)
    let stream: Stream | undefined
    try {
      stream = await this.#dial(target, signal)
      await writeFrame(
        frameStream(stream, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX }),
        encodeRequest({ op: 'watch', fromIndex }),
        { signal },
      )
      return stream
    } catch (error) {
      stream?.abort(error instanceof Error ? error : new Error('watch failed'))
      throw streamError(error, signal, `watch to ${target.toString()}`)
    } finally {
      dispose()
    }
  }

  async #dial(target: Multiaddr, signal: AbortSignal): Promise<Stream> {
    return this.libp2p.dialProtocol(target, API_PROTOCOL, { signal })
  }

  #checkStarted(): void {
    if (!this.#started) throw new ProtocolError('UNAVAILABLE', 'client not started')
  }
}

function routeOf(consistency: Consistency): Route {
  return consistency === 'stale' ? 'any' : 'leader'
}

function peerIdOf(address: Multiaddr): string | undefined {
  const components = address.getComponents()
  const last = components[components.length - 1]
  return last?.name === 'p2p' ? last.value : undefined
}

function positive(value: number, what: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new TypeError(`${what}: must be a positive number, got ${value}`)
  return value
}

/** Dial failures, resets and anything unexpected from the transport count as UNAVAILABLE. */
function asProtocolError(error: unknown): ProtocolError {
  if (error instanceof ProtocolError) return error
  return new ProtocolError(
    'UNAVAILABLE',
    error instanceof Error ? `${error.name}: ${error.message}` : 'request failed',
    { cause: error },
  )
}

/** After the caller's signal or stop() aborted: the caller's reason, or UNAVAILABLE for stop(). */
function callerReason(callerSignal: AbortSignal | undefined, shutdown: AbortSignal, caught: unknown): unknown {
  if (callerSignal?.aborted === true) return callerSignal.reason
  if (shutdown.aborted) return shutdown.reason
  return caught
}
