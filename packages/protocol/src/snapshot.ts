import { createHash } from 'node:crypto'
import { SNAPSHOT_CHUNK_BYTES_MAX, SNAPSHOT_DATA_BYTES_MAX } from './constants.ts'
import { encodeSnapshotChunk, encodeSnapshotEnd, encodeSnapshotHeader } from './codec.ts'
import { ProtocolError } from './errors.ts'
import type { SnapshotFrame, SnapshotHeader } from './messages.ts'

/**
 * The two ends of a snapshot answer (PROTOCOL.md "Snapshot"): the frames a server writes, and the
 * checks a client makes across them. One frame's own shape is codec.ts's; what spans frames (the
 * order, contiguous offsets, the totals, the checksum) is here, so the server and every client
 * apply the same rules.
 */

/**
 * The frames of one complete answer, in order: the header, the data in chunks of at most
 * `chunkBytes` (each a view of `data`, nothing copied until it is packed), the end with the data's
 * SHA-256, hashed as the chunks go so that a large snapshot is walked once. `header.totalBytes`
 * must be `data.byteLength`.
 */
export function* snapshotFrames(
  header: SnapshotHeader,
  data: Uint8Array,
  chunkBytes: number = SNAPSHOT_CHUNK_BYTES_MAX,
): Generator<Uint8Array, void, undefined> {
  if (header.totalBytes !== data.byteLength) {
    throw new ProtocolError(
      'INVALID',
      `snapshot header: totalBytes ${header.totalBytes}, but the data is ${data.byteLength} bytes`,
    )
  }
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > SNAPSHOT_CHUNK_BYTES_MAX) {
    throw new ProtocolError('INVALID', `snapshot chunkBytes: an integer in [1, ${SNAPSHOT_CHUNK_BYTES_MAX}]`)
  }
  yield encodeSnapshotHeader(header)
  const hash = createHash('sha256')
  for (let offset = 0; offset < data.byteLength; offset += chunkBytes) {
    const piece = data.subarray(offset, Math.min(data.byteLength, offset + chunkBytes))
    hash.update(piece)
    yield encodeSnapshotChunk({ offset, data: piece })
  }
  yield encodeSnapshotEnd({ totalBytes: data.byteLength, sha256: new Uint8Array(hash.digest()) })
}

/** Where an answer being read stands: the bytes so far, or the whole snapshot once the end checked out. */
export type SnapshotProgress =
  | { readonly done: false; readonly header: SnapshotHeader | undefined; readonly receivedBytes: number }
  | {
      readonly done: true
      readonly header: SnapshotHeader
      readonly data: Uint8Array
      /** The data's SHA-256, as the end frame gave it and the data matched. */
      readonly sha256: Uint8Array
    }

/**
 * A client's side of one answer: feed it every frame in the order read; it checks, across frames,
 * what PROTOCOL.md "Snapshot" requires and assembles the data:
 *
 *   - the first frame is the header (or an error); there is exactly one header;
 *   - each chunk starts where the bytes so far end (`offset` = bytes received) and does not run
 *     past `totalBytes`;
 *   - the end comes once every byte has arrived, repeats `totalBytes`, and its SHA-256 matches the
 *     data received; nothing follows it.
 *
 * A broken rule is ProtocolError INVALID (the answer is not what the protocol allows: retrying the
 * same server is not expected to help). An error frame is thrown as the server's error, with its
 * code, so that the caller can tell a retryable NOT_LEADER or UNAVAILABLE from a final one.
 */
export class SnapshotAssembler {
  #header: SnapshotHeader | undefined
  #data: Uint8Array | undefined
  #received = 0
  #done = false
  readonly #hash = createHash('sha256')

  get receivedBytes(): number {
    return this.#received
  }

  get header(): SnapshotHeader | undefined {
    return this.#header
  }

  push(frame: SnapshotFrame): SnapshotProgress {
    if (this.#done) throw invalid('a frame after the end frame')
    if (!frame.ok) throw frame.error
    switch (frame.kind) {
      case 'header': {
        if (this.#header !== undefined) throw invalid('a second header frame')
        // Bounded by the codec (SNAPSHOT_DATA_BYTES_MAX); checked again here because this is the
        // allocation a hostile header would aim at.
        if (frame.header.totalBytes > SNAPSHOT_DATA_BYTES_MAX) {
          throw new ProtocolError(
            'TOO_LARGE',
            `snapshot of ${frame.header.totalBytes} bytes, at most ${SNAPSHOT_DATA_BYTES_MAX}`,
          )
        }
        this.#header = frame.header
        this.#data = new Uint8Array(frame.header.totalBytes)
        return { done: false, header: this.#header, receivedBytes: 0 }
      }
      case 'chunk': {
        const header = this.#requireHeader('chunk')
        const { offset, data } = frame.chunk
        if (offset !== this.#received) {
          throw invalid(`a chunk at offset ${offset}, where ${this.#received} bytes were received so far`)
        }
        if (offset + data.byteLength > header.totalBytes) {
          throw invalid(`a chunk running to byte ${offset + data.byteLength}, past totalBytes ${header.totalBytes}`)
        }
        this.#data!.set(data, offset)
        this.#hash.update(data)
        this.#received += data.byteLength
        return { done: false, header, receivedBytes: this.#received }
      }
      case 'end': {
        const header = this.#requireHeader('end')
        if (frame.end.totalBytes !== header.totalBytes) {
          throw invalid(`an end frame with totalBytes ${frame.end.totalBytes}, the header said ${header.totalBytes}`)
        }
        if (this.#received !== header.totalBytes) {
          throw invalid(`an end frame after ${this.#received} of ${header.totalBytes} bytes`)
        }
        const digest = this.#hash.digest()
        if (!digest.equals(frame.end.sha256)) {
          throw invalid(
            `data whose SHA-256 ${digest.toString('hex')} is not the end frame's ${Buffer.from(frame.end.sha256).toString('hex')}`,
          )
        }
        this.#done = true
        return { done: true, header, data: this.#data!, sha256: new Uint8Array(digest) }
      }
    }
  }

  #requireHeader(kind: string): SnapshotHeader {
    if (this.#header === undefined) throw invalid(`a ${kind} frame before the header`)
    return this.#header
  }
}

function invalid(what: string): ProtocolError {
  return new ProtocolError('INVALID', `snapshot answer: ${what}`)
}
