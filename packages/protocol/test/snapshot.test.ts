import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  ProtocolError,
  SNAPSHOT_CHUNK_BYTES_MAX,
  SNAPSHOT_DATA_BYTES_MAX,
  SnapshotAssembler,
  decodeRequest,
  decodeSnapshotFrame,
  encodeErrorResponse,
  encodeRequest,
  encodeSnapshotChunk,
  encodeSnapshotEnd,
  encodeSnapshotHeader,
  snapshotFrames,
} from '../src/index.ts'
import type { SnapshotFrame, SnapshotHeader } from '../src/index.ts'
import { packAny, peerId } from './helpers.ts'

function codeOf(run: () => unknown): string {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError)
    return (error as ProtocolError).code
  }
  throw new Error('expected a ProtocolError')
}

const member = (id: number, voter = true) => ({
  id,
  peerId: peerId(id),
  multiaddr: `/ip4/127.0.0.${10 + id}/tcp/7001/p2p/${peerId(id)}`,
  voter,
  started: true,
})

function header(totalBytes: number): SnapshotHeader {
  return {
    clusterId: 'c0ffee00-0000-4000-8000-000000000000',
    leader: 2,
    index: 4_294_967_296 + 5, // above 2^32: uint 64 on the wire
    term: 7,
    members: [member(1), member(2), member(3), member(4, false)],
    records: 12,
    registryDigest: 'ab'.repeat(32),
    totalBytes,
  }
}

function bytesOf(length: number, seed = 1): Uint8Array {
  const data = new Uint8Array(length)
  for (let i = 0; i < length; i++) data[i] = (i * 31 + seed) & 0xff
  return data
}

const sha256 = (data: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(data).digest())

describe('snapshot request', () => {
  it('round trips, and takes no fields', () => {
    expect(decodeRequest(encodeRequest({ op: 'snapshot' }))).toEqual({ op: 'snapshot' })
    expect(codeOf(() => decodeRequest(packAny({ v: 1, op: 'snapshot', index: 3 })))).toBe('INVALID')
  })
})

describe('snapshot frames', () => {
  it('header, chunk and end round trip', () => {
    const h = header(10)
    expect(decodeSnapshotFrame(encodeSnapshotHeader(h))).toEqual({ ok: true, kind: 'header', header: h })
    const data = bytesOf(10)
    const chunk = decodeSnapshotFrame(encodeSnapshotChunk({ offset: 0, data }))
    expect(chunk.ok && chunk.kind === 'chunk' && [...chunk.chunk.data]).toEqual([...data])
    const end = decodeSnapshotFrame(encodeSnapshotEnd({ totalBytes: 10, sha256: sha256(data) }))
    expect(end.ok && end.kind === 'end' && [...end.end.sha256]).toEqual([...sha256(data)])
  })

  it('an error frame decodes as the error that ends the answer', () => {
    const frame = decodeSnapshotFrame(encodeErrorResponse(new ProtocolError('UNAUTHORIZED', 'operators only')))
    expect(frame.ok).toBe(false)
    if (!frame.ok) expect(frame.error.code).toBe('UNAUTHORIZED')
  })

  it('refuses frames that are not exactly one of header, chunk, end', () => {
    const h = { ...header(1), members: header(1).members }
    expect(codeOf(() => decodeSnapshotFrame(packAny({ v: 1, ok: true })))).toBe('INVALID')
    expect(
      codeOf(() => decodeSnapshotFrame(packAny({ v: 1, ok: true, header: h, chunk: { offset: 0, data: bytesOf(1) } }))),
    ).toBe('INVALID')
    expect(codeOf(() => decodeSnapshotFrame(packAny({ v: 1, ok: true, event: {} })))).toBe('INVALID')
    // Never part of a session: no id.
    expect(
      codeOf(() => decodeSnapshotFrame(packAny({ v: 1, id: 3, ok: true, chunk: { offset: 0, data: bytesOf(1) } }))),
    ).toBe('INVALID')
  })

  it('checks each frame against its limits', () => {
    // A chunk of more than 1 MiB, or of nothing.
    expect(
      codeOf(() =>
        decodeSnapshotFrame(
          packAny({ v: 1, ok: true, chunk: { offset: 0, data: bytesOf(SNAPSHOT_CHUNK_BYTES_MAX + 1) } }),
        ),
      ),
    ).toBe('TOO_LARGE')
    expect(codeOf(() => encodeSnapshotChunk({ offset: 0, data: new Uint8Array(0) }))).toBe('INVALID')
    // A snapshot larger than any client accepts, and one of no bytes.
    expect(codeOf(() => encodeSnapshotHeader(header(SNAPSHOT_DATA_BYTES_MAX + 1)))).toBe('TOO_LARGE')
    expect(codeOf(() => encodeSnapshotHeader(header(0)))).toBe('INVALID')
    // The checksum is a SHA-256: 32 bytes.
    expect(codeOf(() => encodeSnapshotEnd({ totalBytes: 1, sha256: new Uint8Array(31) }))).toBe('INVALID')
    // Index and term of a snapshot are positive; the leader is one of the voters; ids are distinct.
    expect(codeOf(() => encodeSnapshotHeader({ ...header(1), index: 0 }))).toBe('INVALID')
    expect(codeOf(() => encodeSnapshotHeader({ ...header(1), leader: 4 }))).toBe('INVALID')
    expect(codeOf(() => encodeSnapshotHeader({ ...header(1), members: [member(2), member(2)] }))).toBe('INVALID')
    expect(codeOf(() => encodeSnapshotHeader({ ...header(1), registryDigest: 'AB'.repeat(32) }))).toBe('INVALID')
    expect(
      codeOf(() =>
        encodeSnapshotHeader({ ...header(1), members: Array.from({ length: 17 }, (_, i) => member(i + 1)) }),
      ),
    ).toBe('TOO_LARGE')
  })
})

