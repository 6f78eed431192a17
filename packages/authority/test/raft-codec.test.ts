import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { Packr, Unpackr } from 'msgpackr'
import { MessageType } from '@nodeledger/raft'
import type { Message } from '@nodeledger/raft'
import { decodeRaftFrame, encodeRaftFrame } from '../src/raft-codec.ts'
import { ReplicaError } from '../src/replica-errors.ts'

const append: Message = {
  type: MessageType.Append,
  from: 2,
  to: 1,
  term: 7,
  index: 41,
  logTerm: 6,
  commit: 40,
  entries: [{ index: 42, term: 7, type: 'normal', data: new Uint8Array([1, 2, 3]) }],
}

const chunk: Message = {
  type: MessageType.Snapshot,
  from: 2,
  to: 1,
  term: 7,
  snapshot: {
    metadata: { index: 100, term: 6, confState: { voters: [1, 2, 3], learners: [] } },
    offset: 0,
    totalBytes: 3,
    data: new Uint8Array([9, 9, 9]),
  },
}

function codeOf(run: () => unknown): string | undefined {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(ReplicaError)
    return (error as ReplicaError).code
  }
  return undefined
}

describe('raft frame codec', () => {
  it('round-trips a batch of messages, entries and snapshot chunks included', () => {
    const decoded = decodeRaftFrame(encodeRaftFrame([append, chunk]), 2, 1)
    expect(decoded).toHaveLength(2)
    expect(decoded[0]).toMatchObject({ type: 'append', from: 2, to: 1, term: 7, index: 41, logTerm: 6, commit: 40 })
    expect([...decoded[0]!.entries![0]!.data]).toEqual([1, 2, 3])
    expect(decoded[1]!.snapshot!.metadata).toEqual(chunk.snapshot!.metadata)
    expect([...decoded[1]!.snapshot!.data]).toEqual([9, 9, 9])
  })

  it('refuses a message that claims another sender than the authenticated link', () => {
    expect(codeOf(() => decodeRaftFrame(encodeRaftFrame([append]), 3, 1))).toBe('INVALID_FRAME')
  })

  it('refuses a message addressed to another replica', () => {
    expect(codeOf(() => decodeRaftFrame(encodeRaftFrame([append]), 2, 3))).toBe('INVALID_FRAME')
  })

  it('refuses an unknown frame version and local-only message types', () => {
    expect(codeOf(() => decodeRaftFrame(new Uint8Array([0x92, 0x02, 0x80]), 2, 1))).toBe('INVALID_FRAME')
    expect(codeOf(() => decodeRaftFrame(encodeRaftFrame([{ ...append, type: MessageType.Hup }]), 2, 1))).toBe(
      'INVALID_FRAME',
    )
  })

  it('writes terms and indexes from 2^32 on as uint 64 and reads them back (PROTOCOL.md "Encoding")', () => {
    const big = 2 ** 32 + 1
    const late: Message = {
      ...append,
      term: big,
      index: Number.MAX_SAFE_INTEGER - 1,
      commit: big,
      entries: [{ index: Number.MAX_SAFE_INTEGER, term: big, type: 'normal', data: new Uint8Array([1]) }],
    }
    const bytes = encodeRaftFrame([late])
    // A reader that tells the formats apart: msgpackr's default returns a uint 64 as a bigint, a float 64 as a number.
    const [, raw] = new Unpackr({ useRecords: false }).unpack(bytes) as [number, Record<string, unknown>]
    expect(raw.term).toBe(BigInt(big))
    expect(raw.index).toBe(BigInt(Number.MAX_SAFE_INTEGER - 1))
    expect(decodeRaftFrame(bytes, 2, 1)[0]).toEqual(late)
  })

  it('refuses float terms (even integral ones, as msgpackr writes integers from 2^32 on) and unknown keys', () => {
    const asMsgpackrWritesIt = new Packr({ useRecords: false }).pack([1, { ...append, term: 2 ** 32 + 1 }])
    expect(codeOf(() => decodeRaftFrame(asMsgpackrWritesIt, 2, 1))).toBe('INVALID_FRAME')
    const extra = new Packr({ useRecords: false }).pack([1, { ...append, entries: [], extra: 1 }])
    expect(codeOf(() => decodeRaftFrame(extra, 2, 1))).toBe('INVALID_FRAME')
    const extraInEntry = new Packr({ useRecords: false }).pack([
      1,
      { ...append, entries: [{ ...append.entries![0]!, note: 'x' }] },
    ])
    expect(codeOf(() => decodeRaftFrame(extraInEntry, 2, 1))).toBe('INVALID_FRAME')
    const extraInConfState = new Packr({ useRecords: false }).pack([
      1,
      {
        ...chunk,
        snapshot: {
          ...chunk.snapshot!,
          metadata: { ...chunk.snapshot!.metadata, confState: { voters: [1], learners: [], witnesses: [] } },
        },
      },
    ])
    expect(codeOf(() => decodeRaftFrame(extraInConfState, 2, 1))).toBe('INVALID_FRAME')
    expect(codeOf(() => encodeRaftFrame([{ ...append, term: 1.5 }]))).toBe('INVALID_FRAME')
  })

  it('never throws anything but INVALID_FRAME on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        try {
          decodeRaftFrame(bytes, 2, 1)
        } catch (error) {
          return error instanceof ReplicaError && error.code === 'INVALID_FRAME'
        }
        return true
      }),
      { numRuns: 500 },
    )
  })
})
