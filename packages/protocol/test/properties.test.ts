import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import {
  ProtocolError,
  decodeRequest,
  decodeResponse,
  decodeSnapshotFrame,
  decodeWatchFrame,
  encodeRequest,
  packValue,
} from '../src/index.ts'
import { peerId } from './helpers.ts'

/** Decoders either return or throw a ProtocolError; any other throw (or a crash) fails the property. */
function decodesOrRefuses(bytes: Uint8Array): void {
  const decoders: Array<() => unknown> = [
    () => decodeRequest(bytes),
    () => decodeResponse('submit', bytes),
    () => decodeResponse('get', bytes),
    () => decodeResponse('list', bytes),
    () => decodeResponse('since', bytes),
    () => decodeResponse('status', bytes),
    () => decodeWatchFrame(bytes),
    () => decodeSnapshotFrame(bytes),
  ]
  for (const decode of decoders) {
    try {
      decode()
    } catch (error) {
      expect(error).toBeInstanceOf(ProtocolError)
      expect(['INVALID', 'TOO_LARGE']).toContain((error as ProtocolError).code)
    }
  }
}

/** Not every JavaScript value packs (huge bigints); those never reach a decoder. */
function packedOrUndefined(value: unknown): Uint8Array | undefined {
  try {
    return packValue(value)
  } catch {
    return undefined
  }
}

const peer = fc.integer({ min: 0, max: 50 }).map(peerId)
const anyValue = fc.anything({
  withNullPrototype: true,
  withBigInt: true,
  withDate: true,
  withTypedArray: true,
  withMap: true,
  withSet: true,
  withSparseArray: true,
})

/** Frames that look like ours, with random values in the fields, to get past the first checks. */
const lookalike = fc.oneof(
  fc.record(
    {
      v: fc.constantFrom(1, 2, '1', null),
      op: fc.constantFrom('submit', 'get', 'list', 'since', 'watch', 'status', 'x'),
      delta: anyValue,
      peerId: fc.oneof(peer, anyValue),
      filter: anyValue,
      index: anyValue,
      limit: anyValue,
      fromIndex: anyValue,
    },
    { requiredKeys: ['v', 'op'] },
  ),
  fc.record({
    v: fc.constant(1),
    op: fc.constant('submit'),
    delta: fc.record({
      originPeerId: fc.oneof(peer, fc.string()),
      seq: fc.oneof(fc.nat(), anyValue),
      fields: fc.dictionary(
        fc.constantFrom('multiaddrs', 'isStaked', 'version', 'ethAddress', 'returnedItems', 'isActive'),
        anyValue,
      ),
    }),
  }),
  fc.record(
    { v: fc.constant(1), ok: fc.oneof(fc.boolean(), anyValue), result: anyValue, error: anyValue, event: anyValue },
    { requiredKeys: ['v', 'ok'] },
  ),
  fc.record({
    v: fc.constant(1),
    ok: fc.constant(true),
    result: fc.record({
      record: fc.oneof(fc.uint8Array(), anyValue),
      records: fc.array(fc.uint8Array()),
      index: anyValue,
      throughIndex: anyValue,
      more: anyValue,
    }),
  }),
  fc.record(
    {
      v: fc.constant(1),
      ok: fc.constant(true),
      header: fc.record({
        clusterId: fc.oneof(fc.string(), anyValue),
        leader: anyValue,
        index: fc.oneof(fc.nat(), anyValue),
        term: anyValue,
        members: anyValue,
        records: anyValue,
        registryDigest: anyValue,
        totalBytes: fc.oneof(fc.nat(), anyValue),
      }),
      chunk: fc.record({ offset: fc.oneof(fc.nat(), anyValue), data: fc.oneof(fc.uint8Array(), anyValue) }),
      end: fc.record({
        totalBytes: anyValue,
        sha256: fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), anyValue),
      }),
    },
    { requiredKeys: ['v', 'ok'] },
  ),
  fc.record({
    v: fc.constant(1),
    ok: fc.constant(false),
    error: fc.record({
      code: fc.constantFrom('NOT_LEADER', 'STALE', 'NOPE'),
      message: fc.string(),
      leader: fc.record({ id: anyValue, peerId: fc.oneof(peer, anyValue), multiaddrs: anyValue }),
    }),
  }),
)

describe('decoders never crash', () => {
  it('on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => decodesOrRefuses(bytes)),
      { numRuns: 2000 },
    )
  })
  it('on random MessagePack values', () => {
    fc.assert(
      fc.property(anyValue, (value) => {
        const bytes = packedOrUndefined(value)
        if (bytes !== undefined) decodesOrRefuses(bytes)
      }),
      { numRuns: 1000 },
    )
  })
  it('on frames that look like ours', () => {
    fc.assert(
      fc.property(lookalike, (value) => {
        const bytes = packedOrUndefined(value)
        if (bytes !== undefined) decodesOrRefuses(bytes)
      }),
      { numRuns: 2000 },
    )
  })
  it('on truncations and bit flips of valid frames', () => {
    const valid = encodeRequest({
      op: 'submit',
      delta: { originPeerId: peerId(1), seq: 3, fields: { version: '1.0.0', multiaddrs: ['/ip4/10.0.0.1/tcp/1'] } },
    })
    fc.assert(
      fc.property(fc.nat(valid.length - 1), fc.nat(255), fc.boolean(), (at, byte, truncate) => {
        const bytes = truncate ? valid.slice(0, at) : Uint8Array.from(valid, (b, i) => (i === at ? byte : b))
        decodesOrRefuses(bytes)
      }),
      { numRuns: 2000 },
    )
  })
  it('encodeRequest throws only ProtocolError for any delta', () => {
    fc.assert(
      fc.property(
        fc.record({
          originPeerId: fc.oneof(peer, fc.string()),
          seq: fc.integer(),
          fields: fc.dictionary(fc.string(), anyValue),
        }),
        (delta) => {
          try {
            encodeRequest({ op: 'submit', delta: delta as never })
          } catch (error) {
            expect(error).toBeInstanceOf(ProtocolError)
          }
        },
      ),
      { numRuns: 500 },
    )
  })
})
