import { lpStream } from '@libp2p/utils'
import type { LengthPrefixedStream } from '@libp2p/utils'
import type { AbortOptions, MessageStream } from '@libp2p/interface'
import type { Uint8ArrayList } from 'uint8arraylist'
import { packValue } from './codec.ts'
import { ProtocolError } from './errors.ts'

/**
 * Frames on a libp2p stream (PROTOCOL.md "Framing"): an unsigned LEB128 varint byte length, then
 * that many bytes of MessagePack. These helpers turn lpStream's failures into the API's codes:
 * a length beyond the limit is TOO_LARGE, a stream that ends or fails mid-conversation UNAVAILABLE,
 * a deadline (an AbortSignal.timeout) TIMEOUT. An abort for any other reason rethrows that reason.
 */

/*
 * lpStream's own length decoding has a hole the helpers below close: it checks `maxLengthLength`
 * only after a varint decodes, so a peer that sends continuation bytes (0x80..0xff) forever is read
 * one byte at a time, forever, into an ever-growing buffer. `boundedLengthDecoder` refuses a prefix
 * longer than the longest one the frame limit needs. And lpStream's `maxBufferSize` counts the next
 * frame's first bytes too, so it gets headroom beyond one frame.
 */

/**
 * Read-buffer headroom over one frame: socket reads of up to 64 KiB are dispatched synchronously,
 * several per event-loop turn under load, before the frame reader consumes any of them.
 */
export const READ_SLACK_BYTES = 1024 * 1024

/** Bytes of the varint that encodes `value`. */
export function varintBytes(value: number): number {
  let bytes = 1
  for (let rest = Math.floor(value / 128); rest > 0; rest = Math.floor(rest / 128)) bytes++
  return bytes
}

/**
 * A varint length decoder for lpStream: RangeError while the prefix is incomplete (lpStream reads
 * another byte), the length once it ends, TOO_LARGE once it is longer than `lengthBytesMax`.
 */
export function boundedLengthDecoder(
  lengthBytesMax: number,
  tooLong: () => Error = () =>
    new ProtocolError('TOO_LARGE', `frame length prefix longer than ${lengthBytesMax} bytes`),
): (data: Uint8ArrayList) => number {
  return (data: Uint8ArrayList): number => {
    let value = 0
    let scale = 1
    const limit = Math.min(data.byteLength, lengthBytesMax)
    for (let index = 0; index < limit; index++) {
      const byte = data.get(index)
      value += (byte & 0x7f) * scale
      if ((byte & 0x80) === 0) return value
      scale *= 128
    }
    if (data.byteLength >= lengthBytesMax) {
      throw tooLong()
    }
    throw INCOMPLETE_LENGTH
  }
}

/**
 * lpStream asks for another byte when the decoder throws a RangeError. One shared instance: a new
 * Error per incomplete prefix (every frame over 127 bytes) spent a tenth of the receiver's CPU
 * capturing stack traces in the throughput benchmark.
 */
const INCOMPLETE_LENGTH = new RangeError('incomplete varint length prefix')

export interface FrameStreamOptions {
  /** Largest frame this side accepts; longer length prefixes fail before any payload is buffered. */
  readonly maxBytes: number
}

/**
 * A length-prefixed view of `stream` whose reads refuse frames over `maxBytes`. Its buffer holds
 * one whole frame (lpStream's default buffer is 4 MiB, less than a Raft frame).
 */
export function frameStream<S extends MessageStream>(stream: S, options: FrameStreamOptions): LengthPrefixedStream<S> {
  const lengthBytesMax = varintBytes(options.maxBytes)
  return lpStream(stream, {
    maxDataLength: options.maxBytes,
    maxLengthLength: lengthBytesMax,
    lengthDecoder: boundedLengthDecoder(lengthBytesMax),
    maxBufferSize: options.maxBytes + lengthBytesMax + READ_SLACK_BYTES,
  })
}

export interface ReadFrameOptions extends AbortOptions {
  readonly maxBytes: number
}

/** Reads one frame. A stream that ended before a frame started also gives UNAVAILABLE. */
export async function readFrame(
  lp: Pick<LengthPrefixedStream, 'read'>,
  options: ReadFrameOptions,
): Promise<Uint8Array> {
  let list: Uint8ArrayList
  try {
    list = await lp.read(options.signal === undefined ? {} : { signal: options.signal })
  } catch (error) {
    throw streamError(error, options.signal, 'read')
  }
  if (list.byteLength > options.maxBytes) {
    throw new ProtocolError('TOO_LARGE', `frame of ${list.byteLength} bytes, at most ${options.maxBytes}`)
  }
  return list.subarray()
}

export interface WriteFrameOptions extends AbortOptions {
  /** Refuse (TOO_LARGE) rather than send a frame the peer would refuse. */
  readonly maxBytes?: number
}

/**
 * Writes one frame. `frame` is encoded bytes (from the codecs) or a plain value, which is packed
 * as MessagePack without structures (Raft frames, tools).
 */
