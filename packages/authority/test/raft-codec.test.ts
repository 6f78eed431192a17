import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
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
