import fc from 'fast-check'
import { Unpackr } from 'msgpackr'
import { describe, expect, it } from 'vitest'
import { MSGPACK_DEPTH_MAX, MsgpackError, checkWire, packWire, unpackWire } from '../src/index.ts'

/** msgpackr as a plain reader (uint64 as number, no checks): what packWire writes is standard MessagePack. */
const reference = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' })

function refusal(run: () => unknown): string {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(MsgpackError)
    return (error as MsgpackError).message
  }
  return 'accepted'
}

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values)

describe('packWire', () => {
  it('writes every integer in the smallest unsigned format, uint 64 from 2^32 on', () => {
    const cases: Array<[number, number[]]> = [
      [0, [0x00]],
      [0x7f, [0x7f]],
      [0x80, [0xcc, 0x80]],
      [0xff, [0xcc, 0xff]],
      [0x100, [0xcd, 0x01, 0x00]],
      [0xffff, [0xcd, 0xff, 0xff]],
      [0x10000, [0xce, 0x00, 0x01, 0x00, 0x00]],
      [2 ** 32 - 1, [0xce, 0xff, 0xff, 0xff, 0xff]],
      [2 ** 32, [0xcf, 0, 0, 0, 1, 0, 0, 0, 0]],
      [2 ** 32 + 1, [0xcf, 0, 0, 0, 1, 0, 0, 0, 1]],
      [1_760_000_000_123, [0xcf, 0x00, 0x00, 0x01, 0x99, 0xc8, 0x2c, 0xc0, 0x7b]],
      [Number.MAX_SAFE_INTEGER, [0xcf, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
    ]
    for (const [value, expected] of cases) {
      expect([...packWire(value)], String(value)).toEqual(expected)
      expect(unpackWire(packWire(value))).toBe(value)
    }
  })

  it('refuses every number that is not an integer in [0, 2^53 - 1], and every non-wire value', () => {
    class Point {
      x = 1
    }
    const refused: unknown[] = [
      1.5,
      -1,
      -(2 ** 40),
      2 ** 53,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      10n,
      undefined,
      [1, undefined],
      new Map([['a', 1]]),
      new Set([1]),
      new Date(0),
      new Point(),
      () => 1,
      Symbol('s'),
      { nested: { deeper: 0.1 } },
    ]
    for (const value of refused)
      expect(
        refusal(() => packWire(value)),
        String(value),
      ).not.toBe('accepted')
  })

  it('leaves out map entries whose value is undefined', () => {
    expect(unpackWire(packWire({ a: 1, b: undefined, c: 'x' }))).toEqual({ a: 1, c: 'x' })
    expect([...packWire({ b: undefined })]).toEqual([0x80])
  })

  it('writes str, bin, array and map headers of every width', () => {
    const headers: Array<[number, number[], number[]]> = [
      // length, str header, bin header
      [0, [0xa0], [0xc4, 0]],
      [31, [0xbf], [0xc4, 31]],
      [32, [0xd9, 32], [0xc4, 32]],
      [255, [0xd9, 255], [0xc4, 255]],
      [256, [0xda, 1, 0], [0xc5, 1, 0]],
      [65_535, [0xda, 0xff, 0xff], [0xc5, 0xff, 0xff]],
      [65_536, [0xdb, 0, 1, 0, 0], [0xc6, 0, 1, 0, 0]],
    ]
    for (const [length, str, bin] of headers) {
      const text = 'a'.repeat(length)
      const packedText = packWire(text)
      expect([...packedText.subarray(0, str.length)], `str ${length}`).toEqual(str)
      expect(packedText.length).toBe(str.length + length)
      expect(unpackWire(packedText)).toBe(text)
      const data = new Uint8Array(length).fill(7)
      const packedData = packWire(data)
      expect([...packedData.subarray(0, bin.length)], `bin ${length}`).toEqual(bin)
      expect(unpackWire(packedData)).toEqual(data)
    }
    expect(packWire(new Array(15).fill(0))[0]).toBe(0x9f)
    expect([...packWire(new Array(16).fill(0)).subarray(0, 3)]).toEqual([0xdc, 0, 16])
    expect([...packWire(new Array(65_536).fill(0)).subarray(0, 5)]).toEqual([0xdd, 0, 1, 0, 0])
    const map = (count: number): Record<string, number> =>
      Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, i]))
    expect(packWire(map(15))[0]).toBe(0x8f)
    expect([...packWire(map(16)).subarray(0, 3)]).toEqual([0xde, 0, 16])
    expect(unpackWire(packWire(map(70_000)))).toEqual(map(70_000))
  })

  it('measures UTF-8, not UTF-16: multi-byte strings get the header of their byte length', () => {
    for (const text of [
      'é',
      'é'.repeat(20),
      '日本'.repeat(50),
      '🙂'.repeat(8),
      `${'a'.repeat(63)}é`,
      'x'.repeat(100),
    ]) {
      const packed = packWire(text)
      const byteLength = new TextEncoder().encode(text).length
      expect(reference.unpack(packed), text).toBe(text)
      expect(packed.length - byteLength).toBe(byteLength < 32 ? 1 : byteLength < 256 ? 2 : 3)
    }
  })

  it(`refuses nesting deeper than ${MSGPACK_DEPTH_MAX} containers, and writes that deep`, () => {
    let deepest: unknown = 1
    for (let i = 0; i < MSGPACK_DEPTH_MAX; i++) deepest = [deepest]
    expect(unpackWire(packWire(deepest))).toEqual(deepest)
    expect(refusal(() => packWire([deepest]))).toMatch(/nested deeper/)
    const cyclic: unknown[] = []
    cyclic.push(cyclic)
    expect(refusal(() => packWire(cyclic))).toMatch(/nested deeper/)
  })

  it('returns bytes the caller owns (the scratch buffer is reused)', () => {
    const first = packWire({ a: 'first' })
    const copy = [...first]
    packWire({ a: 'second', b: 'x'.repeat(100_000) })
    expect([...first]).toEqual(copy)
  })
})

