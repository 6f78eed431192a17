import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import type { Delta } from '@nodeledger/registry'
import {
  packValue,
  GOSSIP_DELTA_BYTES_MAX,
  ProtocolError,
  decodeGossipDelta,
  encodeGossipDelta,
  encodeRequest,
  validateGossipDelta,
} from '../src/index.ts'
import { packAny, peerId } from './helpers.ts'

const ORIGIN = peerId(1)
const OTHER = peerId(2)

const DELTA: Delta = {
  originPeerId: ORIGIN,
  seq: 7,
  fields: { isTwitterScraper: true, multiaddrs: ['/ip4/10.0.0.5/tcp/4001'], version: '1.2.3', returnedItems: 12 },
}

const nothingKnown = (): undefined => undefined

function codeOf(action: () => unknown): string | undefined {
  try {
    action()
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError)
    return (error as ProtocolError).code
  }
  return undefined
}

/** The worst case the registry's field limits allow: 32 distinct multiaddrs of 320 characters and every other field. */
function largestDelta(): Delta {
  const multiaddrs = Array.from({ length: 32 }, (_, i) => {
    const host = `h${String(i).padStart(2, '0')}${'a'.repeat(320 - '/dns4/'.length - '/tcp/65535'.length - 3)}`
    return `/dns4/${host}/tcp/65535`
  })
  return {
    originPeerId: ORIGIN,
    seq: Number.MAX_SAFE_INTEGER,
    fields: {
      multiaddrs,
      isStaked: true,
      isValidator: true,
      isTwitterScraper: true,
      isWebScraper: true,
      isDiscordScraper: true,
      isTelegramScraper: true,
      version: 'v'.repeat(64),
      ethAddress: `0x${'ab'.repeat(20)}`,
      returnedItems: Number.MAX_SAFE_INTEGER,
      returnedItemsLastMs: Number.MAX_SAFE_INTEGER,
      timeouts: Number.MAX_SAFE_INTEGER,
      timeoutsLastMs: Number.MAX_SAFE_INTEGER,
      notFound: Number.MAX_SAFE_INTEGER,
      notFoundLastMs: Number.MAX_SAFE_INTEGER,
    },
  }
}

describe('gossip delta codec', () => {
  it('round-trips a delta', () => {
    expect(decodeGossipDelta(encodeGossipDelta(DELTA))).toEqual(DELTA)
  })

  it('round-trips a delta with no fields', () => {
    const empty: Delta = { originPeerId: ORIGIN, seq: 1, fields: {} }
    expect(decodeGossipDelta(encodeGossipDelta(empty))).toEqual(empty)
  })

  it('writes { v: 1, delta } with the delta in the submit request form', () => {
    const bytes = encodeGossipDelta(DELTA)
    expect([...bytes]).toEqual([
      ...packValue({ v: 1, delta: { originPeerId: DELTA.originPeerId, seq: DELTA.seq, fields: DELTA.fields } }),
    ])
  })

  it('fits the largest delta the registry accepts within GOSSIP_DELTA_BYTES_MAX', () => {
    const delta = largestDelta()
    const bytes = encodeGossipDelta(delta)
    expect(bytes.length).toBeLessThanOrEqual(GOSSIP_DELTA_BYTES_MAX)
    expect(decodeGossipDelta(bytes)).toEqual(delta)
    // The same delta is a valid submit: gossip and the API accept the same deltas.
    expect(codeOf(() => encodeRequest({ op: 'submit', delta }))).toBeUndefined()
  })

  it('refuses to encode an invalid delta', () => {
    expect(codeOf(() => encodeGossipDelta({ ...DELTA, seq: 0 }))).toBe('INVALID')
    expect(codeOf(() => encodeGossipDelta({ ...DELTA, originPeerId: 'not-a-peer-id' }))).toBe('INVALID')
    expect(codeOf(() => encodeGossipDelta({ ...DELTA, fields: { isActive: true } as Delta['fields'] }))).toBe('INVALID')
    expect(codeOf(() => encodeGossipDelta({ ...DELTA, fields: { version: 'v'.repeat(65) } }))).toBe('TOO_LARGE')
  })

  it('refuses malformed messages with INVALID', () => {
    const wire = { originPeerId: ORIGIN, seq: 7, fields: {} }
    const cases: Record<string, Uint8Array> = {
      empty: new Uint8Array(0),
      'not msgpack': new Uint8Array([0xc1]),
      'trailing bytes': new Uint8Array([...encodeGossipDelta(DELTA), 0x00]),
      'not a map': packAny([1, wire]),
      'no v': packAny({ delta: wire }),
      'v 2': packAny({ v: 2, delta: wire }),
      'v as string': packAny({ v: '1', delta: wire }),
      'no delta': packAny({ v: 1 }),
      'unknown key': packAny({ v: 1, delta: wire, extra: true }),
      'delta not a map': packAny({ v: 1, delta: [ORIGIN, 7, {}] }),
      'seq 0': packAny({ v: 1, delta: { ...wire, seq: 0 } }),
      'negative seq': packAny({ v: 1, delta: { ...wire, seq: -1 } }),
      'fractional seq': packAny({ v: 1, delta: { ...wire, seq: 1.5 } }),
      'bad origin': packAny({ v: 1, delta: { ...wire, originPeerId: 'Qm' } }),
      'unknown delta key': packAny({ v: 1, delta: { ...wire, submitterPeerId: ORIGIN } }),
      'observed field': packAny({ v: 1, delta: { ...wire, fields: { isActive: true } } }),
      'wrong field type': packAny({ v: 1, delta: { ...wire, fields: { isStaked: 'yes' } } }),
      'non-canonical multiaddr': packAny({
        v: 1,
        delta: { ...wire, fields: { multiaddrs: ['/ip4/010.0.0.1/tcp/1'] } },
      }),
    }
    for (const [name, bytes] of Object.entries(cases)) {
      expect({ name, code: codeOf(() => decodeGossipDelta(bytes)) }).toEqual({ name, code: 'INVALID' })
    }
  })

  it('refuses oversized messages with TOO_LARGE, before parsing them', () => {
    // Garbage of the limit plus one byte: TOO_LARGE, not INVALID, so the size is checked first.
    expect(codeOf(() => decodeGossipDelta(new Uint8Array(GOSSIP_DELTA_BYTES_MAX + 1).fill(0xc1)))).toBe('TOO_LARGE')
    const padded = packAny({
      v: 1,
      delta: { originPeerId: ORIGIN, seq: 1, fields: { version: 'x'.repeat(GOSSIP_DELTA_BYTES_MAX) } },
    })
    expect(codeOf(() => decodeGossipDelta(padded))).toBe('TOO_LARGE')
    // Within the byte limit but beyond a field's limit.
    expect(
      codeOf(() =>
        decodeGossipDelta(
          packAny({ v: 1, delta: { originPeerId: ORIGIN, seq: 1, fields: { version: 'x'.repeat(65) } } }),
        ),
      ),
    ).toBe('TOO_LARGE')
  })
})

