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

export interface FrameStreamOptions {
  /** Largest frame this side accepts; longer length prefixes fail before any payload is buffered. */
  readonly maxBytes: number
}

/**
 * A length-prefixed view of `stream` whose reads refuse frames over `maxBytes`. Its buffer holds
 * one whole frame (lpStream's default buffer is 4 MiB, less than a Raft frame).
 */
export function frameStream<S extends MessageStream>(stream: S, options: FrameStreamOptions): LengthPrefixedStream<S> {
  return lpStream(stream, { maxDataLength: options.maxBytes, maxBufferSize: options.maxBytes + 16 })
}

export interface ReadFrameOptions extends AbortOptions {
  readonly maxBytes: number
}

/** Reads one frame. A stream that ended before a frame started also gives UNAVAILABLE. */
export async function readFrame(lp: Pick<LengthPrefixedStream, 'read'>, options: ReadFrameOptions): Promise<Uint8Array> {
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
export async function writeFrame(lp: Pick<LengthPrefixedStream, 'write'>, frame: Uint8Array | unknown, options: WriteFrameOptions = {}): Promise<void> {
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
  if (TOO_LARGE_ERRORS.has(name)) return new ProtocolError('TOO_LARGE', `${what}: ${(error as Error).message}`, { cause: error })
  if (name === 'InvalidMessageLengthError') return new ProtocolError('INVALID', `${what}: invalid frame length`, { cause: error })
  if (name === 'UnexpectedEOFError') return new ProtocolError('UNAVAILABLE', `${what}: stream ended`, { cause: error })
  return new ProtocolError('UNAVAILABLE', `${what}: stream failed (${name || 'unknown error'})`, { cause: error })
}