/** Every frame of `frames` decoded and fed to a new assembler; the last progress. */
function assemble(frames: Iterable<Uint8Array>): ReturnType<SnapshotAssembler['push']> {
  const assembler = new SnapshotAssembler()
  let last: ReturnType<SnapshotAssembler['push']> | undefined
  for (const frame of frames) last = assembler.push(decodeSnapshotFrame(frame))
  if (last === undefined) throw new Error('no frames')
  return last
}

describe('snapshotFrames and SnapshotAssembler', () => {
  it('assemble the data whatever the chunk size, an exact multiple or not', () => {
    for (const [length, chunkBytes] of [
      [1, 1],
      [10, 3],
      [12, 3],
      [12, 12],
      [12, 100],
      [3 * SNAPSHOT_CHUNK_BYTES_MAX + 17, SNAPSHOT_CHUNK_BYTES_MAX],
    ] as const) {
      const data = bytesOf(length)
      const frames = [...snapshotFrames(header(length), data, chunkBytes)]
      expect(frames.length, `${length} bytes in chunks of ${chunkBytes}`).toBe(2 + Math.ceil(length / chunkBytes))
      const result = assemble(frames)
      expect(result.done).toBe(true)
      if (result.done) {
        expect(result.header).toEqual(header(length))
        expect(Buffer.from(result.data).equals(Buffer.from(data))).toBe(true)
      }
    }
  })

  it('a header whose totalBytes is not the data is refused before anything is written', () => {
    expect(codeOf(() => [...snapshotFrames(header(5), bytesOf(4))])).toBe('INVALID')
    expect(codeOf(() => [...snapshotFrames(header(5), bytesOf(5), SNAPSHOT_CHUNK_BYTES_MAX + 1)])).toBe('INVALID')
  })

  const data = bytesOf(9)
  const good = [...snapshotFrames(header(9), data, 3)]
  const [HEADER, CHUNK_0, CHUNK_3, CHUNK_6, END] = good as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array]
  const chunk = (offset: number, length: number) =>
    encodeSnapshotChunk({ offset, data: data.subarray(offset, offset + length) })

  it('refuses every answer out of order, incomplete or not matching its checksum', () => {
    const broken: Array<[string, Uint8Array[]]> = [
      ['a chunk before the header', [CHUNK_0]],
      ['an end before the header', [END]],
      ['a second header', [HEADER, HEADER]],
      ['a gap', [HEADER, CHUNK_0, CHUNK_6]],
      ['an overlap', [HEADER, CHUNK_0, chunk(2, 3)]],
      ['a chunk again', [HEADER, CHUNK_0, CHUNK_0]],
      [
        'a chunk past totalBytes',
        [HEADER, CHUNK_0, CHUNK_3, chunk(6, 3), encodeSnapshotChunk({ offset: 9, data: bytesOf(1) })],
      ],
      ['an end too early', [HEADER, CHUNK_0, CHUNK_3, END]],
      [
        'an end with another total',
        [HEADER, CHUNK_0, CHUNK_3, CHUNK_6, encodeSnapshotEnd({ totalBytes: 8, sha256: sha256(data) })],
      ],
      [
        'an end whose checksum is not the data',
        [HEADER, CHUNK_0, CHUNK_3, CHUNK_6, encodeSnapshotEnd({ totalBytes: 9, sha256: sha256(bytesOf(9, 2)) })],
      ],
      [
        'data that is not what the checksum says',
        [HEADER, CHUNK_0, CHUNK_3, encodeSnapshotChunk({ offset: 6, data: bytesOf(3, 7) }), END],
      ],
      ['a frame after the end', [...good, CHUNK_0]],
    ]
    for (const [what, frames] of broken)
      expect(
        codeOf(() => assemble(frames)),
        what,
      ).toBe('INVALID')
  })

  it('an error frame mid-answer is thrown with its own code (retryable or not)', () => {
    const unavailable = encodeErrorResponse(new ProtocolError('UNAVAILABLE', 'shutting down'))
    expect(codeOf(() => assemble([HEADER, CHUNK_0, unavailable]))).toBe('UNAVAILABLE')
    const assembler = new SnapshotAssembler()
    const frame: SnapshotFrame = { ok: false, error: new ProtocolError('NOT_LEADER', 'replica 2 leads') }
    expect(codeOf(() => assembler.push(frame))).toBe('NOT_LEADER')
  })

  it('reports the bytes received as chunks arrive', () => {
    const assembler = new SnapshotAssembler()
    const received = good.map((frame) => {
      const progress = assembler.push(decodeSnapshotFrame(frame))
      return progress.done ? 'done' : progress.receivedBytes
    })
    expect(received).toEqual([0, 3, 6, 9, 'done'])
  })
})
