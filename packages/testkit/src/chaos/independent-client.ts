/**
 * A second, minimal client of /nodeledger/api/1, written from docs/PROTOCOL.md alone with another
 * MessagePack library (@msgpack/msgpack) and none of the protocol package's codecs (only its varint
 * framing): the chaos workload runs some of its clients on it, so a history that checks out shows
 * that the document, not just our own code, describes a cluster that behaves. It does what the
 * workload needs: `submit`, `get` (linearizable, lease or stale) and `status`, on one session per
 * replica ("Sessions"), following the "Client behaviour" section: leader found through status and
 * cached, NOT_LEADER hints followed at once, TIMEOUT, UNAVAILABLE and connection failures retried
 * on the next replica after a jittered exponential backoff, every other code final.
 */
import { decode, encode } from '@msgpack/msgpack'
import { multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Libp2p, Stream } from '@libp2p/interface'
// Varint framing only (PROTOCOL.md "Framing"), which the document allows any helper for.
import { frameStream, readFrame, writeFrame } from '@nodeledger/protocol'

// PROTOCOL.md "Protocol ids", "Framing", "Sessions", "Client behaviour".
const API_PROTOCOL = '/nodeledger/api/1'
const REQUEST_FRAME_BYTES_MAX = 256 * 1024
const RESPONSE_FRAME_BYTES_MAX = 4 * 1024 * 1024
const REQUEST_ID_MAX = 2 ** 32 - 1
const SESSION_INFLIGHT_MAX = 256
const BACKOFF_BASE_MS = 20
const BACKOFF_MAX_MS = 500
const ATTEMPTS_MAX = 8
const REQUEST_TIMEOUT_MS = 2_000
/** Fields of a record, by record version (PROTOCOL.md "Records"): version 2 added lastLeftReason. */
const RECORD_FIELD_COUNT = new Map<number, number>([
  [1, 25],
  [2, 26],
])
const LAST_LEFT_REASONS = new Set(['', 'ttl', 'left', 'disconnected'])

/** PROTOCOL.md "Errors". */
export type IndependentErrorCode =
  | 'NOT_LEADER'
  | 'TIMEOUT'
  | 'UNAVAILABLE'
  | 'INVALID'
  | 'TOO_LARGE'
  | 'UNAUTHORIZED'
  | 'STALE'
  | 'NOT_FOUND'
const ERROR_CODES = new Set<string>([
  'NOT_LEADER',
  'TIMEOUT',
  'UNAVAILABLE',
  'INVALID',
  'TOO_LARGE',
  'UNAUTHORIZED',
  'STALE',
  'NOT_FOUND',
])
const RETRYABLE = new Set<IndependentErrorCode>(['NOT_LEADER', 'TIMEOUT', 'UNAVAILABLE'])

export interface IndependentLeaderHint {
  readonly id: number
  readonly peerId: string
  readonly multiaddrs: readonly string[]
}

export class IndependentClientError extends Error {
  static override readonly name = 'IndependentClientError'
  readonly code: IndependentErrorCode
  readonly leader: IndependentLeaderHint | undefined
  constructor(code: IndependentErrorCode, message: string, leader?: IndependentLeaderHint) {
    super(`${code}: ${message}`)
    this.name = 'IndependentClientError'
    this.code = code
    this.leader = leader
  }
}

/** What the workload reads of a record (PROTOCOL.md "Records": fields 0, 14, 22 and 24). */
export interface IndependentRecord {
  readonly peerId: string
  readonly version: string
  readonly originSeq: number
  readonly changedIndex: number
  /** Why the node last became inactive; '' when it never did or a version 1 record does not say. */
  readonly lastLeftReason: string
}

export interface IndependentDelta {
  readonly originPeerId: string
  readonly seq: number
  readonly fields: Readonly<Record<string, string | number | boolean | readonly string[]>>
}

export type IndependentConsistency = 'linearizable' | 'lease' | 'stale'

export interface IndependentClientInit {
  /** A started libp2p node; the client neither starts nor stops it. Its peer id is the submitter. */
  readonly libp2p: Libp2p
  /** Replica multiaddrs, each ending in /p2p/<peerId>. */
  readonly bootstrap: readonly string[]
  readonly requestTimeoutMs?: number
  readonly attemptsMax?: number
  readonly random?: () => number
}

