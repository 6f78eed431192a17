import type { Connection, Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import {
  API_PROTOCOL,
  API_REQUEST_FRAME_BYTES_MAX,
  LIST_LIMIT_DEFAULT,
  ProtocolError,
  decodeRequest,
  encodeErrorResponse,
  encodeResponse,
  SESSION_REQUESTS_INFLIGHT_MAX,
  SNAPSHOT_DATA_BYTES_MAX,
  WriteBatcher,
  deadline,
  frameStream,
  snapshotFrames,
} from '@nodeledger/protocol'
import type { ApiRequest, LeaderHint, ResultByOp, SnapshotHeader, StatusResult, StreamOp } from '@nodeledger/protocol'
import type { Logger } from 'pino'
import {
  API_STREAMS_PER_CONNECTION_MAX,
  REQUEST_TIMEOUT_MS_DEFAULT,
  SOFTWARE_VERSION,
  WATCH_FRAMES_CACHED_MAX,
  WATCH_LINGER_MS_MAX,
  WATCH_LINGER_MS_MIN,
  WATCH_LINGER_MS_PER_WATCHER,
} from '../constants.ts'
import type { ApiCells, ApiCodeLabel } from '../metrics/cells.ts'
import { ReplicaRequestError } from '../replica-errors.ts'
import type { LeaderAddress } from '../replica-errors.ts'
import type { Replica } from '../replica/replica.ts'
import { decodeStateSnapshot } from '../replica/state-machine.ts'
import { LeaseKeeper } from '../liveness/lease-keeper.ts'
import { WatchFeed } from './watch-feed.ts'

/** Software version reported by status. */
/** A watcher that falls this many entries behind gets pages of at most this many records per event. */
const WATCH_RECORDS_PER_EVENT_MAX = 1000
/** How long a watch waits for new commits before it re-checks leadership and the stream. */
const WATCH_POLL_MS = 1_000
/**
 * How long a follower behind a feed request's index waits to apply it before it sends the caller to
 * the leader: a worker that switched from a replica a few entries ahead is served here a moment
 * later, instead of piling onto the leader.
 */
const FEED_CATCH_UP_WAIT_MS = 1_000
/**
 * Snapshot answers served at once: each holds a whole state machine snapshot in memory (up to
 * SNAPSHOT_DATA_BYTES_MAX) until its client has read it, and costs the leader one full encode.
 * Backups are an operator's occasional job; a third one waits (UNAVAILABLE, retry).
 */
const SNAPSHOT_TRANSFERS_MAX = 2

export interface ApiServerOptions {
  replica: Replica
  logger: Logger
  requestTimeoutMs?: number
}

/**
 * /nodeledger/api/1 (docs/PROTOCOL.md "Client API"): one request per stream, answered with one
 * response frame, or a stream of watch events. Bad input gets a typed error frame, never a crash.
 * Writes and linearizable reads on a follower get NOT_LEADER with the leader's address (we answer
 * rather than forward: the client then talks to the leader directly, one hop, and learns who leads).
 */
export class ApiServer {
  private readonly replica: Replica
  private readonly logger: Logger
  private readonly requestTimeoutMs: number
  private readonly shutdown = new AbortController()
  private readonly operators: ReadonlySet<string>
  /** Requests by op and code, latencies, sessions and watchers: the replica's metrics (cells.ts). */
  private readonly metrics: ApiCells
  /** Snapshot answers being written now (SNAPSHOT_TRANSFERS_MAX). */
  private snapshotTransfers = 0
  /** The leader's leases on worker nodes (heartbeats, leaves, connections). */
  readonly leases: LeaseKeeper
  /** Every watch's wake-up and event encoding, shared (watch-feed.ts). */
  readonly watchFeed: WatchFeed

  constructor(options: ApiServerOptions) {
    this.replica = options.replica
    this.logger = options.logger.child({ component: 'api' })
    this.requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT
    this.operators = new Set(options.replica.cluster.operators.map((operator) => operator.peerId))
    this.metrics = options.replica.metrics.api
    this.leases = new LeaseKeeper({
      replica: options.replica,
      logger: options.logger,
      liveness: options.replica.cluster.liveness,
      metrics: options.replica.metrics.leases,
      // Members follow the log: a replica added later is exempt from leases too.
      exemptPeerIds: { has: (peerId) => this.operators.has(peerId) || options.replica.isMemberPeer(peerId) },
    })
    const replica = options.replica
    this.watchFeed = new WatchFeed(
      {
        get applied() {
          return replica.applied
        },
        changesSince: (sinceIndex, limit) => replica.registry.changesSince(sinceIndex, limit),
        waitApplied: (index, signal) => replica.waitApplied(index, signal),
      },
      {
        recordsPerEventMax: WATCH_RECORDS_PER_EVENT_MAX,
        lingerMsMin: WATCH_LINGER_MS_MIN,
        lingerMsPerWatcher: WATCH_LINGER_MS_PER_WATCHER,
        lingerMsMax: WATCH_LINGER_MS_MAX,
        pollMs: WATCH_POLL_MS,
        framesCachedMax: WATCH_FRAMES_CACHED_MAX,
      },
    )
  }

  async start(): Promise<void> {
    this.leases.start()
    await this.replica.libp2p.handle(API_PROTOCOL, (stream, connection) => this.handle(stream, connection), {
      maxInboundStreams: API_STREAMS_PER_CONNECTION_MAX,
    })
  }

  async stop(): Promise<void> {
    this.shutdown.abort()
    this.leases.stop()
    await this.replica.libp2p.unhandle(API_PROTOCOL)
  }

  private async handle(stream: Stream, connection: Connection): Promise<void> {
    const startedMs = performance.now()
    const remotePeerId = connection.remotePeer.toString()
    const first = deadline(this.requestTimeoutMs, this.shutdown.signal)
    // Requests are at most API_REQUEST_FRAME_BYTES_MAX: a longer length prefix is refused before buffering.
    const lp = frameStream(stream, { maxBytes: API_REQUEST_FRAME_BYTES_MAX })
    try {
      let request: SessionRequest
      try {
        request = await this.readRequest(lp, first.signal)
      } catch (error) {
        // A client that reset its stream (or lost its connection) left: nobody to answer, nothing wrong here.
        if (isClientGone(error)) {
          this.clientLeft(error, remotePeerId)
          stream.abort(new Error('client left'))
          return
        }
        await this.answer(lp, stream, this.badRequest(error, remotePeerId, startedMs), first.signal)
        return
      }
      if (request.id !== undefined) {
        first.dispose()
        await this.session(lp, stream, remotePeerId, request, startedMs)
        return
      }
      if (request.op === 'watch') {
        first.dispose()
        await this.watch(lp, stream, request.fromIndex)
        return
      }
      if (request.op === 'snapshot') {
        // The first deadline bounds the read barrier only; each frame then has its own.
        await this.snapshot(lp, stream, remotePeerId, first.signal, startedMs)
        return
      }
      await this.answer(lp, stream, await this.respond(request, remotePeerId, first.signal, startedMs), first.signal)
    } finally {
      first.dispose()
    }
  }

  private async readRequest(lp: ReturnType<typeof frameStream>, signal?: AbortSignal): Promise<SessionRequest> {
    const frame = await lp.read(signal === undefined ? undefined : { signal })
    if (frame.byteLength > API_REQUEST_FRAME_BYTES_MAX)
      throw new ProtocolError(
        'TOO_LARGE',
        `request frame of ${frame.byteLength} bytes exceeds ${API_REQUEST_FRAME_BYTES_MAX}`,
      )
    return decodeRequest(frame.subarray())
  }

  private badRequest(error: unknown, remotePeerId: string, startedMs: number, id?: number): Uint8Array {
    const wire = this.toProtocolError(error)
    this.metrics.answered('unknown', wire.code, performance.now() - startedMs)
    this.logger.debug({ peer: remotePeerId, code: wire.code }, 'bad request')
    return this.errorFrame(wire, id)
  }

  /** Counted and logged at debug: a client that resets or drops its stream is ordinary (a deadline, an exit). */
  private clientLeft(error: unknown, remotePeerId: string): void {
    this.metrics.clientResets++
    this.logger.debug({ peer: remotePeerId, err: errorName(error) }, 'client left before a whole request arrived')
  }

  /** The answer frame to one unary request: its result, or its error. Counted by op and code, timed from `startedMs`. */
  private async respond(
    request: Exclude<ApiRequest, { op: StreamOp }>,
    remotePeerId: string,
    signal: AbortSignal,
    startedMs: number,
    id?: number,
  ): Promise<Uint8Array> {
    let frame: Uint8Array
    let code: ApiCodeLabel = 'OK'
    try {
      frame = await this.dispatch(request, remotePeerId, signal, id)
    } catch (error) {
      const wire = this.toProtocolError(error)
      code = wire.code
      frame = this.errorFrame(wire, id)
    }
    this.metrics.answered(request.op, code, performance.now() - startedMs)
    return frame
  }

  /**
   * A session (PROTOCOL.md "Sessions"): many requests on one stream, each with an id, answered as
   * they complete. Reading stops while SESSION_REQUESTS_INFLIGHT_MAX are pending, so a client that
   * floods gets back-pressure, not unbounded memory here.
   */
  private async session(
    lp: ReturnType<typeof frameStream>,
    stream: Stream,
    remotePeerId: string,
    first: SessionRequest,
    firstStartedMs: number,
  ): Promise<void> {
    this.metrics.sessions++
    this.metrics.sessionsOpen++
    try {
      await this.serveSession(lp, stream, remotePeerId, first, firstStartedMs)
    } finally {
      this.metrics.sessionsOpen--
    }
  }

  private async serveSession(
    lp: ReturnType<typeof frameStream>,
    stream: Stream,
    remotePeerId: string,
    first: SessionRequest,
    firstStartedMs: number,
  ): Promise<void> {
    let inflight = 0
    let slotFreed: (() => void) | undefined
    let broken = false
    // Answers that complete in one turn of the event loop (a Ready's worth of commits) leave in one
    // write: one muxer frame and one socket write instead of one each.
    const writer = new WriteBatcher<Uint8Array>(lp, {
      toFrames: (frames) => frames,
      onError: () => {
        broken = true
      },
      signal: this.shutdown.signal,
      writeTimeoutMs: this.requestTimeoutMs,
    })
    const send = (frame: Uint8Array): void => writer.write(frame)
    const start = (request: SessionRequest & { id: number }, startedMs: number): void => {
      if (request.op === 'watch' || request.op === 'snapshot') {
        this.metrics.answered(request.op, 'INVALID')
        send(
          this.errorFrame(
            new ProtocolError('INVALID', `${request.op} is not allowed in a session; open a stream of its own`),
            request.id,
          ),
        )
        return
      }
      inflight++
      const requestDeadline = deadline(this.requestTimeoutMs, this.shutdown.signal)
      void this.respond(request, remotePeerId, requestDeadline.signal, startedMs, request.id).then((frame) => {
        requestDeadline.dispose()
        inflight--
        slotFreed?.()
        send(frame)
      })
    }
    start(first as SessionRequest & { id: number }, firstStartedMs)
    while (!broken && !this.shutdown.signal.aborted) {
      while (inflight >= SESSION_REQUESTS_INFLIGHT_MAX) await new Promise<void>((resolve) => (slotFreed = resolve))
      slotFreed = undefined
      let request: SessionRequest
      try {
        request = await this.readRequest(lp)
      } catch (error) {
        // The client closed the session (end of stream) or sent something unreadable.
        if (!isEndOfStream(error) && !isClientGone(error)) send(this.badRequest(error, remotePeerId, performance.now()))
        break
      }
      const startedMs = performance.now()
      if (request.id === undefined) {
        send(
          this.badRequest(
            new ProtocolError('INVALID', 'every request in a session carries an id'),
            remotePeerId,
            startedMs,
          ),
        )
        break
      }
      start(request as SessionRequest & { id: number }, startedMs)
    }
    while (inflight > 0) await new Promise<void>((resolve) => (slotFreed = resolve))
    await writer.drained()
    try {
      await stream.close({ signal: AbortSignal.timeout(this.requestTimeoutMs) })
    } catch {
      stream.abort(new Error('session ended'))
    }
  }

  private async answer(
    lp: ReturnType<typeof frameStream>,
    stream: Stream,
    frame: Uint8Array,
    signal: AbortSignal,
  ): Promise<void> {
    try {
      await lp.write(frame, { signal })
      await stream.close({ signal })
    } catch {
      stream.abort(new Error('could not answer'))
    }
  }

  private async dispatch(
    request: Exclude<ApiRequest, { op: StreamOp }>,
    remotePeerId: string,
    signal: AbortSignal,
    id?: number,
  ): Promise<Uint8Array> {
    const replica = this.replica
    switch (request.op) {
      case 'submit': {
        const { delta } = request
        const privileged = this.operators.has(remotePeerId) || replica.isMemberPeer(remotePeerId)
        if (delta.originPeerId !== remotePeerId && !privileged) {
          throw new ProtocolError(
            'UNAUTHORIZED',
            `peer ${remotePeerId} may not submit deltas for ${delta.originPeerId}`,
          )
        }
        if (!replica.isLeader()) throw this.notLeader()
        // Exactly once by (origin, seq): a retry of what is already applied answers without a new entry.
        const existing = replica.registry.get(delta.originPeerId)
        if (existing !== undefined && delta.seq < existing.originSeq) {
          throw new ProtocolError(
            'STALE',
            `seq ${delta.seq} of ${delta.originPeerId} is below the applied ${existing.originSeq}`,
          )
        }
        if (existing !== undefined && delta.seq === existing.originSeq) {
          return encodeResponse('submit', { index: existing.changedIndex, duplicate: true }, id)
        }
        // The registry accepts a delta from its origin or from a replica. An operator's write was
        // authorized here, so this replica vouches for it as the submitter.
        const submitterPeerId =
          delta.originPeerId === remotePeerId || replica.isMemberPeer(remotePeerId)
            ? remotePeerId
            : replica.member.peerId
        const { index, result } = await replica.propose({ kind: 'delta', submitterPeerId, delta }, signal)
        if (result.status === 'applied') return encodeResponse('submit', { index, duplicate: false }, id)
        if (result.status === 'stale') {
          if (result.reason === 'REPLAYED') return encodeResponse('submit', { index, duplicate: true }, id)
          throw new ProtocolError('STALE', `seq ${delta.seq} of ${delta.originPeerId} was overtaken (${result.reason})`)
        }
        throw new ProtocolError(result.code === 'UNAUTHORIZED' ? 'UNAUTHORIZED' : 'INVALID', result.message)
      }
      case 'get': {
        await this.readBarrier(request.consistency, signal)
        // The index the registry is read at, taken in the same synchronous step as the read: the
        // barrier's own index can be behind it, since entries keep being applied between the
        // barrier resolving and this code running (PROTOCOL.md GetResult: "the replica's applied
        // index the read was served at", so a record's changedIndex is never above it).
        const index = replica.applied
        return encodeResponse('get', { record: replica.registry.get(request.peerId) ?? null, index }, id)
      }
      case 'list': {
        await this.readBarrier(request.consistency, signal)
        const index = replica.applied // with the read, as for get
        const limit = request.filter.limit ?? LIST_LIMIT_DEFAULT
        // One more than asked tells whether another page follows.
        const records = replica.registry.list({ ...request.filter, limit: limit + 1 })
        const page = records.slice(0, limit)
        const result: ResultByOp['list'] =
          records.length > limit
            ? { records: page, index, nextAfterPeerId: page[page.length - 1]!.peerId }
            : { records: page, index }
        return encodeResponse('list', result, id)
      }
      case 'since': {
        await this.requireFeedFrom(request.index, signal)
        return this.pageOfChanges(request.index, request.limit, id)
      }
      case 'status':
        return encodeResponse('status', this.status(), id)
      case 'presence': {
        if (request.peerId !== remotePeerId && !this.operators.has(remotePeerId)) {
          throw new ProtocolError('UNAUTHORIZED', `peer ${remotePeerId} may not report presence for ${request.peerId}`)
        }
        const result =
          request.event === 'heartbeat'
            ? await this.leases.heartbeat(request.peerId, signal)
            : await this.leases.leave(request.peerId, signal)
        return encodeResponse('presence', result, id)
      }
      case 'member': {
        this.requireOperator(remotePeerId, 'change the membership')
        if (!replica.isLeader()) throw this.notLeader()
        const { index } = await replica.changeMembership(request, signal)
        return encodeResponse('member', { index, members: this.membersOfRecord() }, id)
      }
      case 'transfer': {
        this.requireOperator(remotePeerId, 'transfer leadership')
        if (!replica.isLeader()) throw this.notLeader()
        if (request.to === replica.id) return encodeResponse('transfer', { leader: replica.id }, id)
        const transferred = await replica.transferLeadershipTo(request.to, this.requestTimeoutMs)
        if (!transferred) throw new ProtocolError('TIMEOUT', `replica ${request.to} did not take over in time`)
        return encodeResponse('transfer', { leader: request.to }, id)
      }
    }
  }

  private requireOperator(remotePeerId: string, what: string): void {
    if (this.operators.has(remotePeerId)) return
    throw new ProtocolError(
      'UNAUTHORIZED',
      `peer ${remotePeerId} may not ${what}: only the cluster file's operators may`,
    )
  }

  /** The membership of record (the log's), not the cluster file's. */
  private membersOfRecord(): StatusResult['members'] {
    return this.replica.members().map((member) => ({
      id: member.id,
      peerId: member.peerId,
      multiaddr: canonical(member.multiaddr),
      voter: member.voter,
      started: member.started,
    }))
  }

  /**
   * Whether this replica may serve since and watch (PROTOCOL.md "Operations"): it leads, or it heard
   * its leader within an election timeout, so its applied state is a committed prefix at most that
   * far behind. A partitioned follower or learner stops serving once its leader falls silent.
   */
  private servesFeed(): boolean {
    // isLeader first: the leader's watch loop asks on every turn, and it is the cheaper question.
    return this.replica.isLeader() || this.replica.leaderHeardRecently()
  }

  /**
   * Resolves once this replica may serve a feed from `index` at its applied state; throws otherwise.
   *
   *   leader      an index beyond its log is NOT_FOUND (never committed by this cluster)
   *   follower    NOT_LEADER (with the hint) when it serves no feed, or when `index` is beyond its
   *               applied state after FEED_CATCH_UP_WAIT_MS: only the leader can tell an index this
   *               follower has yet to apply from one never committed. Serving below the caller's
   *               index would move its throughIndex backwards.
   */
  private async requireFeedFrom(index: number, signal: AbortSignal): Promise<void> {
    const replica = this.replica
    if (!replica.isLeader()) {
      if (!this.servesFeed()) throw this.notLeader()
      if (index <= replica.applied) return
      // An index past this follower's log is not one it is about to apply: the leader decides at once.
      if (index <= replica.status().lastIndex) {
        const waiting = deadline(FEED_CATCH_UP_WAIT_MS, signal)
        try {
          await replica.waitApplied(index, waiting.signal)
        } catch {
          // not applied in time: the leader serves it
        } finally {
          waiting.dispose()
        }
      }
      if (replica.isLeader()) return this.requireFeedFrom(index, signal)
      if (index <= replica.applied && this.servesFeed()) return
      throw this.notLeader()
    }
    const lastIndex = replica.status().lastIndex
    if (index > lastIndex)
      throw new ProtocolError(
        'NOT_FOUND',
        `index ${index} is beyond this cluster's log (last index ${lastIndex}); resynchronise from 0`,
      )
  }

  /** A page of changes that fits one response frame: halve the page until it does. */
  private pageOfChanges(index: number, limit: number, id?: number): Uint8Array {
    for (let pageLimit = limit; ; pageLimit = Math.max(1, Math.floor(pageLimit / 2))) {
      const changes = this.replica.registry.changesSince(index, pageLimit)
      try {
        return encodeResponse(
          'since',
          { records: changes.records, throughIndex: changes.throughIndex, more: changes.more },
          id,
        )
      } catch (error) {
        if (!(error instanceof ProtocolError) || error.code !== 'TOO_LARGE' || pageLimit === 1) throw error
      }
    }
  }

  /** Resolves once the registry may be read at `consistency`; read `replica.applied` with the registry, not before. */
  private async readBarrier(consistency: 'linearizable' | 'lease' | 'stale', signal: AbortSignal): Promise<void> {
    if (consistency !== 'stale' && !this.replica.isLeader()) throw this.notLeader()
    await this.replica.readBarrier(consistency, signal)
  }

  /**
   * Stream committed changes after `fromIndex`, from this replica's applied state (the leader's, or
   * a follower's that hears it), in log order. The watch ends with an error frame when this replica
   * stops serving feeds (NOT_LEADER, with the hint) or shuts down (UNAVAILABLE); the client resumes from its last throughIndex elsewhere. Events are
   * pulled from the registry as the watcher reads them, so a slow watcher costs no buffered memory.
   */
  private async watch(lp: ReturnType<typeof frameStream>, stream: Stream, fromIndex: number): Promise<void> {
    this.metrics.watchersOpen++
    this.watchFeed.opened()
    let code: ApiCodeLabel = 'OK'
    try {
      code = await this.serveWatch(lp, stream, fromIndex)
    } finally {
      this.watchFeed.closed()
      this.metrics.watchersOpen--
      this.metrics.answered('watch', code)
    }
  }

  /** The watch itself; resolves with the code it ended with (OK: the client or a shutdown ended it). */
  private async serveWatch(
    lp: ReturnType<typeof frameStream>,
    stream: Stream,
    fromIndex: number,
  ): Promise<ApiCodeLabel> {
    try {
      await this.requireFeedFrom(fromIndex, this.shutdown.signal)
    } catch (error) {
      const wire = this.toProtocolError(error)
      await this.answer(lp, stream, this.errorFrame(wire), AbortSignal.timeout(this.requestTimeoutMs))
      return wire.code
    }
    let code: ApiCodeLabel = 'OK'
    let throughIndex = fromIndex
    const closed = new AbortController()
    stream.addEventListener('close', () => closed.abort(), { once: true })
    const watching = deadline(undefined, this.shutdown.signal, closed.signal)
    const signal = watching.signal
    try {
      while (!signal.aborted) {
        if (!this.servesFeed()) throw this.notLeader()
        // The applied index the event is built at: an entry that changed no record (a new term's
        // no-op, a membership change) moves it but not the registry's, so the watch waits for an
        // entry after this one, not after throughIndex (that would return at once, forever).
        const builtAt = this.replica.applied
        const event = this.watchFeed.eventAfter(throughIndex)
        if (event !== undefined) {
          await lp.write(event.frame, { signal })
          throughIndex = event.throughIndex
          if (event.more) continue
        }
        // Wait for the next applied entry, with every other watcher (or a poll interval, to notice a
        // closed stream or a lost leadership).
        await this.watchFeed.changedAfter(builtAt, signal)
      }
    } catch (error) {
      // A watcher that reset its stream ended its watch, as one that closed it does.
      if (!signal.aborted && !isClientGone(error)) {
        const wire = this.toProtocolError(error)
        code = wire.code
        try {
          await lp.write(this.errorFrame(wire), {
            signal: AbortSignal.timeout(this.requestTimeoutMs),
          })
        } catch {
          // the stream is gone
        }
      }
    } finally {
      watching.dispose()
      stream.abort(new Error('watch ended'))
    }
    return code
  }

  /**
   * A snapshot for a backup (PROTOCOL.md "Snapshot"), operators only, on the leader: a ReadIndex
   * barrier first, so the snapshot reflects every write acknowledged before the request, then the
   * state machine's snapshot at the applied index, taken in one synchronous step with the
   * membership, record count and digest the header reports. Then the header, the data in chunks
   * and the end frame with its SHA-256, each write under its own deadline: a client that stops
   * reading is cut off, never buffered for. Losing leadership after the barrier does not stop the
   * transfer: the bytes were fixed at a linearizable point and stay true.
   */
  private async snapshot(
    lp: ReturnType<typeof frameStream>,
    stream: Stream,
    remotePeerId: string,
    barrierSignal: AbortSignal,
    startedMs: number,
  ): Promise<void> {
    const replica = this.replica
    const answeredWith = (error: unknown): Uint8Array => {
      const wire = this.toProtocolError(error)
      this.metrics.answered('snapshot', wire.code, performance.now() - startedMs)
      return this.errorFrame(wire)
    }
    let frames: Generator<Uint8Array, void, undefined>
    let headerFrame: Uint8Array
    try {
      this.requireOperator(remotePeerId, 'take a snapshot')
      if (!replica.isLeader()) throw this.notLeader()
      if (this.snapshotTransfers >= SNAPSHOT_TRANSFERS_MAX) {
        throw new ProtocolError(
          'UNAVAILABLE',
          `${this.snapshotTransfers} snapshots are being sent already (at most ${SNAPSHOT_TRANSFERS_MAX}); retry shortly`,
        )
      }
    } catch (error) {
      await this.answer(lp, stream, answeredWith(error), AbortSignal.timeout(this.requestTimeoutMs))
      return
    }
    this.snapshotTransfers++
    try {
      try {
        await replica.readBarrier('linearizable', barrierSignal)
        const { header, data } = this.takeSnapshot()
        frames = snapshotFrames(header, data)
        // The header is encoded (and checked as a client will check it) here, so a bad one is
        // answered as an error frame rather than a cut stream.
        headerFrame = frames.next().value as Uint8Array
      } catch (error) {
        // A fresh deadline: the barrier's may be the one that just passed (TIMEOUT is still an answer).
        await this.answer(lp, stream, answeredWith(error), AbortSignal.timeout(this.requestTimeoutMs))
        return
      }
      // Counted when the header leaves (the transfer itself may still be cut).
      this.metrics.answered('snapshot', 'OK', performance.now() - startedMs)
      const closed = new AbortController()
      stream.addEventListener('close', () => closed.abort(), { once: true })
      const send = async (frame: Uint8Array): Promise<void> => {
        const write = deadline(this.requestTimeoutMs, this.shutdown.signal, closed.signal)
        try {
          await lp.write(frame, { signal: write.signal })
        } finally {
          write.dispose()
        }
      }
      try {
        await send(headerFrame)
        // One chunk encoded at a time, each only once the previous one was taken by the stream.
        for (const frame of frames) await send(frame)
        await stream.close({ signal: AbortSignal.timeout(this.requestTimeoutMs) })
      } catch (error) {
        this.logger.debug({ peer: remotePeerId, err: (error as Error).message }, 'snapshot transfer cut off')
        stream.abort(new Error('snapshot transfer ended'))
      }
    } finally {
      this.snapshotTransfers--
    }
  }

  /** The snapshot and its header, read in one synchronous step (nothing is applied in between). */
  private takeSnapshot(): { header: SnapshotHeader; data: Uint8Array } {
    const replica = this.replica
    const taken = replica.snapshotAtApplied()
    const records = replica.registry.size
    const registryDigest = replica.registryDigest()
    if (taken.data.byteLength > SNAPSHOT_DATA_BYTES_MAX) {
      throw new ProtocolError(
        'TOO_LARGE',
        `the snapshot is ${taken.data.byteLength} bytes, more than a client accepts (${SNAPSHOT_DATA_BYTES_MAX})`,
      )
    }
    // Validated right before it is sent: the bytes decode as a state machine snapshot (checksum,
    // member directory), and the directory names every member of the configuration at that index.
    const { members: directory } = decodeStateSnapshot(taken.data, [])
    const { voters, learners } = taken.confState
    const members = [...voters, ...learners]
      .sort((a, b) => a - b)
      .map((id) => {
        const member = directory.get(id)
        if (member === undefined || member.peerId === '' || member.multiaddr === '') {
          throw new Error(`snapshot at ${taken.index}: member ${id} of the configuration has no directory entry`)
        }
        return {
          id,
          peerId: member.peerId,
          multiaddr: canonical(member.multiaddr),
          voter: voters.includes(id),
          started: member.started,
        }
      })
    return {
      header: {
        clusterId: replica.cluster.clusterId,
        leader: replica.id,
        index: taken.index,
        term: taken.term,
        members,
        records,
        registryDigest,
        totalBytes: taken.data.byteLength,
      },
      data: taken.data,
    }
  }

  status(): StatusResult {
    const status = this.replica.status()
    return {
      clusterId: this.replica.cluster.clusterId,
      id: status.id,
      peerId: status.peerId,
      role: status.role,
      term: status.term,
      leader: status.leader === undefined ? null : hint(status.leader),
      commit: status.commit,
      applied: status.applied,
      firstIndex: status.firstIndex,
      lastIndex: status.lastIndex,
      snapshotIndex: status.snapshotIndex,
      members: this.membersOfRecord(),
      registryRecords: status.registryRecords,
      registryDigest: this.replica.registryDigest(),
      version: SOFTWARE_VERSION,
    }
  }

  private notLeader(): ProtocolError {
    const leader = this.replica.leaderMember()
    return new ProtocolError(
      'NOT_LEADER',
      leader === undefined ? 'no leader is known right now; retry shortly' : `replica ${leader.id} leads`,
      leader === undefined ? undefined : { leader: hint(leader) },
    )
  }

  /**
   * The error frame for `error`. encodeErrorResponse refuses (throws) a frame its own decoder would
   * refuse; that is a bug here, and the client still gets an answer it can read and retry.
   */
  private errorFrame(error: unknown, id?: number): Uint8Array {
    try {
      return encodeErrorResponse(this.toProtocolError(error), id)
    } catch (bug) {
      this.logger.error({ err: bug }, 'error frame refused by its own codec; answering UNAVAILABLE')
      return encodeErrorResponse(new ProtocolError('UNAVAILABLE', 'internal error'), id)
    }
  }

  private toProtocolError(error: unknown): ProtocolError {
    if (error instanceof ProtocolError) return error
    if (error instanceof ReplicaRequestError) {
      // A leader hint travels with NOT_LEADER only (PROTOCOL.md "Responses"): the replica may name
      // the leader with other codes too (a dropped proposal is UNAVAILABLE), and a hint there would
      // make the whole frame INVALID for the client, a final error instead of a retryable one.
      return new ProtocolError(
        error.code,
        error.message,
        error.code !== 'NOT_LEADER' || error.leader === undefined ? undefined : { leader: hint(error.leader) },
      )
    }
    const name = (error as { name?: string }).name
    if (name === 'AbortError' || name === 'TimeoutError') return new ProtocolError('TIMEOUT', 'request deadline passed')
    const code = (error as { code?: string }).code
    if (code === 'ERR_MSG_DATA_TOO_LONG' || name === 'InvalidDataLengthError')
      return new ProtocolError('TOO_LARGE', (error as Error).message)
    if (name === 'UnexpectedEOFError' || code === 'ERR_UNEXPECTED_EOF')
      return new ProtocolError('INVALID', 'stream ended before a whole request frame')
    // The client reset the stream or its connection closed: ordinary, whatever was in flight.
    if (isClientGone(error)) {
      this.logger.debug({ err: errorName(error) }, 'stream closed by the client while serving it')
      return new ProtocolError('UNAVAILABLE', 'the stream was closed')
    }
    this.logger.error({ err: error }, 'unexpected error serving a request')
    return new ProtocolError('UNAVAILABLE', 'internal error')
  }
}

type SessionRequest = ApiRequest & { readonly id?: number }

/**
 * libp2p's errors for a stream or connection that went away under us: the client reset or aborted
 * its stream, or its connection (or the muxer) closed. A client's deadline, a killed process and
 * a worker's stop all look like this; none is a fault of the server.
 */
const CLIENT_GONE_ERRORS: ReadonlySet<string> = new Set([
  'StreamResetError',
  'StreamAbortedError',
  'StreamClosedError',
  'StreamStateError',
  'ConnectionClosedError',
  'ConnectionClosingError',
  'MuxerClosedError',
])

function isClientGone(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false
  const { name, code } = error as { name?: unknown; code?: unknown }
  return (
    (typeof name === 'string' && CLIENT_GONE_ERRORS.has(name)) ||
    code === 'ERR_STREAM_RESET' ||
    code === 'ECONNRESET' ||
    code === 'EPIPE'
  )
}

function errorName(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
}

function isEndOfStream(error: unknown): boolean {
  const name = (error as { name?: string }).name
  return (
    name === 'UnexpectedEOFError' ||
    name === 'StreamResetError' ||
    name === 'StreamClosedError' ||
    name === 'AbortError' ||
    (error as { code?: string }).code === 'ERR_UNEXPECTED_EOF'
  )
}

function hint(member: LeaderAddress): LeaderHint {
  return { id: member.id, peerId: member.peerId, multiaddrs: [canonical(member.multiaddr)] }
}

const canonicalMultiaddrs = new Map<string, string>()

/**
 * A cluster-file multiaddr in the canonical form the wire requires (PROTOCOL.md "Multiaddrs"): the
 * cluster file accepts any form the parser reads (e.g. a port written 04001), and a client refuses
 * a hint or member that is not canonical. Cached: the cluster's few addresses, parsed once each.
 */
function canonical(address: string): string {
  let text = canonicalMultiaddrs.get(address)
  if (text === undefined) {
    text = multiaddr(address).toString()
    canonicalMultiaddrs.set(address, text)
  }
  return text
}
