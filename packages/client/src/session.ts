import type { Multiaddr } from '@multiformats/multiaddr'
import type { Libp2p, Stream } from '@libp2p/interface'
import type { LengthPrefixedStream } from '@libp2p/utils'
import {
  API_PROTOCOL,
  API_REQUEST_FRAME_BYTES_MAX,
  API_RESPONSE_FRAME_BYTES_MAX,
  ProtocolError,
  REQUEST_ID_MAX,
  SESSION_REQUESTS_INFLIGHT_MAX,
  decodeSessionResponse,
  encodeCheckedRequest,
  frameStream,
  readFrame,
  streamError,
  WriteBatcher,
} from '@nodeledger/protocol'
import type { ApiResponse, CheckedRequest, ResultByOp, UnaryOp } from '@nodeledger/protocol'
import { deadline } from './backoff.ts'

/** The subset of a pino logger the client uses; pass `pino().child({ component: 'client' })`. */
export interface ClientLogger {
  debug(fields: object, message: string): void
  warn(fields: object, message: string): void
}

export interface SessionInit {
  readonly libp2p: Libp2p
  readonly target: Multiaddr
  /** Deadline of the dial and protocol negotiation, shared by every request waiting for it. */
  readonly openTimeoutMs: number
  /** Requests in flight at most; SESSION_REQUESTS_INFLIGHT_MAX, less only in tests. */
  readonly inflightMax?: number
  readonly logger: ClientLogger
  /** Called once when the session ends, whatever the reason, so its owner stops handing it requests. */
  readonly onEnd: (session: Session) => void
}

/**
 * One request in a session. `sent` turns true when its frame is handed to the stream; `abandoned`
 * when its caller stopped waiting (deadline or abort). An abandoned request that was sent keeps its
 * id and slot until its late answer arrives: the server still counts it against the session's
 * limit, and PROTOCOL.md "Sessions" allows reusing an id only after its answer.
 */
interface Pending {
  readonly op: UnaryOp
  sent: boolean
  abandoned: boolean
  readonly settle: (response: ApiResponse<ResultByOp[UnaryOp]>) => void
  readonly fail: (error: ProtocolError) => void
}

/**
 * A session (PROTOCOL.md "Sessions"): one long-lived /nodeledger/api/1 stream to one replica that
 * carries many requests at once, each with an id, answered in any order. Opened lazily by the first
 * request; one writer (a promise chain) serializes frame writes and waits for the stream to drain;
 * one reader loop routes answers by id. At most `inflightMax` requests are in flight; more wait for
 * a slot under their own deadline. When the stream fails, closes, or the server ends the session,
 * every request on it fails with UNAVAILABLE and the session is over: the owner opens a new one on
 * the next attempt.
 */
export class Session {
  readonly target: Multiaddr
  readonly #libp2p: Libp2p
  readonly #openTimeoutMs: number
  readonly #inflightMax: number
  readonly #logger: ClientLogger
  readonly #onEnd: (session: Session) => void
  readonly #pending = new Map<number, Pending>()
  /** Callers waiting for a slot, first come first served; each also leaves on its own deadline. */
  readonly #slotWaiters: Array<() => void> = []
  /** Aborted when the session ends: stops the reader, the writer and the dial. */
  readonly #end = new AbortController()
  #opening: Promise<LengthPrefixedStream<Stream>> | undefined
  #stream: Stream | undefined
  #writer: WriteBatcher<{ id: number; bytes: Uint8Array }> | undefined
  #nextId = 0
  #ended: ProtocolError | undefined