describe('validateGossipDelta', () => {
  const data = encodeGossipDelta(DELTA)

  it('accepts a valid delta from its signer with nothing known for its origin', () => {
    const outcome = validateGossipDelta({ data, from: ORIGIN }, nothingKnown)
    expect(outcome.result).toBe('accept')
    expect(outcome.reason).toBe('VALID')
    expect(outcome.delta).toEqual(DELTA)
  })

  it("accepts a seq above the highest known, asking about the delta's origin", () => {
    const asked: string[] = []
    const outcome = validateGossipDelta({ data, from: ORIGIN }, (origin) => {
      asked.push(origin)
      return DELTA.seq - 1
    })
    expect(outcome.result).toBe('accept')
    expect(asked).toEqual([ORIGIN])
  })

  it('rejects a delta whose origin is not the signer (a forgery or a relay that re-signed it)', () => {
    const outcome = validateGossipDelta({ data, from: OTHER }, nothingKnown)
    expect(outcome).toMatchObject({ result: 'reject', reason: 'NOT_SIGNER' })
    expect(outcome.delta).toBeUndefined()
  })

  it('rejects a message without a signer', () => {
    const outcome = validateGossipDelta({ data, from: undefined as unknown as string }, nothingKnown)
    expect(outcome).toMatchObject({ result: 'reject', reason: 'NOT_SIGNER' })
  })

  it('rejects malformed messages', () => {
    for (const bytes of [
      new Uint8Array(0),
      new Uint8Array([0xc1]),
      packAny({ v: 2, delta: {} }),
      packAny({ v: 1, delta: { originPeerId: ORIGIN, seq: 0, fields: {} } }),
    ]) {
      const outcome = validateGossipDelta({ data: bytes, from: ORIGIN }, nothingKnown)
      expect(outcome).toMatchObject({ result: 'reject', reason: 'INVALID' })
      expect(outcome.delta).toBeUndefined()
    }
    const notBytes = validateGossipDelta({ data: 'hello' as unknown as Uint8Array, from: ORIGIN }, nothingKnown)
    expect(notBytes).toMatchObject({ result: 'reject', reason: 'INVALID' })
  })

  it('rejects oversized messages', () => {
    const outcome = validateGossipDelta(
      { data: new Uint8Array(GOSSIP_DELTA_BYTES_MAX + 1), from: ORIGIN },
      nothingKnown,
    )
    expect(outcome).toMatchObject({ result: 'reject', reason: 'TOO_LARGE' })
  })

  it('rejects a malformed or forged message before consulting knownSeq', () => {
    const knownSeq = (): number => {
      throw new Error('knownSeq must not be called')
    }
    expect(validateGossipDelta({ data: new Uint8Array([0xc1]), from: ORIGIN }, knownSeq).result).toBe('reject')
    expect(validateGossipDelta({ data, from: OTHER }, knownSeq).result).toBe('reject')
  })

  it('ignores a replay: seq equal to the highest known', () => {
    const outcome = validateGossipDelta({ data, from: ORIGIN }, () => DELTA.seq)
    expect(outcome).toMatchObject({ result: 'ignore', reason: 'REPLAYED' })
    expect(outcome.delta).toBeUndefined()
  })

  it('ignores a stale delta: seq below the highest known', () => {
    const outcome = validateGossipDelta({ data, from: ORIGIN }, () => DELTA.seq + 1)
    expect(outcome).toMatchObject({ result: 'ignore', reason: 'STALE_SEQUENCE' })
    expect(outcome.delta).toBeUndefined()
  })

  it('fails loudly when knownSeq breaks its contract (a caller bug, not a bad message)', () => {
    expect(() => validateGossipDelta({ data, from: ORIGIN }, () => -1)).toThrow()
    expect(() => validateGossipDelta({ data, from: ORIGIN }, () => Number.NaN)).toThrow()
  })
})