type Fields = Record<string, unknown>

// ---------------------------------------------------------------------------------------------
// Reading what the server sends (PROTOCOL.md "Encoding"): @msgpack/msgpack returns a uint64 as a
// bigint here, so an integer of any width is read exactly, then checked to be in [0, 2^53 - 1].

function decodeFrame(bytes: Uint8Array): Fields {
  let value: unknown
  try {
    value = decode(bytes, { useBigInt64: true }) // throws on trailing bytes
  } catch (error) {
    throw new IndependentClientError('INVALID', `response is not MessagePack (${(error as Error).message})`)
  }
  const frame = asMap(value, 'response')
  if (uint(frame.v, 'response.v') !== 1) throw new IndependentClientError('INVALID', 'response: v is not 1')
  return frame
}

function asMap(value: unknown, what: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array)
    throw new IndependentClientError('INVALID', `${what}: expected a map`)
  return value as Fields
}

function uint(value: unknown, what: string): number {
  if (typeof value === 'bigint') {
    if (value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(value)
  } else if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) {
    return value
  }
  throw new IndependentClientError('INVALID', `${what}: expected an integer in [0, 2^53 - 1]`)
}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new IndependentClientError('INVALID', `${what}: expected a string`)
  return value
}

function bool(value: unknown, what: string): boolean {
  if (typeof value !== 'boolean') throw new IndependentClientError('INVALID', `${what}: expected a boolean`)
  return value
}

/** An error frame's `error` map, as a throwable error. */
function serverError(value: unknown): IndependentClientError {
  const error = asMap(value, 'error')
  const code = text(error.code, 'error.code')
  if (!ERROR_CODES.has(code)) return new IndependentClientError('INVALID', `unknown error code ${code.slice(0, 32)}`)
  const message = text(error.message, 'error.message')
  if (error.leader === undefined) return new IndependentClientError(code as IndependentErrorCode, message)
  if (code !== 'NOT_LEADER') return new IndependentClientError('INVALID', `a leader hint with ${code}`)
  const hint = asMap(error.leader, 'error.leader')
  const multiaddrs = hint.multiaddrs
  if (!Array.isArray(multiaddrs)) throw new IndependentClientError('INVALID', 'error.leader.multiaddrs')
  return new IndependentClientError('NOT_LEADER', message, {
    id: uint(hint.id, 'error.leader.id'),
    peerId: text(hint.peerId, 'error.leader.peerId'),
    multiaddrs: multiaddrs.map((address, i) => text(address, `error.leader.multiaddrs[${i}]`)),
  })
}

/**
 * A record bin: `[2, [26 fields]]`, or `[1, [25 fields]]` from a replica or data written before
 * version 2, which readers must still accept (PROTOCOL.md "Records").
 */
export function decodeRecord(value: unknown): IndependentRecord {
  if (!(value instanceof Uint8Array)) throw new IndependentClientError('INVALID', 'record: expected bin')
  let envelope: unknown
  try {
    envelope = decode(value, { useBigInt64: true })
  } catch (error) {
    throw new IndependentClientError('INVALID', `record is not MessagePack (${(error as Error).message})`)
  }
  if (!Array.isArray(envelope) || envelope.length !== 2)
    throw new IndependentClientError('INVALID', 'record: expected [version, fields]')
  const recordVersion = uint(envelope[0], 'record version')
  const fieldCount = RECORD_FIELD_COUNT.get(recordVersion)
  if (fieldCount === undefined) throw new IndependentClientError('INVALID', `record: version ${recordVersion}`)
  const fields = envelope[1]
  if (!Array.isArray(fields) || fields.length !== fieldCount)
    throw new IndependentClientError('INVALID', `record: expected ${fieldCount} fields in version ${recordVersion}`)
  const lastLeftReason = recordVersion === 1 ? '' : text(fields[25], 'record.lastLeftReason')
  if (!LAST_LEFT_REASONS.has(lastLeftReason))
    throw new IndependentClientError('INVALID', 'record.lastLeftReason: expected "", ttl, left or disconnected')
  return {
    peerId: text(fields[0], 'record.peerId'),
    version: text(fields[14], 'record.version'),
    originSeq: uint(fields[22], 'record.originSeq'),
    changedIndex: uint(fields[24], 'record.changedIndex'),
    lastLeftReason,
  }
}