  constructor(init: SessionInit) {
    this.target = init.target
    this.#libp2p = init.libp2p
    this.#openTimeoutMs = init.openTimeoutMs
    this.#inflightMax = init.inflightMax ?? SESSION_REQUESTS_INFLIGHT_MAX
    if (!(this.#inflightMax >= 1 && this.#inflightMax <= SESSION_REQUESTS_INFLIGHT_MAX)) {
      throw new TypeError(`inflightMax: must be in [1, ${SESSION_REQUESTS_INFLIGHT_MAX}], got ${this.#inflightMax}`)
    }
    this.#logger = init.logger
    this.#onEnd = init.onEnd
  }

  get ended(): boolean {
    return this.#ended !== undefined
  }

  /** Requests holding a slot: waiting to be written, awaiting an answer, or abandoned and awaiting a late one. */
  get inflight(): number {
    return this.#pending.size
  }

  /**
   * Sends `request` on the session and waits for its answer, until `signal` aborts (then throws as
   * streamError maps the reason: TIMEOUT for a deadline). A server error is thrown as it came.
   */
  async request<O extends UnaryOp>(op: O, request: CheckedRequest, signal: AbortSignal): Promise<ResultByOp[O]> {
    try {
      const lp = await untilAborted(this.#open(), signal)
      await this.#acquireSlot(signal)
      const id = this.#allocateId()
      const bytes = encodeCheckedRequest(request, id)
      const answer = new Promise<ApiResponse<ResultByOp[UnaryOp]>>((resolve, reject) => {
        this.#pending.set(id, { op, sent: false, abandoned: false, settle: resolve, fail: reject })
      })
      if (this.#pending.size > this.#inflightMax)
        throw new Error(`session: ${this.#pending.size} in flight, above ${this.#inflightMax}`)
      this.#write(lp, id, bytes)
      let response: ApiResponse<ResultByOp[UnaryOp]>
      try {
        response = await untilAborted(answer, signal)
      } catch (error) {
        this.#abandon(id)
        throw error
      }
      if (!response.ok) throw response.error
      return response.result as ResultByOp[O]
    } catch (error) {
      throw streamError(error, signal, `${op} to ${this.target.toString()}`)
    }
  }

  /** Ends the session: pending requests fail with `reason`, the stream is reset. Idempotent. */
  close(reason: ProtocolError): void {
    this.#fail(reason)
  }

  // -------------------------------------------------------------------------------------------

  #open(): Promise<LengthPrefixedStream<Stream>> {
    if (this.#ended !== undefined) return Promise.reject(this.#ended)
    if (this.#opening === undefined) {
      this.#opening = this.#dial()
      // Callers race this promise against their own deadlines; a failure nobody awaits is expected.
      this.#opening.catch(() => {})
    }
    return this.#opening
  }

  async #dial(): Promise<LengthPrefixedStream<Stream>> {
    const { signal, dispose } = deadline(this.#openTimeoutMs, this.#end.signal)
    let stream: Stream
    try {
      stream = await this.#libp2p.dialProtocol(this.target, API_PROTOCOL, { signal })
    } catch (error) {
      const mapped = streamError(error, signal, `session to ${this.target.toString()}`)
      const failure =
        mapped instanceof ProtocolError
          ? mapped
          : new ProtocolError('UNAVAILABLE', `session to ${this.target.toString()}: dial failed`, { cause: error })
      this.#fail(failure)
      throw failure
    } finally {
      dispose()
    }
    if (this.#ended !== undefined) {
      stream.abort(this.#ended)
      throw this.#ended
    }
    this.#stream = stream
    const lp = frameStream(stream, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX })
    void this.#read(lp)
    this.#logger.debug({ target: this.target.toString() }, 'session opened')
    return lp
  }

  /** The reader loop: every frame is an answer to a pending id, or the server ending the session. */
  async #read(lp: LengthPrefixedStream<Stream>): Promise<void> {
    try {
      while (this.#ended === undefined) {
        const bytes = await readFrame(lp, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX, signal: this.#end.signal })
        const frame = decodeSessionResponse(bytes, (id) => {
          const pending = this.#pending.get(id)
          return pending === undefined || pending.abandoned ? undefined : pending.op
        })
        if (frame.id === undefined) {
          const { code, message } = frame.response.error
          throw new ProtocolError('UNAVAILABLE', `session ended by the server: ${code} ${message}`, {
            cause: frame.response.error,
          })
        }
        const pending = this.#pending.get(frame.id)
        if (pending === undefined || !pending.sent) {
          throw new ProtocolError('UNAVAILABLE', `session: answer to id ${frame.id}, which is not in flight`)
        }
        this.#release(frame.id)
        if (frame.response !== undefined) pending.settle(frame.response)
      }
    } catch (error) {
      if (this.#ended !== undefined) return
      this.#fail(asSessionError(error, this.target))
    }
  }

  /**
   * Queues one frame; every request made in one turn of the event loop leaves in one write. A
   * request abandoned before its write is dropped unsent (and frees its slot at once, as no answer
   * will come); a failed write ends the session.
   */
  #write(lp: LengthPrefixedStream<Stream>, id: number, bytes: Uint8Array): void {
    if (bytes.byteLength > API_REQUEST_FRAME_BYTES_MAX) {
      this.#pending
        .get(id)
        ?.fail(
          new ProtocolError(
            'TOO_LARGE',
            `request frame of ${bytes.byteLength} bytes, at most ${API_REQUEST_FRAME_BYTES_MAX}`,
          ),
        )
      this.#release(id)
      return
    }
    if (this.#writer === undefined) {
      this.#writer = new WriteBatcher<{ id: number; bytes: Uint8Array }>(lp, {
        toFrames: (items) => {
          const frames: Uint8Array[] = []
          for (const item of items) {
            const pending = this.#pending.get(item.id)
            if (this.#ended !== undefined || pending === undefined) continue
            if (pending.abandoned) {
              this.#release(item.id)
              continue
            }
            pending.sent = true
            frames.push(item.bytes)
          }
          return frames
        },
        onError: (error) => {
          if (this.#ended === undefined) this.#fail(asSessionError(error, this.target))
        },
        signal: this.#end.signal,
      })
    }
    this.#writer.write({ id, bytes })
  }

  /** The caller stopped waiting. A sent request keeps its slot until its late answer (see Pending). */
  #abandon(id: number): void {
    const pending = this.#pending.get(id)
    if (pending === undefined) return
    if (!pending.sent) {
      pending.abandoned = true // the writer drops it and frees the slot when its turn comes
      return
    }
    pending.abandoned = true
    // A replica that answers nothing would otherwise hold every slot forever: start afresh.
    if (this.#pending.size >= this.#inflightMax && [...this.#pending.values()].every((p) => p.abandoned)) {
      this.#fail(
        new ProtocolError(
          'UNAVAILABLE',
          `session to ${this.target.toString()}: all ${this.#pending.size} requests in flight abandoned unanswered`,
        ),
      )
    }
  }

  async #acquireSlot(signal: AbortSignal): Promise<void> {
    while (this.#pending.size >= this.#inflightMax) {
      if (this.#ended !== undefined) throw this.#ended
      let wake!: () => void
      const woken = new Promise<void>((resolve) => (wake = resolve))
      this.#slotWaiters.push(wake)
      try {
        await untilAborted(woken, signal)
      } finally {
        const index = this.#slotWaiters.indexOf(wake)
        if (index >= 0) this.#slotWaiters.splice(index, 1)
      }
    }
    if (this.#ended !== undefined) throw this.#ended
  }

  #release(id: number): void {
    this.#pending.delete(id)
    this.#slotWaiters.shift()?.()
  }

  /** The next id not in flight; ids advance through [0, REQUEST_ID_MAX] so reuse is rare as well as safe. */
  #allocateId(): number {
    for (let tries = 0; tries <= this.#inflightMax; tries++) {
      const id = this.#nextId
      this.#nextId = id === REQUEST_ID_MAX ? 0 : id + 1
      if (!this.#pending.has(id)) return id
    }
    throw new Error(`session: no free id with ${this.#pending.size} in flight`)
  }

  #fail(error: ProtocolError): void {
    if (this.#ended !== undefined) return
    this.#ended = error
    this.#end.abort(error)
    this.#stream?.abort(error)
    const pending = [...this.#pending.values()]
    this.#pending.clear()
    for (const request of pending) request.fail(error)
    for (const wake of this.#slotWaiters.splice(0)) wake()
    this.#logger.debug({ target: this.target.toString(), code: error.code, failed: pending.length }, 'session ended')
    this.#onEnd(this)
  }
}

/** Whatever broke a session, its requests may succeed elsewhere: UNAVAILABLE, naming the cause. */
function asSessionError(error: unknown, target: Multiaddr): ProtocolError {
  if (error instanceof ProtocolError && error.code === 'UNAVAILABLE') return error
  const detail =
    error instanceof ProtocolError
      ? `${error.code} ${error.message}`
      : error instanceof Error
        ? `${error.name}: ${error.message}`
        : 'failed'
  return new ProtocolError('UNAVAILABLE', `session to ${target.toString()}: ${detail}`, { cause: error })
}

/** `promise`, or the signal's reason as soon as it aborts (the promise is left to settle unobserved). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}