describe('unpackWire', () => {
  it('reads an integer from every integer format, signed ones included when non-negative', () => {
    const cases: Array<[number[], number]> = [
      [[0x05], 5],
      [[0xcc, 0x05], 5],
      [[0xcd, 0x00, 0x05], 5],
      [[0xce, 0x00, 0x00, 0x00, 0x05], 5],
      [[0xcf, 0, 0, 0, 0, 0, 0, 0, 5], 5],
      [[0xcf, 0, 0, 0, 1, 0, 0, 0, 1], 2 ** 32 + 1],
      [[0xcf, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], Number.MAX_SAFE_INTEGER],
      [[0xd0, 0x05], 5],
      [[0xd1, 0x00, 0x05], 5],
      [[0xd2, 0x00, 0x00, 0x00, 0x05], 5],
      [[0xd3, 0, 0, 0, 0, 0, 0, 0, 5], 5],
      [[0xd3, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], Number.MAX_SAFE_INTEGER],
    ]
    for (const [input, value] of cases) expect(unpackWire(bytes(...input)), input.join(',')).toBe(value)
  })

  it('refuses negatives, integers above 2^53 - 1 and floats, 1.0 included', () => {
    const cases: Array<[number[], RegExp]> = [
      [[0xff], /negative/],
      [[0xe0], /negative/],
      [[0xd0, 0xff], /negative/],
      [[0xd1, 0x80, 0x00], /negative/],
      [[0xd2, 0xff, 0xff, 0xff, 0xfb], /negative/],
      [[0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb], /negative/],
      [[0xcf, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], /above 2\^53/],
      [[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], /above 2\^53/],
      [[0xd3, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], /above 2\^53/],
      [[0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0], /float 64/], // 1.0
      [[0xca, 0x3f, 0x80, 0, 0], /float 32/], // 1.0
      [[0x81, 0xa1, 0x76, 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0], /float 64.* at byte 3$/], // { v: 1.0 }
    ]
    for (const [input, message] of cases)
      expect(
        refusal(() => unpackWire(bytes(...input))),
        input.join(','),
      ).toMatch(message)
  })

  it('refuses extension types, the reserved byte, trailing bytes and non-string or repeated map keys', () => {
    const cases: Array<[number[], RegExp]> = [
      [[0xd4, 0x00, 0x00], /extension/], // fixext 1: msgpackr's undefined
      [[0xd6, 0xff, 0, 0, 0, 1], /extension/], // timestamp 32
      [[0xd4, 0x72, 0x40, 0x91, 0xa1, 0x61, 0x40], /extension/], // a msgpackr record definition
      [[0xc7, 0x01, 0x05, 0x00], /extension/],
      [[0xc8, 0x00, 0x01, 0x05, 0x00], /extension/],
      [[0xc9, 0x00, 0x00, 0x00, 0x01, 0x05, 0x00], /extension/],
      [[0x91, 0xd8, 0x01, ...new Array(16).fill(0)], /extension/],
      [[0xc1], /reserved/],
      [[0x01, 0x02], /trailing/],
      [[0x90, 0x00], /trailing/],
      [[0x81, 0x01, 0x02], /not a string/],
      [[0x81, 0xc0, 0x02], /not a string/],
      [[0x81, 0xc4, 0x01, 0x61, 0x02], /not a string/], // a bin key
      [[0x82, 0xa1, 0x61, 0x01, 0xa1, 0x61, 0x02], /repeated/],
      [[0x82, 0xa1, 0x61, 0x01, 0xd9, 0x01, 0x61, 0x02], /repeated/], // same key, another str format
    ]
    for (const [input, message] of cases)
      expect(
        refusal(() => unpackWire(bytes(...input))),
        input.join(','),
      ).toMatch(message)
    // A large map with a repeated key (the set path).
    const large = [0xde, 0x00, 40]
    for (let i = 0; i < 39; i++) large.push(0xa2, 0x6b, 0x30 + i, 0x00)
    large.push(0xa2, 0x6b, 0x30, 0x00)
    expect(refusal(() => unpackWire(Uint8Array.from(large)))).toMatch(/repeated/)
    large[large.length - 2] = 0x30 + 39
    expect(Object.keys(unpackWire(Uint8Array.from(large)) as object)).toHaveLength(40)
  })

  it('refuses the map key "__proto__" both ways, which msgpackr would read back as "__proto_"', () => {
    // Found by the round-trip property (fast-check seed -1462864547): {"": {"__proto__": null}}.
    const hostile = JSON.parse('{"": {"__proto__": null}}') as Record<string, unknown>
    expect(() => packWire(hostile)).toThrow(/"__proto__"/)
    const proto = [...new TextEncoder().encode('__proto__')]
    const bytesOf = [0x81, 0xa0, 0x81, 0xa9, ...proto, 0xc0]
    expect(reference.unpack(bytes(...bytesOf))).toEqual({ '': { __proto_: null } })
    expect(refusal(() => unpackWire(bytes(...bytesOf)))).toMatch(/"__proto__"/)
    expect(refusal(() => unpackWire(bytes(0x81, 0xd9, 9, ...proto, 0x01)))).toMatch(/"__proto__"/)
    // Only the exact key: its neighbours are ordinary keys.
    expect(unpackWire(packWire({ __proto_: 1, ___proto__: 2 }))).toEqual({ __proto_: 1, ___proto__: 2 })
  })

  it('refuses every truncation of a valid value, and empty input', () => {
    const value = { v: 1, id: 7, op: 'get', at: [2 ** 40, 'é'.repeat(40), new Uint8Array(300), null, true] }
    const valid = packWire(value)
    expect(unpackWire(valid)).toEqual(value)
    for (let cut = 0; cut < valid.length; cut++) {
      expect(
        refusal(() => unpackWire(valid.subarray(0, cut))),
        `cut at ${cut}`,
      ).not.toBe('accepted')
    }
  })

  it('refuses declared lengths beyond the bytes and nesting beyond the limit, without allocating', () => {
    expect(refusal(() => unpackWire(bytes(0xdd, 0xff, 0xff, 0xff, 0xff, 0x01)))).toMatch(/truncated/)
    expect(refusal(() => unpackWire(bytes(0xdf, 0xff, 0xff, 0xff, 0xff, 0xa0, 0x01)))).toMatch(/truncated/)
    expect(refusal(() => unpackWire(bytes(0xdb, 0x7f, 0xff, 0xff, 0xff, 0x41)))).toMatch(/truncated/)
    expect(refusal(() => unpackWire(new Uint8Array(100_000).fill(0x91)))).toMatch(/nested deeper/)
    expect(refusal(() => unpackWire(new Uint8Array(100_000).fill(0x81)))).not.toBe('accepted')
  })

  it('round-trips every wire value; msgpackr reads packWire output the same way', () => {
    const { value } = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.constant(null),
        fc.boolean(),
        fc.maxSafeNat(),
        fc.nat({ max: 2 ** 32 + 5 }),
        fc.string({ unit: 'grapheme', maxLength: 40 }),
        fc.string({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.array(tie('value'), { maxLength: 20 }),
        fc.dictionary(
          fc.string({ maxLength: 12 }).filter((key) => key !== '__proto__'),
          tie('value'),
          { maxKeys: 20, noNullPrototype: true },
        ),
      ),
    }))
    fc.assert(
      fc.property(value, (input) => {
        const packed = packWire(input)
        checkWire(packed)
        expect(unpackWire(packed)).toEqual(input)
        expect(reference.unpack(packed)).toEqual(input)
      }),
      { numRuns: 1000 },
    )
  })

  it('throws nothing but MsgpackError on random or corrupted bytes', () => {
    const valid = packWire({ v: 1, op: 'status', list: [1, 2 ** 33, 'abc', { k: new Uint8Array(4) }] })
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 256 }),
          fc
            .array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 })
            .map((flips) => {
              const mutated = Uint8Array.from(valid)
              for (const [at, byte] of flips) mutated[at % mutated.length] = byte
              return mutated
            }),
        ),
        (input) => {
          try {
            unpackWire(input)
          } catch (error) {
            expect(error).toBeInstanceOf(MsgpackError)
          }
        },
      ),
      { numRuns: 3000 },
    )
  })
})