export async function writeFrame(
  lp: Pick<LengthPrefixedStream, 'write'>,
  frame: Uint8Array | unknown,
  options: WriteFrameOptions = {},
): Promise<void> {
  const bytes = frame instanceof Uint8Array ? frame : packValue(frame)
  if (options.maxBytes !== undefined && bytes.byteLength > options.maxBytes) {
    throw new ProtocolError('TOO_LARGE', `frame of ${bytes.byteLength} bytes, at most ${options.maxBytes}`)
  }
  try {
    await lp.write(bytes, options.signal === undefined ? {} : { signal: options.signal })
  } catch (error) {
    throw streamError(error, options.signal, 'write')
  }
}

const TOO_LARGE_ERRORS = new Set(['InvalidDataLengthError', 'InvalidDataLengthLengthError', 'StreamBufferError'])

/** lpStream's and the stream's errors as ProtocolErrors (see the module comment). */
export function streamError(error: unknown, signal: AbortSignal | undefined, what: string): unknown {
  if (error instanceof ProtocolError) return error
  if (signal?.aborted === true) {
    const reason: unknown = signal.reason
    if (reason instanceof Error && reason.name === 'TimeoutError') {
      return new ProtocolError('TIMEOUT', `${what}: deadline passed`, { cause: reason })
    }
    return reason
  }
  const name = error instanceof Error ? error.name : ''
  if (TOO_LARGE_ERRORS.has(name))
    return new ProtocolError('TOO_LARGE', `${what}: ${(error as Error).message}`, { cause: error })
  if (name === 'InvalidMessageLengthError')
    return new ProtocolError('INVALID', `${what}: invalid frame length`, { cause: error })
  if (name === 'UnexpectedEOFError') return new ProtocolError('UNAVAILABLE', `${what}: stream ended`, { cause: error })
  return new ProtocolError('UNAVAILABLE', `${what}: stream failed (${name || 'unknown error'})`, { cause: error })
}

export interface WriteBatcherOptions<T> {
  /** Turns the items queued since the last write into the frames to write now (may drop some). */
  readonly toFrames: (items: T[]) => Uint8Array[]
  /** A write failed (the stream is gone): the batcher stops; what is queued is dropped. */
  readonly onError: (error: unknown) => void
  /** Aborts a write waiting on the stream (the owner's end). */
  readonly signal?: AbortSignal
  /** A write that waits on the stream longer than this fails (a peer that stopped reading). */
  readonly writeTimeoutMs?: number
  /** Bytes per write at most (a longer queue goes out in several writes). */
  readonly batchBytesMax?: number
}

/** 1 MiB per write: big enough to carry a turn's worth of answers, small enough to interleave streams. */
export const WRITE_BATCH_BYTES_MAX = 1024 * 1024

/**
 * Writes to one stream, coalesced: everything queued during one turn of the event loop leaves in
 * one write (lpStream.writeV: one muxer frame, one Noise message, one socket write), instead of one
 * write per frame, which is what a session answering many requests at once would otherwise do. The
 * next write waits for the previous one (and the stream's drain): backpressure reaches the caller's
 * queue, which its own in-flight limit bounds.
 */
export class WriteBatcher<T> {
  readonly #lp: Pick<LengthPrefixedStream, 'writeV'>
  readonly #options: WriteBatcherOptions<T>
  readonly #batchBytesMax: number
  #queue: T[] = []
  #scheduled = false
  #writing: Promise<void> = Promise.resolve()
  #failed = false
  readonly counters = { writes: 0, frames: 0 }

  constructor(lp: Pick<LengthPrefixedStream, 'writeV'>, options: WriteBatcherOptions<T>) {
    this.#lp = lp
    this.#options = options
    this.#batchBytesMax = options.batchBytesMax ?? WRITE_BATCH_BYTES_MAX
  }

  write(item: T): void {
    if (this.#failed) return
    this.#queue.push(item)
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      this.#writing = this.#writing.then(() => this.#flush())
    })
  }

  /** Resolves once everything queued so far was written (or dropped after a failure). */
  async drained(): Promise<void> {
    while (this.#scheduled || this.#queue.length > 0) {
      await new Promise<void>((resolve) => setImmediate(resolve))
      await this.#writing
    }
    await this.#writing
  }

  #writeSignal(): AbortSignal | undefined {
    const { signal, writeTimeoutMs } = this.#options
    if (writeTimeoutMs === undefined) return signal
    const timeout = AbortSignal.timeout(writeTimeoutMs)
    return signal === undefined ? timeout : AbortSignal.any([signal, timeout])
  }

  async #flush(): Promise<void> {
    if (this.#failed || this.#queue.length === 0) return
    const frames = this.#options.toFrames(this.#queue.splice(0))
    let start = 0
    while (start < frames.length && !this.#failed) {
      let end = start
      let bytes = 0
      while (end < frames.length && (end === start || bytes + frames[end]!.byteLength <= this.#batchBytesMax)) {
        bytes += frames[end]!.byteLength
        end++
      }
      try {
        await this.#lp.writeV(frames.slice(start, end), { signal: this.#writeSignal() })
        this.counters.writes++
        this.counters.frames += end - start
      } catch (error) {
        this.#failed = true
        this.#queue = []
        this.#options.onError(error)
        return
      }
      start = end
    }
  }
}