// ---------------------------------------------------------------------------------------------

interface Pending {
  readonly resolve: (frame: Fields) => void
  readonly reject: (error: IndependentClientError) => void
  /** The caller stopped waiting; the id stays in flight until its late answer (PROTOCOL.md "Sessions"). */
  abandoned: boolean
}

/** One session: a long-lived stream to one replica, requests with ids, answers in any order. */
class Session {
  readonly #pending = new Map<number, Pending>()
  readonly #slotWaiters: Array<() => void> = []
  readonly #opened: Promise<ReturnType<typeof frameStream>>
  readonly #onEnd: () => void
  #stream: Stream | undefined
  #writing: Promise<void> = Promise.resolve()
  #nextId = 0
  ended = false

  constructor(libp2p: Libp2p, target: Multiaddr, openTimeoutMs: number, onEnd: () => void) {
    this.#onEnd = onEnd
    this.#opened = (async () => {
      const stream = await libp2p.dialProtocol(target, API_PROTOCOL, { signal: AbortSignal.timeout(openTimeoutMs) })
      this.#stream = stream
      const lp = frameStream(stream, { maxBytes: RESPONSE_FRAME_BYTES_MAX })
      void this.#readLoop(lp)
      return lp
    })()
    this.#opened.catch((error: unknown) => this.end(unavailable(`dial failed: ${(error as Error).message}`)))
  }

  async request(op: string, fields: Fields, signal: AbortSignal): Promise<Fields> {
    const lp = await raceAbort(this.#opened, signal)
    while (this.#pending.size >= SESSION_INFLIGHT_MAX) {
      await raceAbort(new Promise<void>((resolve) => this.#slotWaiters.push(resolve)), signal)
    }
    if (this.ended) throw unavailable('session ended')
    const id = this.#allocateId()
    // `id` right after `v`, as writers do (PROTOCOL.md "Sessions"); numbers from 2^32 on go out as uint64.
    const bytes = encode({ v: 1, id, op, ...fields })
    if (bytes.length > REQUEST_FRAME_BYTES_MAX) throw new IndependentClientError('TOO_LARGE', 'request frame')
    const pending: Pending = { resolve: () => {}, reject: () => {}, abandoned: false }
    const answer = new Promise<Fields>((resolve, reject) => {
      Object.assign(pending, { resolve, reject })
    })
    this.#pending.set(id, pending)
    this.#writing = this.#writing.then(async () => {
      if (this.ended) return
      try {
        await writeFrame(lp, bytes)
      } catch (error) {
        this.end(unavailable(`write failed: ${(error as Error).message}`))
      }
    })
    try {
      return await raceAbort(answer, signal)
    } catch (error) {
      if (signal.aborted) pending.abandoned = true
      throw error
    }
  }

  #allocateId(): number {
    for (;;) {
      const id = this.#nextId
      this.#nextId = id === REQUEST_ID_MAX ? 0 : id + 1
      if (!this.#pending.has(id)) return id
    }
  }

  async #readLoop(lp: ReturnType<typeof frameStream>): Promise<void> {
    try {
      for (;;) {
        const frame = decodeFrame(await readFrame(lp, { maxBytes: RESPONSE_FRAME_BYTES_MAX }))
        if (frame.id === undefined) {
          // An error frame without id ends the session; every request on it fails UNAVAILABLE.
          const reason = frame.ok === false ? serverError(frame.error).message : 'a result without id'
          this.end(unavailable(`session ended by the server: ${reason}`))
          return
        }
        const id = uint(frame.id, 'response.id')
        const pending = this.#pending.get(id)
        if (pending === undefined) {
          this.end(unavailable(`an answer to id ${id}, which is not in flight`))
          return
        }
        this.#release(id)
        if (!pending.abandoned) pending.resolve(frame)
      }
    } catch (error) {
      this.end(unavailable(`session stream failed: ${(error as Error).message}`))
    }
  }

  #release(id: number): void {
    this.#pending.delete(id)
    this.#slotWaiters.shift()?.()
  }

  end(error: IndependentClientError): void {
    if (this.ended) return
    this.ended = true
    this.#onEnd()
    for (const pending of this.#pending.values()) pending.reject(error)
    this.#pending.clear()
    for (const waiter of this.#slotWaiters.splice(0)) waiter()
    this.#stream?.abort(new Error('session ended'))
  }
}

// ---------------------------------------------------------------------------------------------

/** The client (PROTOCOL.md "Client behaviour"); see the module comment. */
export class IndependentClient {
  readonly #libp2p: Libp2p
  readonly #replicas: readonly Multiaddr[]
  readonly #requestTimeoutMs: number
  readonly #attemptsMax: number
  readonly #random: () => number
  readonly #sessions = new Map<string, Session>()
  readonly #stopped = new AbortController()
  #leader: Multiaddr | undefined
  #next = 0

  constructor(init: IndependentClientInit) {
    if (init.bootstrap.length === 0) throw new TypeError('bootstrap: at least one replica multiaddr')
    this.#libp2p = init.libp2p
    this.#replicas = init.bootstrap.map((address) => {
      const parsed = multiaddr(address)
      if (parsed.getComponents().at(-1)?.name !== 'p2p')
        throw new TypeError(`bootstrap: ${address} lacks /p2p/<peerId>`)
      return parsed
    })
    this.#requestTimeoutMs = init.requestTimeoutMs ?? REQUEST_TIMEOUT_MS
    this.#attemptsMax = init.attemptsMax ?? ATTEMPTS_MAX
    this.#random = init.random ?? Math.random
  }

  /** The cached leader's multiaddr, if any. */
  get leader(): string | undefined {
    return this.#leader?.toString()
  }

  /** Exactly once per (originPeerId, seq): a retry resends the very same delta. */
  async submit(delta: IndependentDelta): Promise<{ index: number; duplicate: boolean }> {
    const result = await this.#request('submit', { delta }, 'leader')
    const index = uint(result.index, 'result.index')
    if (index === 0) throw new IndependentClientError('INVALID', 'result.index: expected at least 1')
    return { index, duplicate: bool(result.duplicate, 'result.duplicate') }
  }

  /**
   * `signal`: the caller gives up when it aborts (TIMEOUT), leaving the cached leader alone, as
   * opposed to a request deadline passing, after which the client forgets that replica.
   */
  async get(
    peerId: string,
    options: { consistency?: IndependentConsistency; signal?: AbortSignal } = {},
  ): Promise<{ record: IndependentRecord | null; index: number }> {
    const consistency = options.consistency ?? 'linearizable'
    const result = await this.#request(
      'get',
      { peerId, consistency },
      consistency === 'stale' ? 'any' : 'leader',
      options.signal,
    )
    const index = uint(result.index, 'result.index')
    const record = result.record === undefined || result.record === null ? null : decodeRecord(result.record)
    if (record !== null && record.peerId !== peerId)
      throw new IndependentClientError('INVALID', 'result.record: another peer')
    // GetResult.index is the applied index the read was served at: the record cannot be newer.
    if (record !== null && record.changedIndex > index)
      throw new IndependentClientError('INVALID', `record changed at ${record.changedIndex}, after the read's ${index}`)
    return { record, index }
  }

  /** Fails every request in flight with UNAVAILABLE; the libp2p node is the caller's. */
  async stop(): Promise<void> {
    this.#stopped.abort()
    for (const session of [...this.#sessions.values()]) session.end(unavailable('client stopped'))
    this.#sessions.clear()
  }

  async #request(op: string, fields: Fields, route: 'leader' | 'any', callerSignal?: AbortSignal): Promise<Fields> {
    let lastError: IndependentClientError | undefined
    let followHint = false
    for (let attempt = 0; attempt < this.#attemptsMax; attempt++) {
      if (attempt > 0 && !followHint) await this.#backoff(attempt, callerSignal)
      if (aborted(callerSignal)) throw callerGaveUp()
      followHint = false
      try {
        const target =
          route === 'leader' ? await this.#leaderTarget(callerSignal) : (this.#leader ?? this.#nextReplica())
        return await this.#once(op, fields, target, callerSignal)
      } catch (caught) {
        if (this.#stopped.signal.aborted) throw unavailable('client stopped')
        // The caller's patience, not the replica's silence: the cached leader stays.
        if (aborted(callerSignal)) throw callerGaveUp()
        const error = caught instanceof IndependentClientError ? caught : unavailable(String(caught))
        if (!RETRYABLE.has(error.code)) throw error
        lastError = error
        if (error.code === 'NOT_LEADER' && error.leader !== undefined) {
          // Follow the hint at once: its first multiaddr, or the bootstrap address of that peer.
          const hinted = this.#addressOf(error.leader)
          followHint = hinted !== undefined && hinted.toString() !== this.#leader?.toString()
          this.#leader = hinted
        } else {
          this.#leader = undefined
        }
      }
    }
    throw lastError ?? unavailable(`${op}: no replica answered`)
  }

  /** One attempt under the request deadline, on the target's session. */
  async #once(op: string, fields: Fields, target: Multiaddr, callerSignal?: AbortSignal): Promise<Fields> {
    const signal = AbortSignal.any([
      AbortSignal.timeout(this.#requestTimeoutMs),
      this.#stopped.signal,
      ...(callerSignal === undefined ? [] : [callerSignal]),
    ])
    const key = target.toString()
    let session = this.#sessions.get(key)
    if (session === undefined || session.ended) {
      const opened: Session = new Session(this.#libp2p, target, this.#requestTimeoutMs, () => {
        if (this.#sessions.get(key) === opened) this.#sessions.delete(key)
      })
      session = opened
      this.#sessions.set(key, opened)
    }
    const frame = await session.request(op, fields, signal)
    if (frame.ok === false) throw serverError(frame.error)
    if (frame.ok !== true) throw new IndependentClientError('INVALID', 'response.ok: expected a boolean')
    return asMap(frame.result, 'result')
  }

  async #leaderTarget(callerSignal?: AbortSignal): Promise<Multiaddr> {
    if (this.#leader !== undefined) return this.#leader
    const status = await this.#once('status', {}, this.#nextReplica(), callerSignal)
    if (status.leader === null || status.leader === undefined)
      throw unavailable(`replica ${String(status.id)} knows no leader`)
    const leaderMap = asMap(status.leader, 'result.leader')
    const multiaddrs = Array.isArray(leaderMap.multiaddrs) ? leaderMap.multiaddrs : []
    const leader = this.#addressOf({
      id: uint(leaderMap.id, 'result.leader.id'),
      peerId: text(leaderMap.peerId, 'result.leader.peerId'),
      multiaddrs: multiaddrs.map((address, i) => text(address, `result.leader.multiaddrs[${i}]`)),
    })
    if (leader === undefined) throw unavailable('the leader has no address this client can dial')
    this.#leader = leader
    return leader
  }

  #addressOf(hint: IndependentLeaderHint): Multiaddr | undefined {
    const first = hint.multiaddrs[0]
    if (first !== undefined) return multiaddr(first)
    return this.#replicas.find((replica) => replica.getComponents().at(-1)?.value === hint.peerId)
  }

  #nextReplica(): Multiaddr {
    const replica = this.#replicas[this.#next % this.#replicas.length]!
    this.#next = (this.#next + 1) % this.#replicas.length
    return replica
  }

  /** Jittered exponential backoff: base 20 ms, doubling, capped at 500 ms. */
  async #backoff(attempt: number, callerSignal?: AbortSignal): Promise<void> {
    const capMs = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1))
    const delayMs = capMs * (0.5 + this.#random() / 2)
    const stopped =
      callerSignal === undefined ? this.#stopped.signal : AbortSignal.any([this.#stopped.signal, callerSignal])
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        stopped.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, delayMs)
      stopped.addEventListener('abort', done, { once: true })
    })
  }
}

/** A function, not an inline test: TypeScript would narrow `signal.aborted` to false across awaits. */
function aborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}

function callerGaveUp(): IndependentClientError {
  return new IndependentClientError('TIMEOUT', 'the caller gave up waiting')
}

function unavailable(message: string): IndependentClientError {
  return new IndependentClientError('UNAVAILABLE', message)
}

/** `promise`, or TIMEOUT (the deadline) / UNAVAILABLE (stopped) when `signal` aborts first. */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortError(signal))
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortError(signal))
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

function abortError(signal: AbortSignal): IndependentClientError {
  const reason: unknown = signal.reason
  return reason instanceof Error && reason.name === 'TimeoutError'
    ? new IndependentClientError('TIMEOUT', 'request deadline passed')
    : unavailable('request aborted')
}