describe('validateGossipDelta properties', () => {
  const origin = fc.integer({ min: 0, max: 5 }).map(peerId)
  const known = fc.option(fc.nat({ max: 20 }), { nil: undefined })
  const anyValue = fc.anything({
    withNullPrototype: true,
    withBigInt: true,
    withDate: true,
    withTypedArray: true,
    withMap: true,
    withSet: true,
    withSparseArray: true,
  })

  /** Accept only when the bytes decode to a valid delta from `from` above the known seq; never throw. */
  function checkOutcome(data: Uint8Array, from: string, knownSeq: number | undefined): void {
    const outcome = validateGossipDelta({ data, from }, () => knownSeq)
    expect(['accept', 'reject', 'ignore']).toContain(outcome.result)
    let decoded: Delta | undefined
    try {
      decoded = decodeGossipDelta(data)
    } catch (error) {
      expect(error).toBeInstanceOf(ProtocolError)
      expect(['INVALID', 'TOO_LARGE']).toContain((error as ProtocolError).code)
    }
    if (decoded === undefined || decoded.originPeerId !== from) {
      expect(outcome.result).toBe('reject')
      return
    }
    if (knownSeq !== undefined && decoded.seq <= knownSeq) {
      expect(outcome.result).toBe('ignore')
      return
    }
    expect(outcome.result).toBe('accept')
    expect(outcome.delta).toEqual(decoded)
  }

  function packedOrUndefined(value: unknown): Uint8Array | undefined {
    try {
      return packAny(value)
    } catch {
      return undefined
    }
  }

  it('on random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), origin, known, checkOutcome), { numRuns: 2000 })
  })

  it('on random MessagePack values', () => {
    fc.assert(
      fc.property(anyValue, origin, known, (value, from, seq) => {
        const bytes = packedOrUndefined(value)
        if (bytes !== undefined) checkOutcome(bytes, from, seq)
      }),
      { numRuns: 1000 },
    )
  })

  it('on messages that look like ours', () => {
    const lookalike = fc.record(
      {
        v: fc.oneof(fc.constant(1), anyValue),
        delta: fc.oneof(
          anyValue,
          fc.record(
            {
              originPeerId: fc.oneof(origin, fc.string()),
              seq: fc.oneof(fc.integer({ min: -2, max: 25 }), anyValue),
              fields: fc.oneof(
                fc.dictionary(
                  fc.constantFrom('multiaddrs', 'isStaked', 'version', 'ethAddress', 'returnedItems', 'isActive'),
                  anyValue,
                ),
                fc.record(
                  { isStaked: fc.boolean(), version: fc.string({ maxLength: 70 }), returnedItems: fc.nat() },
                  { requiredKeys: [] },
                ),
              ),
            },
            { requiredKeys: ['originPeerId', 'seq'] },
          ),
        ),
        extra: anyValue,
      },
      { requiredKeys: ['delta'] },
    )
    fc.assert(
      fc.property(lookalike, origin, known, (value, from, seq) => {
        const bytes = packedOrUndefined(value)
        if (bytes !== undefined) checkOutcome(bytes, from, seq)
      }),
      { numRuns: 1000 },
    )
  })

  it('accepts every valid delta from its signer that is newer than known, and round-trips it', () => {
    const delta = fc.record({
      originPeerId: origin,
      seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      fields: fc.record(
        {
          isStaked: fc.boolean(),
          isWebScraper: fc.boolean(),
          version: fc.stringMatching(/^[\x20-\x7e]{0,64}$/),
          returnedItems: fc.nat(),
          multiaddrs: fc.uniqueArray(
            fc.integer({ min: 1, max: 65535 }).map((port) => `/ip4/10.0.0.1/tcp/${port}`),
            { maxLength: 32 },
          ),
        },
        { requiredKeys: [] },
      ),
    })
    fc.assert(
      fc.property(delta, (value) => {
        const bytes = encodeGossipDelta(value)
        expect(decodeGossipDelta(bytes)).toEqual(value)
        const outcome = validateGossipDelta({ data: bytes, from: value.originPeerId }, () => value.seq - 1)
        expect(outcome.result).toBe('accept')
        expect(validateGossipDelta({ data: bytes, from: value.originPeerId }, () => value.seq).result).toBe('ignore')
      }),
      { numRuns: 300 },
    )
  })
})
