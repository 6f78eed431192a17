import type { MessageStream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { LengthPrefixedStream } from '@libp2p/utils'
import { READ_SLACK_BYTES, boundedLengthDecoder, varintBytes } from '@nodeledger/protocol'
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

/** A length-prefixed view of `stream` that refuses frames over `frameBytesMax` before buffering them. */
export function frameStream<S extends MessageStream>(stream: S, frameBytesMax: number): LengthPrefixedStream<S> {
  const lengthBytesMax = varintBytes(frameBytesMax)
  return lpStream(stream, {
    maxDataLength: frameBytesMax,
    maxLengthLength: lengthBytesMax,
    lengthDecoder: boundedLengthDecoder(
      lengthBytesMax,
      () => new TransportError('TOO_LARGE', `frame length prefix longer than ${lengthBytesMax} bytes`),
    ),
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
  if (error instanceof TransportError)
    return error.code === 'TOO_LARGE' || error.code === 'INVALID' ? error.code : undefined
  return FRAME_ERROR_CODES.get(error instanceof Error ? error.name : '')
}
