import type { MessageStream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { LengthPrefixedStream } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'
import { TransportError } from './errors.ts'

/**
 * Frames between replicas (PROTOCOL.md "Framing"): an unsigned LEB128 varint byte length, then
 * that many bytes. Read and written with @libp2p/utils' lpStream.
 *
 * lpStream's own length decoding has a hole this module closes: it checks `maxLengthLength` only
 * after a varint decodes, so a peer that sends continuation bytes (0x80..0xff) forever is read one
 * byte at a time, forever, into an ever-growing buffer. `boundedLengthDecoder` refuses a prefix
 * longer than the longest one `frameBytesMax` needs (TransportError TOO_LARGE).
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
export function boundedLengthDecoder(lengthBytesMax: number): (data: Uint8ArrayList) => number {
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
      throw new TransportError('TOO_LARGE', `frame length prefix longer than ${lengthBytesMax} bytes`)
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

/** A length-prefixed view of `stream` that refuses frames over `frameBytesMax` before buffering them. */
export function frameStream<S extends MessageStream>(stream: S, frameBytesMax: number): LengthPrefixedStream<S> {
  const lengthBytesMax = varintBytes(frameBytesMax)
  return lpStream(stream, {
    maxDataLength: frameBytesMax,
    maxLengthLength: lengthBytesMax,
    lengthDecoder: boundedLengthDecoder(lengthBytesMax),
    // lpStream buffers received bytes up to this, then aborts the stream. It holds the frame being
    // completed plus whatever arrives before the reader runs again (found by test: a full-size
    // frame and the next frame's first bytes overflowed a buffer of one frame).
    maxBufferSize: frameBytesMax + lengthBytesMax + READ_SLACK_BYTES,
  })
}

/** lpStream's and the prefix decoder's errors that mean the peer sent a bad frame, by name. */
const FRAME_ERROR_CODES: ReadonlyMap<string, 'TOO_LARGE' | 'INVALID'> = new Map([
  ['InvalidDataLengthError', 'TOO_LARGE'],
  ['InvalidDataLengthLengthError', 'TOO_LARGE'],
  ['StreamBufferError', 'TOO_LARGE'],
  ['InvalidMessageLengthError', 'INVALID'],
])

/** TOO_LARGE or INVALID when `error` says the peer sent a bad frame; undefined for a closed or reset stream. */
export function badFrameCode(error: unknown): 'TOO_LARGE' | 'INVALID' | undefined {
  if (error instanceof TransportError) return error.code === 'TOO_LARGE' || error.code === 'INVALID' ? error.code : undefined
  return FRAME_ERROR_CODES.get(error instanceof Error ? error.name : '')
}
